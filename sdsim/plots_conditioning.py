"""Figures of conditioning on history: conditioned bands on the fan chart, conditioned probabilities,
the hindcast (prior and conditioned bands against every observation) and what history taught.

Labels come from the model files and the catalogue (``fig.cond.*``, English or Chinese); nothing here
names a model variable or a year. Each function returns (or adds to) a figure without touching
matplotlib's global state.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import i18n
from .conditioning import Conditioning, GoalRow, Lesson
from .plots import _wrap, new_figure, styled, t, unit_label
from .sensitivity import Problem

PRIOR_C, COND_C, OBS_C, CONFLICT_C = "#bdc3c7", "#1f77b4", "black", "#c0392b"


def tx(key: str, lang: str, **kw: object) -> str:
    """The conditioning figure text ``fig.cond.<key>`` of the catalogue in ``lang``."""
    return i18n.t("fig.cond." + key, lang, **kw)


def _what(cond: Conditioning, lang: str = "en") -> str:
    if not cond.active:
        return tx("what_off", lang)
    if cond.mode == "match":
        return tx("what_match", lang, k=int(cond.kept.sum()), z=cond.threshold)
    return tx("what_weights", lang, ess=cond.ess)


def _observations(ax: Axes, cond: Conditioning, variable: str, lang: str, scale_flows: bool = False) -> None:
    """The used observations of ``variable`` as points with their tolerance window; conflicts as red crosses."""
    for r in cond.rows:
        o = r.obs.row
        if o.variable != variable:
            continue
        lo, hi = o.bounds  # type: ignore[misc]
        f = 1.0
        x = o.time
        if o.period is not None:
            f = 1.0 / (o.period[1] - o.period[0]) if scale_flows else 1.0
            x = math.ceil(o.period[1] - 1e-9)
        color = CONFLICT_C if r.conflict else OBS_C
        ax.errorbar([x], [o.value * f], yerr=[[(o.value - lo) * f], [(hi - o.value) * f]], fmt="x" if r.conflict else "o",
                    ms=7, color=color, mfc="white" if not r.conflict else color, capsize=4, zorder=7)


TITLE_COLUMNS = 34  # characters of a 9-point title line that fit a fan-chart panel (4.3 inches wide)


@styled
def add_conditioning(fig: Figure, model: Any, years: np.ndarray, cq: dict[str, np.ndarray],
                     rows: list[GoalRow], cond: Conditioning, lang: str) -> None:
    """Draw conditioned bands, observations and both probabilities on the fan chart's goal panels."""
    goals = list(model.goals.values())
    byname = {r.goal: r for r in rows}
    for ax, g in zip(fig.axes, goals, strict=False):
        if cond.active and g.variable in cq:
            v = cq[g.variable]
            good = np.isfinite(v).all(axis=1)
            ax.fill_between(years[good], v[good, 0], v[good, 4], facecolor="none", edgecolor="#7d3c98", hatch="///",
                            lw=0.0, zorder=3)
            ax.plot(years[good], v[good, 0], color="#7d3c98", lw=0.8, zorder=3)
            ax.plot(years[good], v[good, 4], color="#7d3c98", lw=0.8, zorder=3)
            ax.plot(years[good], v[good, 2], color="#7d3c98", lw=1.8, ls="--", zorder=4)
        _observations(ax, cond, g.variable, lang)
        r = byname.get(g.name)
        if r is not None and np.isfinite(r.p_conditioned):
            # every line wrapped to the panel's width: a wider title would reach past the figure's edge
            lines = [g.label(lang), tx("p_both", lang, p=r.prior.probability, c=r.p_conditioned) + f" ({g.year})"]
            ax.set_title("\n".join(_wrap(line, lang, TITLE_COLUMNS) for line in lines), fontsize=9)
    if not cond.active:
        return
    leg = fig.legends[0] if fig.legends else None
    # matplotlib keeps None for a handle it cannot draw (and no text for it): the rest pair up with the texts
    handles: list[Artist] = [h for h in leg.legend_handles if h is not None] if leg is not None else []
    prior = {i18n.t("fig.sens." + k, lang): tx(v, lang)  # the fan chart's bands are the prior's
             for k, v in (("band90", "prior_band"), ("median", "prior_median"), ("band50", "prior_band50"))}
    labels = [prior.get(x.get_text(), x.get_text()) for x in leg.get_texts()] if leg is not None else []
    if leg is not None:
        leg.remove()
    handles += [Patch(facecolor="none", edgecolor="#7d3c98", hatch="///"), Line2D([], [], color="#7d3c98", ls="--"),
                Line2D([], [], marker="o", color=OBS_C, mfc="white", ls="none")]
    labels += [tx("cond_band", lang), tx("cond_median", lang), tx("obs", lang)]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 5), fontsize=9, frameon=False)


