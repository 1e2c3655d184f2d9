"""Helpers shared by the commands: loading, goal tables, scenario titles."""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

from ..compiler import Compiled
from ..errors import InputError
from ..goals import GoalStatus
from ..loader import load_compiled
from ..model import Model
from ..scenario import Scenario, apply_set, load_scenario
from ..textable import num, render


def load(args: argparse.Namespace) -> tuple[Model, Compiled]:
    """Load and compile the model named by ``--model`` (or the default one); cached while its files are unchanged."""
    return load_compiled(getattr(args, "model", None))


def require_goals(model: Model, command: str) -> None:
    """InputError when the model has no goals (``command`` compares or analyses goal indicators)."""
    if not model.goals:
        raise InputError(f"{command} judges the model's goals, and the model declares none (add goals.yaml)",
                         str(model.directory / "goals.yaml"))


def scenario_path(ref: str, model: Model) -> Path:
    """A scenario file named on the command line: a path as given, or a bare name (``baseline``) looked up in
    ``./scenarios``, then beside the model folder, then among the bundled scenarios."""
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in ref or "\\" in ref:
        return p
    from ..bundled import scenarios_dir

    places = [Path.cwd() / "scenarios", model.directory.parent / "scenarios", scenarios_dir()]
    for d in dict.fromkeys(places):
        cand = d / f"{ref}.yaml"
        if cand.is_file():
            return cand
    known = sorted({f.stem for d in places if d.is_dir() for f in d.glob("*.yaml")})
    raise InputError(f"no scenario file or name {ref!r} (looked in ./scenarios, beside the model and among the "
                     f"bundled scenarios: {', '.join(known) or 'none'})", None, "SCENARIO")


def scenarios(args: argparse.Namespace, model: Model, files: list[str]) -> list[Scenario]:
    """Load scenario files (or bare names) and apply ``--set`` overrides; all are validated before any run."""
    out = []
    for f in files:
        sc = load_scenario(scenario_path(f, model), model)
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


def reported_cells(st: GoalStatus, column: int = 0) -> list[object]:
    """value_reported, threshold_reported, rebased_target, rebased_target_year (empty where not defined)."""
    if st.value_reported is None or st.threshold_reported is None:
        return ["", "", "", ""]
    return [st.value_reported[column], st.threshold_reported[column],
            "" if st.rebased_target is None else st.rebased_target, st.rebased_year or ""]


SCOPE_NOTE = {
    "en": ("Goals are judged in the scope they were set in (the seed's, 2022). Since end 2022 the district reports "
           "in a narrower scope, so seed-scope values after 2022 are not observed; the published values are:"),
    "zh": ("目标按其制定时的统计口径（原口径，2022年）判断。2022年末起全区按较窄的新口径公布，"
           "原口径数值此后无观测；公布口径数值如下："),
}


REPORTED_HEADER = {
    "en": ["goal (published scope)", "{year} reported", "threshold x scope", "re-based target"],
    "zh": ["目标（公布口径）", "{year}年公布值", "目标值×口径系数", "重新设定的目标"],
}


def reported_header(status: dict[str, GoalStatus], lang: str = "en") -> list[str]:
    """Header of the published-scope table."""
    year = next(iter(status.values())).goal.year if status else ""
    return [h.format(year=year) for h in REPORTED_HEADER.get(lang, REPORTED_HEADER["en"])]


def reported_rows(status: dict[str, GoalStatus], lang: str = "en", column: int = 0) -> list[list[str]]:
    """The goals with a published indicator: reported value, threshold in that scope, re-based target."""
    rows = []
    for st in status.values():
        if st.value_reported is None or st.threshold_reported is None:
            continue
        g = st.goal
        target = f"{num(st.rebased_target)} ({st.rebased_year})" if st.rebased_target is not None else "-"
        rows.append([g.label(lang), num(st.value_reported[column]), f"{g.test} {num(st.threshold_reported[column])}",
                     target])
    return rows


def reported_table(status: dict[str, GoalStatus], lang: str = "en", column: int = 0) -> str:
    """The published-scope table as terminal text, after the one-sentence scope note ('' when no goal has one)."""
    rows = reported_rows(status, lang, column)
    if not rows:
        return ""
    return SCOPE_NOTE.get(lang, SCOPE_NOTE["en"]) + "\n" + render(reported_header(status, lang), rows,
                                                                  [False, True, True, True])


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
