"""Figures of ``run`` and ``compare``: goal panels, the model's own figures (figures.yaml), the goal
matrix and the scenario overlay.

Every plotting function takes results and returns a :class:`matplotlib.figure.Figure`; none touches
matplotlib's global state (no backend choice, no pyplot figure registry, no ``rcParams`` changes):
fonts and text settings apply only inside the function (:func:`styled`). Figures are laid out by
matplotlib's constrained layout while they are drawn, so :func:`save` renders each one once.

Labels come from the model files (en/zh) and the language catalogue (``sdsim/text/figures.yaml``).
With ``lang='zh'`` an installed CJK font is registered (a system Noto Sans CJK / Source Han Sans with
its bold face when present, else the ``mplfonts`` package); when none is found the figures fall back
to English once, with a message, and never draw tofu boxes. Bold text uses the font's bold face, or
stays regular when the font has none (no missing-glyph or font warnings).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import matplotlib
import numpy as np
from matplotlib import colors as mcolors
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from . import i18n
from .engine import Run
from .figures_spec import STYLES, FigureSpec, Panel, scope_year, text
from .goals import GoalStatus
from .model import Fact, Model
from .textable import fmt_gap, fmt_value  # noqa: F401  (re-exported: plots.fmt_value)

if TYPE_CHECKING:
    from matplotlib.typing import ColorType, LegendLocType  # matplotlib >= 3.8; only for the type check

DPI = 150
_CJK_CANDIDATES = (
    "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansCJKSC-Regular.otf",
    "SourceHanSansSC-Regular.otf", "SimHei.ttf", "wqy-zenhei.ttc", "wqy-microhei.ttc",
)
_font_state: dict[str, Any] = {}  # "zh": family name or None; "bold": whether that family has a bold face
GOAL_RED = "#c0392b"
STAR: dict[str, Any] = {"marker": "*", "color": "#f39c12", "mec": "black", "ls": "none"}

F = TypeVar("F", bound=Callable[..., Any])


def t(key: str, lang: str, **kw: object) -> str:
    """The figure text ``fig.<key>`` of the catalogue in ``lang``."""
    return i18n.t("fig." + key, lang, **kw)


def unit_label(units: str, lang: str, model: Model | None = None) -> str:
    """Readable units: the model's own labels (figures.yaml ``units``), then the catalogue's
    (``fig.unit.*``); ``a/b`` is read as a per b when both parts have labels; else the symbol."""
    own = getattr(getattr(model, "figures", None), "units", None) or {}

    def one(u: str) -> str | None:
        if u in own:
            return text(own[u], lang)
        return i18n.t("fig.unit." + u, lang) if i18n.has("fig.unit." + u) else None

    found = one(units)
    if found is not None:
        return found
    if units.count("/") == 1:
        a, b = units.split("/")
        la, lb = one(a), one(b)
        if la is not None and lb is not None:
            return i18n.t("fig.unit.per", lang, a=la, b=lb)
    return units


# ------------------------------------------------------------------------------------------ fonts


def _font_dirs() -> list[Path]:
    dirs = [Path(p) for p in ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"))]
    try:
        import mplfonts

        dirs.append(Path(mplfonts.__file__).parent / "fonts")
    except ImportError:
        pass
    return dirs


def _bold_sibling(path: str) -> str | None:
    """The bold face beside a regular font file (``...-Regular.ttc`` -> ``...-Bold.ttc``), if installed."""
    p = Path(path)
    if "Regular" not in p.name:
        return None
    bold = p.with_name(p.name.replace("Regular", "Bold"))
    return str(bold) if bold.is_file() else None


def _find_cjk_font() -> str | None:
    """A CJK font file: one with a bold face beside it first, in the order of ``_CJK_CANDIDATES``."""
    found: list[str] = []
    for root in _font_dirs():
        for dirpath, _, files in os.walk(root):
            found += [os.path.join(dirpath, n) for n in _CJK_CANDIDATES if n in files]
    found.sort(key=lambda f: (_bold_sibling(f) is None, _CJK_CANDIDATES.index(os.path.basename(f))))
    return found[0] if found else None


def _register(path: str) -> tuple[str, bool]:
    """Register ``path`` (and its bold face) with matplotlib; the family name to use, and whether it has bold."""
    before = {(f.fname, f.name) for f in font_manager.fontManager.ttflist}
    paths = [path, *filter(None, [_bold_sibling(path)])]
    for p in paths:
        font_manager.fontManager.addfont(p)
    added = [f for f in font_manager.fontManager.ttflist if f.fname in paths and (f.fname, f.name) not in before] or [
        f for f in font_manager.fontManager.ttflist if f.fname in paths]
    names = [f.name for f in added if f.fname == path]
    # a collection holds one face per region: take the simplified-Chinese one
    name = next((n for n in names if n.endswith(" SC")), names[0] if names else font_manager.FontProperties(
        fname=path).get_name())
    weights = [f.weight for f in font_manager.fontManager.ttflist if f.name == name]
    bold = any((w if isinstance(w, int) else font_manager.weight_dict.get(str(w), 400)) >= 600 for w in weights)
    return name, bold


def setup_language(lang: str, warn: bool = True) -> str:
    """Find and register the fonts ``lang`` needs; returns the language figures can use ('zh' or 'en').

    Registering a font is the only lasting effect (matplotlib's font list); no ``rcParams`` change."""
    if lang != "zh":
        return "en"
    if "zh" not in _font_state:
        path = _find_cjk_font()
        name, bold = _register(path) if path else (None, False)
        _font_state["zh"], _font_state["bold"] = name, bold
        if name is None and warn:
            print(t("no_cjk_font", "en"), file=sys.stderr)
    return "zh" if _font_state["zh"] is not None else "en"


def rc(lang: str) -> dict[str, Any]:
    """The matplotlib settings of a figure in ``lang`` (applied only while it is built)."""
    out: dict[str, Any] = {"text.parse_math": False,  # titles come from files: a '$' is a dollar, never TeX
                           "font.family": ["DejaVu Sans"], "svg.fonttype": "path"}
    if lang == "zh" and _font_state.get("zh"):
        out["font.family"] = [_font_state["zh"], "DejaVu Sans"]
    return out


def bold(lang: str) -> str:
    """The weight of bold text in ``lang``: bold, or normal when the CJK font has no bold face."""
    return "bold" if lang != "zh" or _font_state.get("bold") else "normal"


def styled(fn: F) -> F:
    """Build the figure of ``fn`` under :func:`rc` of its ``lang`` argument (no global change)."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        lang = bound.arguments.get("lang", "en")
        with matplotlib.rc_context(rc(lang)):  # type: ignore[arg-type]
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_figure(figsize: tuple[float, float], fixed: bool = False, **kw: Any) -> Figure:
    """A figure outside pyplot (nothing registered globally): laid out by constrained layout when it is
    drawn, or (``fixed``) by the caller (:func:`fixed_grid`), which saves the layout passes."""
    return Figure(figsize=figsize, layout=None if fixed else "constrained", **kw)


def fixed_grid(fig: Figure, nrow: int, ncol: int, title_lines: int, legend_rows: int = 0,
               left: float = 0.85, right: float = 0.2, gap: float = 0.95, tick_rows: float = 0.5) -> None:
    """Place a grid of panels at fixed margins (inches), so the figure needs no layout pass when saved.

    Room is kept for the suptitle (13 pt), ``title_lines`` lines of panel titles (10 pt), tick labels
    and an x label under each row (``tick_rows``), y tick labels and a y label left of each panel
    (``left``, ``gap``), and ``legend_rows`` rows of a figure legend (9 pt) at the bottom."""
    w, h = fig.get_size_inches()
    title = 0.2 * title_lines + 0.12  # panel title lines at 10 pt and their pad
    top = 0.42 + title
    bottom = tick_rows + (0.24 * legend_rows + 0.12 if legend_rows else 0.05)
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h,
                        wspace=gap / ((w - left - right - gap * (ncol - 1)) / ncol),
                        hspace=(tick_rows + title) / ((h - top - bottom - (tick_rows + title) * (nrow - 1)) / nrow))
    suptitle = getattr(fig, "_suptitle", None)  # the title line at the top (fixed: no layout engine moves it)
    if suptitle is not None:
        suptitle.set_y(1 - 0.08 / h)
        suptitle.set_va("top")


def save(fig: Figure, path: Path, svg: bool = False) -> list[Path]:
    """Save PNG (150 dpi) and optionally SVG. The figure is laid out and rendered once per file."""
    fig.savefig(path.with_suffix(".png"), dpi=DPI)
    out = [path.with_suffix(".png")]
    if svg:
        fig.savefig(path.with_suffix(".svg"))
        out.append(path.with_suffix(".svg"))
    if fig.canvas.manager is not None:  # a figure made with pyplot elsewhere: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out


# ------------------------------------------------------------------------------------- goal panels


def _axes_grid(fig: Figure, n: int, ncol: int) -> np.ndarray:
    nrow = int(np.ceil(n / ncol)) or 1
    return np.asarray(fig.subplots(nrow, ncol, squeeze=False))


def _reported_label(model: Model, lang: str) -> str:
    year = scope_year(model)
    return t("reported_path", lang, year=year) if year is not None else t("reported_path_plain", lang)


@styled
def goal_panels(
    model: Model,
    runs: Sequence[tuple[str, Run]],
    lang: str,
    title: str,
    status: Sequence[dict[str, GoalStatus]] | None = None,
) -> Figure:
    """One panel per goal indicator: trajectories, threshold line, observed point (goals.yaml
    ``observed``), goal-year mark; with one run, its published path and the published figures."""
    goals = list(model.goals.values())
    ncol = min(4, max(len(goals), 2))
    nrow = int(np.ceil(len(goals) / ncol)) or 1
    titles = [_wrap(g.label(lang), lang, 50) for g in goals]  # a title wider than its panel would leave the figure
    title_lines = max((t_.count("\n") + 1 for t_ in titles), default=1) + (status is not None and len(runs) == 1)
    fig = new_figure((4.2 * ncol, 2.75 * nrow + 0.55 + 0.2 * title_lines * nrow), fixed=True)
    axes = _axes_grid(fig, len(goals), ncol)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    goal_lines: dict[Axes, Any] = {}  # each panel's threshold line (its own small legend)
    for ax, g, name in zip(axes.flat, goals, titles, strict=False):
        for i, (label, run) in enumerate(runs):
            y = run.get(g.variable)[:, 0]
            c = colors[i % len(colors)] if len(runs) > 1 else "#1f4e79"
            ax.plot(run.years, y, color=c, lw=2, label=label, marker="o", ms=3)
            if g.year in run.years:
                v = run.at(g.variable, g.year)[0]
                ax.plot([g.year], [v], marker="D", ms=7, color=c, mec="black", zorder=5)
        goal_line = ax.axhline(g.threshold, color=GOAL_RED, ls="--", lw=1.4,
                               label=t("threshold", lang, test=g.test, value=fmt_value(g.threshold, g.units)))
        goal_lines[ax] = goal_line
        ax.axvline(g.year, color="grey", ls=":", lw=1)
        if g.observed:
            f = model.facts[g.observed]
            ax.plot([f.year], [f.value], ms=13, zorder=6, label=t("observed", lang, year=f.year), **STAR)
        if g.reported and len(runs) == 1 and g.reported in runs[0][1].names:
            run = runs[0][1]
            ax.plot(run.years, run.get(g.reported)[:, 0], ls=":", lw=1.6, color="#7f8c8d",
                    label=_reported_label(model, lang))
        # published-scope figures only beside the published path (one run); an overlay keeps to the seed scope
        draw_history(ax, model, [g.variable, *([g.reported] if g.reported and len(runs) == 1 else [])], lang)
        if status is not None and len(runs) == 1:
            st = status[0][g.name]
            if g.poisson:  # a count of rare events: judged by the chance of reaching the threshold
                verdict = t("poisson_verdict", lang, thr=fmt_value(g.threshold), p=float(st.probability[0]))
            else:
                verdict = t("met", lang) if st.met[0] else t("not_met", lang)
            name = f"{name}\n{g.year}: {fmt_value(st.value[0], g.units)} ({verdict})"
            ax.set_facecolor(probability_colour(float(st.probability[0]), light=True))
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(unit_label(g.units, lang, model), fontsize=9)
        ax.set_xlabel(t("year", lang), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        if g.units == "dmnl":
            top = max(ax.get_ylim()[1], g.threshold * 1.1)
            ax.set_ylim(0, min(1.05, top) if g.threshold <= 1 else top)  # room above a 99 % goal line
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
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
    ncol_legend = min(len(labels), 6) or 1
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol_legend, fontsize=9, frameon=False,
                   bbox_to_anchor=(0.5, 0.04 / fig.get_figheight()))
    fig.suptitle(title, fontsize=13)
    fixed_grid(fig, axes.shape[0], axes.shape[1], title_lines, int(np.ceil(len(labels) / ncol_legend)) if handles else 0)
    return fig


def draw_history(ax: Axes, model: Model, names: list[str], lang: str, scale: float = 1.0) -> None:
    """Published figures after the calibration year (history.yaml) of ``names``: observations as points with
    error bars, re-based targets as hollow diamonds. ``scale`` multiplies values (100 for % axes)."""
    hist = getattr(model, "history", None)
    if hist is None:
        return
    year = model.calibration.end
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
                        label=None if shown[key] else t("history_" + key, lang, year=year))
            shown[key] = True
        elif r.kind == "target":
            ax.plot([r.time], [r.value * scale], "D", ms=7, mfc="none", mec=GOAL_RED, zorder=6,
                    label=None if shown["target"] else t("history_target", lang))
            shown["target"] = True


# ------------------------------------------------------------------------- the model's own figures


def run_figures(model: Model) -> list[str]:
    """The figures ``run`` draws for ``model``: the goal panels (when it has goals), then figures.yaml's."""
    spec = getattr(model, "figures", None)
    return (["goals"] if model.goals else []) + (list(spec.figures) if spec is not None else [])


def figure_title(model: Model, name: str, lang: str, scenario: str) -> str:
    """The title of run figure ``name`` for the scenario titled ``scenario``."""
    if name == "goals":
        year = max(g.year for g in model.goals.values())
        return t("goals_title", lang, name=scenario, year=year)
    return text(model.figures.figures[name].title, lang, name=scenario)


def figure_caption(model: Model, name: str, lang: str) -> str:
    """The caption of figures.yaml's figure ``name`` (empty when it has none)."""
    return text(model.figures.figures[name].caption, lang) if model.figures.figures[name].caption else ""


def run_figure(model: Model, name: str, run: Run, lang: str, scenario: str,
               status: dict[str, GoalStatus] | None = None) -> Figure:
    """Run figure ``name`` (see :func:`run_figures`) of one scenario's ``run``."""
    title = figure_title(model, name, lang, scenario)
    if name == "goals":
        return goal_panels(model, [(scenario, run)], lang, title, None if status is None else [status])
    return model_figure(model, model.figures.figures[name], run, lang, title)


def _is_annual(model: Model, name: str) -> bool:
    """A flow or an annual total: its value at t is the total over the year ending at t (none at t0)."""
    v = model.variable(name)
    return v.kind == "flow" or bool(v.annual_total)


@styled
def model_figure(model: Model, spec: FigureSpec, run: Run, lang: str, title: str) -> Figure:
    """A figure declared in figures.yaml: its panels, each with its lines, facts, goals and history."""
    fig = new_figure(spec.size, fixed=True)
    axes = np.asarray(fig.subplots(*spec.grid, squeeze=False))
    for ax, panel in zip(axes.flat, spec.panels, strict=False):
        _panel(ax, model, panel, run, lang)
    for ax in axes.flat[len(spec.panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=13)
    fixed_grid(fig, *spec.grid, max(text(p.title, lang).count("\n") + 1 for p in spec.panels))
    return fig


def _panel(ax: Axes, model: Model, panel: Panel, run: Run, lang: str) -> None:
    yrs = run.years
    colors: dict[str, ColorType] = {}
    if panel.kind == "stacked":
        annual = any(_is_annual(model, ln.variable) for ln in panel.lines)
        x = yrs[1:] if annual else yrs
        bottom = np.zeros(x.size)
        for ln in panel.lines:
            v = run.get(ln.variable)[-x.size:, 0]
            ax.bar(x, v, bottom=bottom, label=model.variable(ln.variable).label(lang), width=0.7, color=ln.color)
            bottom += v
    else:
        for ln in panel.lines:
            label = model.variable(ln.variable).label(lang)
            x, y = yrs, run.get(ln.variable)[:, 0]
            if _is_annual(model, ln.variable):
                x, y = x[1:], y[1:]
                label = f"{label} ({t('per_year', lang)})"
            drawn = ax.plot(x, y, label=label, lw=2 if ln.style == "solid" else 1.6, ls=STYLES[ln.style],
                            marker=ln.marker or "none", ms=3, color=ln.color)
            colors[ln.variable] = drawn[0].get_color()
    for m in panel.facts:
        f = model.facts[m.fact]
        label = text(m.label, lang, year=f.year) if m.label else t("observed", lang, year=f.year)
        kw: dict[str, Any] = dict(STAR) if m.marker == "*" else {"marker": m.marker, "color": "black", "ls": "none"}
        ax.plot(_fact_x(f), [f.value], ms=13 if m.marker == "*" else 10, zorder=6,
                label=label if label not in ax.get_legend_handles_labels()[1] else None, **kw)
    for gid in panel.goals:
        g = model.goals[gid]
        line_color = colors.get(g.variable, GOAL_RED) if len(panel.goals) > 1 else GOAL_RED
        goal = t("threshold", lang, test=g.test, value=fmt_value(g.threshold, g.units))
        ax.axhline(g.threshold, ls="--", color=line_color, lw=1.2,
                   label=t("goal_of", lang, goal=g.label(lang), threshold=goal) if len(panel.goals) > 1 else goal)
        if len(panel.goals) == 1:
            ax.axvline(g.year, color="grey", ls=":", lw=1)
        if g.observed:
            f = model.facts[g.observed]
            observed = t("observed", lang, year=f.year)
            ax.plot(_fact_x(f), [f.value], ms=13, zorder=6,
                    label=observed if observed not in ax.get_legend_handles_labels()[1] else None, **STAR)
    if panel.history:
        draw_history(ax, model, [ln.variable for ln in panel.lines], lang)
    ax.set_title(text(panel.title, lang), fontsize=11)
    ax.set_ylabel(" / ".join(unit_label(u, lang, model) for u in panel.units), fontsize=9.5)
    ax.tick_params(labelsize=9)
    ax.set_xlabel(t("year", lang), fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    if panel.goals:
        top = max(model.goals[g].threshold for g in panel.goals) * 1.15
        ax.set_ylim(0, max(ax.get_ylim()[1], top))
    if panel.units == ["dmnl"]:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if panel.headroom != 1.0:
        ax.set_ylim(0, ax.get_ylim()[1] * panel.headroom)
    compact = {} if panel.legend_columns == 1 else {"columnspacing": 0.6, "handlelength": 1.4, "handletextpad": 0.4}
    ax.legend(fontsize=8 if panel.legend_columns == 1 else 6.5, ncol=panel.legend_columns, **compact,
              loc=cast("LegendLocType", panel.legend))  # figures.yaml text; matplotlib rejects a bad one


def _fact_x(f: Fact) -> list[float]:
    """A fact's year as the x of its marker: NaN (not drawn) for a fact without a year."""
    return [float("nan") if f.year is None else f.year]


# ------------------------------------------------------------------------------ compare: the matrix


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
    out: list[str] = []
    line, w = "", 0
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


@styled
def goal_matrix(
    model: Model,
    rows: Sequence[tuple[str, dict[str, GoalStatus]]],
    lang: str,
    title: str,
    interrupted: Sequence[set[str]] | None = None,
) -> Figure:
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
    fig = new_figure((2.6 + 1.55 * m, 1.6 + 0.62 * n))
    ax = fig.subplots()
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
            ax.text(j, i - 0.12, value, ha="center", va="center", fontsize=9.5, fontweight=bold(lang))
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
        Patch(color="#c8e6c9", label=t("met_in", lang, year=year)),
        Patch(color="#f6caca", label=t("not_met_in", lang, year=year)),
    ]
    if any(g.poisson for g in goals):
        handles.append(Patch(color=probability_colour(0.5), label=t("shade_p", lang)))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=len(handles), fontsize=8,
              frameon=False)
    fig.suptitle(title, fontsize=13)
    return fig


PROBABILITY_CMAP = mcolors.LinearSegmentedColormap.from_list(
    "p_met", ["#f6caca", "#fbe3b4", "#c8e6c9"])  # not met -> even chance -> met


def probability_colour(p: float, light: bool = False) -> tuple[float, float, float, float]:
    """Colour of a probability of meeting a goal (0 red, 0.5 amber, 1 green); ``light`` for panel backgrounds."""
    r, g, b, a = PROBABILITY_CMAP(float(np.clip(np.nan_to_num(p), 0.0, 1.0)))
    if light:
        r, g, b = (1 - 0.55 * (1 - c) for c in (r, g, b))
    return (r, g, b, a)


@styled
def overlay_figure(
    model: Model,
    runs: Sequence[tuple[str, Run]],
    lang: str,
    title: str,
    reference: int | None = 0,
) -> Figure:
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
            lab = str(line.get_label())
            if lab in labels and lab not in names:
                handles.append(line)
                names.append(lab)
        observed = {t("observed", lang, year=model.facts[g.observed].year) for g in model.goals.values() if g.observed}
        for ax in goal_axes:
            for line in ax.get_lines():
                lab = str(line.get_label())
                if lab in observed and lab not in names:
                    handles.append(line)
                    names.append(lab)
    ncol = 2 if max((len(n) for n in names), default=0) > 30 else 3
    rows = int(np.ceil(len(names) / ncol))
    width, panels = fig.get_size_inches()
    fig.set_size_inches(width, panels + 0.2 * rows + 0.45)  # room below the panels: legend rows and the note
    fig.set_layout_engine("constrained")  # the titles were re-wrapped: laid out again when drawn
    leg = fig.legend(handles, names, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    if ref is not None:
        leg.set_title(_wrap(t("overlay_note", lang, name=ref), lang, int(width * 15)), prop=FontProperties(size=8))
        leg.get_title().set_color("#444444")
    return fig
