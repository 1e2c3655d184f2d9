"""Stock-and-flow diagram of a model, drawn with matplotlib from the model files.

Each sector is a panel. Stocks are boxes; flows are pipes with a valve: an inflow comes from a
source cloud on the left, an outflow goes to a sink cloud on the right, and a flow that leaves one
stock and enters another is a pipe between the two boxes. Dashed arrows between panels summarise
the information links across sectors (which stocks of one sector appear, directly or through
auxiliaries, in the flows of another). Named feedback loops are listed under the panels.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon

from . import i18n
from .loops import Loop
from .model import Model
from .plots import bold, styled, unit_label

# layout, in diagram units
BOX_W, BOX_H, ROW_GAP = 3.3, 1.5, 2.0
FLOW_H = 0.95  # vertical room per flow beside a box
SIDE = 3.7  # room left and right of a box for inflows / outflows
PAD = 0.6
PANEL_GAP = 2.6
MIN_W = 32.0  # least width of a diagram (a one-sector model still gets its title and legend on the page)
COLORS = ["#e8f1fa", "#eef7ee", "#fdf3e6", "#f4eefa", "#fbeeee", "#eef6f7"]
EDGE = ["#2874a6", "#1e8449", "#ca6f1e", "#7d3c98", "#b03a2e", "#117a65"]

@dataclass
class _Lane:
    stock: str
    col: int
    row: int
    ins: list[str]
    outs: list[str]
    lines: int = 1  # lines of the stock's label
    x: float = 0.0  # box centre
    y: float = 0.0


_WRAP = {"en": 19, "zh": 10}  # characters per line of a stock's label


def _bold(lang: str) -> str:
    """Bold, or regular when the CJK font in use has no bold face (:func:`sdsim.plots.bold`)."""
    return bold(lang)


def _t(key: str, lang: str, **kw: object) -> str:
    return i18n.t("fig.diagram." + key, lang, **kw)


def _label(model: Model, name: str, lang: str, width: int) -> str:
    return "\n".join(textwrap.wrap(model.variable(name).label(lang), width)) or name


def transfers(model: Model) -> dict[str, tuple[str, str]]:
    """Flows that are an outflow of one stock and an inflow of another: flow -> (from, to)."""
    src = {f: s for s, v in model.stocks.items() for f in v.outflows}
    dst = {f: s for s, v in model.stocks.items() for f in v.inflows}
    return {f: (src[f], dst[f]) for f in src if f in dst}


def _sector_lanes(model: Model, stocks: list[str], moved: dict[str, tuple[str, str]], lang: str) -> list[_Lane]:
    # transfer sources above their targets
    order: list[str] = []
    pending = list(stocks)
    while pending:
        for s in pending:
            if not any(b == s and a in pending and a != s for a, b in moved.values()):
                order.append(s)
                pending.remove(s)
                break
        else:  # a cycle of transfers: keep model order
            order += pending
            break
    ncol = 1 if len(order) <= 2 else 2
    nrow = -(-len(order) // ncol)
    lanes = []
    for i, s in enumerate(order):
        st = model.stocks[s]
        ins = [f for f in st.inflows if f not in moved]
        outs = [f for f in st.outflows if f not in moved]
        lines = _label(model, s, lang, _WRAP[lang]).count("\n") + 1
        lanes.append(_Lane(s, i // nrow, i % nrow, ins, outs, lines))
    return lanes


def _box_h(lane: _Lane) -> float:
    return max(BOX_H, FLOW_H * max(len(lane.ins), len(lane.outs)) + 0.2, 0.4 * lane.lines + 0.75)


def _cloud(ax: Axes, x: float, y: float, color: str) -> None:
    for dx, dy, r in ((-0.16, 0, 0.14), (0.0, 0.07, 0.17), (0.16, 0, 0.14), (0.0, -0.06, 0.13)):
        ax.add_patch(Circle((x + dx, y + dy), r, facecolor="white", edgecolor=color, lw=0.9, zorder=3))


def _valve(ax: Axes, x: float, y: float, color: str, vertical: bool = False) -> None:
    s = 0.16
    if vertical:
        pts = [(x - s, y - s), (x + s, y - s), (x - s, y + s), (x + s, y + s)]
    else:
        pts = [(x - s, y - s), (x - s, y + s), (x + s, y - s), (x + s, y + s)]
    ax.add_patch(Polygon(pts, closed=True, facecolor="white", edgecolor=color, lw=1.1, zorder=5))


def _pipe(ax: Axes, a: tuple[float, float], b: tuple[float, float], color: str) -> None:
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="simple,head_length=0.5,head_width=0.55,tail_width=0.22",
                                 mutation_scale=18, facecolor=color, edgecolor=color, alpha=0.85, zorder=2))


def _packed(order: Sequence[str], widths: dict[str, float], limit: float) -> list[list[str]]:
    rows: list[list[str]] = [[]]
    for k in order:
        used = sum(widths[x] for x in rows[-1]) + PANEL_GAP * len(rows[-1])
        if rows[-1] and used + widths[k] > limit * 1.04:
            rows.append([])
        rows[-1].append(k)
    return rows


def _layout(keys: list[str], sizes: dict[str, tuple[float, float]], links: dict[tuple[str, str], set[str]]
            ) -> tuple[dict[str, tuple[float, float, float, float]], float, float]:
    """Panel frames (x0, y0, w, h): rows packed to a common width, order chosen to keep linked panels close."""
    from itertools import permutations

    widths = {k: sizes[k][0] for k in keys}
    limit = max(max(widths.values()), sum(sorted(widths.values())[-2:]) + PANEL_GAP if len(keys) > 1 else 0)
    best = None
    for perm in permutations(keys) if len(keys) <= 6 else [tuple(keys)]:
        rows = _packed(perm, widths, limit)
        frames = _frames(rows, sizes, limit)
        cost = sum(abs(frames[a][0] + frames[a][2] / 2 - frames[b][0] - frames[b][2] / 2)
                   + abs(frames[a][1] + frames[a][3] / 2 - frames[b][1] - frames[b][3] / 2) for a, b in links)
        cost += 0.5 * sum(1 for i, a in enumerate(perm) for b in perm[i + 1:] if keys.index(a) > keys.index(b))
        cost += 3.0 * len(rows)
        if best is None or cost < best[0] - 1e-9:
            best = (cost, frames, rows)
    assert best is not None
    frames = best[1]
    width = max(f[0] + f[2] for f in frames.values())
    height = max(f[1] + f[3] for f in frames.values())
    return frames, width, height


def _frames(rows: list[list[str]], sizes: dict[str, tuple[float, float]], limit: float
            ) -> dict[str, tuple[float, float, float, float]]:
    heights = [max(sizes[k][1] for k in row) for row in rows]
    total = sum(heights) + PANEL_GAP * (len(rows) - 1)
    out = {}
    top = total
    for row, h in zip(rows, heights, strict=True):
        natural = sum(sizes[k][0] for k in row) + PANEL_GAP * (len(row) - 1)
        stretch = (limit - PANEL_GAP * (len(row) - 1)) / (natural - PANEL_GAP * (len(row) - 1))
        x = 0.0
        for k in row:
            w = sizes[k][0] * max(stretch, 1.0)
            out[k] = (x, top - h, w, h)
            x += w + PANEL_GAP
        top -= h + PANEL_GAP
    return out


@styled
def draw(model: Model, lang: str = "en", loops: Sequence[Loop] = (), title: str | None = None) -> Figure:
    """The stock-and-flow diagram as a figure."""
    moved = transfers(model)
    sectors = list(model.sectors) or sorted({s.sector for s in model.stocks.values()})
    by_sector = {k: [s for s, v in model.stocks.items() if (v.sector or sectors[0]) == k] for k in sectors}
    by_sector = {k: v for k, v in by_sector.items() if v}
    panels = {k: _sector_lanes(model, v, moved, lang) for k, v in by_sector.items()}
    links = sector_links(model, by_sector)

    sizes, heights = {}, {}
    for k, lanes in panels.items():
        ncol = max(ln.col for ln in lanes) + 1
        rows = max(ln.row for ln in lanes) + 1
        heights[k] = [max([_box_h(ln) for ln in lanes if ln.row == r] + [BOX_H]) for r in range(rows)]
        sizes[k] = (ncol * (BOX_W + 2 * SIDE) + 2 * PAD, sum(heights[k]) + ROW_GAP * (rows - 1) + 2 * PAD + 0.9)
    frames, total_w, panels_h = _layout(list(panels), sizes, links)
    if total_w < MIN_W:  # room for the title and the legend: the panels centred
        frames = {k: (x0 + (MIN_W - total_w) / 2, y0, w, h) for k, (x0, y0, w, h) in frames.items()}
        total_w = MIN_W
    named = [lo for lo in loops if lo.name]
    cols = int(total_w * 5.2)  # columns of 10.5-point text that fit the width (a CJK character takes two)
    loop_lines = [_wrap_cols(_loop_text(lo, lang), cols) for lo in named]
    legend = _wrap_cols(_t("legend", lang), cols)
    legend_h = 1.1 + 0.5 * len(legend) + 0.5 * sum(len(ls) for ls in loop_lines)
    total_h = panels_h + legend_h

    scale = 0.5  # inches per unit
    fig = Figure(figsize=(total_w * scale, (total_h + 1.2) * scale))
    ax = fig.add_axes((0, 0, 1, total_h / (total_h + 1.2)))
    ax.set_xlim(0, total_w)
    ax.set_ylim(-legend_h, panels_h)
    ax.axis("off")
    keys = list(panels)
    for k, (x0, y0, w, h) in frames.items():
        i = keys.index(k) % len(COLORS)
        ax.add_patch(FancyBboxPatch((x0, y0), w, h, boxstyle="round,pad=0.02,rounding_size=0.4",
                                    facecolor=COLORS[i], edgecolor=EDGE[i], lw=1.5, zorder=0))
        name = model.sectors.get(k, {}).get(lang) or model.sectors.get(k, {}).get("en") or k
        ax.text(x0 + 0.35, y0 + h - 0.35, name, fontsize=14, fontweight=_bold(lang), va="top", color=EDGE[i])
        # centre the lanes in a stretched panel
        extra = w - sizes[k][0]
        _draw_panel(ax, model, panels[k], heights[k], (x0 + extra / 2, y0, sizes[k][0], h), EDGE[i], lang)

    _cross_links(ax, model, links, frames, lang)
    y = -0.3
    ax.text(0.2, y, "\n".join(legend), fontsize=11, va="top", color="#333333", linespacing=1.35)
    if named:
        y -= 0.4 + 0.5 * len(legend)
        ax.text(0.2, y, _t("loops", lang) + ":", fontsize=11.5, va="top", fontweight=_bold(lang))
        for lines in loop_lines:
            for i, line in enumerate(lines):
                y -= 0.5
                ax.text(0.5 if i == 0 else 1.2, y, line, fontsize=10.5, va="top")
    fig.suptitle(title or _t("title", lang, name=model.directory.name, stocks=len(model.stocks),
                                                    flows=len(model.flows), sectors=len(panels)), fontsize=20, y=0.995)
    return fig


def _loop_text(lo: Loop, lang: str) -> str:
    """'R1 (reinforcing): description    [a → b → a]'."""
    desc = (lo.declared.zh if lang == "zh" and lo.declared is not None and lo.declared.zh
            else lo.declared.en if lo.declared is not None else "")
    kind = {"R": _t("reinforcing", lang), "B": _t("balancing", lang)}.get(lo.polarity, lo.polarity)
    path = " → ".join([*lo.nodes, lo.nodes[0]])
    return f"{lo.name} ({kind}): {desc}    [{path}]"


def _wrap_cols(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns (a CJK character takes two), broken at spaces."""
    def cols(s: str) -> int:
        return sum(2 if ord(c) > 0x2E80 else 1 for c in s)

    lines, line = [], ""
    for word in text.split(" "):
        cand = f"{line} {word}" if line else word
        if line and cols(cand) > width:
            lines.append(line)
            line = word
        else:
            line = cand
    return [*lines, line]


