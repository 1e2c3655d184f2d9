"""``simulate.py export [SCENARIO] --format xmile [--out FILE]``: the model for Stella / Vensim / PySD."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..scenario import Scenario, goal_year
from ..xmile import export_scenario, write_text
from .common import heading, load, scenarios


def main(args: argparse.Namespace) -> int:
    """Write the XMILE file of a scenario (or of the model's own values) and say what it holds."""
    model, cm = load(args)
    if args.scenario:
        sc = scenarios(args, model, [args.scenario])[0]
    else:
        sc = Scenario(name="model", file="(model files)", dt=model.dt, title={"en": "Model values, no scenario levers"},
                      start=model.calibration.start, end=goal_year(model))
    out = Path(args.out) if args.out else Path("results") / f"{sc.name}.xmile"
    if out.is_dir():
        raise InputError("is a folder; give a file name such as model.xmile", str(out), "--out")
    exp = export_scenario(cm, sc)
    try:
        write_text(out, exp.text)
    except OSError as exc:
        raise InputError(f"cannot write the file: {exc.strerror}", str(out), "--out") from None
    print(heading(sc))
    for w in sc.warnings:
        print(f"  warning: {w}")
    print(f"  XMILE 1.0: {len(exp.stocks)} stocks, {len(exp.flows)} flows, {len(exp.aux)} auxiliaries "
          f"(constants, levers and calibrated free parameters with this scenario's values)")
    for note in exp.notes:
        print(f"  note: {note}")
    if sc.method != "euler":
        print(f"  note: sim_specs say {sc.method.upper()}; PySD ignores the method and integrates with Euler")
    print(f"  -> {out}")
    return 0
