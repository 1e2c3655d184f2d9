"""``simulate.py run SCENARIO...``: goal table, time series, plots, manifest."""

from __future__ import annotations

import argparse
import time

from .. import plots
from ..goals import evaluate
from ..report import Report
from ..results import check_target, manifest, result_dir, write_csv, write_json, write_timeseries, write_variables
from ..runner import run_scenarios
from .common import GOAL_HEADER, goal_rows, goal_table, heading, load, out_path, scenarios


def main(args: argparse.Namespace) -> int:
    """Run every scenario in one batch, print its goal table and write results/<name>/."""
    t0 = time.perf_counter()
    model, cm = load(args)
    scs = scenarios(args, model, args.scenarios)
    names = [sc.name for sc in scs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        from ..errors import InputError

        raise InputError(f"two scenarios share the name {sorted(dup)[0]!r}; their result folders would collide")
    for sc in scs:
        check_target(out_path(args.out, sc.name))
    results = run_scenarios(cm, scs)
    lang = plots.setup_language(args.lang) if not args.no_plots else "en"
    goal_year = max(g.year for g in model.goals.values())
    obs_year = model.calibration.end
    for res in results:
        sc, run = res.scenario, res.run
        status = evaluate(model, run)
        print(heading(sc))
        for w in sc.warnings:
            print(f"  warning: {w}")
        print(goal_table(status))
        target = out_path(args.out, sc.name)
        with result_dir(target) as d:
            write_timeseries(d / "timeseries.csv", model, run)
            write_variables(d / "variables.csv", model, run)
            write_csv(
                d / "goals.csv",
                ["goal", "variable", f"value_{model.goals[next(iter(model.goals))].year}", "test", "threshold",
                 "met", "first_year_met", "gap", "gap_pct", "probability"],
                ([g, st.goal.variable, st.value[0], st.goal.test, st.goal.threshold, bool(st.met[0]),
                  int(st.first_year[0]) or "", st.gap[0], st.gap_pct[0], st.probability[0]]
                 for g, st in status.items()),
            )
            files = ["timeseries.csv", "variables.csv", "goals.csv"]
            report = Report(f"{sc.label(lang)} ({sc.name})")
            report.text(heading(sc))
            if sc.description:
                report.text(sc.description)
            for w in sc.warnings:
                report.text(f"Warning: {w}")
            report.heading(f"Goals {model.goals[next(iter(model.goals))].year}")
            report.table(GOAL_HEADER, goal_rows(status, lang))
            report.text("gap = value - threshold (negative: short of the goal). STAR listings are an expected "
                        "count; P is the probability of reaching the threshold under a Poisson law.")
            if not args.no_plots:
                title = sc.label(lang)
                for name, fig, caption in (
                    ("goals", plots.goal_panels(model, [(title, run)], lang,
                                                plots.t("goals_title", lang, name=title, year=goal_year), [status]),
                     f"One panel per goal: trajectory, goal line, {obs_year} observed value (star), "
                     f"{goal_year} value (diamond)."),
                    ("incubation_chain", plots.chain_figure(model, run, lang,
                                                            plots.t("chain_title", lang, name=title)),
                     "Carriers, teams and tenants against capacity, candidate pool, tech enterprises and HTE."),
                    ("rd", plots.rd_figure(model, run, lang, plots.t("rd_title", lang, name=title)),
                     "R&D spend by source (annual totals) and R&D intensity against the 5 % goal."),
                ):
                    files += [p.name for p in plots.save(fig, d / name, args.svg)]
                    report.image(f"{name}.png", caption)
            if sc.levers:
                report.heading("Levers")
                report.table(["lever", "setting (from 2022)"], [[k, str(v.to_yaml())] for k, v in sc.levers.items()])
            if sc.parameters:
                report.heading("Parameter overrides")
                report.table(["parameter", "value"], [[k, f"{v:g}"] for k, v in sc.parameters.items()])
            files += report.write(d)
            cal = res.calibration
            write_json(d / "manifest.json", manifest(
                model, "run", time.perf_counter() - t0,
                scenario=sc.resolved(), parameters=res.params, random_seed=None,
                calibration=None if cal is None else {
                    "max_abs_relative_residual": float(abs(cal.residuals).max()),
                    "iterations": cal.iterations,
                },
                files=files + ["manifest.json"], language=lang,
            ))
        print(f"  -> {target}/ ({', '.join(files)}, manifest.json)\n")
    return 0
