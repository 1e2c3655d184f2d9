"""Calibration: solve the free parameters of a batch of parameter sets so that every run
reproduces its targets (MODEL_SPEC §5).

One vectorised Newton method for the whole batch: each iteration simulates the calibration
window once for all unconverged sets (and, where a Jacobian is needed, their finite-difference
perturbations: one run per group of free parameters no target depends on together, see :func:`fd_groups`)
as one batch, then solves the small p x p linear systems with one
``numpy.linalg.solve``. The Jacobian is computed by finite differences in the first iteration
only and then refined by Broyden's rank-one updates, so later iterations cost one run per set.
A set that finds no smaller residual for :data:`STALL_PLAIN` iterations stops ("did not
converge") instead of iterating to :data:`MAX_ITER`; the sets that fail are those that failed
before (issue 15), found sooner. Sets whose solution leaves the bounds, or that do not converge,
are flagged, never dropped silently.

Every batch starts from a linear prediction of its solutions (issue 15): the model's baseline is solved
once (the reference, cached on the compiled model) and each set starts from x0 + S (theta - theta0) with
the reference's slopes; the first Jacobian's columns of the decoupled free parameters (a target that
depends on one of them alone) are the reference's, the others finite differences; a set that stops
making progress gets a new Jacobian once and is then given up. A set's prediction, and so its solution,
is the same bit for bit in any batch (a scenario run, a chunk of an ensemble, any number of workers).
Compared with starting every set from the model's starting values (``WARM_START = False``), it needs
about 40 % fewer runs and also solves the sets those starting values cannot reach (for the Yubei model,
short registration processing times, down to the documented lower bound). The solver before issue 15
stays available (``_LEGACY``) for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import parallel
from .compiler import Compiled
from .compiler_deps import closure
from .engine import Run, TimeGrid, lever_schedules, simulate

TOLERANCE = 1e-10  # relative residual at which a set counts as solved
MAX_ITER = 40
FD_STEP = 1e-7  # relative finite-difference step
GROUPED_FD = True  # perturb independent free parameters together (fd_groups); False: one run per free parameter


@dataclass
class CalibrationResult:
    """Solved parameter sets. ``params`` holds (n,) arrays for the free parameters."""

    params: dict[str, Any]
    ok: np.ndarray  # (n,) bool: solved within bounds
    reason: np.ndarray  # (n,) str: "" when ok, else why not
    target_names: list[str]
    targets: np.ndarray  # (n, k) target values
    achieved: np.ndarray  # (n, k) model values with the solved parameters
    iterations: int
    window_runs: int = 0  # calibration-window runs simulated (sets x evaluations, finite differences included)

    @property
    def residuals(self) -> np.ndarray:
        """(n, k) relative residuals (model - target) / |target|; (n, 1) zeros for a model without targets."""
        if self.targets.shape[-1] == 0:
            return np.zeros((self.targets.shape[0], 1))
        return (self.achieved - self.targets) / np.where(self.targets == 0, 1.0, np.abs(self.targets))

    @property
    def max_residual(self) -> float:
        """Largest absolute relative residual over all sets and targets (0 without targets)."""
        r = np.abs(self.residuals)
        return float(r.max()) if r.size else 0.0

    @property
    def n_failed(self) -> int:
        """Number of sets with no solution inside the bounds."""
        return int((~self.ok).sum())


def _size(params: dict[str, Any]) -> int:
    return max([np.size(v) for v in params.values()] + [1])


def _take(value: Any, idx: np.ndarray) -> Any:
    return value[idx] if np.ndim(value) else value


def _rows(values: dict[str, Any], sel: np.ndarray, n: int) -> dict[str, Any]:
    """The sets ``sel`` of a batch of ``n``: per-set (n,) arrays cut, shared values kept."""
    return {k: _take(v, sel) if np.size(v) == n else v for k, v in values.items()}


def measure(cm: Compiled, run: Run, year: int | None = None) -> np.ndarray:
    """(n, k) values of the calibration targets in ``run``."""
    cols = [np.zeros(run.n)[:, None][:, :0]]  # (n, 0) when the model has no targets
    for t in cm.model.calibration.targets:
        y = year if year is not None else t.year
        if t.variable:
            cols.append(run.at(t.variable, y))
        else:
            assert t.inflows_of is not None  # the loader requires exactly one of variable and inflows_of
            stock = cm.model.stocks[t.inflows_of]
            cols.append(sum((run.at(f, y) for f in stock.inflows), np.zeros(run.n)))
    return np.column_stack(cols)


def _bounds(cm: Compiled, params: dict[str, Any], n: int, dt: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, p) lower and upper bounds; bounds may name constants or other free parameters."""
    free = [f.name for f in cm.model.calibration.free]
    lo = np.full((n, len(free)), -np.inf)
    hi = np.full((n, len(free)), np.inf)
    for j, f in enumerate(cm.model.calibration.free):
        for b, arr in (("lower", lo), ("upper", hi)):
            v = getattr(f, b)
            if v is None:
                continue
            if isinstance(v, str):
                arr[:, j] = x[:, free.index(v)] if v in free else np.broadcast_to(params[v], (n,))
            else:
                arr[:, j] = v
        if f.rate:
            hi[:, j] = np.minimum(hi[:, j], 1 / dt)
    return lo, hi