@styled
def add_conditioned_probabilities(fig: Figure, rows: list[GoalRow], lang: str, conf: float = 0.95) -> None:
    """Conditioned P(met) as diamonds with their interval beside the prior bars."""
    from .plots_sensitivity import pct

    ax = fig.axes[0]
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        if np.isfinite(r.p_conditioned):
            ax.errorbar(r.p_conditioned, yi - 0.22, xerr=[[max(r.p_conditioned - r.low, 0)], [max(r.high - r.p_conditioned, 0)]],
                        fmt="D", ms=6, color="#7d3c98", mec="black", capsize=3, lw=1, zorder=5)
            ax.text(1.03, yi - 0.26, f"◆ {pct(r.p_conditioned)}  [{pct(r.low)}, {pct(r.high)}]",
                    va="center", fontsize=8, color="#7d3c98")
    if fig.legends:  # the diamonds join the probability figure's legend
        old = fig.legends[0]
        handles: list[Artist] = [h for h in old.legend_handles if h is not None]
        labels = [x.get_text() for x in old.get_texts()]
        old.remove()
        handles.append(Line2D([], [], marker="D", ms=6, color="#7d3c98", mec="black", ls="none"))
        labels.append(tx("p_cond", lang, conf=conf))
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=len(handles), frameon=False)


