"""Sensitivity figures: tornado, Morris mu*-sigma, Sobol S1/ST bars, fan charts, goal probabilities.

Every figure names the goal indicator, its units and the goal threshold; labels come from the
model files in English or Chinese (``lang``), with the fonts set up by :func:`sdsim.plots.setup_language`;
texts come from the catalogue (``fig.sens.*`` in ``sdsim/text/figures.yaml``). Each function returns a
figure without touching matplotlib's global state.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from . import i18n
from .model import Goal, Model
from .plots import _wrap as _wrap_label
from .plots import fmt_value, new_figure, styled, t, unit_label
from .sensitivity import GoalProbability, Index, Problem

TOP = 15  # inputs shown per bar figure
LABELLED = 8  # points labelled in a Morris figure

def tx(key: str, lang: str, **kw: object) -> str:
    """The sensitivity figure text ``fig.sens.<key>`` of the catalogue in ``lang``."""
    return i18n.t("fig.sens." + key, lang, **kw)


def calibrated(model: Model) -> bool:
    """Whether every run is re-calibrated (the model has calibration targets)."""
    return bool(model.calibration.targets)


def _recalibrated(model: Model, lang: str) -> str:
    """'; every run re-calibrated to <calibration year>' for a calibrated model, else ''."""
    return tx("recalibrated", lang, year=model.calibration.end) if calibrated(model) else ""


def pct(p: float) -> str:
    """A probability as a percentage; two decimals near 0 and 1 so 99.96 % is not shown as 100 %."""
    if 0 < p < 0.001 or 0.999 < p < 1:
        return f"{100 * p:.2f}%"
    return f"{100 * p:.1f}%"


def _percent_axis(ax: Axes, units: str, axis: str = "y") -> None:
    if units == "dmnl":
        (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0))


def _input_label(problem: Problem, name: str, lang: str, with_range: bool = True, model: Model | None = None) -> str:
    q = next(u for u in problem.uncertainties if u.name == name)
    label = q.label(lang)
    width = 24 if lang == "zh" else 44
    lines = textwrap.wrap(label, width) if lang != "zh" else [label[i:i + width] for i in range(0, len(label), width)]
    label = "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")
    if not with_range:
        return label
    units = "" if q.units == "dmnl" else f" {unit_label(q.units, lang, model)}"
    return f"{label}\n[{q.low:g} – {q.high:g}{units}]"


def _threshold(ax: Axes, goal: Goal, lang: str, vertical: bool = True) -> None:
    kw = {"color": "#c0392b", "ls": "--", "lw": 1.5, "gid": "goal",
          "label": t("threshold", lang, test=goal.test, value=fmt_value(goal.threshold, goal.units))}
    (ax.axvline if vertical else ax.axhline)(goal.threshold, **kw)


def _pick(indices: list[Index], output: str, index: str) -> dict[str, Index]:
    return {i.parameter: i for i in indices if i.output == output and i.index == index}


@styled
def tornado(model: Model, problem: Problem, indices: list[Index], goal: str, lang: str, scenario: str) -> Figure:
    """Bars from the baseline outcome to the outcome with each input at its low / high end."""
    g = model.goals[goal]
    base = _pick(indices, goal, "value")["(baseline)"].value
    lows, highs = _pick(indices, goal, "low_value"), _pick(indices, goal, "high_value")
    swing = _pick(indices, goal, "abs_swing")
    order = sorted(swing, key=lambda k: (not np.isfinite(swing[k].value), -np.nan_to_num(swing[k].value), k))
    moving = [k for k in order if not np.isfinite(swing[k].value) or swing[k].value > 0]
    shown = moving[:TOP]
    hidden, inert = len(moving) - len(shown), len(order) - len(moving)
    fig = new_figure((10, 3.4 + 0.52 * max(len(shown), 1)))
    ax = fig.subplots()
    y = np.arange(len(shown))[::-1]
    for yi, k in zip(y, shown, strict=True):
        lo, hi = lows[k].value, highs[k].value
        for v, c in ((lo, "#2e86c1"), (hi, "#e67e22")):
            if np.isfinite(v):
                ax.barh(yi, v - base, left=base, color=c, height=0.62, edgecolor="white")
            else:
                ax.text(base, yi, "  " + tx("no_solution", lang), va="center", fontsize=8, color="grey")
    ax.set_yticks(y, [_input_label(problem, k, lang, model=model) for k in shown], fontsize=8)
    ax.axvline(base, color="black", lw=1.2, label=tx("baseline", lang, value=fmt_value(base, g.units)))
    _threshold(ax, g, lang)
    lo_all = min([base, g.threshold] + [v.value for v in (*lows.values(), *highs.values()) if np.isfinite(v.value)])
    hi_all = max([base, g.threshold] + [v.value for v in (*lows.values(), *highs.values()) if np.isfinite(v.value)])
    pad = 0.06 * (hi_all - lo_all or abs(base) or 1.0)
    ax.set_xlim(lo_all - pad, hi_all + pad)
    ax.set_xlabel(f"{g.label(lang)} {g.year} ({unit_label(g.units, lang, model)})")
    _percent_axis(ax, g.units, "x")
    handles = [Patch(color="#2e86c1", label=tx("low_end", lang)), Patch(color="#e67e22", label=tx("high_end", lang)),
               *ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=len(handles), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    sub = tx("tornado_sub_levers" if problem.levers else "tornado_sub", lang) + _recalibrated(model, lang)
    if hidden:
        sub += "\n" + (tx("hidden_zero", lang, k=hidden, z=inert) if inert else tx("hidden", lang, k=hidden))
    elif inert:  # say in words which inputs move it
        names = ", ".join(_input_label(problem, k, lang, False).replace("\n", " ") for k in moving)
        key = "only_inputs" if len(moving) == 1 else "only_inputs_n"
        sub += "\n" + (tx(key, lang, k=len(moving), d=len(order), names=names, rest=inert) if moving
                       else tx("no_input", lang, d=len(order)))
    title = tx("tornado_title", lang, goal=g.label(lang), year=g.year, scenario=scenario) + "\n" + sub
    ax.set_title(_wrap(title, 110 if lang != "zh" else 60), fontsize=10)
    return fig


def _wrap(text: str, width: int) -> str:
    """Wrap every line of ``text`` to ``width`` characters."""
    return "\n".join(w for line in text.split("\n") for w in (textwrap.wrap(line, width) or [""]))


@styled
def unaffected_figure(model: Model, problem: Problem, goal: str, lang: str, scenario: str, spread: float,
                      method: str, value: float) -> Figure:
    """A figure that says in words that no input moves ``goal`` (instead of ranking round-off noise)."""
    g = model.goals[goal]
    fig = new_figure((10, 1.8))
    ax = fig.subplots()
    ax.axis("off")
    how = "0" if spread == 0 else f"{spread:.0e}"
    from .sensitivity import UNAFFECTED_RTOL

    ax.set_title(_wrap(tx("unaffected", lang, goal=g.label(lang), year=g.year) + f" ({scenario})", 100), fontsize=11)
    ax.text(0.5, 0.5, _wrap(tx("unaffected_sub", lang, d=problem.d, method=method,
                               value=fmt_value(value, g.units), spread=how,
                               tol=UNAFFECTED_RTOL), 95 if lang != "zh" else 48),
            ha="center", va="center", fontsize=10, transform=ax.transAxes)
    return fig


@styled
def morris_figure(model: Model, problem: Problem, indices: list[Index], goal: str, lang: str, scenario: str,
                  trajectories: int) -> Figure:
    """mu* against sigma with mu* intervals; the most influential inputs numbered and listed beside the plot."""
    g = model.goals[goal]
    ms, sg = _pick(indices, goal, "mu_star"), _pick(indices, goal, "sigma")
    names = list(ms)
    x = np.array([ms[k].value for k in names])
    y = np.array([sg[k].value for k in names])
    err = np.abs(np.array([[ms[k].value - ms[k].ci_low, ms[k].ci_high - ms[k].value] for k in names]).T)
    fig = new_figure((12.5, 5.4))
    ax, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.1, 1]})
    ax.errorbar(x, y, xerr=np.nan_to_num(err), fmt="o", color="#1f4e79", ecolor="#a9cce3", ms=5, capsize=2)
    xmax = max(np.nanmax(x + np.nan_to_num(err[1])), 1e-12) * 1.08
    ymax = max(np.nanmax(y), 1e-12) * 1.15
    d = min(xmax, ymax)
    ax.plot([0, d], [0, d], color="grey", ls=":", lw=1, label=tx("diag", lang))
    order = [i for i in np.argsort(-x, kind="stable")[:LABELLED] if x[i] > 0]
    lines = []
    placed: list[tuple[float, float]] = []  # label positions in axes fractions, to keep labels apart
    for rank, i in enumerate(order, start=1):
        px, py = x[i] / xmax, y[i] / ymax
        best = None
        for dx, dy in ((6, 6), (6, -13), (-14, 6), (-14, -13), (12, 14), (12, -20), (-20, 14), (-20, -20)):
            lx, ly = px + dx / 900, py + dy / 500  # roughly points -> axes fraction
            gap = min((abs(lx - a) * 4 + abs(ly - b) * 6 for a, b in placed), default=9.0)
            if best is None or gap > best[0]:
                best = (gap, dx, dy, lx, ly)
            if gap > 0.35:
                break
        _, dx, dy, lx, ly = best  # type: ignore[misc]
        placed.append((lx, ly))
        ax.annotate(str(rank), (x[i], y[i]), fontsize=9, fontweight="bold", color="#922b21",
                    xytext=(dx, dy), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "color": "#922b21", "lw": 0.6} if abs(dx) > 6 else None)
        label = _input_label(problem, names[i], lang, False).replace("\n", " ")
        label = "\n    ".join(textwrap.wrap(label, 40)) if lang != "zh" else label
        lines.append(f"{rank}. {label}\n    μ* = {fmt_value(x[i], g.units)}, σ = {fmt_value(y[i], g.units)}")
    side.axis("off")
    side.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9, transform=side.transAxes,
              linespacing=1.45)
    units = unit_label(g.units, lang, model)
    ax.set_xlabel(tx("mu_star", lang, units=units))
    ax.set_ylabel(tx("sigma", lang, units=units))
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    _percent_axis(ax, g.units, "x")
    _percent_axis(ax, g.units, "y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(tx("morris_title", lang, goal=g.label(lang), year=g.year, scenario=scenario) + "\n"
                 + tx("morris_sub", lang, r=trajectories), fontsize=10)
    return fig


@styled
def sobol_figure(model: Model, problem: Problem, indices: list[Index], goal: str, lang: str, scenario: str,
                 n_blocks: int, n_runs: int, conf: float) -> Figure:
    """S1 and ST bars with bootstrap intervals for the inputs with the largest ST."""
    g = model.goals[goal]
    s1, st = _pick(indices, goal, "S1"), _pick(indices, goal, "ST")
    order = sorted(st, key=lambda k: (-np.nan_to_num(st[k].value), k))[:TOP]
    fig = new_figure((10, 1.4 + 0.5 * len(order)))
    ax = fig.subplots()
    y = np.arange(len(order))[::-1]
    h = 0.38
    for off, d, color, key in ((h / 2, s1, "#2e86c1", "S1"), (-h / 2, st, "#c0392b", "ST")):
        v = np.array([d[k].value for k in order])
        e = np.array([[d[k].value - d[k].ci_low, d[k].ci_high - d[k].value] for k in order]).T
        ax.barh(y + off, v, height=h, color=color, alpha=0.85, label=tx(key, lang),
                xerr=np.abs(e), error_kw={"ecolor": "black", "capsize": 2, "lw": 0.8})
    ax.set_yticks(y, [_input_label(problem, k, lang, model=model) for k in order], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    lows = [d[k].ci_low for d in (s1, st) for k in order if np.isfinite(d[k].ci_low)]
    highs = [d[k].ci_high for d in (s1, st) for k in order if np.isfinite(d[k].ci_high)]
    ax.set_xlim(min([-0.02, *lows]) - 0.01, max([1.0, *highs]) + 0.02)
    ax.set_xlabel(tx("share_var", lang) + f" — {g.label(lang)} {g.year}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(tx("sobol_title", lang, goal=g.label(lang), year=g.year, scenario=scenario) + "\n"
                 + tx("sobol_sub_cal" if calibrated(model) else "sobol_sub", lang, n=n_blocks, k=n_runs, conf=conf),
                 fontsize=10)
    return fig


@styled
def fan_chart(model: Model, years: np.ndarray, q: dict[str, np.ndarray], probs: Sequence[GoalProbability], lang: str,
              scenario: str, n: int) -> Figure:
    """One panel per goal indicator: median, 25–75 % and 5–95 % bands, threshold, observed point (goals.yaml)."""
    goals = list(model.goals.values())
    ncol = min(4, max(len(goals), 2))
    nrow = int(np.ceil(len(goals) / ncol))
    fig = new_figure((4.3 * ncol, 3.5 * nrow + 0.5))
    axes = np.asarray(fig.subplots(nrow, ncol, squeeze=False))
    pmap = {p.goal: p for p in probs}
    for ax, g in zip(axes.flat, goals, strict=False):
        v = q[g.variable]  # (years, 5): p5 p25 p50 p75 p95
        good = np.isfinite(v).all(axis=1)
        yr = years[good]
        ax.fill_between(yr, v[good, 0], v[good, 4], color="#aed6f1", label=tx("band90", lang))
        ax.fill_between(yr, v[good, 1], v[good, 3], color="#5dade2", label=tx("band50", lang))
        ax.plot(yr, v[good, 2], color="#1b4f72", lw=2, label=tx("median", lang))
        _threshold(ax, g, lang, vertical=False)
        ax.axvline(g.year, color="grey", ls=":", lw=1)
        if g.observed:
            f = model.facts[g.observed]
            ax.plot([f.year], [f.value], marker="*", ms=13, color="#f39c12", mec="black", ls="none",
                    zorder=6, label=t("observed", lang, year=f.year))
        title = _wrap_label(g.label(lang), lang, 50)  # a title wider than its panel would leave the figure
        if g.name in pmap:
            title += "\n" + tx("p_met", lang, p=pmap[g.name].probability) + f" ({g.year})"
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit_label(g.units, lang, model), fontsize=9)
        ax.set_xlabel(t("year", lang), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        top = max(np.nanmax(v[good]) if good.any() else 0.0, g.threshold) * 1.08
        ax.set_ylim(0, min(top, 1.0) if g.units == "dmnl" and g.threshold <= 1 else top)
        _percent_axis(ax, g.units)
    for ax in axes.flat[len(goals):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if h.get_gid() != "goal"]  # one goal entry below
    fig.legend([h for h, _ in keep] + [Line2D([], [], color="#c0392b", ls="--")],
               [lab for _, lab in keep] + [tx("goal_line", lang)],
               loc="outside lower center", ncol=len(keep) + 1, fontsize=9, frameon=False)
    fig.suptitle(tx("fan_title_cal" if calibrated(model) else "fan_title", lang, scenario=scenario, n=n), fontsize=13)
    return fig


@styled
def probability_figure(model: Model, probs: Sequence[GoalProbability], lang: str, scenario: str, failed: int,
                       conf: float) -> Figure:
    """Horizontal bars of P(goal met) with Wilson intervals, annotated with the numbers."""
    fig = new_figure((10, 1.2 + 0.6 * len(probs)))
    ax = fig.subplots()
    y = np.arange(len(probs))[::-1]
    colors = (("#27ae60", tx("band_high", lang)), ("#f39c12", tx("band_mid", lang)), ("#c0392b", tx("band_low", lang)))
    for yi, p in zip(y, probs, strict=True):
        color = colors[0][0] if p.probability >= 0.9 else colors[1][0] if p.probability >= 0.5 else colors[2][0]
        ax.barh(yi, max(p.probability, 0.004), color=color, height=0.6)
        ax.errorbar(p.probability, yi, xerr=[[p.probability - p.ci_low], [p.ci_high - p.probability]], color="black",
                    capsize=3, lw=1)
        g = model.goals[p.goal]
        ax.text(1.03, yi, f"{pct(p.probability)}  [{pct(p.ci_low)}, {pct(p.ci_high)}]", va="center", fontsize=8.5)
    labels = []
    for p in probs:
        g = model.goals[p.goal]
        units = "" if g.units == "dmnl" else " " + unit_label(g.units, lang, model)
        extra = f" ({tx('poisson', lang)})" if g.poisson else ""
        labels.append(f"{g.label(lang)}\n{g.test} {fmt_value(g.threshold, g.units)}{units}{extra}")
    ax.set_yticks(y, labels, fontsize=8.5)
    ax.set_xlim(0, 1.55)
    ax.set_xticks(np.linspace(0, 1, 6), [f"{v:.0%}" for v in np.linspace(0, 1, 6)])
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.spines[["right", "top"]].set_visible(False)
    fig.legend(handles=[Patch(color=c, label=lab) for c, lab in colors], fontsize=8, loc="outside lower center",
               ncol=3, frameon=False)
    ax.set_xlabel(tx("probability", lang))
    year = next(iter(model.goals.values())).year
    n = probs[0].n if probs else 0
    ax.set_title(_wrap(tx("prob_title", lang, year=year, scenario=scenario) + "\n"
                       + (tx("prob_sub_cal", lang, n=n, failed=failed, conf=conf, year=model.calibration.end)
                          if calibrated(model) else tx("prob_sub", lang, n=n, failed=failed, conf=conf)),
                       110 if lang != "zh" else 60), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