def dependence(cm: Compiled) -> np.ndarray:
    """(k, p) bool: target k can depend on free parameter j (a path in the model's equations, through stocks).

    Conservative: every name an equation, a stock's flows or initial value, a series' growth, a delay's
    initial value or a scaled table mentions is an edge; anything else counts as depending on everything.
    """
    model = cm.model
    free = [f.name for f in model.calibration.free]
    uses: dict[str, set[str]] = {}
    for group in (model.flows, model.aux, getattr(model, "annual", {}) or {}):
        for n, v in group.items():
            names = set(v.expr.names)
            if v.fixed_delay is not None:
                names |= v.fixed_delay[0].names | v.fixed_delay[1].names
            for tb in v.expr.tables:
                names.add(f"{tb}_y_scale")
            uses[n] = names
    for n, v in model.stocks.items():
        uses[n] = set(v.expr.names) | set(v.inflows) | set(v.outflows)
    for n, sr in model.series.items():
        uses[n] = {sr.growth}

    def reach(start: set[str]) -> set[str]:
        return closure(start, uses)

    dep = np.ones((len(model.calibration.targets), len(free)), bool)
    for k, t in enumerate(model.calibration.targets):
        if t.variable:
            start = {t.variable}
        elif t.inflows_of in model.stocks:
            start = set(model.stocks[t.inflows_of].inflows)
        else:
            continue
        if not all(n in uses for n in start):
            continue  # unknown structure: depends on everything
        r = reach(start)
        dep[k] = [f in r for f in free]
    return dep


def fd_groups(dep: np.ndarray) -> list[list[int]]:
    """Free parameters perturbed together in one finite-difference run (Curtis-Powell-Reid).

    Parameters share a group when no target depends on two of them, so each target's difference is
    caused by one parameter only and the Jacobian is the same as with one run per parameter.
    """
    groups: list[list[int]] = []
    rows: list[np.ndarray] = []
    for j in range(dep.shape[1]):
        for g, used in zip(groups, rows, strict=True):
            if not (used & dep[:, j]).any():
                g.append(j)
                used |= dep[:, j]
                break
        else:
            groups.append([j])
            rows.append(dep[:, j].copy())
    return groups


CHUNK = 8192  # parameter sets solved together; larger batches are solved chunk by chunk (cache use)


def calibrate(
    cm: Compiled,
    params: dict[str, Any],
    lever_baseline: dict[str, Any],
    dt: float | None = None,
    method: str = "euler",
    workers: int | None = None,
) -> CalibrationResult:
    """Solve the free parameters for every parameter set in ``params``.

    ``params`` maps parameter and fact names to numbers or (n,) arrays (the free parameters'
    values are the starting guesses); ``lever_baseline`` maps levers to baseline values.
    The calibration window always runs with baseline levers. Batches larger than :data:`CHUNK`
    are solved in chunks (each chunk one vectorised solve) and joined; ``workers`` processes
    (default: every available core, see :mod:`sdsim.parallel`) solve the chunks, with results
    bit-identical whatever the number of workers (the chunks do not depend on it).
    """
    dt = cm.model.dt if dt is None else dt
    n = max(_size(params), _size(lever_baseline))
    cal = cm.model.calibration
    if not cal.free and not cal.targets:  # a model without calibration: every set is solved as it is
        return _as_given(params, n)
    warm = _warm_start(cm, params, lever_baseline, n, dt, method) if WARM_START and not _LEGACY else None
    if n <= CHUNK:
        return _calibrate_start(cm, params, lever_baseline, dt, method, warm)
    slices = parallel.chunks(n, CHUNK)
    free = {f.name for f in cm.model.calibration.free}

    def chunk(i: int) -> CalibrationResult:
        sel = np.arange(slices[i].start, slices[i].stop)
        q = _calibrate_start(cm, _rows(params, sel, n), _rows(lever_baseline, sel, n), dt, method, warm)
        q.params = {k: v for k, v in q.params.items() if k in free}  # only what is joined below travels back
        return q

    parts = parallel.run_chunks(chunk, len(slices), workers)
    out = dict(params)
    for f in free:
        out[f] = np.concatenate([np.broadcast_to(q.params[f], (q.ok.size,)) for q in parts])
    return CalibrationResult(
        out, np.concatenate([q.ok for q in parts]), np.concatenate([q.reason for q in parts]), parts[0].target_names,
        np.concatenate([q.targets for q in parts]), np.concatenate([q.achieved for q in parts]),
        max(q.iterations for q in parts), sum(q.window_runs for q in parts),
    )


