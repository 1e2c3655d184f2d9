"""Published figures after the calibration year (``history.yaml``): loading, model values, hindcast.

A history row names a model variable (a stock, flow, auxiliary, reported indicator, annual output or
series), a time ``t`` (fractional years, t = Y is the end of year Y) or a period ``(from, to]`` for a
flow, a value with a relative ``tolerance`` (a ±x half-width, read as two standard deviations) or an
``interval``, a ``kind`` (observation | target | input | context) and a ``scope``. Only observations
are evidence; targets are drawn as re-based goals.

Model values at times between recorded year ends are interpolated linearly (stocks and auxiliaries);
a flow over ``(from, to]`` inside one calendar year is that year's total times the covered fraction.
Before the run's first record (at most one year) a stock is extrapolated back along the parabola through
its first three year-end values (a back-cast, flagged as such).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelError
from .yamlio import as_number, as_str, check_keys, join, load_file, suggest

if TYPE_CHECKING:
    from .engine import Run
    from .model import Model

KINDS = ("observation", "target", "input", "context")
SCOPES = ("seed", "new")
_ROW_KEYS = (
    "variable", "t", "from", "to", "value", "tolerance", "interval", "kind", "scope", "group",
    "provenance", "quote", "formula", "source", "note", "sets",
)


@dataclass
class HistoryRow:
    """One published figure."""

    id: str
    variable: str
    value: float
    kind: str
    scope: str
    t: float | None = None  # a level at time t
    period: tuple[float, float] | None = None  # a flow's integral over (from, to]
    tolerance: float | None = None  # relative half-width (two standard deviations)
    interval: tuple[float, float] | None = None
    group: str = ""
    provenance: str = ""
    source: str = ""
    note: str = ""
    sets: tuple[str, ...] = ()  # parameters whose prior or value this figure set: then it is not evidence

    @property
    def time(self) -> float:
        """The row's time: ``t``, or the end of its period."""
        return self.t if self.t is not None else self.period[1]  # type: ignore[index]

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The window the observation allows (value ± tolerance, or the interval)."""
        if self.interval is not None:
            return self.interval
        if self.tolerance is not None:
            return self.value * (1 - self.tolerance), self.value * (1 + self.tolerance)
        return None

    @property
    def is_evidence(self) -> bool:
        """Only observations are evidence."""
        return self.kind == "observation"


@dataclass
class History:
    """All rows of history.yaml and the declared model discrepancy per series."""

    rows: list[HistoryRow] = field(default_factory=list)
    discrepancy: dict[str, float] = field(default_factory=dict)

    @property
    def observations(self) -> list[HistoryRow]:
        """Rows that are evidence."""
        return [r for r in self.rows if r.is_evidence]

    def targets_for(self, variable: str) -> list[HistoryRow]:
        """Re-based plan targets of ``variable``, by time."""
        return sorted((r for r in self.rows if r.kind == "target" and r.variable == variable), key=lambda r: r.time)

    @property
    def last_observed_year(self) -> int | None:
        """Calendar year of the latest observation (t in (Y-1, Y] is year Y)."""
        obs = self.observations
        return max(math.ceil(r.time - 1e-9) for r in obs) if obs else None


def load_history(path: Path, model: Model) -> History:
    """Read and check ``history.yaml`` against the model's names."""
    file = str(path)
    data = load_file(path)
    check_keys(data, ("discrepancy", "rows"), file, "", required=("rows",))
    names = {*model.stocks, *model.flows, *model.aux, *model.annual, *model.series}
    hist = History()
    for name, e in (data.get("discrepancy") or {}).items():
        p = join("discrepancy", name)
        check_keys(e, ("value", "provenance", "source", "note"), file, p, required=("value", "provenance"))
        if name not in names:
            raise ModelError(f"unknown variable '{name}'{suggest(name, names)}", file, p)
        v = as_number(e["value"], file, join(p, "value"))
        if not 0 < v < 1:
            raise ModelError(f"a discrepancy is a relative standard deviation in (0, 1), got {v:g}", file, join(p, "value"))
        hist.discrepancy[name] = v
    for rid, e in (data.get("rows") or {}).items():
        hist.rows.append(_row(rid, e, file, names, model))
    return hist


