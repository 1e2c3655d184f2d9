"""``simulate.py calibrate [SCENARIO]``: targets vs model, solved free parameters, residuals."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..runner import calibrated_params, parameter_batch
from ..textable import num, render
from .common import load, scenarios


def main(args: argparse.Namespace) -> int:
    """Solve the calibration and print how each target is reproduced."""
    model, cm = load(args)
    overrides: dict[str, float] = {}
    dt, method = model.dt, "euler"
    if args.scenario:
        sc = scenarios(args, model, [args.scenario])[0]
        overrides, dt, method = sc.parameters, sc.dt, sc.method
    params = parameter_batch(cm, [overrides])
    t0 = time.perf_counter()
    _, res = calibrated_params(cm, params, dt, method, strict=False)
    wall = time.perf_counter() - t0
    cal = model.calibration
    if not cal.targets:
        print(f"The model has no calibration targets: every run starts at t0 = {cal.start} from the values in its "
              "files (nothing to solve).")
        return 0
    print(f"Calibration window {cal.start}-{cal.end} (dt 1/{round(1 / dt)}, {method}); "
          f"{len(cal.free)} free parameters, {len(cal.targets)} targets; "
          f"Newton-Broyden solve converged in {res.iterations} iterations, {wall * 1000:.1f} ms")
    rows = []
    for j, tgt in enumerate(cal.targets):
        what = tgt.variable or f"inflows of {tgt.inflows_of}"
        src = model.facts.get(tgt.value_name) or model.params.get(tgt.value_name)
        rows.append([tgt.name, what, str(tgt.year), num(res.targets[0, j], 6), num(res.achieved[0, j], 6),
                     f"{res.residuals[0, j]:.1e}", f"{tgt.value_name} ({src.provenance})"])
    print("\nTargets")
    print(render(["target", "model variable", "year", "target value", "model", "rel. residual", "value from"],
                 rows, [False, False, True, True, True, True, False]))
    rows = []
    for f in cal.free:
        p = model.params[f.name]
        v = float(np.asarray(res.params[f.name]).reshape(-1)[0])
        bounds = f"[{f.lower if f.lower is not None else '-inf'}, {f.upper if f.upper is not None else 'inf'}]"
        if f.rate:
            bounds += f" (rate < 1/dt = {1 / dt:g})"
        rows.append([f.name, num(v, 6), p.units, bounds, f.pins])
    print("\nSolved free parameters")
    print(render(["parameter", "value", "units", "bounds", "pins target"], rows, [False, True, False, False, False]))
    if res.ok.all():
        print(f"\n{cal.end} reproduced: largest relative residual {res.max_residual:.1e} (tolerance 1e-6)")
        return 0
    print(f"\nno solution inside the bounds: {res.reason[0]}")
    return 1
