"""Figures: goal panels (one or several scenarios), incubation chain, R&D composition.

Labels come from the model files (en/zh). With ``lang='zh'`` an installed CJK font is
registered (the ``mplfonts`` package or a system Noto/Source Han font); when none is found the
figures fall back to English once, with a message, and never draw tofu boxes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402

# Titles and labels come from scenario files: a '$' is a dollar sign, never TeX (mathtext would fail to parse it).
matplotlib.rcParams["text.parse_math"] = False

from .engine import Run  # noqa: E402
from .goals import GoalStatus, holds  # noqa: E402
from .model import Model  # noqa: E402
from .textable import fmt_gap, fmt_value  # noqa: E402,F401  (re-exported: plots.fmt_value)

DPI = 150
_CJK_CANDIDATES = (
    "NotoSansCJKsc-Regular.otf", "NotoSansCJK-Regular.ttc", "NotoSansCJKSC-Regular.otf",
    "SourceHanSansSC-Regular.otf", "SimHei.ttf", "wqy-zenhei.ttc", "wqy-microhei.ttc",
)
_font_state: dict[str, str | None] = {}

TEXT = {
    "goals_title": {"en": "{year} goals: {name}", "zh": "{year}年目标：{name}"},
    "threshold": {"en": "goal {test} {value}", "zh": "目标 {test} {value}"},
    "observed": {"en": "observed {year}", "zh": "{year}年实际"},
    "met": {"en": "met", "zh": "达成"},
    "poisson_verdict": {"en": "expected count; P(≥{thr}) = {p:.2f}", "zh": "期望数；P(≥{thr}) = {p:.2f}"},
    "shade_p": {"en": "count goals: shade = P(met)", "zh": "计数类目标：颜色深浅 = 达成概率"},
    "not_met": {"en": "not met", "zh": "未达成"},
    "year": {"en": "year (end of)", "zh": "年（年末）"},
    "chain_title": {"en": "Incubation chain and enterprise pipeline: {name}", "zh": "孵化链与企业梯队：{name}"},
    "rd_title": {"en": "R&D spend and intensity: {name}", "zh": "研发投入与强度：{name}"},
    "rd_composition": {"en": "R&D spend by source (100M CNY per year)", "zh": "研发经费构成（亿元/年）"},
    "rd_intensity": {"en": "R&D intensity (R&D / GDP)", "zh": "研发投入强度（研发经费/GDP）"},
    "reported_2019": {"en": "reported 2019 (back-cast, not a target)", "zh": "2019年报道值（回溯比较，非校准目标）"},
    "reported_path": {"en": "as published (narrower scope from end 2022)", "zh": "公布口径（2022年末起为较窄的新口径）"},
    "history_obs_seed": {"en": "after 2021, seed scope (± tolerance)", "zh": "2021年后数值，原口径（±容差）"},
    "history_obs_new": {"en": "after 2021, as published (± tolerance)", "zh": "2021年后公布值，新口径（±容差）"},
    "history_target": {"en": "district re-based target", "zh": "区重新设定的目标"},
    "qualifying": {"en": "Register, qualifying firms and HTE", "zh": "入库企业、符合条件企业与高企"},
    "capacity": {"en": "capacity", "zh": "容量"},
    "carriers": {"en": "Incubation carriers", "zh": "孵化载体"},
    "occupants": {"en": "Teams and tenants", "zh": "在孵团队与企业"},
    "pool": {"en": "Eligible backlog and registrations", "zh": "储备企业与入库"},
    "enterprises": {"en": "Tech enterprises and HTE", "zh": "科技型企业与高企"},
    "per_year": {"en": "per year", "zh": "每年"},
}

UNITS = {
    "firm": {"en": "firms", "zh": "家"},
    "carrier": {"en": "carriers", "zh": "家"},
    "institution": {"en": "institutions", "zh": "个"},
    "dmnl": {"en": "share (%)", "zh": "比例（%）"},
    "CNY100M": {"en": "100M CNY", "zh": "亿元"},
    "CNY100M/year": {"en": "100M CNY per year", "zh": "亿元/年"},
    "firm/year": {"en": "firms per year", "zh": "家/年"},
}


def t(key: str, lang: str, **kw: object) -> str:
    """A fixed figure text in ``lang``."""
    return TEXT[key][lang].format(**kw)


def unit_label(units: str, lang: str) -> str:
    """Readable units."""
    return UNITS.get(units, {}).get(lang, units)


def _find_cjk_font() -> str | None:
    try:
        import mplfonts  # type: ignore[import-not-found]

        d = Path(mplfonts.__file__).parent / "fonts"
        for name in _CJK_CANDIDATES:
            if (d / name).is_file():
                return str(d / name)
    except ImportError:
        pass
    for root in ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts")):
        for dirpath, _, files in os.walk(root):
            for name in _CJK_CANDIDATES:
                if name in files:
                    return os.path.join(dirpath, name)
    return None


def setup_language(lang: str, warn: bool = True) -> str:
    """Prepare fonts for ``lang``; returns the language actually usable ('zh' or 'en')."""
    if lang != "zh":
        plt.rcParams["font.family"] = ["DejaVu Sans"]
        return "en"
    if "zh" not in _font_state:
        path = _find_cjk_font()
        name = None
        if path:
            font_manager.fontManager.addfont(path)
            name = font_manager.FontProperties(fname=path).get_name()
        _font_state["zh"] = name
        if name is None and warn:
            print("note: no Chinese (CJK) font found; install the 'zh' extra (pip install '.[zh]') "
                  "or fonts-noto-cjk. Using English labels.", file=sys.stderr)
    name = _font_state["zh"]
    if name is None:
        plt.rcParams["font.family"] = ["DejaVu Sans"]
        return "en"
    plt.rcParams["font.family"] = [name, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return "zh"


def save(fig: plt.Figure, path: Path, svg: bool = False) -> list[Path]:
    """Save PNG (150 dpi) and optionally SVG; close the figure."""
    fig.savefig(path.with_suffix(".png"), dpi=DPI, bbox_inches="tight")
    out = [path.with_suffix(".png")]
    if svg:
        fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
        out.append(path.with_suffix(".svg"))
    plt.close(fig)
    return out


def goal_panels(
    model: Model,
    runs: Sequence[tuple[str, Run]],
    lang: str,
    title: str,
    status: Sequence[dict[str, GoalStatus]] | None = None,
) -> plt.Figure:
    """One panel per goal indicator: trajectories, threshold line, 2021 observed point, goal-year mark."""
    goals = list(model.goals.values())
    ncol = 4
    nrow = int(np.ceil(len(goals) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    goal_lines: dict[plt.Axes, object] = {}  # each panel's threshold line (its own small legend)
    for ax, g in zip(axes.flat, goals, strict=False):
        for i, (label, run) in enumerate(runs):
            y = run.get(g.variable)[:, 0]
            c = colors[i % len(colors)] if len(runs) > 1 else "#1f4e79"
            ax.plot(run.years, y, color=c, lw=2, label=label, marker="o", ms=3)
            if g.year in run.years:
                v = run.at(g.variable, g.year)[0]
                ax.plot([g.year], [v], marker="D", ms=7, color=c, mec="black", zorder=5)
        goal_line = ax.axhline(g.threshold, color="#c0392b", ls="--", lw=1.4,
                               label=t("threshold", lang, test=g.test, value=fmt_value(g.threshold, g.units)))
        goal_lines[ax] = goal_line
        ax.axvline(g.year, color="grey", ls=":", lw=1)
        if g.observed:
            f = model.facts[g.observed]
            ax.plot([f.year], [f.value], marker="*", ms=13, color="#f39c12", mec="black",
                    zorder=6, ls="none", label=t("observed", lang, year=f.year))
        if g.reported and len(runs) == 1 and g.reported in runs[0][1].names:
            run = runs[0][1]
            ax.plot(run.years, run.get(g.reported)[:, 0], ls=":", lw=1.6, color="#7f8c8d",
                    label=t("reported_path", lang))
        # published-scope figures only beside the published path (one run); an overlay keeps to the seed scope
        draw_history(ax, model, [g.variable, *([g.reported] if g.reported and len(runs) == 1 else [])], lang)
        name = g.label(lang)
        if status is not None and len(runs) == 1:
            st = status[0][g.name]
            if g.poisson:  # a count of rare events: judged by the chance of reaching the threshold
                verdict = t("poisson_verdict", lang, thr=fmt_value(g.threshold), p=float(st.probability[0]))
            else:
                verdict = t("met", lang) if st.met[0] else t("not_met", lang)
            name = f"{name}\n{g.year}: {fmt_value(st.value[0], g.units)} ({verdict})"
            ax.set_facecolor(probability_colour(float(st.probability[0]), light=True))
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(unit_label(g.units, lang), fontsize=9)
        ax.set_xlabel(t("year", lang), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        if g.units == "dmnl":
            top = max(ax.get_ylim()[1], g.threshold * 1.1)
            ax.set_ylim(0, min(1.05, top) if g.threshold <= 1 else top)  # room above a 99 % goal line
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    for ax in axes.flat[len(goals):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if h is not goal_lines.get(ax) and lab not in labels:
                handles.append(h)
                labels.append(lab)
    for ax, line in goal_lines.items():
        ax.legend([line], [line.get_label()], fontsize=7, loc="best")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


#: Variables the Yubei-specific figures show; a model without them (a textbook model) skips the figure.
CHAIN_NAMES = ("maker_spaces", "incubators", "startup_teams", "incubated_firms", "team_capacity", "tenant_capacity",
               "eligible_backlog", "new_tech_enterprises", "tech_enterprises", "qualifying_firms", "high_tech_enterprises")
RD_NAMES = ("rd_intensity",)


def drawable(model: Model, names: tuple[str, ...]) -> bool:
    """True when the model has every variable in ``names``."""
    return all(n in model.variables for n in names)


def chain_figure(model: Model, run: Run, lang: str, title: str) -> plt.Figure:
    """Carriers, teams and tenants vs capacity; eligible backlog and registrations; register, qualifying firms, HTE."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    yrs = run.years

    def line(ax: plt.Axes, name: str, **kw: object) -> None:
        ax.plot(yrs, run.get(name)[:, 0], label=model.variable(name).label(lang), lw=2, marker="o", ms=3, **kw)

    ax = axes[0, 0]
    line(ax, "maker_spaces")
    line(ax, "incubators")
    for i, fid in enumerate(("maker_spaces_2021", "incubators_2021")):
        if fid in model.facts:
            f = model.facts[fid]
            ax.plot([f.year], [f.value], "*", ms=12, color="#f39c12", mec="black", ls="none",
                    label=t("observed", lang, year=f.year) if i == 0 else None)
    ax.set_title(t("carriers", lang))
    ax.set_ylabel(unit_label("carrier", lang))
    ax = axes[0, 1]
    line(ax, "startup_teams", color="#2874a6")
    line(ax, "incubated_firms", color="#1e8449")
    ax.plot(yrs, run.get("team_capacity")[:, 0], ls="--", color="#2874a6",
            label=f"{model.variable('team_capacity').label(lang)}")
    ax.plot(yrs, run.get("tenant_capacity")[:, 0], ls="--", color="#1e8449",
            label=f"{model.variable('tenant_capacity').label(lang)}")
    ax.set_title(t("occupants", lang))
    ax.set_ylabel(unit_label("firm", lang))
    ax = axes[1, 0]
    line(ax, "eligible_backlog")
    ax.plot(yrs[1:], run.get("new_tech_enterprises")[1:, 0], ls="-.", lw=2, marker="s", ms=3,
            label=f"{model.variable('new_tech_enterprises').label(lang)} ({t('per_year', lang)})")
    ax.set_title(t("pool", lang))
    ax.set_ylabel(f"{unit_label('firm', lang)} / {unit_label('firm/year', lang)}")  # a stock and a flow
    ax = axes[1, 1]
    line(ax, "tech_enterprises", color="#1f4e79")
    line(ax, "qualifying_firms", color="#117a65")
    line(ax, "high_tech_enterprises", color="#7d3c98")
    for name, color in (("reported_tech_enterprises", "#1f4e79"), ("reported_high_tech_enterprises", "#7d3c98")):
        if name in run.names:
            ax.plot(yrs, run.get(name)[:, 0], ls=":", lw=1.5, color=color, label=model.variable(name).label(lang))
    draw_history(ax, model, ["tech_enterprises", "high_tech_enterprises", "reported_tech_enterprises",
                             "reported_high_tech_enterprises"], lang)
    for gid, color in (("tech_enterprises", "#1f4e79"), ("high_tech_enterprises", "#7d3c98")):
        g = model.goals.get(gid)
        if g:
            ax.axhline(g.threshold, ls="--", color=color, lw=1,
                       label=f"{g.label(lang)}: {t('threshold', lang, test=g.test, value=fmt_value(g.threshold))}")
            if g.observed:
                f = model.facts[g.observed]
                ax.plot([f.year], [f.value], "*", ms=12, color="#f39c12", mec="black")
    ax.set_title(t("qualifying", lang))
    ax.set_ylabel(unit_label("firm", lang))
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.set_xlabel(t("year", lang), fontsize=8)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def draw_history(ax: plt.Axes, model: Model, names: list[str], lang: str, scale: float = 1.0) -> None:
    """Published figures after the calibration year (history.yaml) of ``names``: observations as points with
    error bars, re-based targets as hollow diamonds. ``scale`` multiplies values (100 for % axes)."""
    hist = getattr(model, "history", None)
    if hist is None:
        return
    shown = {"obs_seed": False, "obs_new": False, "target": False}
    for r in hist.rows:
        if r.variable not in names:
            continue
        if r.kind == "observation" and r.t is not None and r.bounds is not None:
            lo, hi = r.bounds
            key = "obs_seed" if r.scope == "seed" else "obs_new"  # the two scopes get their own marker
            ax.errorbar([r.t], [r.value * scale], yerr=[[(r.value - lo) * scale], [(hi - r.value) * scale]],
                        fmt="o" if key == "obs_seed" else "s", ms=6, color="black",
                        mfc="white" if key == "obs_seed" else "#d5d8dc", capsize=4, zorder=6,
                        label=None if shown[key] else t("history_" + key, lang))
            shown[key] = True
        elif r.kind == "target":
            ax.plot([r.time], [r.value * scale], "D", ms=7, mfc="none", mec="#c0392b", zorder=6,
                    label=None if shown["target"] else t("history_target", lang))
            shown["target"] = True