def _draw_panel(ax: Axes, model: Model, lanes: list[_Lane], heights: list[float],
                frame: tuple[float, float, float, float], color: str, lang: str) -> None:
    x0, y0, w, h = frame
    lane_w = BOX_W + 2 * SIDE
    top = y0 + h - PAD - 0.8
    row_top = [top - sum(heights[:r]) - ROW_GAP * r for r in range(len(heights))]
    pos = {}
    for ln in lanes:
        bh = _box_h(ln)
        ln.x = x0 + PAD + ln.col * lane_w + SIDE + BOX_W / 2
        ln.y = row_top[ln.row] - heights[ln.row] / 2
        pos[ln.stock] = (ln.x, ln.y, bh)
        st = model.stocks[ln.stock]
        ax.add_patch(FancyBboxPatch((ln.x - BOX_W / 2, ln.y - bh / 2), BOX_W, bh,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", facecolor="white",
                                    edgecolor=color, lw=2.0, zorder=4))
        ax.text(ln.x, ln.y + 0.15, _label(model, ln.stock, lang, _WRAP[lang]), ha="center",
                va="center", fontsize=9.5,
                fontweight=_bold(lang), zorder=6)
        shown = unit_label(st.units, lang, model) if lang == "zh" else st.units
        ax.text(ln.x, ln.y - bh / 2 + 0.12, f"[{shown}]", ha="center", va="bottom", fontsize=7.5,
                color="#555555", zorder=6)
        for side, flows in ((-1, ln.ins), (1, ln.outs)):
            n = len(flows)
            for i, f in enumerate(flows):
                fy = ln.y + (n - 1) * FLOW_H / 2 - i * FLOW_H
                edge = ln.x + side * BOX_W / 2
                far = edge + side * (SIDE - 0.45)
                _cloud(ax, far, fy, color)
                a, b = ((far + 0.32, fy), (edge, fy)) if side < 0 else ((edge, fy), (far - 0.32, fy))
                _pipe(ax, a, b, color)
                mid = (a[0] + b[0]) / 2
                _valve(ax, mid, fy, color)
                ax.text(mid, fy + 0.2, _label(model, f, lang, 26 if lang == "en" else 13), ha="center", va="bottom",
                        fontsize=8,
                        zorder=6, linespacing=0.95)
    # transfers between stocks of this panel
    for f, (a, b) in transfers(model).items():
        if a in pos and b in pos:
            xa, ya, ha = pos[a]
            xb, yb, hb = pos[b]
            start = (xa, ya - ha / 2) if ya > yb else (xa + BOX_W / 2, ya)
            end = (xb, yb + hb / 2) if ya > yb else (xb - BOX_W / 2, yb)
            _pipe(ax, start, end, color)
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            _valve(ax, mx, my, color, vertical=abs(start[0] - end[0]) < 1e-9)
            ax.text(mx + 0.3, my, _label(model, f, lang, 26 if lang == "en" else 13), ha="left", va="center",
                    fontsize=8, zorder=6)


