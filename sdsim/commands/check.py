"""``simulate.py check [SCENARIO]``: the model validity table; exit 0 only when every check passes."""

from __future__ import annotations

import argparse
import time

from ..textable import render
from ..validity import Row, all_passed, baseline_scenario, run_checks
from .common import heading, load, scenarios

RESULT = {True: "pass", False: "FAIL", None: "info"}


def table(rows: list[Row]) -> str:
    """The check table: check, measured figure, threshold, result."""
    return render(["check", "measured", "threshold", "result"],
                  [[r.name, r.measured, r.threshold, RESULT[r.passed]] for r in rows])


def notes(rows: list[Row], source: str = "checks.yaml") -> list[str]:
    """Legend lines (what reality checks and comparisons test) and the details of failures."""
    out = []
    about = [r for r in rows if r.about]
    if about:
        out.append(f"\nWhat the reality checks and comparisons test ({source}):")
        out += [f"  {r.name}: {r.about}" for r in about]
    failed = [r for r in rows if r.passed is False]
    if failed:
        out.append("\nFailures:")
        for r in failed:
            out.append(f"  {r.name}")
            out += [f"    - {d}" for d in r.details[:12]]
            if len(r.details) > 12:
                out.append(f"    - ... and {len(r.details) - 12} more")
    return out


def main(args: argparse.Namespace) -> int:
    """Run every check for the scenario (default: the model's own values) and print the table."""
    t0 = time.perf_counter()
    model, cm = load(args)
    sc = scenarios(args, model, [args.scenario])[0] if args.scenario else baseline_scenario(model)
    if args.scenario:
        print(heading(sc))
        for w in sc.warnings:
            print(f"  warning: {w}")
    else:
        print(f"Model {model.directory} with its own parameter values, levers at baseline "
              f"({sc.start}-{sc.end}, dt 1/{round(1 / sc.dt)}, {sc.method})")
    rows = run_checks(model, cm, sc)
    print(table(rows))
    for line in notes(rows, str(model.directory / "checks.yaml")):
        print(line)
    judged = [r for r in rows if r.passed is not None]
    n_ok = sum(bool(r.passed) for r in judged)
    ok = all_passed(rows)
    print(f"\n{n_ok} of {len(judged)} checks passed{'' if ok else ' (exit code 1)'}; "
          f"{len(rows) - len(judged)} reported; {time.perf_counter() - t0:.1f} s")
    return 0 if ok else 1
