"""``simulate.py compare SCENARIO...``: several scenarios in one batch, a scenario x goal table,
overlay and matrix figures, compare.csv and manifest.json in one atomically written folder.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import parallel, plots
from ..engine import Run
from ..errors import InputError
from ..goals import GoalStatus, evaluate, holds
from ..i18n import t
from ..model import Goal, Model
from ..report import Report
from ..results import check_target, manifest, result_dir, write_csv, write_json
from ..runner import ScenarioRun, run_scenarios
from ..textable import num, render
from .common import (
    lever_summary,
    load,
    localize,
    reported_cells,
    require_goals,
    scenario_text,
    scenarios,
    scope_note,
    variant_suffix,
    warning_line,
)

CSV_HEADER = (
    "scenario", "title", "file", "goal", "variable", "year", "value", "test", "threshold", "met",
    "first_year_met", "met_every_year_since_first", "gap", "gap_pct", "probability",
    "value_reported", "threshold_reported", "rebased_target", "rebased_target_year",
)


def steady(goal: Goal, run: Run, first_year: int) -> bool | None:
    """Whether the goal holds in every year from ``first_year`` to the goal year (None: not met by then)."""
    if not first_year or first_year > goal.year:
        return None
    sel = (run.years >= first_year) & (run.years <= goal.year)
    series = np.nan_to_num(run.get(goal.variable)[sel, 0], nan=-np.inf)
    return bool(holds(goal, series).all())


def interrupted(goal: Goal, run: Run, first_year: int) -> bool:
    """True when the goal holds in its year but not in every year from ``first_year`` to then."""
    ok = steady(goal, run, first_year)
    return ok is False and bool(holds(goal, run.at(goal.variable, goal.year)).all())


def _value(v: float, goal: Goal) -> str:
    """Table value: shares as percentages, counts compact."""
    if goal.units == "dmnl":
        return f"{100 * v:.3g}%"
    return num(v, 3)


def cell(st: GoalStatus, dip: bool, lang: str = "en") -> str:
    """``value yes|no first-year`` (``*`` marks a goal met, lost, and met again)."""
    first = int(st.first_year[0])
    when = (str(first) + ("*" if dip else "")) if first else "-"
    met = t("common.yes" if st.met[0] else "common.no", lang)
    if st.goal.poisson:  # a count of rare events: the expected count meets it or not; P is in its own column
        met = t("cmp.expected", lang, met=met)
    return f"{_value(float(st.value[0]), st.goal)} {met} {when}"


def table_rows(model: Model, results: list[ScenarioRun], status: list[dict[str, GoalStatus]],
               dips: list[set[str]], lang: str = "en") -> tuple[list[str], list[list[str]]]:
    """Header and rows of the scenario x goal table."""
    goals = list(model.goals.values())
    poisson = [g for g in goals if g.poisson]
    header = [t("cmp.col.scenario", lang)] + [f"G{i + 1} {g.test}{_value(g.threshold, g)}" for i, g in enumerate(goals)]
    header += [f"P(G{goals.index(g) + 1})" for g in poisson] + [t("common.col.met", lang)]
    rows = []
    for res, st, dip in zip(results, status, dips, strict=True):
        row = [res.scenario.name] + [cell(st[g.name], g.name in dip, lang) for g in goals]
        row += [f"{float(st[g.name].probability[0]):.2f}" for g in poisson]
        row += [f"{sum(bool(s.met[0]) for s in st.values())}/{len(goals)}"]
        rows.append(row)
    return header, rows


def legend(model: Model, any_dip: bool, lang: str = "en") -> list[str]:
    """Lines explaining the table's cells and goal columns."""
    goals = list(model.goals.values())
    year = goals[0].year if goals else ""
    lines = [t("cmp.legend.cells", lang, year=year)]
    for i, g in enumerate(goals):
        extra = t("cmp.legend.poisson", lang) if g.poisson else ""
        units = t("cmp.legend.share", lang) if g.units == "dmnl" else g.units
        lines.append(f"  G{i + 1}  {g.label(lang)} {g.test} {_value(g.threshold, g)} [{units}]{extra}")
    if any_dip:
        lines.append(t("cmp.legend.dip", lang, year=year))
    return lines