def sector_links(model: Model, by_sector: dict[str, list[str]]) -> dict[tuple[str, str], set[str]]:
    """(sector a, sector b) -> stocks of a that appear, directly or through auxiliaries and flows, in b's flows."""
    home = {s: k for k, ss in by_sector.items() for s in ss}
    flow_sector: dict[str, str] = {}
    for s, v in model.stocks.items():
        for f in (*v.inflows, *v.outflows):
            flow_sector.setdefault(f, home[s])
    aux = {n for n, v in model.aux.items() if not v.expr.is_initial}

    def stocks_of(name: str, sector: str, seen: set[str]) -> set[str]:
        out: set[str] = set()
        for u in model.variable(name).expr.names:
            if u in model.stocks:
                out.add(u)
            elif u in model.flows and flow_sector[u] != sector:  # another sector's flow: its stock
                out |= {s for s, v in model.stocks.items() if u in (*v.inflows, *v.outflows)}
            elif (u in aux or u in model.flows) and u not in seen:
                seen.add(u)
                out |= stocks_of(u, sector, seen)
        return out

    links: dict[tuple[str, str], set[str]] = {}
    for f, k in flow_sector.items():
        for s in stocks_of(f, k, {f}):
            if home[s] != k:
                links.setdefault((home[s], k), set()).add(s)
    return links


