"""``simulate.py check [SCENARIO]``: the model validity table; exit 0 only when every check passes.

The rows are built in English by :mod:`sdsim.validity` and :mod:`sdsim.corners`; with ``--lang zh``
each cell is matched against the English forms in ``sdsim/text/check.yaml`` (``check.row.*``) and
rewritten in Chinese with the same values (:func:`sdsim.commands.common.localize`).
"""

from __future__ import annotations

import argparse
import re
import time

from ..checkspec import load_checks
from ..i18n import t
from ..model import Model
from ..textable import render
from ..validity import Row, all_passed, baseline_scenario, run_checks
from .common import heading, load, scenarios, warning_line
from .common import localize as common_localize

RESULT = {True: "pass", False: "FAIL", None: "info"}


def localize(text: str, lang: str, labels: dict[str, str] | None = None) -> str:
    """An English cell of the check table in ``lang`` (values kept; inner phrases translated too)."""
    return common_localize(text, lang, "check.row.", labels)


def _labels(model: Model) -> dict[str, str]:
    """English -> Chinese labels of the figures declared in checks.yaml (behaviour rows are named by them)."""
    if not (model.directory / "checks.yaml").is_file():
        return {}
    spec = load_checks(model)
    return {f.en: f.zh for f in [*spec.behaviour, *spec.comparisons] if getattr(f, "en", "") and getattr(f, "zh", "")}


def table(rows: list[Row], lang: str = "en", labels: dict[str, str] | None = None) -> str:
    """The check table: check, measured figure, threshold, result."""
    return render([t(f"check.col.{k}", lang) for k in ("check", "measured", "threshold", "result")],
                  [[localize(r.name, lang, labels), localize(r.measured, lang, labels),
                    localize(r.threshold, lang, labels), t(f"check.result.{RESULT[r.passed]}", lang)] for r in rows])


def notes(rows: list[Row], source: str = "checks.yaml", lang: str = "en", labels: dict[str, str] | None = None
          ) -> list[str]:
    """Legend lines (what reality checks and comparisons test) and the details of failures."""
    out = []
    about = [r for r in rows if r.about]
    if about:
        out.append(t("check.about", lang, source=source))
        out += [f"  {localize(r.name, lang, labels)}: {_about(r, lang)}" for r in about]
    failed = [r for r in rows if r.passed is False]
    if failed:
        out.append(t("check.failures", lang))
        for r in failed:
            out.append(f"  {localize(r.name, lang, labels)}")
            out += [f"    - {d}" for d in r.details[:12]]
            if len(r.details) > 12:
                out.append(t("check.more", lang, n=len(r.details) - 12))
    return out


def _about(r: Row, lang: str) -> str:
    """What a row tests; in Chinese, a hindcast row names its observation only (its source text is English)."""
    if lang == "en":
        return r.about
    if r.group == "hindcast":
        m = re.match(r"(\S+) \((\w+) scope\): ", r.about)
        if m:
            return t("check.hindcast_about", lang, id=m.group(1), scope=t(f"check.scope.{m.group(2)}", lang))
    return localize(r.about, lang)


def main(args: argparse.Namespace) -> int:
    """Run every check for the scenario (default: the model's own values) and print the table."""
    t0 = time.perf_counter()
    lang = getattr(args, "lang", "en")
    model, cm = load(args)
    sc = scenarios(args, model, [args.scenario])[0] if args.scenario else baseline_scenario(model)
    if args.scenario:
        print(heading(sc, lang))
        for w in sc.warnings:
            print(warning_line(w, lang))
    else:
        print(t("check.model_line", lang, dir=model.directory, start=sc.start, end=sc.end, dt=f"1/{round(1 / sc.dt)}",
                method=t(f"common.method.{sc.method}", lang)))
    rows = run_checks(model, cm, sc, lang)
    labels = _labels(model) if lang != "en" else {}
    print(table(rows, lang, labels))
    for line in notes(rows, str(model.directory / "checks.yaml"), lang, labels):
        print(line)
    judged = [r for r in rows if r.passed is not None]
    n_ok = sum(bool(r.passed) for r in judged)
    ok = all_passed(rows)
    print(t("check.summary", lang, ok=n_ok, n=len(judged), exit="" if ok else t("check.exit1", lang),
            info=len(rows) - len(judged), secs=f"{time.perf_counter() - t0:.1f}"))
    return 0 if ok else 1