def _row(rid: str, e: Any, file: str, names: set[str], model: Model) -> HistoryRow:
    p = join("rows", rid)
    check_keys(e, _ROW_KEYS, file, p, required=("variable", "value", "kind", "scope", "provenance"))
    var = as_str(e["variable"], file, join(p, "variable"))
    if var not in names:
        raise ModelError(f"unknown variable '{var}'{suggest(var, names)}", file, join(p, "variable"))
    kind, scope = e["kind"], e["scope"]
    if kind not in KINDS:
        raise ModelError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", file, join(p, "kind"))
    if scope not in SCOPES:
        raise ModelError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}", file, join(p, "scope"))
    if scope == "new" and not (var in model.aux and model.aux[var].layer == "reported"):
        raise ModelError(f"a new-scope figure must name a reported indicator, not '{var}'", file, join(p, "variable"))
    row = HistoryRow(
        id=rid, variable=var, value=as_number(e["value"], file, join(p, "value")), kind=kind, scope=scope,
        group=str(e.get("group", "")), provenance=str(e["provenance"]), source=str(e.get("source", "")),
        note=str(e.get("note", "")),
    )
    if ("t" in e) == ("from" in e or "to" in e):
        raise ModelError("give either t (a level) or from/to (a flow over a period)", file, p)
    if "t" in e:
        row.t = as_number(e["t"], file, join(p, "t"))
    else:
        lo, hi = as_number(e.get("from"), file, join(p, "from")), as_number(e.get("to"), file, join(p, "to"))
        if not lo < hi or math.ceil(hi - 1e-9) - math.floor(lo + 1e-9) > 1:
            raise ModelError(f"a period must lie inside one calendar year, got ({lo:g}, {hi:g}]", file, p)
        row.period = (lo, hi)
        if var not in model.flows and not (var in model.aux and model.aux[var].annual_total):
            raise ModelError(f"'{var}' is not a flow or an annual total: give t, not from/to", file, join(p, "variable"))
    if "sets" in e:
        sets = e["sets"] if isinstance(e["sets"], list) else [e["sets"]]
        for k, name in enumerate(sets):
            if name not in model.params:
                raise ModelError(f"unknown parameter '{name}'{suggest(str(name), model.params)}", file,
                                 join(join(p, "sets"), k))
        row.sets = tuple(str(s) for s in sets)
    if "tolerance" in e and "interval" in e:
        raise ModelError("give a tolerance or an interval, not both", file, p)
    if "tolerance" in e:
        row.tolerance = as_number(e["tolerance"], file, join(p, "tolerance"))
        if not 0 < row.tolerance < 1:
            raise ModelError(f"tolerance is relative, in (0, 1), got {row.tolerance:g}", file, join(p, "tolerance"))
    if "interval" in e:
        iv = e["interval"]
        if not isinstance(iv, list) or len(iv) != 2:
            raise ModelError(f"expected [low, high], got {iv!r}", file, join(p, "interval"))
        ip = join(p, "interval")
        row.interval = (as_number(iv[0], file, join(ip, 0)), as_number(iv[1], file, join(ip, 1)))
    if kind == "observation" and row.bounds is None:
        raise ModelError("an observation needs a tolerance or an interval", file, p)
    return row


# ------------------------------------------------------------------------------------- model values


def value_at(run: Run, row: HistoryRow) -> tuple[np.ndarray, str]:
    """(n,) model values comparable with ``row``, and a note ('' or 'back-cast')."""
    years = run.years
    if row.period is not None:
        lo, hi = row.period
        year = math.ceil(hi - 1e-9)
        if year < years[0] + 1 or year > years[-1]:
            return np.full(run.n, np.nan), "outside the run"
        return run.at(row.variable, year) * (hi - lo), ""
    t = float(row.t)  # type: ignore[arg-type]
    series = run.get(row.variable)
    if t < years[0]:
        if years.size < 3 or years[0] - t > 1:
            return np.full(run.n, np.nan), "outside the run"
        # the parabola through the first three year ends, evaluated back to t (a back-cast)
        s = t - years[0]
        l0, l1, l2 = (s - 1) * (s - 2) / 2, -s * (s - 2), s * (s - 1) / 2
        return l0 * series[0] + l1 * series[1] + l2 * series[2], "back-cast"
    if t > years[-1]:
        return np.full(run.n, np.nan), "outside the run"
    i = min(int(math.floor(t - years[0])), years.size - 2)
    w = t - years[i]
    return series[i] * (1 - w) + series[i + 1] * w, ""


@dataclass
class HindcastRow:
    """An observation beside the model's value (one run)."""

    row: HistoryRow
    model: float
    note: str

    @property
    def difference(self) -> float:
        """Relative difference model / observed - 1."""
        return self.model / self.row.value - 1 if self.row.value else math.nan

    @property
    def inside(self) -> bool | None:
        """Whether the model value lies in the observation's window (None when not comparable)."""
        b = self.row.bounds
        if b is None or not math.isfinite(self.model):
            return None
        return b[0] <= self.model <= b[1]


def hindcast(history: History, run: Run, j: int = 0) -> list[HindcastRow]:
    """Each observation beside run ``j``'s value."""
    out = []
    for r in history.observations:
        v, note = value_at(run, r)
        out.append(HindcastRow(r, float(v[j]), note))
    return out