def _edge_point(fr: tuple[float, float, float, float], other: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the centre of frame ``fr`` towards ``other`` leaves the frame."""
    x0, y0, w, h = fr
    cx, cy = x0 + w / 2, y0 + h / 2
    dx, dy = other[0] - cx, other[1] - cy
    t = min(w / 2 / abs(dx) if dx else float("inf"), h / 2 / abs(dy) if dy else float("inf"))
    return cx + dx * t, cy + dy * t


def _cross_links(ax: Axes, model: Model, links: dict[tuple[str, str], set[str]],
                 frames: dict[str, tuple[float, float, float, float]], lang: str) -> None:
    """Dashed arrows between panels: stocks of one sector that drive flows of another."""
    for (a, b), names in sorted(links.items()):
        fa, fb = frames[a], frames[b]
        ca, cb = (fa[0] + fa[2] / 2, fa[1] + fa[3] / 2), (fb[0] + fb[2] / 2, fb[1] + fb[3] / 2)
        # two-way links run side by side
        both = (b, a) in links
        nx_, ny_ = cb[1] - ca[1], ca[0] - cb[0]
        norm = max((nx_**2 + ny_**2) ** 0.5, 1e-9)
        off = 0.9 if both else 0.0
        ox, oy = nx_ / norm * off, ny_ / norm * off
        pa = _edge_point(fa, (cb[0] + ox, cb[1] + oy))
        pb = _edge_point(fb, (ca[0] + ox, ca[1] + oy))
        pa, pb = (pa[0] + ox, pa[1] + oy), (pb[0] + ox, pb[1] + oy)
        ax.add_patch(FancyArrowPatch(pa, pb, arrowstyle="-|>,head_length=0.8,head_width=0.45", mutation_scale=16,
                                     linestyle=(0, (6, 3)), lw=1.8, color="#444444", zorder=7,
                                     shrinkA=0, shrinkB=0))
        text = ", ".join(model.variable(s).label(lang) if lang == "zh" else s.replace("_", " ") for s in sorted(names))
        t = 0.5 if not both else 0.4
        mx, my = pa[0] + (pb[0] - pa[0]) * t, pa[1] + (pb[1] - pa[1]) * t
        if abs(pb[0] - pa[0]) > abs(pb[1] - pa[1]) and abs(pb[0] - pa[0]) < 5:
            my += 0.8  # a short horizontal arrow: label above it, not over it
        ax.text(mx, my, "\n".join(textwrap.wrap(text, 30)), fontsize=9, ha="center", va="center", zorder=8,
                bbox={"boxstyle": "round,pad=0.25", "facecolor": "#fffbe6", "edgecolor": "#777777", "lw": 0.8})


def save(fig: Figure, path: str) -> None:
    """Write the figure (PNG, 150 dpi): its layout is fixed, so it is rendered once."""
    fig.savefig(path, dpi=150)
