"""``simulate.py export [SCENARIO] --format xmile [--out FILE]``: the model for Stella / Vensim / PySD."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..results import check_file_target
from ..scenario import Scenario, goal_year
from ..xmile import export_scenario, write_text
from .common import heading, load, result_name, scenarios


def is_own_export(path: Path) -> bool:
    """True when ``path`` is an XMILE file this program exported (its header names sdsim as vendor and product)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2048).decode("utf-8", errors="replace")
    except OSError:
        return False
    return head.startswith("<?xml") and "<vendor>sdsim</vendor>" in head and ">sdsim</product>" in head


def check_export_target(out: Path) -> None:
    """Refuse to write over anything but an earlier export of this program (or through a broken path)."""
    check_file_target(out, is_own_export, "an XMILE file")


def main(args: argparse.Namespace) -> int:
    """Write the XMILE file of a scenario (or of the model's own values) and say what it holds."""
    model, cm = load(args)
    if args.scenario:
        sc = scenarios(args, model, [args.scenario])[0]
    else:
        sc = Scenario(name="model", file="(model files)", dt=model.dt, title={"en": "Model values, no scenario levers"},
                      start=model.calibration.start, end=goal_year(model))
    out = Path(args.out) if args.out else Path("results") / f"{result_name(sc)}.xmile"
    check_export_target(out)
    exp = export_scenario(cm, sc)
    try:
        write_text(out, exp.text)
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot write the file: {reason}", str(out), "--out") from None
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