def _calibrate_start(
    cm: Compiled, params: dict[str, Any], lever_baseline: dict[str, Any], dt: float, method: str, warm: _Warm | None,
) -> CalibrationResult:
    """Solves every set from the reference's prediction (``warm``), then the sets that found no root from there
    (they did not converge or left the finite numbers: a prediction far off, e.g. across a switch such as a
    forced variable) once more from their own starting values, with the same stall rule (:data:`STALL`,
    one new Jacobian). Which sets are retried depends on each set alone, so a set's solution does not depend
    on its batch."""
    res = _calibrate(cm, params, lever_baseline, dt, method, warm)
    if warm is None:
        return res
    sel = np.flatnonzero(np.isin(res.reason, RETRY_REASONS))
    if not sel.size:
        return res
    n = res.ok.size
    again = _calibrate(cm, _rows(params, sel, n), _rows(lever_baseline, sel, n), dt, method, None, quick=True)
    out = dict(res.params)
    for f in (f.name for f in cm.model.calibration.free):
        v = np.array(np.broadcast_to(np.asarray(out[f], float), (n,)))
        v[sel] = np.broadcast_to(again.params[f], (sel.size,))
        out[f] = v
    ok, reason, achieved = res.ok.copy(), res.reason.copy(), res.achieved.copy()
    ok[sel], reason[sel], achieved[sel] = again.ok, again.reason, again.achieved
    return CalibrationResult(out, ok, reason, res.target_names, res.targets, achieved,
                             max(res.iterations, again.iterations), res.window_runs + again.window_runs)


RETRY_REASONS = ("did not converge", "no finite solution")  # from the prediction: retried from the own start values


def _calibrate_legacy(
    cm: Compiled,
    params: dict[str, Any],
    lever_baseline: dict[str, Any],
    dt: float,
    method: str,
) -> CalibrationResult:
    """The solver before issue 15 (``_LEGACY = True``; tests compare the two): Newton-Broyden from the given
    starting values, every set until solved, not finite or MAX_ITER; a singular system anywhere in the batch
    sends every set of that iteration to least squares."""
    n = max(_size(params), _size(lever_baseline))
    if not cm.model.calibration.targets:  # nothing to reproduce (a model without calibration): every set is "solved"
        return _as_given(params, n)
    pb = _problem(cm, params, lever_baseline, dt, method, n)
    st = _State.start(pb, _own_start(pb))
    groups = _fd_group_of(pb.dep, np.arange(pb.p), pb.p)
    active = np.arange(n)
    it = 0
    while it < MAX_ITER and active.size:
        it += 1
        xa = st.x[active]
        need = np.flatnonzero(st.fresh[active])  # positions in ``active`` that get a new Jacobian
        r = _evaluate(pb, st, active, need, groups, workers=None)
        keep, _ = _converged(st, active, r)
        idx = active[keep]
        if idx.size == 0:
            break
        _broyden(st, idx, active, r)
        active = _step(st, idx, xa[keep], r[keep], _solve_batch)
    return _result(pb, st, it)