@styled
def hindcast_figure(model: Any, run: Any, cond: Conditioning, lang: str, scenario: str) -> Figure:
    """One panel per observed series: prior and conditioned 5–95 % bands and medians over the history
    years, the observations with their tolerance windows (conflicts in red)."""
    run = cond.run if cond.run is not None else run
    variables = list(dict.fromkeys(r.obs.row.variable for r in cond.rows))
    ncol = min(len(variables), 3)
    nrow = math.ceil(len(variables) / ncol)
    fig = new_figure((5.2 * ncol, 3.9 * nrow + 0.8))
    axes = np.asarray(fig.subplots(nrow, ncol, squeeze=False))
    last = max(r.obs.row.time for r in cond.rows)
    first = min(r.obs.row.time for r in cond.rows)
    years = run.years
    sel = years <= math.ceil(last - 1e-9) + 1
    yr = years[sel]
    for ax, var in zip(axes.flat, variables, strict=False):
        prior, post_band = cond.band(var, run, sel)  # (years, 3) each; precomputed when the ensemble was streamed
        flow_rows = [r for r in cond.rows if r.obs.row.variable == var and r.obs.row.period is not None]
        good = np.isfinite(prior).all(axis=1)
        ax.fill_between(yr[good], prior[good, 0], prior[good, 2], color=PRIOR_C, alpha=0.7, lw=0)
        ax.plot(yr[good], prior[good, 1], color="#7f8c8d", lw=1.5)
        if cond.active:
            post = post_band
            assert post is not None  # band() gives the conditioned band whenever the ensemble is conditioned
            g2 = np.isfinite(post).all(axis=1)
            ax.fill_between(yr[g2], post[g2, 0], post[g2, 2], color=COND_C, alpha=0.35, lw=0)
            ax.plot(yr[g2], post[g2, 1], color=COND_C, lw=2)
        for r in cond.rows:  # a back-cast: the first year's change extrapolated back (dotted, 5-95 % as a bar)
            if r.obs.row.variable == var and r.note == "back-cast" and good.any():
                mid = r.cond if np.isfinite(r.cond).all() else r.prior[1:4]
                x0 = r.obs.row.time
                ax.plot([x0, yr[good][0]], [mid[1], prior[good][0, 1]], ls=":", color=COND_C, lw=1.5)
                ax.plot([x0 + 0.06] * 2, [mid[0], mid[2]], color=COND_C, lw=4, alpha=0.5, solid_capstyle="butt")
        _observations(ax, cond, var, lang, scale_flows=bool(flow_rows))
        p = model.aux.get(var) or model.stocks.get(var) or model.flows.get(var)
        label = getattr(p, "en", "") if lang == "en" else (getattr(p, "zh", "") or getattr(p, "en", ""))
        units = getattr(p, "units", "")
        title = f"{label or var}\n({var})"
        if flow_rows:
            title += "\n" + tx("annualised", lang)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit_label(units, lang, model), fontsize=8)
        ax.set_xlabel(t("year", lang), fontsize=8)
        ax.set_xlim(min(first, yr[0]) - 0.4, yr[-1] + 0.3)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        lo = ax.get_ylim()[0]
        ax.set_ylim(min(lo, 0) if lo < 0 else 0, None)
    for ax in axes.flat[len(variables):]:
        ax.axis("off")
    handles = [Patch(color=PRIOR_C), Line2D([], [], color="#7f8c8d"), Patch(color=COND_C, alpha=0.35),
               Line2D([], [], color=COND_C, lw=2), Line2D([], [], marker="o", color=OBS_C, mfc="white", ls="none"),
               Line2D([], [], marker="x", color=CONFLICT_C, ls="none")]
    labels = [tx("prior_band", lang), tx("prior_median", lang), tx("cond_band", lang), tx("cond_median", lang),
              tx("obs", lang), tx("conflict", lang)]
    fig.legend(handles, labels, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    sub = "hind_sub_cal" if getattr(model.calibration, "targets", None) else "hind_sub"
    fig.suptitle(tx("hind_title", lang, scenario=scenario) + "\n"
                 + tx(sub, lang, what=_what(cond, lang), n=cond.n), fontsize=11)
    return fig


@styled
def lessons_figure(problem: Problem, lessons: list[Lesson], cond: Conditioning, lang: str, scenario: str,
                   top: int = 12) -> Figure:
    """Prior vs conditioned 5–95 % bands and medians of the most-moved uncertainties, on their ranges."""
    shown = lessons[:top]
    fig = new_figure((10, 2.2 + 0.7 * len(shown)))
    ax = fig.subplots()
    y = np.arange(len(shown))[::-1]
    labels = []
    for yi, le in zip(y, shown, strict=True):
        span = le.high - le.low or 1.0
        p = (le.prior - le.low) / span
        c = (le.cond - le.low) / span
        ax.plot([p[0], p[2]], [yi + 0.15, yi + 0.15], color=PRIOR_C, lw=7, solid_capstyle="butt")
        ax.plot([p[1]], [yi + 0.15], "|", color="#555555", ms=12, mew=2)
        ax.plot([c[0], c[2]], [yi - 0.15, yi - 0.15], color=COND_C, lw=7, solid_capstyle="butt")
        ax.plot([c[1]], [yi - 0.15], "|", color="black", ms=12, mew=2)
        ax.text(1.02, yi, tx("shift", lang, s=le.shift, b=max(le.narrowing, 0))
                + (f"\n{le.driver} (ρ {le.rho:+.2f})" if le.driver else ""), va="center", fontsize=7.5)
        q = next(u for u in problem.uncertainties if u.name == le.name)
        text = q.label(lang)
        wrapped = textwrap.wrap(text, 34) if lang != "zh" else [text[i:i + 18] for i in range(0, len(text), 18)]
        labels.append("\n".join(wrapped[:2]) + ("…" if len(wrapped) > 2 else "") + f"\n[{le.low:g} – {le.high:g}]")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(-0.02, 1.45)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(tx("range_pos", lang))
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["right", "top"]].set_visible(False)
    ax.set_ylim(-0.6, len(shown) - 0.4)
    fig.legend(handles=[Patch(color=PRIOR_C, label=tx("prior_band", lang)),
                        Patch(color=COND_C, label=tx("cond_band", lang))], fontsize=8, loc="outside lower center",
               ncol=2, frameon=False)
    title = (tx("taught_title", lang, scenario=scenario) + "\n" + tx("taught_sub", lang, k=len(shown), d=problem.d)
             + f"\n{_what(cond, lang)}")
    width = 120 if lang != "zh" else 60

    def wrap(line: str) -> list[str]:
        return textwrap.wrap(line, width) if lang != "zh" else [line[i:i + width] for i in range(0, len(line), width)]

    ax.set_title("\n".join(w for line in title.split("\n") for w in wrap(line)), fontsize=9)
    return fig
