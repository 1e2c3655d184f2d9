"""``simulate.py export [SCENARIO] --format xmile [--out FILE]``: the model for Stella / Vensim / PySD."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..i18n import t
from ..results import check_file_target
from ..scenario import Scenario, goal_year
from ..xmile import export_scenario, write_text
from .common import heading, load, result_name, scenarios, warning_line


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


def _note(note: str, lang: str) -> str:
    """An exporter note (sdsim.xmile writes them in English) in ``lang``, where the catalogue knows its form."""
    import re

    if lang == "en":
        return note
    m = re.match(r"flows written once per stock \(XMILE flows have one source and one sink\): (.*)$", note)
    if m:
        return t("export.note_split", lang, pairs=m.group(1))
    m = re.match(r"annual output '(\w+)' \((.*)\) has no XMILE form and is not exported$", note)
    if m:
        return t("export.note_annual", lang, name=m.group(1), what=m.group(2).split(",")[0])
    m = re.match(r"levers with scenario time functions \(acting from t >= (.*)\): (.*)$", note)
    if m:
        return t("export.note_timed", lang, start=m.group(1), levers=m.group(2))
    return note


def main(args: argparse.Namespace) -> int:
    """Write the XMILE file of a scenario (or of the model's own values) and say what it holds."""
    model, cm = load(args)
    if args.scenario:
        sc = scenarios(args, model, [args.scenario])[0]
    else:
        sc = Scenario(name="model", file="(model files)", dt=model.dt,
                      title={lang: t("export.model_title", lang) for lang in ("en", "zh")},
                      start=model.calibration.start, end=goal_year(model))
    out = Path(args.out) if args.out else Path("results") / f"{result_name(sc)}.xmile"
    check_export_target(out)
    exp = export_scenario(cm, sc)
    try:
        write_text(out, exp.text)
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot write the file: {reason}", str(out), "--out") from None
    lang = getattr(args, "lang", "en")
    print(heading(sc, lang))
    for w in sc.warnings:
        print(warning_line(w, lang))
    print(t("export.summary", lang, stocks=len(exp.stocks), flows=len(exp.flows), aux=len(exp.aux)))
    for note in exp.notes:
        print(t("common.note_line", lang, note=_note(note, lang)))
    if sc.method != "euler":
        print(t("common.note_line", lang, note=t("export.method", lang, method=sc.method.upper())))
    print(f"  -> {out}")
    return 0