def rd_figure(model: Model, run: Run, lang: str, title: str) -> plt.Figure:
    """Stacked R&D composition (annual totals) and R&D intensity against its goal."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
    parts = [n for n in ("rd_large_firms", "rd_innovative_firms", "rd_public") if n in run.names]
    yrs = run.years[1:]
    bottom = np.zeros(yrs.size)
    for n in parts:
        v = run.get(n)[1:, 0]
        a1.bar(yrs, v, bottom=bottom, label=model.variable(n).label(lang), width=0.7)
        bottom += v
    if "rd_spend_2021" in model.facts:
        f = model.facts["rd_spend_2021"]
        a1.plot([f.year], [f.value], "*", ms=14, color="#f39c12", mec="black",
                label=t("observed", lang, year=f.year), zorder=5)
    if "rd_spend_2019" in model.facts:
        f = model.facts["rd_spend_2019"]
        a1.plot([f.year], [f.value], "x", ms=10, color="black",
                label=t("reported_2019", lang), zorder=5)
    a1.set_title(t("rd_composition", lang))
    a1.set_ylabel(unit_label("CNY100M/year", lang))
    a1.legend(fontsize=8, loc="upper left")
    g = model.goals.get("rd_intensity")
    yi = run.get("rd_intensity")[:, 0]
    a2.plot(run.years, yi, lw=2, marker="o", color="#1f4e79", label=model.variable("rd_intensity").label(lang))
    if g:
        a2.axhline(g.threshold, color="#c0392b", ls="--",
                   label=t("threshold", lang, test=g.test, value=fmt_value(g.threshold, g.units)))
        a2.axvline(g.year, color="grey", ls=":")
        if g.observed:
            f = model.facts[g.observed]
            a2.plot([f.year], [f.value], "*", ms=14, color="#f39c12", mec="black",
                    label=t("observed", lang, year=f.year))
        ok = holds(g, yi[np.isfinite(yi)])
        a2.set_ylim(0, max(np.nanmax(yi), g.threshold) * 1.25 if ok.size else None)
    a2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    a2.set_title(t("rd_intensity", lang))
    a2.set_ylabel(unit_label("dmnl", lang))
    a2.legend(fontsize=8, loc="lower right")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.set_xlabel(t("year", lang), fontsize=8)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


MATRIX_TEXT = {
    "matrix_title": {"en": "Goals in {year} by scenario", "zh": "各情景{year}年目标达成情况"},
    "met_in": {"en": "met in {year}", "zh": "{year}年达成"},
    "not_met_in": {"en": "not met in {year}", "zh": "{year}年未达成"},
    "first_met": {"en": "first met {year}", "zh": "{year}年首次达成"},
    "lost": {"en": "first met {year}, lost again", "zh": "{year}年达成后又失去"},
    "dipped": {"en": "first met {year}, with a dip", "zh": "{year}年达成，其间曾回落"},
    "met_later": {"en": "met only from {year}", "zh": "{year}年才达成"},
    "gap": {"en": "gap {gap}", "zh": "差距 {gap}"},
    "scenario": {"en": "Scenario", "zh": "情景"},
    "overlay_title": {"en": "Goal indicators by scenario", "zh": "各情景目标指标对比"},
}
TEXT.update(MATRIX_TEXT)


def _wrap(text: str, lang: str, width: int) -> str:
    """Wrap a label to about ``width`` columns: on spaces for English; for Chinese (two columns a
    character) into lines of balanced length, never splitting a run of Latin letters or digits
    and never starting a line with closing punctuation."""
    import textwrap

    if lang != "zh" or " " in text.strip() and not any(ord(c) > 0x2E80 for c in text):
        return "\n".join(textwrap.wrap(text, width)) or text
    cols = sum(2 if ord(c) > 0x2E80 else 1 for c in text)
    if cols <= width:
        return text
    lines = int(np.ceil(cols / width))
    target = cols / lines
    out, line, w = [], "", 0
    for i, c in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else ""
        line += c
        w += 2 if ord(c) > 0x2E80 else 1
        glued = (c.isascii() and c.isalnum() and nxt.isascii() and nxt.isalnum()) or nxt in "，。、；：）」%）"
        if w >= target and nxt and not glued and len(out) < lines - 1:
            out.append(line)
            line, w = "", 0
    out.append(line)
    return "\n".join(out)


def goal_matrix(
    model: Model,
    rows: Sequence[tuple[str, dict[str, GoalStatus]]],
    lang: str,
    title: str,
    interrupted: Sequence[set[str]] | None = None,
) -> plt.Figure:
    """Scenario x goal matrix: cell colour = met / not met in the goal year, text = value and timing.

    ``rows`` holds (scenario label, goal status of that scenario with n = 1) in display order.
    Each cell shows the goal-year value (shares as percentages; for Poisson goals also the
    probability that the count passes the test), then the first year met, a note when the goal
    was met before the goal year but is not met in it, or the relative gap when never met.
    ``interrupted[i]`` names the goals that row i met in the goal year but not in every year since
    first meeting them (their note says so).
    """
    goals = list(model.goals.values())
    n, m = len(rows), len(goals)
    year = goals[0].year if goals else ""
    # colour: met (1) or not (0); a Poisson count goal by its probability of reaching the threshold
    met = np.array([[float(st[g.name].probability[0]) if g.poisson else float(bool(st[g.name].met[0]))
                     for g in goals] for _, st in rows], dtype=float).reshape(n, m)
    fig, ax = plt.subplots(figsize=(2.6 + 1.55 * m, 1.6 + 0.62 * n))
    ax.imshow(met, cmap=PROBABILITY_CMAP, vmin=0, vmax=1, aspect="auto")
    for i, (_, st) in enumerate(rows):
        for j, g in enumerate(goals):
            s = st[g.name]
            value = fmt_value(float(s.value[0]), g.units)
            if g.poisson:
                value += f"  P={float(s.probability[0]):.2f}"
            first = int(s.first_year[0])
            if s.met[0]:
                note = t("first_met", lang, year=first) if first else ""
                if interrupted is not None and g.name in interrupted[i]:
                    note = t("dipped", lang, year=first)
            elif first and first <= g.year:
                note = t("lost", lang, year=first)
            elif first:
                note = t("met_later", lang, year=first)
            else:
                gap = fmt_gap(float(s.gap[0]), float(s.gap_pct[0]), g.units)
                note = t("gap", lang, gap=gap)
            ax.text(j, i - 0.12, value, ha="center", va="center", fontsize=9.5,
                    fontweight="bold" if lang == "en" else "normal")  # CJK fonts here have no bold face
            ax.text(j, i + 0.22, note, ha="center", va="center", fontsize=6.5, color="#333333")
    sign = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}
    heads = [f"{_wrap(g.label(lang), lang, 20)}\n{sign.get(g.test, g.test)} {fmt_value(g.threshold, g.units)}" for g in goals]
    ax.set_xticks(range(m), heads, fontsize=7.5)
    ax.xaxis.tick_top()
    ax.set_yticks(range(n), [_wrap(label, lang, 34) for label, _ in rows], fontsize=8.5)
    ax.set_xticks(np.arange(-0.5, m, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [
        matplotlib.patches.Patch(color="#c8e6c9", label=t("met_in", lang, year=year)),
        matplotlib.patches.Patch(color="#f6caca", label=t("not_met_in", lang, year=year)),
    ]
    if any(g.poisson for g in goals):
        handles.append(matplotlib.patches.Patch(color=probability_colour(0.5), label=t("shade_p", lang)))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=len(handles), fontsize=8,
              frameon=False)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


PROBABILITY_CMAP = matplotlib.colors.LinearSegmentedColormap.from_list(
    "p_met", ["#f6caca", "#fbe3b4", "#c8e6c9"])  # not met -> even chance -> met


def probability_colour(p: float, light: bool = False) -> tuple[float, float, float, float]:
    """Colour of a probability of meeting a goal (0 red, 0.5 amber, 1 green); ``light`` for panel backgrounds."""
    r, g, b, a = PROBABILITY_CMAP(float(np.clip(np.nan_to_num(p), 0.0, 1.0)))
    if light:
        r, g, b = (1 - 0.55 * (1 - c) for c in (r, g, b))
    return (r, g, b, a)


def overlay_figure(
    model: Model,
    runs: Sequence[tuple[str, Run]],
    lang: str,
    title: str,
    reference: int | None = 0,
) -> plt.Figure:
    """:func:`goal_panels` for many scenarios: the ``reference`` run (the baseline) is drawn on top
    as a dashed black line, so scenarios that coincide with it show through the dashes, and the
    legend is laid out in columns that fit the figure."""
    fig = goal_panels(model, runs, lang, title)
    for leg in list(fig.legends):
        leg.remove()
    labels = [label for label, _ in runs]
    ref = labels[reference] if reference is not None and runs else None
    goal_axes = fig.axes[: len(model.goals)]
    markers = ("o", "s", "^", "v", "P", "X", "<", ">", "h", "*", "p", "d")
    styles = ("-", (0, (6, 2)), "-.", (0, (2, 1.5)))
    period = min(len(runs), 4) or 1
    for ax in goal_axes:
        ax.set_title(_wrap(ax.get_title(), lang, 44), fontsize=10)
        ref_color = None
        for line in ax.get_lines():
            lab = line.get_label()
            if lab in labels and lab != ref and len(runs) > 3:
                # many scenarios: each its own marker shape, line style and marker years, so a line that
                # coincides with others still shows (its markers sit on other years than theirs)
                k = labels.index(lab)
                line.set(marker=markers[k % len(markers)], markevery=(k % period, period), ms=5,
                         ls=styles[(k // len(markers) + k) % len(styles)], lw=1.6)
            if ref is not None and line.get_label() == ref:
                ref_color = line.get_color()
                line.set(color="black", ls="--", lw=1.6, marker="none", zorder=4)
        if ref_color is not None:  # the reference run's goal-year diamond
            for line in ax.get_lines():
                if line.get_marker() == "D" and line.get_color() == ref_color:
                    line.set(color="black", zorder=6)
    handles, names = [], []
    if goal_axes:
        for line in goal_axes[0].get_lines():
            lab = line.get_label()
            if lab in labels and lab not in names:
                handles.append(line)
                names.append(lab)
        for ax in goal_axes:
            for line in ax.get_lines():
                observed = t("observed", lang, year=model.calibration.end)
                if line.get_label() == observed and observed not in names:
                    handles.append(line)
                    names.append(observed)
    ncol = 2 if max((len(n) for n in names), default=0) > 30 else 3
    rows = int(np.ceil(len(names) / ncol))
    width, panels = fig.get_size_inches()
    extra = 0.2 * rows + 0.55  # inches below the panels: legend rows and the note
    height = panels + extra
    fig.set_size_inches(width, height)
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.3 / height))
    if ref is not None:
        fig.text(0.5, 0.08 / height, t("overlay_note", lang, name=ref), ha="center", va="bottom", fontsize=8,
                 color="#444444")
    fig.tight_layout(rect=(0, extra / height, 1, 1 - 0.3 / height))
    return fig


TEXT["overlay_note"] = {
    "en": "Dashed black: {name}. Each scenario has its own marker, placed on different years, so lines with the "
          "same values still show; diamonds mark the goal year, dashed red lines the goals.",
    "zh": "黑色虚线：{name}。每个情景有各自的标记，标在不同年份，数值相同的线条也可辨认；菱形标记目标年份，红色虚线为目标值。",
}
