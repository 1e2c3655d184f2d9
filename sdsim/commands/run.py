"""``simulate.py run SCENARIO...``: goal table, time series, plots, manifest."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .. import parallel
from ..goals import evaluate
from ..i18n import t
from ..report import Report
from ..results import Staging, check_target, manifest, write_csv, write_json, write_timeseries, write_variables
from ..runner import run_scenarios
from ..scenario import goal_year, policy_start
from .common import (
    goal_header,
    goal_rows,
    goal_table,
    heading,
    lever_summary,
    load,
    localize,
    out_path,
    reported_cells,
    reported_header,
    reported_rows,
    reported_table,
    result_name,
    scenario_text,
    scenarios,
    scope_note,
    warning_line,
)


def main(args: argparse.Namespace) -> int:
    """Run every scenario in one batch, print its goal table and write results/<name>/."""
    t0 = time.perf_counter()
    model, cm = load(args)
    scs = scenarios(args, model, args.scenarios)
    names = [result_name(sc) for sc in scs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        from ..errors import InputError

        raise InputError(f"two scenarios share the name {sorted(dup)[0]!r}; their result folders would collide")
    for sc in scs:
        check_target(out_path(args.out, sc))
    results = run_scenarios(cm, scs)
    if not args.no_plots:  # matplotlib is imported only when figures are drawn
        from .. import plots
    lang = plots.setup_language(args.lang) if not args.no_plots else args.lang  # figures need a CJK font
    year = goal_year(model)
    done: list[tuple[Any, list[str]]] = []
    # every scenario is written to a temporary folder first; all are put in place together at the end,
    # so an error in the second scenario leaves the first one's earlier result untouched
    with Staging() as staging:
        for res in results:
            sc, run = res.scenario, res.run
            status = evaluate(model, run, params=res.params)
            print(heading(sc, args.lang))
            for w in sc.warnings:
                print(warning_line(w, args.lang))
            print(goal_table(status, args.lang))
            rep_table = reported_table(model, status, args.lang)
            if rep_table:
                print(rep_table)
            target = out_path(args.out, sc)
            d = staging.add(target)
            write_timeseries(d / "timeseries.csv", model, run)
            write_variables(d / "variables.csv", model, run)
            _write_goals(d / "goals.csv", status, year)
            files = ["timeseries.csv", "variables.csv", "goals.csv"]
            figures = []
            if not args.no_plots:
                title = sc.label(lang) + (f" [{', '.join(sc.overrides)}]" if sc.overrides else "")
                names = plots.run_figures(model)  # the goal panels and the model's figures (figures.yaml)

                def draw(i: int, names: list[str] = names, title: str = title, run: Any = run, status: Any = status,
                         d: Any = d) -> list[str]:
                    fig = plots.run_figure(model, names[i], run, lang, title, status)
                    return [p.name for p in plots.save(fig, d / names[i], args.svg)]

                # the figures are independent: drawn by the free workers (the same files whatever their number)
                for drawn in parallel.run_chunks(draw, len(names)):
                    files += drawn
                figures += names
            report = _report(model, sc, status, figures, args.lang)
            files += report.write(d)
            cal = res.calibration
            write_json(d / "manifest.json", manifest(
                model, "run", time.perf_counter() - t0,
                scenario=sc.resolved(), parameters=res.params, random_seed=None,
                calibration=None if cal is None else {
                    "max_abs_relative_residual": cal.max_residual,
                    "iterations": cal.iterations,
                },
                files=files + ["manifest.json"], language=lang,
            ))
            done.append((target, files))
            print()
    for target, files in done:
        print(t("common.written", args.lang, target=target, files=", ".join(files)))
    return 0


def _write_goals(path: Any, status: dict, year: int) -> None:
    """goals.csv: one row per goal (value in the goal year, test, met, first year met, gap, published scope)."""
    write_csv(
        path,
        ["goal", "variable", f"value_{year}", "test", "threshold",
         "met", "first_year_met", "gap", "gap_pct", "probability", "value_reported", "threshold_reported",
         "rebased_target", "rebased_target_year"],
        ([g, st.goal.variable, st.value[0], st.goal.test, st.goal.threshold, bool(st.met[0]),
          int(st.first_year[0]) or "", st.gap[0], st.gap_pct[0], st.probability[0], *reported_cells(st)]
         for g, st in status.items()),
    )


def plots_caption(model: Any, name: str, lang: str) -> str:
    """The caption of a figure declared in the model's figures.yaml."""
    from ..plots import figure_caption  # matplotlib only when figures are drawn

    return figure_caption(model, name, lang)


def _report(model: Any, sc: Any, status: dict, figures: list[str], lang: str) -> Report:
    """report.md / report.html of one scenario run, in ``lang``."""
    def tr(key: str, **kw: object) -> str:
        return t(f"run.{key}", lang, **kw)

    year = goal_year(model)
    report = Report(f"{sc.label(lang)} ({sc.name})", lang)
    report.text(heading(sc, lang))
    if sc.description:
        report.text(scenario_text(sc, lang))
    for w in sc.warnings:
        report.text(tr("warning", w=localize(w, lang, "common.warn.")))
    report.heading(tr("goals", year=year))
    report.table(goal_header(lang), goal_rows(status, lang))
    report.text(tr("gap_note"))
    published = reported_rows(status, lang)
    if published:
        report.text(scope_note(model, lang))
        report.table(reported_header(status, lang), published)
    captions = {"goals": tr("goals_fig", obs=model.calibration.end, year=year)}
    for name in figures:
        report.image(f"{name}.png", captions.get(name) or plots_caption(model, name, lang))
    if sc.levers:
        report.heading(tr("levers"))
        report.table(tr("lever_header", start=policy_start(sc, model)).split("|"),
                     [[k, lever_summary(v, lang)] for k, v in sc.levers.items()])
    if sc.overrides:
        report.text("--set " + ", ".join(sc.overrides))
    if sc.parameters:
        report.heading(tr("params"))
        report.table(tr("param_header").split("|"), [[k, f"{v:g}"] for k, v in sc.parameters.items()])
    return report
