"""``simulate.py run SCENARIO...``: goal table, time series, plots, manifest."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .. import parallel
from ..goals import evaluate
from ..report import Report
from ..results import Staging, check_target, manifest, write_csv, write_json, write_timeseries, write_variables
from ..runner import run_scenarios
from ..scenario import goal_year, policy_start
from .common import (
    GOAL_HEADER,
    SCOPE_NOTE,
    goal_rows,
    goal_table,
    heading,
    load,
    out_path,
    reported_cells,
    reported_header,
    reported_rows,
    reported_table,
    result_name,
    scenarios,
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
    done: list[tuple[Any, list[str]]] = []
    # every scenario is written to a temporary folder first; all are put in place together at the end,
    # so an error in the second scenario leaves the first one's earlier result untouched
    with Staging() as staging:
        for res in results:
            done.append(_write_result(args, model, res, staging, lang, t0))
    for target, files in done:
        print(f"  -> {target}/ ({', '.join(files)}, manifest.json)")
    return 0


def _write_result(args: argparse.Namespace, model: Any, res: Any, staging: Staging, lang: str,
                  t0: float) -> tuple[Any, list[str]]:
    """Print one scenario's goal table and write its files into ``staging``; returns (target, files)."""
    sc, run = res.scenario, res.run
    year = goal_year(model)
    status = evaluate(model, run, params=res.params)
    print(heading(sc))
    for w in sc.warnings:
        print(f"  warning: {w}")
    print(goal_table(status))
    rep_table = reported_table(status)
    if rep_table:
        print(rep_table)
    target = out_path(args.out, sc)
    d = staging.add(target)
    write_timeseries(d / "timeseries.csv", model, run)
    write_variables(d / "variables.csv", model, run)
    write_csv(
        d / "goals.csv",
        ["goal", "variable", f"value_{year}", "test", "threshold",
         "met", "first_year_met", "gap", "gap_pct", "probability", "value_reported", "threshold_reported",
         "rebased_target", "rebased_target_year"],
        ([g, st.goal.variable, st.value[0], st.goal.test, st.goal.threshold, bool(st.met[0]),
          int(st.first_year[0]) or "", st.gap[0], st.gap_pct[0], st.probability[0], *reported_cells(st)]
         for g, st in status.items()),
    )
    files = ["timeseries.csv", "variables.csv", "goals.csv"]
    figures: list[str] = []
    if not args.no_plots:
        figures, drawn = _draw_figures(args, model, sc, run, status, d, lang)
        files += drawn
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
    print()
    return target, files


def _draw_figures(args: argparse.Namespace, model: Any, sc: Any, run: Any, status: Any, d: Any,
                  lang: str) -> tuple[list[str], list[str]]:
    """The run figures of one scenario in folder ``d``; returns (figure names, files written)."""
    from .. import plots

    title = sc.label(lang) + (f" [{', '.join(sc.overrides)}]" if sc.overrides else "")
    names = plots.run_figures(model)  # the goal panels and the model's figures (figures.yaml)

    def draw(i: int) -> list[str]:
        fig = plots.run_figure(model, names[i], run, lang, title, status)
        return [p.name for p in plots.save(fig, d / names[i], args.svg)]

    # the figures are independent: drawn by the free workers (the same files whatever their number)
    files: list[str] = []
    for drawn in parallel.run_chunks(draw, len(names)):
        files += drawn
    return names, files


REPORT_TEXT = {
    "goals": {"en": "Goals {year}", "zh": "{year}年目标"},
    "warning": {"en": "Warning: {w}", "zh": "警告：{w}"},
    "gap_note": {
        "en": "gap = value - threshold (negative: short of the goal; percentage points for shares); gap % is relative "
              "to the threshold. STAR listings are a count of rare events: 'exp. yes' means the expected count "
              "reaches the threshold, which can still leave a sizeable chance of falling short; P is the probability "
              "that the actual count reaches it (Poisson law on the expected count), and the figures shade the goal "
              "by P.",
        "zh": "差距 = 数值 - 目标值（负值表示未达目标；比例类指标以百分点计）；差距%为相对目标值的比例。"
              "科创板上市数为稀有事件计数：“期望是”表示期望数达到目标，但仍可能有相当概率未达到；"
              "P为实际数达到目标的概率（按期望数的泊松分布），图中按P着色。",
    },
    "goals_fig": {"en": "One panel per goal: trajectory, goal line, {obs} observed value (star), {year} value (diamond); "
                        "where published, the published path (dotted), figures published after {obs} (points with "
                        "error bars) and re-based targets (hollow diamonds).",
                  "zh": "每个目标一幅小图：轨迹、目标线、{obs}年实际值（星）、{year}年数值（菱形）；"
                        "如有公布口径数据：公布口径路径（点线）、{obs}年后公布值（带误差棒的点）与重新设定的目标（空心菱形）。"},
    "levers": {"en": "Levers", "zh": "政策杠杆"},
    "lever_header": {"en": "lever|setting (from {start})", "zh": "杠杆|设定（{start}年起）"},
    "params": {"en": "Parameter overrides", "zh": "参数覆盖"},
    "param_header": {"en": "parameter|value", "zh": "参数|数值"},
}
GOAL_HEADER_ZH = ["目标", "数值", "目标值", "达成", "首次达成年份", "差距", "差距%"]


def plots_caption(model: Any, name: str, lang: str) -> str:
    """The caption of a figure declared in the model's figures.yaml."""
    from ..plots import figure_caption  # matplotlib only when figures are drawn

    return figure_caption(model, name, lang)


def _report(model: Any, sc: Any, status: dict, figures: list[str], lang: str) -> Report:
    """report.md / report.html of one scenario run, in ``lang``."""
    def tr(key: str, **kw: object) -> str:
        return REPORT_TEXT[key][lang].format(**kw)

    year = goal_year(model)
    report = Report(f"{sc.label(lang)} ({sc.name})")
    report.text(heading(sc))
    if sc.description:
        report.text(sc.description)
    for w in sc.warnings:
        report.text(tr("warning", w=w))
    report.heading(tr("goals", year=year))
    report.table(GOAL_HEADER_ZH if lang == "zh" else GOAL_HEADER, goal_rows(status, lang))
    report.text(tr("gap_note"))
    published = reported_rows(status, lang)
    if published:
        report.text(SCOPE_NOTE[lang])
        report.table(reported_header(status, lang), published)
    captions = {"goals": tr("goals_fig", obs=model.calibration.end, year=year)}
    for name in figures:
        report.image(f"{name}.png", captions.get(name) or plots_caption(model, name, lang))
    if sc.levers:
        report.heading(tr("levers"))
        report.table(tr("lever_header", start=policy_start(sc, model)).split("|"),
                     [[k, v.summary()] for k, v in sc.levers.items()])
    if sc.overrides:
        report.text("--set " + ", ".join(sc.overrides))
    if sc.parameters:
        report.heading(tr("params"))
        report.table(tr("param_header").split("|"), [[k, f"{v:g}"] for k, v in sc.parameters.items()])
    return report
