"""Helpers shared by the commands: loading, goal tables, scenario titles."""

from __future__ import annotations

import argparse
import functools
import hashlib
import re
from pathlib import Path
from typing import Any

from ..compiler import Compiled
from ..errors import InputError
from ..goals import GoalStatus
from ..i18n import catalogue, t
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


GOAL_KEYS = ("goal", "value", "threshold", "met", "first_year", "gap", "gap_pct")


def goal_header(lang: str = "en", year: object = None) -> list[str]:
    """Header of the goal table (``year`` given: the value column names the goal year)."""
    head = [t(f"common.col.{k}", lang) for k in GOAL_KEYS]
    if year is not None:
        head[1] = t("common.col.value_year", lang, year=year)
    return head


GOAL_HEADER = goal_header("en")


def goal_rows(status: dict[str, GoalStatus], lang: str = "en", column: int = 0) -> list[list[str]]:
    """goal, value, threshold, met, first year, gap, gap % (and P for Poisson goals), as text."""
    rows = []
    for st in status.values():
        g = st.goal
        met = t("common.yes" if st.met[column] else "common.no", lang)
        if g.poisson:  # a count of rare events: the expected count, and the chance the actual count gets there
            met = t("common.expected_met", lang, met=met, p=f"{st.probability[column]:.2f}")
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
    return render(goal_header(lang, year), goal_rows(status, lang, column), [False, True, True, False, True, True, True])


def reported_cells(st: GoalStatus, column: int = 0) -> list[object]:
    """value_reported, threshold_reported, rebased_target, rebased_target_year (empty where not defined)."""
    if st.value_reported is None or st.threshold_reported is None:
        return ["", "", "", ""]
    return [st.value_reported[column], st.threshold_reported[column],
            "" if st.rebased_target is None else st.rebased_target, st.rebased_year or ""]


def scope_note(model: Any, lang: str = "en") -> str:
    """The sentence before the published-scope table (with the model's scope-change year when it names one)."""
    from ..figures_spec import scope_year

    year = scope_year(model)
    return t("common.scope_note", lang, year=year) if year is not None else t("common.scope_note_plain", lang)


def reported_header(status: dict[str, GoalStatus], lang: str = "en") -> list[str]:
    """Header of the published-scope table."""
    year = next(iter(status.values())).goal.year if status else ""
    return [t(f"common.reported.{k}", lang, year=year) for k in ("goal", "value", "threshold", "target")]


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


def reported_table(model: Any, status: dict[str, GoalStatus], lang: str = "en", column: int = 0) -> str:
    """The published-scope table as terminal text, after the one-sentence scope note ('' when no goal has one)."""
    rows = reported_rows(status, lang, column)
    if not rows:
        return ""
    return scope_note(model, lang) + "\n" + render(reported_header(status, lang), rows,
                                                                  [False, True, True, True])


def heading(sc: Scenario, lang: str = "en") -> str:
    """One line naming the scenario, its run settings and its command-line overrides."""
    dt = f"1/{round(1 / sc.dt)}"
    sets = f"  [--set {', '.join(sc.overrides)}]" if sc.overrides else ""
    return t("common.heading", lang, name=sc.name, title=sc.label(lang), start=sc.start, end=sc.end, dt=dt,
             method=t(f"common.method.{sc.method}", lang), sets=sets)


def scenario_text(sc: Scenario, lang: str = "en") -> str:
    """The scenario's description in ``lang`` (the English one when it has none in ``lang``)."""
    return sc.text(lang)


def lever_summary(fn: Any, lang: str = "en") -> str:
    """A lever's time function in a few words, e.g. ``1.5``, ``2 from 2023``, ``0->120 over 2023-2025``."""
    if fn.kind == "constant":
        return f"{fn.value:g}"
    if fn.kind == "step":
        return t("common.lever.step", lang, to=f"{fn.to:g}", at=int(fn.at))
    if fn.kind == "pulse":
        return t("common.lever.pulse", lang, size=f"{fn.size:g}", at=int(fn.at))
    if fn.kind == "ramp":
        (y1, a), (y2, b) = fn.points
        return t("common.lever.ramp", lang, a=f"{a:g}", b=f"{b:g}", y1=int(y1), y2=int(y2))
    return t("common.lever.table", lang, points=", ".join(f"{int(y)}: {v:g}" for y, v in fn.points))


def provenance(word: str, lang: str = "en") -> str:
    """A provenance word of the model files (seed, derived, external, assumption, calibrated) in ``lang``."""
    key = f"common.prov.{word}"
    from ..i18n import has

    return t(key, lang) if has(key) else word


def warning_line(w: str, lang: str = "en") -> str:
    """A scenario warning as printed under the heading."""
    return t("common.warning_line", lang, w=localize(w, lang, "common.warn."))


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


# ----------------------------------------------------------------- texts other modules write in English


@functools.cache
def _forms(prefix: str) -> list[tuple[re.Pattern[str], str]]:
    """(regex of the English form, key) of every catalogue text whose key starts with ``prefix``, the most
    fixed characters first (the most specific form wins)."""
    out = []
    for key, texts in catalogue().items():
        if not key.startswith(prefix):
            continue
        parts = re.split(r"(\{\w+\})", texts["en"])
        rx = "".join(f"(?P<{p[1:-1]}>.*?)" if p.startswith("{") and p.endswith("}")
                     else "s?".join(re.escape(x) for x in p.split("~s")) for p in parts)  # ~s: an optional plural s
        fixed = len(re.sub(r"\{\w+\}", "", texts["en"]))
        out.append((fixed, re.compile(rx + r"\Z", re.S), key))
    return [(rx, key) for _, rx, key in sorted(out, key=lambda f: -f[0])]


RECURSE = ("what", "rest", "expect", "name", "a", "b", "prov")  # placeholders that hold a phrase, translated in turn


def localize(text: str, lang: str, prefix: str, labels: dict[str, str] | None = None) -> str:
    """A text another module writes in English (the check table's cells, calibration failure reasons, notes),
    in ``lang``: matched against the English forms of the catalogue keys under ``prefix`` and written in the
    form of ``lang`` with the same values. ``labels`` maps whole English texts to their translation; a text no
    form matches is returned as it is (a list joined by '; ' is translated item by item)."""
    if lang == "en" or not text:
        return text
    if labels and text in labels:
        return labels[text]
    for rx, key in _forms(prefix):
        m = rx.match(text)
        if m:
            kw = {k: localize(v, lang, prefix, labels) if k in RECURSE else v for k, v in m.groupdict().items()}
            return t(key, lang, **kw)
    if "; " in text:  # a list of expectations
        return "；".join(localize(p, lang, prefix, labels) for p in text.split("; "))
    return text
