"""Batch integration (Euler or RK4) of a compiled model on an integer step grid.

Time is counted in integer steps: step k starts at t_k = start + k*dt, with dt a power of two
(at most 1/4), so every year end falls exactly on a step. Stocks and auxiliaries are recorded
at every year end t = Y; flows (and auxiliaries marked ``annual_total``) are recorded as their
integral over (Y-1, Y]. Levers are held constant within a step.

RK4 evaluates its four stages at t, t + dt/2, t + dt/2 and t + dt: ``time`` and ``ramp()`` take the
stage's time, so a rate that depends on time is integrated to fourth order. Levers, annual series,
``step()`` and ``pulse()`` are held at their value on the step [t, t + dt): their breaks lie on the
step grid, so within a step they are constant (a series or a step switching at t + dt belongs to the
next step, the left limit of the step's interval). ``delay_fixed`` outputs are held within a step.

Arrays are laid out variables x runs (each variable's runs contiguous), so every equation is
one numpy operation over all runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import parallel
from .compiler import Compiled
from .errors import InputError
from .timefuncs import TimeFunction
from .yamlio import as_dt

METHODS = ("euler", "rk4")
BACKENDS = ("numpy", "numba")
#: Integrator backend: "numpy" (default) or "numba" (opt-in compiled Euler kernel, :mod:`sdsim.kernel`; the numpy
#: engine still integrates RK4, models the kernel does not support, and everything when Numba is missing).
#: Set from the environment variable ``SDSIM_ENGINE`` at import.
BACKEND = os.environ.get("SDSIM_ENGINE", "numpy").strip().lower() or "numpy"


@dataclass(frozen=True)
class TimeGrid:
    """Integer step grid from ``start`` to ``end`` (years) with step ``dt``."""

    start: int
    end: int
    dt: float  # years, a power of two (the model's default is in structure.yaml)

    def __post_init__(self) -> None:
        check_dt(self.dt)
        if self.end <= self.start:
            raise InputError(f"end ({self.end}) must be after start ({self.start})")

    @property
    def steps_per_year(self) -> int:
        """Steps in one year (1/dt)."""
        return round(1 / self.dt)

    @property
    def n_steps(self) -> int:
        """Number of integration steps."""
        return (self.end - self.start) * self.steps_per_year

    @property
    def times(self) -> np.ndarray:
        """Step-start times t_k for k = 0..n_steps (the last is the end time)."""
        return self.start + np.arange(self.n_steps + 1) * self.dt

    @property
    def years(self) -> np.ndarray:
        """Recorded year ends start..end."""
        return np.arange(self.start, self.end + 1)


def check_dt(dt: float) -> None:
    """dt must be 2**-j with j >= 2 (1/4, 1/8, ...), at least 1/4096."""
    as_dt(dt)


@dataclass
class Run:
    """Yearly records of a batch of n runs. ``get(name)`` returns an (years, n) array."""

    years: np.ndarray
    names: dict[str, tuple[str, int]]  # name -> (block, row)
    stocks: np.ndarray  # (years, n_stocks, n)
    rates: np.ndarray  # (years, n_rates, n), annual totals; year 0 is NaN
    aux: np.ndarray  # (years, n_aux, n)
    annual: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (years, n)
    series: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (years, m)

    @property
    def n(self) -> int:
        """Number of runs in the batch."""
        return self.stocks.shape[2]

    def get(self, name: str) -> np.ndarray:
        """(years, n) values of a stock, flow, auxiliary, annual output or series."""
        if name in self.annual:
            return self.annual[name]
        if name in self.series:
            return np.broadcast_to(self.series[name], (len(self.years), self.n))
        block, row = self.names[name]
        return getattr(self, block)[:, row, :]

    def at(self, name: str, year: int) -> np.ndarray:
        """(n,) values of ``name`` in ``year`` (a year outside the run is an error, never another year's value)."""
        i = int(year) - int(self.years[0])
        if not 0 <= i < len(self.years):
            raise InputError(f"year {year} is outside the run ({int(self.years[0])}-{int(self.years[-1])})", None, name)
        return self.get(name)[i]

    def select(self, idx: Any) -> Run:
        """A Run holding only the runs ``idx`` of this batch."""
        return Run(
            years=self.years,
            names=self.names,
            stocks=self.stocks[:, :, idx],
            rates=self.rates[:, :, idx],
            aux=self.aux[:, :, idx],
            annual={k: v[:, idx] for k, v in self.annual.items()},
            series={k: (v[:, idx] if v.shape[1] > 1 else v) for k, v in self.series.items()},
        )


def lever_schedules(
    cm: Compiled,
    grid: TimeGrid,
    baseline: dict[str, Any],
    functions: dict[str, TimeFunction] | None = None,
    active_from: float | None = None,
) -> dict[str, np.ndarray]:
    """(steps + 1, m) arrays of every lever.

    ``baseline`` maps lever names to baseline values (numbers or (n,) arrays). A lever's
    ``functions`` entry, when given, applies from ``t >= active_from`` (the end of the
    calibration window); before that the baseline value holds.
    """
    t = grid.times
    out = {}
    for name in cm.model.levers:
        base = np.atleast_1d(np.asarray(baseline[name], dtype=float))
        fn = (functions or {}).get(name)
        if fn is None:
            out[name] = np.broadcast_to(base[None, :], (t.size, base.size))
            continue
        vals = fn.values(t, base)
        if active_from is not None:
            vals = np.where(t[:, None] >= active_from, vals, base[None, :])
        out[name] = vals
    return out


def series_values(cm: Compiled, grid: TimeGrid, levers: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Per-step (steps + 1, m) and per-year (years, m) values of the annual series.

    Observed years keep their values; each later year Y grows by the mean of the growth
    lever over the steps of Y.
    """
    per_step, per_year = {}, {}
    t = grid.times
    step_year = np.floor(t + 1e-9).astype(int) + 1  # calendar year of the step (t_k in [Y-1, Y))
    for name, s in cm.model.series.items():
        g = levers[s.growth] if s.growth in levers else np.asarray([[cm.model.params[s.growth].value]])
        m = g.shape[1]
        first = min(s.values)
        last_needed = int(step_year[-1])
        years = np.arange(first, max(last_needed, max(s.values)) + 1)
        vals = np.empty((years.size, m))
        for i, y in enumerate(years):
            if int(y) in s.values:
                vals[i] = s.values[int(y)]
            else:
                sel = step_year == y
                rate = g[sel].mean(axis=0) if sel.any() else g[-1]
                vals[i] = vals[i - 1] * (1 + rate)
        per_step[name] = vals[step_year - first]
        per_year[name] = vals[grid.years - first]
    return per_step, per_year


CHUNK = 8192  # runs integrated together; larger batches are split so arrays stay in cache


def _part(value: Any, n: int, sl: slice) -> Any:
    """The runs ``sl`` of a per-run value (arrays of length n, or (steps, n) lever arrays)."""
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.size == n:
            return value[sl]
        if value.ndim == 2 and value.shape[1] == n:
            return value[:, sl]
    return value


def simulate(
    cm: Compiled,
    params: dict[str, Any],
    levers: dict[str, np.ndarray],
    grid: TimeGrid,
    method: str = "euler",
    n: int | None = None,
    workers: int | None = None,
) -> Run:
    """Integrate ``n`` runs from grid.start to grid.end.

    ``params`` maps every parameter and fact to a number or an (n,) array; ``levers`` comes
    from :func:`lever_schedules`. Batches larger than :data:`CHUNK` are integrated chunk by
    chunk into the same record arrays (same results, better cache use); a single run is
    integrated over Python floats (same results, less overhead per step). ``workers`` processes
    (default: every available core, see :mod:`sdsim.parallel`) integrate the chunks into shared
    memory; the results are bit-identical whatever the number of workers. With :data:`BACKEND` "numba" the
    Euler chunks (n = 1 included) are integrated by the compiled kernel of :mod:`sdsim.kernel` (same records,
    see there), everything else exactly as with "numpy".
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if n is None:
        sizes = [np.size(v) for v in params.values()] + [v.shape[1] for v in levers.values()]
        n = max(sizes + [1])
    # numpy scalars: a division by zero or an overflow gives inf/nan (reported by the caller), not an exception
    params = {k: (np.float64(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
              for k, v in params.items()}
    sr_step, sr_year = series_values(cm, grid, levers)
    ny = grid.end - grid.start + 1
    parts = parallel.chunks(n, CHUNK)
    forked = len(parts) > 1 and parallel.resolve(workers) > 1
    alloc = parallel.shared_empty if forked else np.empty
    rec_s = alloc((ny, len(cm.stocks), n))
    rec_r = alloc((ny, len(cm.rates), n))
    rec_a = alloc((ny, len(cm.aux), n))

    kp = None
    if BACKEND not in BACKENDS:
        raise InputError(f"integrator backend (SDSIM_ENGINE) must be one of {', '.join(BACKENDS)}, got {BACKEND!r}")
    if BACKEND == "numba":
        from . import kernel

        kp = kernel.prepare(cm, method, params, levers, sr_step, grid.dt)  # None: the numpy engine integrates

    def chunk(i: int) -> None:  # chunk i of the runs into its slice of the records
        sl = parts[i]
        if kp is not None:
            kernel.integrate(kp, cm, {k: _part(v, n, sl) for k, v in params.items()},
                             {k: _part(v, n, sl) for k, v in levers.items()},
                             {k: _part(v, n, sl) for k, v in sr_step.items()}, grid, sl.start, sl.stop - sl.start,
                             rec_s, rec_r, rec_a)
            return
        _integrate(
            cm, {k: _part(v, n, sl) for k, v in params.items()}, {k: _part(v, n, sl) for k, v in levers.items()},
            {k: _part(v, n, sl) for k, v in sr_step.items()}, grid, method, sl.stop - sl.start,
            rec_s[:, :, sl], rec_r[:, :, sl], rec_a[:, :, sl],
        )

    scalar = kp is None and n == 1  # one run over Python floats (the numpy engine's path for n == 1)
    if not (scalar and _integrate_scalar(cm, params, levers, sr_step, grid, method, rec_s, rec_r, rec_a)):
        parallel.run_chunks(chunk, len(parts), workers if forked else 1)
    names = {s: ("stocks", i) for i, s in enumerate(cm.stocks)}
    names.update({r: ("rates", i) for i, r in enumerate(cm.rates)})
    names.update({a: ("aux", i) for i, a in enumerate(cm.aux)})
    run = Run(years=grid.years, names=names, stocks=rec_s, rates=rec_r, aux=rec_a, series=sr_year)
    if cm.annual_names:
        ns_ = dict(params)
        for name in names:
            ns_[name] = run.get(name)
        ns_.update(sr_year)
        run.annual = {k: np.broadcast_to(v, (ny, n)) for k, v in cm.annual(ns_).items()}
    return run


def _integrate_scalar(
    cm: Compiled,
    params: dict[str, Any],
    levers: dict[str, np.ndarray],
    sr_step: dict[str, np.ndarray],
    grid: TimeGrid,
    method: str,
    rec_s: np.ndarray,
    rec_r: np.ndarray,
    rec_a: np.ndarray,
) -> bool:
    """Integrate one run over Python floats; same steps, same records as :func:`_integrate`.

    Returns False (and the caller integrates with numpy instead) when the run hits a division by
    zero, a math domain error or an overflow, where numpy would carry inf or nan on.
    """
    def one(v: Any) -> float:
        return float(np.asarray(v).reshape(-1)[0])

    try:
        s0, frozen = cm.init(params, levers, sr_step, float(grid.start))
        rates, rates_rec = cm.build_scalar(
            {k: one(v) for k, v in params.items()},
            {k: v[:, 0].tolist() for k, v in levers.items()},
            {k: v[:, 0].tolist() for k, v in sr_step.items()},
            {k: one(v) for k, v in frozen.items()},
            grid.dt,
        )
        S = [one(s0[s]) for s in cm.stocks]
        ns, nr, na = len(S), len(cm.rates), len(cm.aux)
        F, D, A = [0.0] * nr, [0.0] * ns, [0.0] * na
        acc = [0.0] * nr
        dt, spy, start = grid.dt, grid.steps_per_year, grid.start
        rk4 = method == "rk4"
        if rk4:
            F2, F3, F4 = [0.0] * nr, [0.0] * nr, [0.0] * nr
            D2, D3, D4 = [0.0] * ns, [0.0] * ns, [0.0] * ns
        half = 0.5 * dt
        for k in range(grid.n_steps):
            t = start + k * dt
            if k % spy == 0:
                y = k // spy
                rates_rec(k, t, S, F, D, A)
                rec_s[y, :, 0] = S
                rec_a[y, :, 0] = A
                if y:
                    rec_r[y, :, 0] = [a * dt for a in acc]
                    acc = [0.0] * nr
            else:
                rates(k, t, S, F, D)
            if rk4:
                rates(k, t + half, [s + half * d for s, d in zip(S, D, strict=True)], F2, D2, t, False)
                rates(k, t + half, [s + half * d for s, d in zip(S, D2, strict=True)], F3, D3, t, False)
                rates(k, t + dt, [s + dt * d for s, d in zip(S, D3, strict=True)], F4, D4, t, False)
                F = [(a + 2.0 * b + 2.0 * c + d) / 6 for a, b, c, d in zip(F, F2, F3, F4, strict=True)]
                D = [(a + 2.0 * b + 2.0 * c + d) / 6 for a, b, c, d in zip(D, D2, D3, D4, strict=True)]
            acc = [a + f for a, f in zip(acc, F, strict=True)]
            S = [s + dt * d for s, d in zip(S, D, strict=True)]
        k = grid.n_steps
        rates_rec(k, start + k * dt, S, F, D, A)
        rec_s[-1, :, 0] = S
        rec_a[-1, :, 0] = A
        rec_r[-1, :, 0] = [a * dt for a in acc]
        rec_r[0] = np.nan
        return True
    except (ArithmeticError, ValueError, TypeError):
        return False


def _integrate(
    cm: Compiled,
    params: dict[str, Any],
    levers: dict[str, np.ndarray],
    sr_step: dict[str, np.ndarray],
    grid: TimeGrid,
    method: str,
    n: int,
    rec_s: np.ndarray,
    rec_r: np.ndarray,
    rec_a: np.ndarray,
) -> None:
    """Integrate one chunk of runs, writing year-end records into the given arrays."""
    dt, spy = grid.dt, grid.steps_per_year
    s0, frozen = cm.init(params, levers, sr_step, float(grid.start))
    ns, nr = len(cm.stocks), len(cm.rates)
    S = np.empty((ns, n))
    for i, s in enumerate(cm.stocks):
        S[i] = s0[s]
    rates, rates_rec = cm.build(params, levers, sr_step, frozen, dt)
    rec_r[0] = np.nan
    F = np.empty((nr, n))
    D = np.empty((ns, n))
    acc = np.zeros((nr, n))
    rk4 = method == "rk4"
    if rk4:
        F2, F3, F4 = (np.empty((nr, n)) for _ in range(3))
        D2, D3, D4 = (np.empty((ns, n)) for _ in range(3))
    start = grid.start
    for k in range(grid.n_steps):
        t = start + k * dt
        if k % spy == 0:
            y = k // spy
            rates_rec(k, t, S, F, D, rec_a[y])
            rec_s[y] = S
            if y:
                np.multiply(acc, dt, out=rec_r[y])
                acc[:] = 0.0
        else:
            rates(k, t, S, F, D)
        if rk4:
            rates(k, t + 0.5 * dt, S + (0.5 * dt) * D, F2, D2, t, False)
            rates(k, t + 0.5 * dt, S + (0.5 * dt) * D2, F3, D3, t, False)
            rates(k, t + dt, S + dt * D3, F4, D4, t, False)
            F += F4
            F2 += F3
            F2 *= 2.0
            F += F2
            F *= 1 / 6
            D += D4
            D2 += D3
            D2 *= 2.0
            D += D2
            D *= 1 / 6
        acc += F
        D *= dt
        S += D
    k = grid.n_steps
    rates_rec(k, start + k * dt, S, F, D, rec_a[-1])
    rec_s[-1] = S
    np.multiply(acc, dt, out=rec_r[-1])