def _solve_batch(J: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(m, p) Newton steps -J^-1 r (the solver before issue 15): a singular system anywhere sends every set
    to its least-squares step (NaN when that cannot be computed)."""
    try:
        return np.linalg.solve(J, -r[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.stack([_lstsq(Ji, -ri) for Ji, ri in zip(J, r, strict=True)])


# ---------------------------------------------------------------- the parts of one Newton-Broyden solve


def _as_given(params: dict[str, Any], n: int) -> CalibrationResult:
    """Every set solved as it is (a model without calibration targets)."""
    return CalibrationResult(dict(params), np.ones(n, bool), np.full(n, "", dtype=object), [],
                             np.zeros((n, 0)), np.zeros((n, 0)), 0)


@dataclass
class _Problem:
    """What every iteration of one solve reads: the batch of ``n`` sets, its targets and the model's structure."""

    cm: Compiled
    params: dict[str, Any]
    lever_baseline: dict[str, Any]
    dt: float  # time step, years
    grid: TimeGrid  # the calibration window
    method: str
    n: int
    free: list[str]  # the p free parameters
    targets: np.ndarray  # (n, k) target values, target units
    scale: np.ndarray  # (n, k) |target| (1 for a zero target): residuals are relative
    dep: np.ndarray  # (k, p) bool, :func:`dependence`
    per_run: list[str]  # names in ``params`` with one value per set

    @property
    def p(self) -> int:
        """Number of free parameters."""
        return len(self.free)


def _problem(
    cm: Compiled, params: dict[str, Any], lever_baseline: dict[str, Any], dt: float, method: str, n: int
) -> _Problem:
    """The batch of ``n`` sets to solve over the calibration window with time step ``dt`` (years)."""
    cal = cm.model.calibration
    targets = np.stack([np.broadcast_to(np.asarray(params[t.value_name], float), (n,)) for t in cal.targets], 1)
    return _Problem(
        cm, params, lever_baseline, dt, TimeGrid(cal.start, cal.end, dt), method, n, [f.name for f in cal.free],
        targets, np.where(targets == 0, 1.0, np.abs(targets)), dependence(cm),
        [k for k, v in params.items() if np.size(v) == n],
    )


def _own_start(pb: _Problem) -> np.ndarray:
    """(n, p) starting point: each set's own values of the free parameters."""
    return np.stack([np.broadcast_to(np.asarray(pb.params[f], float), (pb.n,)) for f in pb.free], 1).copy()


@dataclass
class _State:
    """The iterates of one solve, per set (n sets, p free parameters, k = p targets)."""

    x: np.ndarray  # (n, p) current point
    achieved: np.ndarray  # (n, k) model values at the last evaluated point
    jac: np.ndarray  # (n, k, p) d r_k / d x_j, kept between iterations
    fresh: np.ndarray  # (n,) bool: gets a finite-difference Jacobian at its next evaluation
    last_r: np.ndarray  # (n, k) relative residuals at the last step's origin
    last_dx: np.ndarray  # (n, p) the last step
    done: np.ndarray  # (n,) bool: converged
    bad: np.ndarray  # (n,) bool: no finite residual or step
    mark: np.ndarray  # (n,) the residual norm that last counted as progress
    mark_it: np.ndarray  # (n,) int: the iteration it did
    retried: np.ndarray  # (n,) bool: already given a new Jacobian after stalling (warm-started batches)
    runs: int = 0  # calibration-window runs simulated so far

    @classmethod
    def start(cls, pb: _Problem, x: np.ndarray) -> _State:
        n, p = pb.n, pb.p
        return cls(x, np.full_like(pb.targets, np.nan), np.full((n, p, p), np.nan), np.ones(n, bool),
                   np.full((n, p), np.nan), np.full((n, p), np.nan), np.zeros(n, bool), np.zeros(n, bool),
                   np.full(n, np.inf), np.zeros(n, int), np.zeros(n, bool))


def _fd_group_of(dep: np.ndarray, cols: np.ndarray, p: int) -> tuple[np.ndarray, int]:
    """Finite-difference group of each of the ``p`` free parameters when the columns ``cols`` are perturbed
    (-1: not perturbed), and the number of groups."""
    groups = fd_groups(dep[:, cols]) if GROUPED_FD else [[j] for j in range(cols.size)]
    of = np.full(p, -1)
    for g, gc in enumerate(groups):
        of[cols[gc]] = g
    return of, len(groups)


def _evaluate(
    pb: _Problem, st: _State, active: np.ndarray, need: np.ndarray, groups: tuple[np.ndarray, int],
    workers: int | None,
) -> np.ndarray:
    """(m, k) relative residuals of the ``active`` sets; the sets at positions ``need`` also get their
    finite-difference Jacobian (``groups``: :func:`_fd_group_of`). One simulated batch: the m current points,
    then one perturbed copy of the m' points needing a Jacobian per group of free parameters that no
    target depends on together (:func:`fd_groups`)."""
    gof, ng = groups
    m = active.size
    xa = st.x[active]
    h = FD_STEP * np.maximum(np.abs(xa[need]), 1e-3)  # (m', p)
    rows = np.concatenate([np.arange(m), np.tile(need, ng)])
    X = xa[rows].copy()
    for j in range(pb.p):
        g = gof[j]
        if g >= 0:
            X[m + g * need.size : m + (g + 1) * need.size, j] += h[:, j]
    sel = active[rows]
    big = dict(pb.params)
    for k in pb.per_run:
        big[k] = _take(pb.params[k], sel)
    for j, f in enumerate(pb.free):
        big[f] = X[:, j]
    levs = lever_schedules(
        pb.cm, pb.grid, _rows(pb.lever_baseline, sel, pb.n))
    vals = measure(pb.cm, simulate(pb.cm, big, levs, pb.grid, pb.method, n=rows.size, workers=workers))
    st.runs += rows.size
    sc = pb.scale[active]
    r = (vals[:m] - pb.targets[active]) / sc  # (m, k)
    st.achieved[active] = vals[:m]
    if need.size and ng:  # ng = 0: every column comes from the reference (_warm_columns)
        _fd_jacobian(pb, st, active[need], vals, m, need, groups, sc[need], h)
    return r


def _fd_jacobian(
    pb: _Problem, st: _State, who: np.ndarray, vals: np.ndarray, m: int, need: np.ndarray,
    groups: tuple[np.ndarray, int], sc: np.ndarray, h: np.ndarray,
) -> None:
    """Finite-difference Jacobians of the sets ``who`` (at positions ``need`` of the evaluated batch ``vals``,
    perturbed by ``h``) into ``st.jac``; columns not perturbed (group -1) keep their values."""
    gof, ng = groups
    pert = vals[m:].reshape(ng, need.size, -1)[np.maximum(gof, 0)]  # (j, m', k): the run that perturbed j
    d = (pert - vals[need][None]) / sc[None] / h.T[:, :, None]
    d = np.where(pb.dep.T[:, None, :], d, 0.0)  # a target that cannot depend on j: exactly 0, as one run per j gave
    if (gof < 0).any():  # columns not perturbed keep their (reference) values
        d[gof < 0] = np.transpose(st.jac[who][:, :, gof < 0], (2, 0, 1))
    st.jac[who] = np.transpose(d, (1, 2, 0))  # (m', k, j)


def _converged(st: _State, active: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marks the ``active`` sets that converged or have no finite residual; (m,) bool still to iterate and
    (m,) residual norms (largest absolute relative residual)."""
    finite = np.isfinite(r).all(axis=1)
    norm = np.abs(r).max(axis=1)
    conv = finite & (norm < TOLERANCE)
    st.done[active[conv]] = True
    st.bad[active[~finite]] = True
    return finite & ~conv, norm


def _stalled(
    st: _State, active: np.ndarray, norm: np.ndarray, keep: np.ndarray, it: int, warm: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Stagnation: (m,) bool still to iterate, without the sets that made no progress for a number of
    iterations, and (m,) bool the sets that get a new Jacobian instead (warm-started batches, once)."""
    progress = norm < (PROGRESS * st.mark[active] if warm else st.mark[active])
    st.mark[active[progress]] = norm[progress]
    st.mark_it[active[progress]] = it
    stalled = keep & (it - st.mark_it[active] >= (STALL if warm else STALL_PLAIN))
    retry = stalled & ~st.retried[active] if warm else np.zeros(active.size, bool)
    keep &= ~(stalled & ~retry)
    return keep, retry


def _broyden(st: _State, idx: np.ndarray, active: np.ndarray, r: np.ndarray) -> None:
    """Broyden update of the reused Jacobians of the sets ``idx``: J += (dr - J dx) dx^T / (dx^T dx)."""
    upd = idx[~st.fresh[idx] & np.isfinite(st.last_dx[idx]).all(axis=1)]
    if upd.size:
        pos = np.searchsorted(active, upd)
        dxu = st.last_dx[upd]
        dr = r[pos] - st.last_r[upd]
        corr = dr - np.einsum("nkj,nj->nk", st.jac[upd], dxu)
        st.jac[upd] += corr[:, :, None] * dxu[:, None, :] / np.einsum("nj,nj->n", dxu, dxu)[:, None, None]


def _step(
    st: _State, idx: np.ndarray, x: np.ndarray, r: np.ndarray, solve: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Newton step of the sets ``idx`` from ``x`` (m, p) with residuals ``r``; the sets whose new point is not
    finite are marked bad. Returns the sets still active."""
    st.fresh[:] = False
    st.last_r[idx] = r
    dx = solve(st.jac[idx], r)
    st.x[idx] = x + dx
    st.last_dx[idx] = dx
    ok_step = np.isfinite(st.x[idx]).all(axis=1)
    st.bad[idx[~ok_step]] = True
    return idx[ok_step]


def _result(pb: _Problem, st: _State, it: int) -> CalibrationResult:
    """The solved sets: solved within bounds, and for every other set why not."""
    x, done, bad = st.x, st.done, st.bad
    lo, hi = _bounds(pb.cm, pb.params, pb.n, pb.dt, x)
    inside = ((x >= lo - 1e-12 * np.abs(lo)) & (x <= hi + 1e-12 * np.abs(hi))).all(axis=1)
    ok = done & inside & ~bad
    reason = np.full(pb.n, "", dtype=object)
    reason[~done] = "did not converge"
    reason[bad] = "no finite solution"
    for j, f in enumerate(pb.free):
        below = done & ~bad & (x[:, j] < lo[:, j] - 1e-12 * np.abs(lo[:, j]))
        above = done & ~bad & (x[:, j] > hi[:, j] + 1e-12 * np.abs(hi[:, j]))
        reason[below & (reason == "")] = f"{f} below its lower bound"
        reason[above & (reason == "")] = f"{f} above its upper bound"
    out = dict(pb.params)
    for j, f in enumerate(pb.free):
        out[f] = x[:, j].copy()
    return CalibrationResult(out, ok, reason, [t.name for t in pb.cm.model.calibration.targets], pb.targets,
                             st.achieved, it, st.runs)


def _lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least-squares step; NaN (the set is flagged as having no finite solution) when it cannot be computed."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return np.full(a.shape[1], np.nan)
    try:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    except np.linalg.LinAlgError:
        return np.full(a.shape[1], np.nan)


# ------------------------------------------------------------------------------ the solver (issue 15)

STALL_PLAIN = 15  # iterations without a new smallest residual norm after which a set stops ("did not converge");
# 10 and 12 stopped 4 and 2 of 100,000 sampled sets that the old solver solved later, 15 none
WARM_START = True  # every batch starts from the reference's prediction (_Warm); False: from the given values
STALL = 2  # warm-started batches: iterations without progress after which a set stops ("did not converge")
PROGRESS = 0.25  # progress: a residual norm below this fraction of the last one that counted as progress
_LEGACY = False  # True: the solver before issue 15 for every batch (tests compare the two)


@dataclass
class _Warm:
    """A linear prediction of each set's solution from one solved reference set (issue 15).

    The reference is the model's baseline: every parameter, fact and lever baseline at its value in the
    model files, whatever the batch. With g = model - target, x = x0 + sum_j S_j (theta_j - theta0_j),
    S_j = -(dg/dx)^-1 dg/dtheta_j by finite differences at the reference solution x0; ``jac0`` = dg/dx
    there. Each column S_j is computed on its own and the sum runs over the inputs in name order, adding
    exact zeros for the inputs at their baseline, so a set's prediction (and so its solution, bit for bit)
    does not depend on the batch it is solved in. Only the starting point of the Newton-Broyden iteration
    and the first Jacobian's columns of the decoupled free parameters (:func:`_decoupled`) come from here,
    never a solution.
    """

    names: list[str]  # inputs that differ from the baseline in this batch, in name order
    theta0: np.ndarray  # (q,) their baseline values
    x0: np.ndarray  # (p,)
    slope: np.ndarray  # (p, q)
    jac0: np.ndarray  # (k, p) dg/dx at the reference solution, target units per unit of x

    def predict(self, params: dict[str, Any], levers: dict[str, Any], n: int) -> np.ndarray:
        """(n, p) predicted solutions."""
        x = np.tile(self.x0, (n, 1))
        for j, k in enumerate(self.names):
            t = np.broadcast_to(np.asarray(params[k] if k in params else levers[k], float), (n,))
            x += self.slope[:, j][None, :] * (t - self.theta0[j])[:, None]
        return x


@dataclass
class _Reference:
    """The solved baseline of one compiled model at one time step and method, and the slope columns
    computed so far (input name -> (p,) column); kept on the compiled model (:func:`_reference`)."""

    base: dict[str, float]
    x0: np.ndarray  # (p,)
    jac0: np.ndarray  # (k, p)
    slopes: dict[str, np.ndarray]


def _reference(cm: Compiled, dt: float, method: str) -> _Reference | None:
    """The model's baseline solved (cached per compiled model, dt and method); None: it has no solution."""
    cache = cm.__dict__.setdefault("_calibration_reference", {})
    key = (dt, method)
    if key not in cache:
        cache[key] = _solve_reference(cm, dt, method)
    return cache[key]


def _solve_reference(cm: Compiled, dt: float, method: str) -> _Reference | None:
    """Solves the baseline from the model's starting values; its Jacobian by finite differences."""
    free = [f.name for f in cm.model.calibration.free]
    base = {k: float(v) for k, v in cm.model.base_values().items()}
    sol = _calibrate(cm, dict(base), {k: base[k] for k in cm.model.levers}, dt, method, None)
    if not sol.ok.all():
        return None
    x0 = np.array([float(np.asarray(sol.params[f]).reshape(-1)[0]) for f in free])
    p = len(free)
    hx = FD_STEP * np.maximum(np.abs(x0), 1e-3)
    g = _window_gaps(cm, base, free, np.tile(x0, (1 + p, 1)) + np.vstack([np.zeros(p), np.diag(hx)]), {}, dt, method)
    jx = np.where(dependence(cm), ((g[1:] - g[0]) / hx[:, None]).T, 0.0)  # (k, p)
    if not np.isfinite(jx).all() or np.linalg.matrix_rank(jx) < p:
        return None
    return _Reference(base, x0, jx, {})


def _window_gaps(
    cm: Compiled, base: dict[str, float], free: list[str], X: np.ndarray, inputs: dict[str, np.ndarray], dt: float,
    method: str,
) -> np.ndarray:
    """(m, k) model - target over the calibration window for m rows: free parameters ``X`` (m, p), the other
    inputs at ``base`` except ``inputs`` (name -> (m,) values)."""
    cal = cm.model.calibration
    m = X.shape[0]
    big: dict[str, Any] = {**base, **inputs}
    for j, f in enumerate(free):
        big[f] = X[:, j]
    grid = TimeGrid(cal.start, cal.end, dt)
    levs = lever_schedules(cm, grid, {k: big[k] for k in cm.model.levers})
    vals = measure(cm, simulate(cm, big, levs, grid, method, n=m, workers=1))
    tg = np.stack([np.broadcast_to(np.asarray(big[t.value_name], float), (m,)) for t in cal.targets], 1)
    return vals - tg


def _slopes(cm: Compiled, ref: _Reference, names: list[str], dt: float, method: str) -> bool:
    """Adds the slope columns of ``names`` not computed yet to ``ref``; False when one is not finite."""
    todo = [k for k in names if k not in ref.slopes]
    if todo:
        free = [f.name for f in cm.model.calibration.free]
        t0 = np.array([ref.base[k] for k in todo])
        ht = FD_STEP * np.maximum(np.abs(t0), 1e-3)
        m = 1 + len(todo)
        inputs = {}
        for i, k in enumerate(todo):
            col = np.full(m, ref.base[k])
            col[1 + i] += ht[i]
            inputs[k] = col
        g = _window_gaps(cm, ref.base, free, np.tile(ref.x0, (m, 1)), inputs, dt, method)
        for i, k in enumerate(todo):  # each column solved on its own: the same bits in any batch
            ref.slopes[k] = -np.linalg.solve(ref.jac0, (g[1 + i] - g[0]) / ht[i])
    return all(np.isfinite(ref.slopes[k]).all() for k in names)


def _warm_start(
    cm: Compiled, params: dict[str, Any], lever_baseline: dict[str, Any], n: int, dt: float, method: str
) -> _Warm | None:
    """The reference prediction for a batch of ``n`` sets (None: the baseline has no solution, or a slope
    is not finite)."""
    ref = _reference(cm, dt, method)
    if ref is None:
        return None
    free = {f.name for f in cm.model.calibration.free}
    values = {**lever_baseline, **params}
    names = sorted(k for k, v in values.items()
                   if k not in free and k in ref.base and np.any(np.asarray(v, float) != ref.base[k]))
    if not _slopes(cm, ref, names, dt, method):
        return None
    slope = np.stack([ref.slopes[k] for k in names], 1) if names else np.zeros((ref.x0.size, 0))
    return _Warm(names, np.array([ref.base[k] for k in names]), ref.x0, slope, ref.jac0)


def _decoupled(dep: np.ndarray) -> np.ndarray:
    """(p,) bool: free parameters that alone set some target (a row of ``dep`` with only them).

    Their first-Jacobian columns come from the reference (:class:`_Warm`) instead of finite differences.
    """
    out = np.zeros(dep.shape[1], bool)
    for row in dep:
        if row.sum() == 1:
            out[row] = True
    return out


def _solve_rows(J: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(m, p) Newton steps -J^-1 r; a singular system (an exactly zero pivot) gets its least-squares step
    (NaN when that cannot be computed), each set on its own (LAPACK solves each system on its own, so a set's
    step does not depend on the others)."""
    try:
        return np.linalg.solve(J, -r[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # some system is singular: find which
        pass
    sign, _ = np.linalg.slogdet(J)
    sing = sign == 0
    dx = np.empty(r.shape)
    if (~sing).any():
        dx[~sing] = np.linalg.solve(J[~sing], -r[~sing][:, :, None])[:, :, 0]
    for i in np.flatnonzero(sing):
        dx[i] = _lstsq(J[i], -r[i])
    return dx


def _calibrate(
    cm: Compiled,
    params: dict[str, Any],
    lever_baseline: dict[str, Any],
    dt: float,
    method: str,
    warm: _Warm | None = None,
    quick: bool | None = None,
) -> CalibrationResult:
    """One vectorised Newton-Broyden solve for all sets in ``params`` (see :func:`calibrate`).

    Without ``warm`` (``WARM_START = False``, or a model whose baseline has no solution): every set starts
    from its free parameters' values with a finite-difference Jacobian and iterates until solved, not finite,
    or :data:`MAX_ITER`, or :data:`STALL_PLAIN` iterations without progress. With ``warm``: every set starts
    from the reference's prediction; the first Jacobian's columns of the
    decoupled free parameters are the reference's, the others finite differences; a set that makes
    no progress (its residual norm not below :data:`PROGRESS` times the last that did) for
    :data:`STALL` iterations gets a new finite-difference Jacobian once, and stops ("did not
    converge") when it stalls again.
    """
    if _LEGACY:
        return _calibrate_legacy(cm, params, lever_baseline, dt, method)
    n = max(_size(params), _size(lever_baseline))
    if not cm.model.calibration.targets:  # nothing to reproduce (a model without calibration): every set is "solved"
        return _as_given(params, n)
    pb = _problem(cm, params, lever_baseline, dt, method, n)
    st = _State.start(pb, warm.predict(params, lever_baseline, n) if warm is not None else _own_start(pb))
    all_of = _fd_group_of(pb.dep, np.arange(pb.p), pb.p)
    first_of = _warm_columns(pb, st, warm) if warm is not None else None
    active = np.arange(n)
    it = 0
    while it < MAX_ITER and active.size:
        it += 1
        xa = st.x[active]
        need = np.flatnonzero(st.fresh[active])  # positions in ``active`` that get a new Jacobian
        r = _evaluate(pb, st, active, need, first_of if it == 1 and first_of is not None else all_of, workers=1)
        keep, norm = _converged(st, active, r)
        keep, retry = _stalled(st, active, norm, keep, it, warm is not None if quick is None else quick)
        idx = active[keep]
        if idx.size == 0:
            break
        _broyden(st, idx, active, r)
        again = active[retry]
        active = _step(st, idx, xa[keep], r[keep], _solve_rows)
        if again.size:  # a new Jacobian at their next point, and a new count
            st.fresh[again] = True
            st.retried[again] = True
            st.mark_it[again] = it
            st.mark[again] = np.inf
    return _result(pb, st, it)


def _warm_columns(pb: _Problem, st: _State, warm: _Warm) -> tuple[np.ndarray, int] | None:
    """The first Jacobian's columns of the decoupled free parameters, from the reference, into ``st.jac``;
    the finite-difference groups of the other columns (None: every column by finite differences)."""
    cheap = _decoupled(pb.dep)
    if not cheap.any():
        return None
    st.jac[:, :, cheap] = warm.jac0[None][:, :, cheap] / pb.scale[:, :, None]
    return _fd_group_of(pb.dep, np.flatnonzero(~cheap), pb.p)