def table(model: Model, results: list[ScenarioRun], status: list[dict[str, GoalStatus]],
          dips: list[set[str]], lang: str = "en") -> str:
    """The scenario x goal table with a goal legend below it."""
    header, rows = table_rows(model, results, status, dips, lang)
    right = [False] + [True] * (len(header) - 1)
    return "\n".join([render(header, rows, right), "", *legend(model, any(dips), lang)])


def report(model: Model, results: list[ScenarioRun], status: list[dict[str, GoalStatus]], dips: list[set[str]],
           warnings: list[str], summary: str, lang: str = "en") -> Report:
    """report.md / report.html: the table, both figures and what each scenario sets."""
    rep = Report(t("cmp.title", lang, n=len(results)), lang)
    rep.text(summary)
    for w in warnings:
        rep.text(t("run.warning", lang, w=localize(w, lang, "common.warn.")))
    rep.heading(t("cmp.by_scenario", lang))
    rep.table(*table_rows(model, results, status, dips, lang))
    for line in legend(model, any(dips), lang):
        rep.text(line.strip())
    published = published_rows(results, status, lang)
    if published:
        rep.text(scope_note(model, lang))
        rep.table(*published[:2])
    rep.image("matrix.png", t("cmp.matrix_fig", lang))
    rep.image("overlay.png", t("cmp.overlay_fig", lang, obs=model.calibration.end))
    rep.heading(t("cmp.scenarios", lang))
    rows = []
    for r in results:
        sc = r.scenario
        levers = "; ".join(f"{k} {lever_summary(v, lang)}" for k, v in sc.levers.items()) or t("cmp.baseline_levers",
                                                                                                lang)
        params = "; ".join(f"{k} = {v:g}" for k, v in sc.parameters.items()) or "-"
        rows.append([sc.name, sc.label(lang), levers, params])
    rep.table([t(f"cmp.col.{k}", lang) for k in ("scenario", "title", "levers", "params")], rows)
    for r in results:
        if r.scenario.description:
            rep.text(f"{r.scenario.name}: {scenario_text(r.scenario, lang)}")
    return rep


def published_rows(results: list[ScenarioRun], status: list[dict[str, GoalStatus]], lang: str = "en"
                   ) -> tuple[list[str], list[list[str]], list[bool]] | None:
    """Scenario x goal table of the published values (goals with a reported indicator), or None."""
    goals = [g for g, s in status[0].items() if s.value_reported is not None] if status else []
    if not goals:
        return None
    first = status[0]
    header = [t("cmp.col.scenario", lang)]
    for g in goals:
        st = first[g]
        scaled = num(float(st.threshold_reported[0]))  # type: ignore[index]
        header.append(t("cmp.published_rebased", lang, goal=st.goal.label(lang), scaled=scaled,
                        target=num(st.rebased_target), year=st.rebased_year) if st.rebased_target is not None
                      else t("cmp.published", lang, goal=st.goal.label(lang), scaled=scaled))
    rows = [[r.scenario.name] + [num(float(st[g].value_reported[0])) for g in goals]  # type: ignore[index]
            for r, st in zip(results, status, strict=True)]
    return header, rows, [False] + [True] * len(goals)


def csv_rows(results: list[ScenarioRun], status: list[dict[str, GoalStatus]]) -> list[list]:
    """Long-format rows: one per scenario and goal."""
    rows = []
    for res, st in zip(results, status, strict=True):
        sc = res.scenario
        for name, s in st.items():
            g = s.goal
            first = int(s.first_year[0])
            every = steady(g, res.run, first)
            rows.append([
                sc.name, sc.label("en"), sc.file, name, g.variable, g.year, float(s.value[0]), g.test, g.threshold,
                bool(s.met[0]), first or "", "" if every is None else every,
                float(s.gap[0]), float(s.gap_pct[0]), float(s.probability[0]), *reported_cells(s),
            ])
    return rows


