"""Plain-text tables for the terminal (wide characters counted as two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def width(s: str) -> int:
    """Display width of ``s`` in a terminal (East Asian wide characters count 2)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def pad(s: str, n: int, right: bool = False) -> str:
    """Pad ``s`` to display width ``n``."""
    fill = " " * max(0, n - width(s))
    return fill + s if right else s + fill


def render(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """A table with a header rule; ``right`` marks right-aligned columns."""
    cols = len(header)
    right = list(right) if right is not None else [False] * cols
    w = [max([width(header[i])] + [width(r[i]) for r in rows]) for i in range(cols)]
    lines = ["  ".join(pad(header[i], w[i], right[i]) for i in range(cols)).rstrip()]
    lines.append("  ".join("-" * w[i] for i in range(cols)))
    for r in rows:
        lines.append("  ".join(pad(r[i], w[i], right[i]) for i in range(cols)).rstrip())
    return "\n".join(lines)


def num(v: float, digits: int = 4) -> str:
    """Compact number: thousands separators for large values, significant digits for small."""
    if v != v:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}g}"


def fmt_value(v: float, units: str = "") -> str:
    """Display a value; shares (units dmnl) as percentages."""
    if units == "dmnl":
        return f"{100 * v:.3g}%"
    if abs(v) < 1:
        return f"{v:.3g}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def fmt_gap(gap: float, gap_pct: float, units: str) -> str:
    """A gap to a goal: percentage points for shares (40.7 % vs 50 % is -9.3 pp), else relative %."""
    if units == "dmnl":
        return f"{100 * gap:+.1f} pp"
    return f"{gap_pct:+.0f}%"
