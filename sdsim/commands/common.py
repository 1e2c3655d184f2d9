"""Helpers shared by the commands: loading, goal tables, scenario titles."""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

from ..compiler import Compiled, compile_model
from ..goals import GoalStatus
from ..model import Model, load_model
from ..scenario import Scenario, apply_set, load_scenario
from ..textable import num, render


def load(args: argparse.Namespace) -> tuple[Model, Compiled]:
    """Load and compile the model named by ``--model`` (or the default one)."""
    model = load_model(getattr(args, "model", None))
    return model, compile_model(model)


def scenarios(args: argparse.Namespace, model: Model, files: list[str]) -> list[Scenario]:
    """Load scenario files and apply ``--set`` overrides; all are validated before any run."""
    out = []
    for f in files:
        sc = load_scenario(f, model)
        for s in getattr(args, "set", []) or []:
            apply_set(sc, s, model)
        out.append(sc)
    return out


GOAL_HEADER = ["goal", "value", "threshold", "met", "first year", "gap", "gap %"]


def goal_rows(status: dict[str, GoalStatus], lang: str = "en", column: int = 0) -> list[list[str]]:
    """goal, value, threshold, met, first year, gap, gap % (and P for Poisson goals), as text."""
    rows = []
    for st in status.values():
        g = st.goal
        met = ("是" if st.met[column] else "否") if lang == "zh" else ("yes" if st.met[column] else "no")
        if g.poisson:  # a count of rare events: the expected count, and the chance the actual count gets there
            met = (f"期望{met}，P={st.probability[column]:.2f}" if lang == "zh"
                   else f"exp. {met}, P={st.probability[column]:.2f}")
        first = str(int(st.first_year[column])) if st.first_year[column] else "-"
        gap = st.gap[column]
        if g.units == "dmnl":  # shares as percentages, their gap in percentage points
            value, threshold, gap_text = f"{100 * st.value[column]:.3g}%", f"{g.test} {100 * g.threshold:g}%", \
                f"{100 * gap:+.1f} pp"
        else:
            value, threshold, gap_text = num(st.value[column]), f"{g.test} {num(g.threshold)}", \
                ("+" if gap >= 0 else "") + num(gap)
        rows.append([g.label(lang), value, threshold, met, first, gap_text, f"{st.gap_pct[column]:+.1f}%"])
    return rows


def goal_table(status: dict[str, GoalStatus], lang: str = "en", column: int = 0) -> str:
    """The goal table as terminal text."""
    year = next(iter(status.values())).goal.year if status else ""
    header = [h if h != "value" else f"{year} value" for h in GOAL_HEADER]
    return render(header, goal_rows(status, lang, column), [False, True, True, False, True, True, True])


def heading(sc: Scenario) -> str:
    """One line naming the scenario, its run settings and its command-line overrides."""
    dt = f"1/{round(1 / sc.dt)}"
    sets = f"  [--set {', '.join(sc.overrides)}]" if sc.overrides else ""
    return f"Scenario '{sc.name}': {sc.label()}  ({sc.start}-{sc.end}, dt {dt}, {sc.method}){sets}"


def variant_suffix(overrides: list[str]) -> str:
    """``+name=value+...`` naming a set of ``--set`` overrides in a folder or file name ('' when none).

    Characters other than letters, digits and ``_ . = -`` become ``_``; when that changed anything,
    or the text is long, a short hash of the overrides keeps different variants apart.
    """
    if not overrides:
        return ""
    text = "+".join(overrides)
    slug = re.sub(r"[^A-Za-z0-9_.=\-+]", "_", text)
    if slug != text or len(slug) > 80:
        digest = hashlib.sha256("\0".join(overrides).encode("utf-8")).hexdigest()[:8]
        slug = f"{slug[:80]}-{digest}"
    return "+" + slug


def result_name(sc: Scenario) -> str:
    """Result folder name of a scenario: its name, plus its ``--set`` overrides (a variant gets its own folder)."""
    return sc.name + variant_suffix(sc.overrides)


def out_path(base: str, sc: Scenario) -> Path:
    """Result folder of a scenario (or of its ``--set`` variant) under ``base``."""
    return Path(base) / result_name(sc)