def main(args: argparse.Namespace) -> int:
    """Run every scenario in one batch, print the scenario x goal table, write the compare folder."""
    t0 = time.perf_counter()
    model, cm = load(args)
    require_goals(model, "compare")
    scs = scenarios(args, model, args.scenarios)
    names = [sc.name for sc in scs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        files = [sc.file for sc in scs if sc.name == dup[0]]
        raise InputError(f"two scenarios share the name {dup[0]!r} ({', '.join(files)}); "
                         "their rows would be indistinguishable")
    sets = list(getattr(args, "set", []) or [])
    out = check_target(args.out if args.out else "results/compare" + variant_suffix(sets))
    t_run = time.perf_counter()
    results = run_scenarios(cm, scs)
    t_run = time.perf_counter() - t_run
    status = [evaluate(model, r.run, params=r.params) for r in results]
    dips = [{g for g, s in st.items() if interrupted(s.goal, r.run, int(s.first_year[0]))}
            for r, st in zip(results, status, strict=True)]

    groups = sorted({(sc.dt, sc.method) for sc in scs})
    lg = args.lang
    how = "; ".join(f"dt 1/{round(1 / dt)}, {t(f'common.method.{m}', lg)}" for dt, m in groups)
    cal = [r.calibration.max_residual for r in results if r.calibration is not None]
    summary = t("cmp.summary", lg, n=len(scs), batches=len(groups), how=how, secs=f"{t_run:.2f}")
    if cal:
        summary += t("cmp.summary_cal", lg, year=model.calibration.end, residual=f"{max(cal):.1e}")
    if sets:
        summary += t("cmp.summary_set", lg, sets=", ".join(sets))
    print(summary)
    warnings = [w for sc in scs for w in sc.warnings]
    for w in dict.fromkeys(warnings):
        print(warning_line(w, lg))
    print()
    print(table(model, results, status, dips, lg))
    published = published_rows(results, status, lg)
    if published:
        print("\n" + scope_note(model, lg))
        print(render(*published))

    lang = plots.setup_language(args.lang)
    year = next(iter(model.goals.values())).year if model.goals else ""
    with result_dir(out) as d:
        write_csv(d / "compare.csv", CSV_HEADER, csv_rows(results, status))
        files = ["compare.csv"]
        labels = [r.scenario.label(lang) for r in results]
        ref = names.index("baseline") if "baseline" in names else None

        def draw(i: int) -> list[str]:  # the two figures are independent: drawn by the free workers
            if i == 0:
                fig = plots.overlay_figure(model, [(lab, r.run) for lab, r in zip(labels, results, strict=True)],
                                           lang, plots.t("overlay_title", lang), reference=ref)
                return [p.name for p in plots.save(fig, d / "overlay", args.svg)]
            fig = plots.goal_matrix(model, list(zip(labels, status, strict=True)), lang,
                                    plots.t("matrix_title", lang, year=year), dips)
            return [p.name for p in plots.save(fig, d / "matrix", args.svg)]

        for drawn in parallel.run_chunks(draw, 2):
            files += drawn
        files += report(model, results, status, dips, list(dict.fromkeys(warnings)), summary, lg).write(d)
        write_json(d / "manifest.json", manifest(
            model, "compare", time.perf_counter() - t0,
            scenarios=[r.scenario.resolved() for r in results],
            parameters={r.scenario.name: r.params for r in results},
            calibration={r.scenario.name: None if r.calibration is None else {
                "max_abs_relative_residual": r.calibration.max_residual,
                "iterations": r.calibration.iterations} for r in results},
            warnings=list(dict.fromkeys(warnings)), set=list(getattr(args, "set", []) or []),
            random_seed=None, language=lang, files=files + ["manifest.json"],
        ))
    print(t("cmp.written", lg, target=out, files=", ".join(files), secs=f"{time.perf_counter() - t0:.1f}"))
    return 0
