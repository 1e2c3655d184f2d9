"""Figures of conditioning on history: conditioned bands on the fan chart, conditioned probabilities,
the hindcast (prior and conditioned bands against every observation) and what history taught.

Labels come from the model files (English or Chinese); nothing here names a model variable or a year.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .conditioning import Conditioning, GoalRow, Lesson
from .plots import t, unit_label
from .sensitivity import Problem

TEXT = {
    "cond_band": {"en": "conditioned on history 5–95 %", "zh": "历史条件化后 5–95%"},
    "cond_median": {"en": "conditioned median", "zh": "条件化中位数"},
    "prior_band": {"en": "prior 5–95 %", "zh": "先验 5–95%"},
    "prior_median": {"en": "prior median", "zh": "先验中位数"},
    "prior_band50": {"en": "prior 25–75 %", "zh": "先验 25–75%"},
    "obs": {"en": "observation (± tolerance)", "zh": "观测值（±容差）"},
    "conflict": {"en": "conflict (not used)", "zh": "冲突（未使用）"},
    "p_both": {"en": "P(met) prior {p:.0%}, conditioned {c:.0%}", "zh": "达成概率 先验{p:.0%}，条件化{c:.0%}"},
    "p_cond": {"en": "conditioned on history (◆, {conf:.0%} interval on the effective sample size)",
               "zh": "历史条件化后（◆，按有效样本量的{conf:.0%}区间）"},
    "hind_title": {"en": "Hindcast: the ensemble against what was published ({scenario})",
                   "zh": "回溯检验：集合与已公布数据对比（{scenario}）"},
    "hind_sub": {"en": "{what}; grey: all {n:,} calibrated samples (prior), blue: conditioned",
                 "zh": "{what}；灰色：全部{n:,}个校准样本（先验），蓝色：条件化后"},
    "annualised": {"en": "flow over a part of a year, drawn as an annual rate", "zh": "不足一年的流量，按年率绘制"},
    "taught_title": {"en": "What history taught the model ({scenario})", "zh": "历史数据使模型学到了什么（{scenario}）"},
    "taught_sub": {"en": "each uncertainty on its range (0 = low end, 1 = high end): 5–95 % and median, prior "
                         "(grey) and conditioned (blue); {k} most moved of {d}",
                   "zh": "每个不确定参数在其区间内（0 = 下限，1 = 上限）：5–95%与中位数，先验（灰）与条件化（蓝）；"
                         "共{d}个，显示变化最大的{k}个"},
    "range_pos": {"en": "position in the range", "zh": "区间内位置"},
    "what_off": {"en": "history not used", "zh": "未使用历史数据"},
    "what_match": {"en": "history matching keeps {k:,} (implausibility <= {z:g})",
                   "zh": "历史匹配保留{k:,}个样本（不合理度 <= {z:g}）"},
    "what_weights": {"en": "likelihood weights, effective sample size {ess:,.0f}",
                     "zh": "似然加权，有效样本量{ess:,.0f}"},
    "shift": {"en": "shift {s:+.2f}, band −{b:.0%}", "zh": "中位数移动 {s:+.2f}，区间收窄 {b:.0%}"},
}
PRIOR_C, COND_C, OBS_C, CONFLICT_C = "#bdc3c7", "#1f77b4", "black", "#c0392b"


def tx(key: str, lang: str, **kw: object) -> str:
    """A figure text of this module in ``lang``."""
    return TEXT[key][lang].format(**kw)


def _what(cond: Conditioning, lang: str = "en") -> str:
    if not cond.active:
        return tx("what_off", lang)
    if cond.mode == "match":
        return tx("what_match", lang, k=int(cond.kept.sum()), z=cond.threshold)
    return tx("what_weights", lang, ess=cond.ess)


def _observations(ax: plt.Axes, cond: Conditioning, variable: str, lang: str, scale_flows: bool = False) -> None:
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


def add_conditioning(fig: plt.Figure, model: Any, years: np.ndarray, cq: dict[str, np.ndarray],
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
            ax.set_title(f"{g.label(lang)}\n" + tx("p_both", lang, p=r.prior.probability, c=r.p_conditioned)
                         + f" ({g.year})", fontsize=10)
    if not cond.active:
        return
    leg = fig.legends[0] if fig.legends else None
    handles = list(leg.legend_handles) if leg is not None else []
    prior = {"5–95 %": tx("prior_band", lang), "5–95%": tx("prior_band", lang), "median": tx("prior_median", lang),
             "中位数": tx("prior_median", lang), "25–75 %": tx("prior_band50", lang), "25–75%": tx("prior_band50", lang)}
    labels = [prior.get(x.get_text(), x.get_text()) for x in leg.get_texts()] if leg is not None else []
    if leg is not None:
        leg.remove()
    handles += [Patch(facecolor="none", edgecolor="#7d3c98", hatch="///"), Line2D([], [], color="#7d3c98", ls="--"),
                Line2D([], [], marker="o", color=OBS_C, mfc="white", ls="none")]
    labels += [tx("cond_band", lang), tx("cond_median", lang), tx("obs", lang)]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), 5), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))


def add_conditioned_probabilities(fig: plt.Figure, rows: list[GoalRow], lang: str, conf: float = 0.95) -> None:
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
    ax.text(0.0, -0.2, tx("p_cond", lang, conf=conf), transform=ax.transAxes, fontsize=8, color="#7d3c98")


def hindcast_figure(model: Any, run: Any, cond: Conditioning, lang: str, scenario: str) -> plt.Figure:
    """One panel per observed series: prior and conditioned 5–95 % bands and medians over the history
    years, the observations with their tolerance windows (conflicts in red)."""
    run = cond.run if cond.run is not None else run
    variables = list(dict.fromkeys(r.obs.row.variable for r in cond.rows))
    ncol = min(len(variables), 3)
    nrow = math.ceil(len(variables) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.9 * nrow), squeeze=False)
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
        ax.set_ylabel(unit_label(units, lang), fontsize=8)
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
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle(tx("hind_title", lang, scenario=scenario) + "\n"
                 + tx("hind_sub", lang, what=_what(cond, lang), n=cond.n), fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig


def lessons_figure(problem: Problem, lessons: list[Lesson], cond: Conditioning, lang: str, scenario: str,
                   top: int = 12) -> plt.Figure:
    """Prior vs conditioned 5–95 % bands and medians of the most-moved uncertainties, on their ranges."""
    shown = lessons[:top]
    fig, ax = plt.subplots(figsize=(10, 2.2 + 0.7 * len(shown)))
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
                        Patch(color=COND_C, label=tx("cond_band", lang))], fontsize=8, loc="lower center", ncol=2,
               frameon=False)
    ax.set_title(tx("taught_title", lang, scenario=scenario) + "\n"
                 + tx("taught_sub", lang, k=len(shown), d=problem.d) + f"\n{_what(cond, lang)}", fontsize=9)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    return fig
