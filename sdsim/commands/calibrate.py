"""``simulate.py calibrate [SCENARIO]``: targets vs model, solved free parameters, residuals."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..i18n import t
from ..runner import calibrated_params, parameter_batch
from ..textable import num, render
from .common import load, provenance, scenarios


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
    lang = getattr(args, "lang", "en")
    if not cal.targets:
        print(t("cal.no_targets", lang, start=cal.start))
        return 0
    print(t("cal.summary", lang, start=cal.start, end=cal.end, dt=f"1/{round(1 / dt)}",
            method=t(f"common.method.{method}", lang), free=len(cal.free), targets=len(cal.targets),
            iterations=res.iterations, ms=f"{wall * 1000:.1f}"))
    rows = []
    for j, tgt in enumerate(cal.targets):
        what = tgt.variable or t("cal.inflows_of", lang, stock=tgt.inflows_of)
        src = model.facts.get(tgt.value_name) or model.params.get(tgt.value_name)
        rows.append([tgt.name, what, str(tgt.year), num(res.targets[0, j], 6), num(res.achieved[0, j], 6),
                     f"{res.residuals[0, j]:.1e}", f"{tgt.value_name} ({provenance(src.provenance, lang)})"])
    print("\n" + t("cal.targets", lang))
    print(render([t(f"cal.col.{k}", lang) for k in ("target", "variable", "year", "value", "model", "residual",
                                                       "source")],
                 rows, [False, False, True, True, True, True, False]))
    rows = []
    for f in cal.free:
        p = model.params[f.name]
        v = float(np.asarray(res.params[f.name]).reshape(-1)[0])
        bounds = f"[{f.lower if f.lower is not None else '-inf'}, {f.upper if f.upper is not None else 'inf'}]"
        if f.rate:
            bounds += t("cal.rate_bound", lang, limit=f"{1 / dt:g}")
        rows.append([f.name, num(v, 6), p.units, bounds, f.pins])
    print("\n" + t("cal.free", lang))
    print(render([t(f"cal.col.{k}", lang) for k in ("parameter", "pvalue", "units", "bounds", "pins")], rows,
                 [False, True, False, False, False]))
    if res.ok.all():
        print("\n" + t("cal.reproduced", lang, year=cal.end, residual=f"{res.max_residual:.1e}"))
        return 0
    print("\n" + t("cal.no_solution", lang, reason=res.reason[0]))
    return 1
