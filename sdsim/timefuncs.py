"""Time functions of levers: constant, step, ramp, pulse, table.

Lever time (DESIGN.md): a year Y names calendar year Y, the interval t in (Y-1, Y]. Levers are
sampled at each step's start t_k = t0 + k*dt and held through the step, so

* ``{step: {at: Y, to: v}}`` is v from t > Y-1 on (the steps with t_k >= Y-1), the lever's
  baseline value before (or ``from`` if given);
* ``{pulse: {at: Y, size: S}}`` adds a rate S per year during (Y-1, Y]: integrated over the
  year it adds exactly S;
* ``{table: {Y1: v1, Y2: v2, ...}}`` puts point Yi at mid-year t = Yi - 0.5, linear between
  points and flat outside;
* ``{ramp: {from: Y1, to: Y2, start: a, end: b}}`` is the two-point table {Y1: a, Y2: b}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .yamlio import as_number, check_keys, describe_value, join

KINDS = ("step", "ramp", "pulse", "table")


@dataclass(frozen=True)
class TimeFunction:
    """A lever's value over time. ``kind`` is constant|step|ramp|pulse|table."""

    kind: str
    value: float = 0.0  # constant
    at: float = 0.0  # step, pulse: calendar year
    to: float = 0.0  # step: new value
    from_value: float | None = None  # step: value before (None = baseline)
    size: float = 0.0  # pulse
    points: tuple[tuple[float, float], ...] = ()  # table, ramp: (calendar year, value)

    def values(self, t: np.ndarray, baseline: float | np.ndarray) -> np.ndarray:
        """Values at step-start times ``t`` (shape (steps,) -> (steps, m))."""
        t = np.asarray(t, dtype=float)[:, None]
        base = np.atleast_1d(np.asarray(baseline, dtype=float))[None, :]
        if self.kind == "constant":
            return np.broadcast_to(np.asarray(self.value, dtype=float), (t.shape[0], 1)).copy()
        if self.kind == "step":
            before = base if self.from_value is None else np.full_like(base, self.from_value)
            return np.where(t >= self.at - 1, self.to, before)
        if self.kind == "pulse":
            inside = (t >= self.at - 1) & (t < self.at)
            return base + np.where(inside, self.size, 0.0)
        xs = np.array([p[0] - 0.5 for p in self.points])
        ys = np.array([p[1] for p in self.points])
        return np.interp(t[:, 0], xs, ys)[:, None]

    def to_yaml(self) -> Any:
        """The scenario-file form of this function."""
        if self.kind == "constant":
            return self.value
        if self.kind == "step":
            d: dict[str, Any] = {"at": int(self.at), "to": self.to}
            if self.from_value is not None:
                d["from"] = self.from_value
            return {"step": d}
        if self.kind == "pulse":
            return {"pulse": {"at": int(self.at), "size": self.size}}
        if self.kind == "ramp":
            (y1, a), (y2, b) = self.points
            return {"ramp": {"from": int(y1), "to": int(y2), "start": a, "end": b}}
        return {"table": {int(y): v for y, v in self.points}}


def parse_time_function(
    data: Any, file: str, path: str, lo: float | None = None, hi: float | None = None
) -> TimeFunction:
    """Parse a lever value from a scenario; values must lie in [lo, hi]."""

    def num(v: Any, p: str, bounded: bool = True) -> float:
        return as_number(v, file, p, lo if bounded else None, hi if bounded else None)

    def year(v: Any, p: str) -> float:
        return as_number(v, file, p, 1900, 2200, integer=True)

    if isinstance(data, bool) or data is None or isinstance(data, str | list):
        raise InputError(
            f"expected a number or one of {{{', '.join(KINDS)}}}, got {describe_value(data)}", file, path
        )
    if isinstance(data, int | float):
        return TimeFunction("constant", value=num(data, path))
    check_keys(data, KINDS, file, path)
    if len(data) != 1:
        raise InputError(f"give exactly one of {', '.join(KINDS)}", file, path)
    kind, spec = next(iter(data.items()))
    p = join(path, kind)
    if kind == "step":
        check_keys(spec, ("at", "to", "from"), file, p, required=("at", "to"))
        frm = num(spec["from"], join(p, "from")) if "from" in spec else None
        return TimeFunction("step", at=year(spec["at"], join(p, "at")), to=num(spec["to"], join(p, "to")),
                            from_value=frm)
    if kind == "pulse":
        check_keys(spec, ("at", "size"), file, p, required=("at", "size"))
        size = as_number(spec["size"], file, join(p, "size"), 0 if lo is not None and lo >= 0 else None, hi)
        return TimeFunction("pulse", at=year(spec["at"], join(p, "at")), size=size)
    if kind == "ramp":
        check_keys(spec, ("from", "to", "start", "end"), file, p, required=("from", "to", "start", "end"))
        y1, y2 = year(spec["from"], join(p, "from")), year(spec["to"], join(p, "to"))
        if y2 <= y1:
            raise InputError(f"'to' ({y2:g}) must be after 'from' ({y1:g})", file, join(p, "to"))
        a, b = num(spec["start"], join(p, "start")), num(spec["end"], join(p, "end"))
        return TimeFunction("ramp", points=((y1, a), (y2, b)))
    # table
    if not isinstance(spec, dict) or not spec:
        raise InputError("expected a non-empty mapping year -> value", file, p)
    pts = sorted((year(y, join(p, str(y))), num(v, join(p, str(y)))) for y, v in spec.items())
    return TimeFunction("table", points=tuple(pts))
