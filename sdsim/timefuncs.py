"""Time functions of levers: constant, step, ramp, pulse, table.

Lever time (docs/time.md): a year Y names calendar year Y, the interval t in (Y-1, Y]. Levers are
sampled at each step's start t_k = t0 + k*dt and held through the step, so the steps of
calendar year Y are those with t_k in [Y-1, Y). Hence

* ``{step: {at: Y, to: v}}`` is v on the steps with t_k >= Y-1 (flows from t > Y-1 on), the
  lever's baseline value before (or ``from`` if given);
* ``{pulse: {at: Y, size: S}}`` adds a rate S per year on the steps with Y-1 <= t_k < Y:
  integrated over calendar year Y it adds exactly S (for ``registry_review``, whose value is a
  share removed during the year, the lever equals S during year Y);
* ``{table: {Y1: v1, Y2: v2, ...}}`` puts point Yi at mid-year t = Yi - 0.5, linear between
  points and flat outside;
* ``{ramp: {from: Y1, to: Y2, start: a, end: b}}`` is the two-point table {Y1: a, Y2: b}.

Example: with dt = 1/4 and ``{step: {at: Y, to: 2}}`` the sample at t = Y - 1.25 is the
baseline value and at t = Y - 1, Y - 0.75, ... is 2, so every flow of calendar year Y
(t in (Y - 1, Y]) sees 2. The engine additionally holds every lever at its baseline before the
end of the years before the scenario's policy start (calibration.yaml policy_start; docs/time.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .yamlio import as_number, check_keys, describe_value, join

KINDS = ("step", "ramp", "pulse", "table")
YEAR_RANGE = (1900, 2200)  # sanity bounds of a year written in a lever (the scenario checks the run's own span)


@dataclass(frozen=True)
class TimeFunction:
    """A lever's value over time. ``kind`` is constant|step|ramp|pulse|table.

    Years (``at``, table and ramp years) are calendar years; values are in the lever's units.
    """

    kind: str
    value: float = 0.0  # constant
    at: float = 0.0  # step, pulse: calendar year
    to: float = 0.0  # step: new value
    from_value: float | None = None  # step: value before (None = baseline)
    size: float = 0.0  # pulse: added rate (lever units) during calendar year `at`
    points: tuple[tuple[float, float], ...] = ()  # table, ramp: (calendar year, value)

    def values(self, t: np.ndarray, baseline: float | np.ndarray) -> np.ndarray:
        """Values at step-start times ``t`` (years); shape (steps,) -> (steps, m) for m baselines."""
        t = np.asarray(t, dtype=float)[:, None]
        base = np.atleast_1d(np.asarray(baseline, dtype=float))[None, :]
        shape = (t.shape[0], base.shape[1])
        if self.kind == "constant":
            return np.full(shape, self.value)
        if self.kind == "step":
            before = base if self.from_value is None else np.full_like(base, self.from_value)
            return np.broadcast_to(np.where(t >= self.at - 1, self.to, before), shape).copy()
        if self.kind == "pulse":
            inside = (t >= self.at - 1) & (t < self.at)
            return np.broadcast_to(base + np.where(inside, self.size, 0.0), shape).copy()
        xs = np.array([p[0] - 0.5 for p in self.points])
        ys = np.array([p[1] for p in self.points])
        return np.broadcast_to(np.interp(t[:, 0], xs, ys)[:, None], shape).copy()

    def levels(self, baseline: float) -> list[tuple[str, float]]:
        """(key suffix, value) of every level the lever takes, for range checks and messages."""
        if self.kind == "constant":
            return [("", self.value)]
        if self.kind == "step":
            out = [("step.to", self.to)]
            if self.from_value is not None:
                out.append(("step.from", self.from_value))
            return out
        if self.kind == "pulse":
            return [("pulse.size", baseline + self.size)]
        if self.kind == "ramp":
            (_, a), (_, b) = self.points
            return [("ramp.start", a), ("ramp.end", b)]
        return [(f"table.{int(y)}", v) for y, v in self.points]

    def event_years(self) -> list[tuple[str, float]]:
        """(key suffix, calendar year) of the dated events (step and pulse years)."""
        if self.kind in ("step", "pulse"):
            return [(f"{self.kind}.at", self.at)]
        return []

    def summary(self) -> str:
        """Short text, e.g. ``1.5``, ``2 from Y``, ``+0.5 in Y``, ``0->120 Y1-Y2`` (Y: a calendar year)."""
        if self.kind == "constant":
            return f"{self.value:g}"
        if self.kind == "step":
            return f"{self.to:g} from {int(self.at)}"
        if self.kind == "pulse":
            return f"+{self.size:g} in {int(self.at)}"
        if self.kind == "ramp":
            (y1, a), (y2, b) = self.points
            return f"{a:g}->{b:g} over {int(y1)}-{int(y2)}"
        return "table " + ", ".join(f"{int(y)}: {v:g}" for y, v in self.points)

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
    """Parse a lever value from a scenario; every level must lie in [lo, hi] (the lever's limits).

    A pulse ``size`` is checked so that baseline + size stays within the limits by the caller
    (the baseline is not known here); here it must be >= 0 when the lever cannot go negative.
    """

    def num(v: Any, p: str) -> float:
        return as_number(v, file, p, lo, hi)

    def year(v: Any, p: str) -> float:
        return as_number(v, file, p, *YEAR_RANGE, integer=True)

    if isinstance(data, bool) or data is None or isinstance(data, str | list):
        raise InputError(
            f"expected a number or a mapping with one of {', '.join(KINDS)}, got {describe_value(data)}", file, path
        )
    if isinstance(data, int | float):
        return TimeFunction("constant", value=num(data, path))
    check_keys(data, KINDS, file, path)
    if len(data) != 1:
        got = ", ".join(map(str, data)) or "nothing"
        raise InputError(f"give exactly one of {', '.join(KINDS)}, got {got}", file, path)
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
            raise InputError(f"the ramp must end after it starts: 'to' is {y2:g}, 'from' is {y1:g}",
                             file, join(p, "to"))
        a, b = num(spec["start"], join(p, "start")), num(spec["end"], join(p, "end"))
        return TimeFunction("ramp", points=((y1, a), (y2, b)))
    # table
    if not isinstance(spec, dict) or not spec:
        raise InputError(f"expected a non-empty mapping year -> value, got {describe_value(spec)}"
                         + (" (empty)" if isinstance(spec, dict) else ""), file, p)
    pts = sorted((year(y, join(p, str(y))), num(v, join(p, str(y)))) for y, v in spec.items())
    return TimeFunction("table", points=tuple(pts))
