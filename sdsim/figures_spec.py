"""A model's figures (``figures.yaml``): which panels the run figures draw, what they mark, their texts.

The engine draws the goal panels of every model from ``goals.yaml``; every other figure of ``run``
is declared here, so no figure code names a model variable or a calendar year. Schema::

    scope_change: <parameter>      # optional: the parameter holding the first year-end reported in a new
                                   # statistical scope (history.yaml scope: new); legends name that year
    units:                         # optional: readable unit labels, {units symbol: {en: ..., zh: ...}}
      person: {en: people, zh: 人}
    figures:
      <file name>:                 # the PNG written by run: <file name>.png
        title: {en: "...{name}...", zh: ...}   # {name} is the scenario's title
        caption: {en: ..., zh: ...}            # the sentence under the figure in report.md / .html
        grid: [rows, columns]      # default [1, number of panels]
        size: [width, height]      # inches; default 6.2 x 4.3 per panel
        panels:
          - title: {en: ..., zh: ...}
            kind: lines            # lines (default) | stacked (bars of annual values, stacked)
            units: <units> | [<units>, ...]     # the y-axis label (several joined by " / ")
            lines:                 # variables, each a name or {variable, color, style, marker}
              - adopters
              - {variable: adoption, style: dashed, color: "#1f4e79"}
            facts:                 # observed facts marked as stars at (year, value)
              - adopters_t1
              - {fact: name, marker: x, label: {en: "reported {year}", zh: "{year}年报道值"}}
            goals: [<goal id>, ...]            # each goal's threshold line (and its observed fact)
            history: false         # true: the published figures of the panel's variables (history.yaml)
            legend: best           # a matplotlib legend location
            legend_columns: 1      # columns of the legend (1-4), for panels with many entries
            headroom: 1.0          # the y axis reaches this multiple of its automatic top (room for a legend), 1-3

Texts are ``str.format`` templates; ``{year}`` in a fact label is the fact's year. Style is
``solid``, ``dashed``, ``dotted`` or ``dashdot``. A flow (or an annual total) is drawn over the years
after t0 (its value at t is the total over the year ending at t) and labelled "per year". Every
name is checked against the model when it is loaded; an unknown key or name is an input error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .yamlio import as_mapping, as_name, as_number, as_str, check_keys, join, load_file, suggest

STYLES = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-."}
KINDS = ("lines", "stacked")
_TEXT_KEYS = ("en", "zh")


@dataclass
class Line:
    """One variable drawn in a panel."""

    variable: str
    color: str | None = None
    style: str = "solid"  # a key of STYLES
    marker: str = "o"


@dataclass
class Mark:
    """An observed fact marked in a panel."""

    fact: str
    marker: str = "*"
    label: dict[str, str] = field(default_factory=dict)  # default: "observed {year}"


@dataclass
class Panel:
    """One axes of a figure."""

    title: dict[str, str]
    lines: list[Line]
    units: list[str] = field(default_factory=list)
    kind: str = "lines"
    facts: list[Mark] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)
    history: bool = False
    legend: str = "best"
    legend_columns: int = 1  # columns of the panel's legend (1-4)
    headroom: float = 1.0  # the y axis reaches this multiple of its automatic top (room for the legend), 1-3


@dataclass
class FigureSpec:
    """One figure of ``run`` (file ``<name>.png``)."""

    name: str
    title: dict[str, str]
    caption: dict[str, str]
    panels: list[Panel]
    grid: tuple[int, int]
    size: tuple[float, float]


@dataclass
class Figures:
    """Everything figures.yaml declares."""

    figures: dict[str, FigureSpec] = field(default_factory=dict)
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    scope_change: str | None = None  # parameter: first year-end in the new reporting scope


def text(texts: dict[str, str], lang: str, **kw: object) -> str:
    """``texts`` in ``lang`` (English when that language is missing), formatted with ``kw``."""
    s = texts.get(lang) or texts.get("en", "")
    return s.format(**kw) if kw else s


def _texts(value: Any, file: str, path: str, required: bool = True) -> dict[str, str]:
    """``{en: ..., zh: ...}`` (a plain string is English)."""
    if isinstance(value, str):
        value = {"en": value}
    check_keys(value, _TEXT_KEYS, file, path, required=("en",) if required else ())
    return {k: as_str(v, file, join(path, k)) for k, v in value.items()}


def _pair(value: Any, file: str, path: str, integer: bool) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise ModelError(f"expected [a, b], got {value!r}", file, path)
    a, b = (as_number(v, file, join(path, i), integer=integer, lo=1 if integer else 0.5) for i, v in enumerate(value))
    return (int(a), int(b)) if integer else (a, b)


def _line(e: Any, file: str, path: str) -> Line:
    if isinstance(e, str):
        return Line(as_name(e, file, path))
    check_keys(e, ("variable", "color", "style", "marker"), file, path, required=("variable",))
    style = e.get("style", "solid")
    if style not in STYLES:
        raise ModelError(f"style must be one of {', '.join(STYLES)}, got {style!r}", file, join(path, "style"))
    return Line(as_name(e["variable"], file, join(path, "variable")),
                as_str(e["color"], file, join(path, "color")) if "color" in e else None, style,
                as_str(e.get("marker", "o"), file, join(path, "marker")))


def _mark(e: Any, file: str, path: str) -> Mark:
    if isinstance(e, str):
        return Mark(as_name(e, file, path))
    check_keys(e, ("fact", "marker", "label"), file, path, required=("fact",))
    return Mark(as_name(e["fact"], file, join(path, "fact")), as_str(e.get("marker", "*"), file, join(path, "marker")),
                _texts(e["label"], file, join(path, "label")) if "label" in e else {})


def _list(value: Any, file: str, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ModelError(f"expected a list, got {value!r}", file, path)
    return value


def _panel(e: Any, file: str, path: str) -> Panel:
    check_keys(e, ("title", "kind", "units", "lines", "facts", "goals", "history", "legend", "legend_columns", "headroom"),
               file, path,
               required=("title", "lines"))
    kind = e.get("kind", "lines")
    if kind not in KINDS:
        raise ModelError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", file, join(path, "kind"))
    units = e.get("units", [])
    units = [units] if isinstance(units, str) else _list(units, file, join(path, "units"))
    lines = [_line(x, file, join(path, f"lines.{i}")) for i, x in enumerate(_list(e["lines"], file, join(path, "lines")))]
    if not lines:
        raise ModelError("a panel needs at least one line", file, join(path, "lines"))
    history = e.get("history", False)
    if not isinstance(history, bool):
        raise ModelError(f"expected true or false, got {history!r}", file, join(path, "history"))
    columns = e.get("legend_columns", 1)
    if isinstance(columns, bool) or not isinstance(columns, int) or not 1 <= columns <= 4:
        raise ModelError(f"expected a whole number from 1 to 4, got {columns!r}", file, join(path, "legend_columns"))
    headroom = as_number(e.get("headroom", 1.0), file, join(path, "headroom"))
    if not 1.0 <= headroom <= 3.0:
        raise ModelError(f"expected a number from 1 to 3, got {headroom!r}", file, join(path, "headroom"))
    return Panel(
        title=_texts(e["title"], file, join(path, "title")), lines=lines, kind=kind,
        units=[as_str(u, file, join(path, f"units.{i}")) for i, u in enumerate(units)],
        facts=[_mark(x, file, join(path, f"facts.{i}")) for i, x in enumerate(_list(e.get("facts"), file,
                                                                                      join(path, "facts")))],
        goals=[as_name(x, file, join(path, f"goals.{i}")) for i, x in enumerate(_list(e.get("goals"), file,
                                                                                       join(path, "goals")))],
        history=history, legend=as_str(e.get("legend", "best"), file, join(path, "legend")), legend_columns=columns,
        headroom=headroom,
    )


def _figure(name: str, e: Any, file: str, path: str) -> FigureSpec:
    check_keys(e, ("title", "caption", "grid", "size", "panels"), file, path, required=("title", "panels"))
    panels = [_panel(x, file, join(path, f"panels.{i}")) for i, x in enumerate(_list(e["panels"], file,
                                                                                       join(path, "panels")))]
    if not panels:
        raise ModelError("a figure needs at least one panel", file, join(path, "panels"))
    grid = _pair(e["grid"], file, join(path, "grid"), True) if "grid" in e else (1, len(panels))
    if grid[0] * grid[1] < len(panels):
        raise ModelError(f"a {grid[0]} x {grid[1]} grid has no room for {len(panels)} panels", file, join(path, "grid"))
    size = _pair(e["size"], file, join(path, "size"), False) if "size" in e else (6.2 * grid[1], 4.3 * grid[0])
    return FigureSpec(name, _texts(e["title"], file, join(path, "title")),
                      _texts(e["caption"], file, join(path, "caption")) if "caption" in e else {}, panels, grid, size)


def load_figures(path: str | Path, model: Any) -> Figures:
    """Read ``figures.yaml`` and check every name in it against ``model``."""
    file = str(path)
    data = load_file(path) or {}
    check_keys(data, ("scope_change", "units", "figures"), file, "")
    out = Figures()
    for unit, texts in as_mapping(data.get("units"), file, "units").items():
        out.units[str(unit)] = _texts(texts, file, join("units", str(unit)))
    if "scope_change" in data:
        out.scope_change = as_name(data["scope_change"], file, "scope_change")
    for name, e in as_mapping(data.get("figures"), file, "figures").items():
        if name == "goals" or not str(name).replace("_", "").isalnum():
            raise ModelError(f"expected a file name of letters, digits and _ other than 'goals' (the goal panels), "
                             f"got {name!r}", file, join("figures", str(name)))
        out.figures[str(name)] = _figure(str(name), e, file, join("figures", str(name)))
    _check(out, model, file)
    return out


def _check(spec: Figures, model: Any, file: str) -> None:
    """Every variable, fact, goal and parameter named in ``spec`` exists in ``model``."""
    variables = model.variables
    if spec.scope_change is not None and spec.scope_change not in model.params:
        raise ModelError(f"unknown parameter '{spec.scope_change}'{suggest(spec.scope_change, model.params)}", file,
                         "scope_change")
    for f in spec.figures.values():
        for i, p in enumerate(f.panels):
            path = f"figures.{f.name}.panels.{i}"
            for j, ln in enumerate(p.lines):
                if ln.variable not in variables:
                    raise ModelError(f"unknown variable '{ln.variable}'{suggest(ln.variable, variables)}", file,
                                     f"{path}.lines.{j}")
            for j, m in enumerate(p.facts):
                fact = model.facts.get(m.fact)
                if fact is None:
                    raise ModelError(f"unknown fact '{m.fact}'{suggest(m.fact, model.facts)}", file, f"{path}.facts.{j}")
                if fact.year is None:
                    raise ModelError(f"fact '{m.fact}' has no year to be drawn at (observed.yaml)", file,
                                     f"{path}.facts.{j}")
            for j, g in enumerate(p.goals):
                if g not in model.goals:
                    raise ModelError(f"unknown goal '{g}'{suggest(g, model.goals)}", file, f"{path}.goals.{j}")


def scope_year(model: Any) -> int | None:
    """The first year-end in a new reporting scope (figures.yaml scope_change), if the model names one."""
    spec = getattr(model, "figures", None)
    if spec is None or spec.scope_change is None:
        return None
    return int(model.params[spec.scope_change].value)
