"""Policy search: the least-cost lever package that meets the goals with a chosen probability.

Vocabulary (EMA Workbench): the **decision variables** are the policy levers (``role: policy``
with a ``cost:`` equation), each a constant from the start year (or a two-point ramp from the
start year to the goal year), bounded below by the input scenario's value and above by the top of
the lever's ``policy_range``. The **objective** is the central run's cost above the input
scenario, summed over the years start..goal year and discounted at ``discount_rate``; the
**constraints** are P(goal met in the goal year) >= p for the chosen goals, estimated on a fixed
ensemble of uncertainty samples common to all candidates.

How a candidate is evaluated (:class:`Evaluator`):

* the ensemble is drawn once (:func:`sdsim.sensitivity.sample_mc` with the seed) and calibrated
  once, in one vectorised call, together with the central parameter set (run 0). Candidates act
  from the start year, after the calibration window, so calibration does not depend on them;
* one batch = (candidates x (1 + samples)) runs in one :func:`sdsim.engine.simulate` call: one
  generation of the optimiser is one batch;
* goals are judged in the scope in force: a goal with a ``reported`` indicator compares the
  published value with threshold x its scope factor (per sample); the seed-scope probability is
  computed beside it, shown and never constrained. ``poisson`` goals average each sample's
  Poisson P(count passes);
* costs are the auxiliaries ``cost_<lever>`` compiled from the levers' ``cost:`` equations
  (annual totals, 亿元), read from the central run; they feed nothing back.

The optimiser is :func:`scipy.optimize.differential_evolution` (``vectorized=True``, seeded)
with the constraints as a vectorised :class:`scipy.optimize.NonlinearConstraint` (Lampinen's
feasibility rules); the constraint and the objective share one batch through a cache. Its first
population holds the all-top package (feasible for every goal kept) and a Latin hypercube. A
batched coordinate search then moves levers back toward the input while the package stays
feasible (differential evolution approaches a bound only slowly).

Goals that no package inside the policy ranges can meet (P with every lever at the top < p) are
found first, left out of the constraints and reported with their best probability and the lever
that binds (the one whose removal from the all-top package costs the most probability).

History conditioning: the ensemble is conditioned on the model's history by history matching
(:func:`condition`; samples that disagree with an observation get weight 0); the outputs say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from .batch import LeverPlan, ParamBatch, calibrate_batch, run_batch
from .compiler import Compiled
from .engine import TimeGrid
from .errors import InputError
from .goals import evaluate
from .model import Goal, Model, cost_name
from .scenario import Scenario, goal_year, policy_start
from .sensitivity import define_problem, sample_mc
from .yamlio import suggest

DEFAULT_PROBABILITY = 0.8
DEFAULT_SAMPLES = 500
DEFAULT_POPSIZE = 24  # candidates per generation
DEFAULT_MAXITER = 40  # generations
FRESH_FACTOR = 2  # the fresh ensemble has FRESH_FACTOR x the samples, seed + FRESH_SEED_OFFSET
FRESH_SEED_OFFSET = 1_000_003
POLISH_FACTORS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)  # coordinate search: x_j -> lo_j + f (x_j - lo_j)
POLISH_ROUNDS = 6
SHAPES = ("constant", "ramp")


# ------------------------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class Decision:
    """One decision variable: a policy lever's constant value, or one end of its ramp."""

    lever: str
    part: str  # value | start | end
    low: float  # the input scenario's value (its maximum over start..goal year)
    high: float  # top of the policy range


def policy_levers(model: Model) -> list[str]:
    """The optimisable levers: role policy with a policy range. InputError when there are none or one has no cost."""
    names = [n for n, p in model.levers.items() if p.role == "policy" and p.policy_range is not None]
    if not names:
        raise InputError("the model has no policy levers (levers with role policy and a policy_range): nothing to "
                         "optimise", str(model.directory / "parameters.yaml"), "levers")
    for n in names:
        if model.levers[n].cost is None:
            raise InputError("a policy lever needs a cost equation (亿元/year) to be optimised",
                             str(model.directory / "parameters.yaml"), f"levers.{n}.cost")
    return names


def input_levels(cm: Compiled, sc: Scenario, start: int, end: int) -> dict[str, float]:
    """Each lever's largest value in the input scenario over calendar years start..end (central run)."""
    sched, sel = input_schedules(cm, sc, end)
    after = sel >= start - 1
    return {k: float(np.max(v[after, 0])) for k, v in sched.items()}


def input_schedules(cm: Compiled, sc: Scenario, end: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The input scenario's lever schedules of the central run (levers acting from its own policy start), step times."""
    model = cm.model
    grid = TimeGrid(model.calibration.start, end, sc.dt)
    return LeverPlan(sc.levers, policy_start(sc, model)).schedules(cm, grid, model.base_values()), grid.times


def held_before(cm: Compiled, sc: Scenario, lever: str, start: int, end: int) -> float | None:
    """The input's constant value of ``lever`` from its policy start to ``start`` (None if it changes meanwhile)."""
    sched, t = input_schedules(cm, sc, end)
    sel = (t >= policy_start(sc, cm.model) - 1) & (t < start - 1)
    v = sched[lever][sel, 0]
    return float(v[0]) if v.size and np.ptp(v) == 0 else (None if v.size else float(sched[lever][0, 0]))


def default_start(model: Model, sc: Scenario) -> int:
    """The first year after the last observation in the model's history (else the model's policy start), never
    before the input's own policy start when the input sets one or sets levers."""
    last = model.history.last_observed_year if model.history is not None else None
    start = last + 1 if last is not None else model.calibration.lever_start
    start = max(start, model.calibration.end + 1)
    if sc.policy_start is not None or sc.levers:
        start = max(start, policy_start(sc, model))
    return start


def decisions(cm: Compiled, sc: Scenario, start: int, end: int, shape: str) -> tuple[list[Decision], list[str]]:
    """Decision variables and notes (levers left out because the input is already at or above the top)."""
    model = cm.model
    levels = input_levels(cm, sc, start, end)
    out, notes = [], []
    for name in policy_levers(model):
        lo, hi = levels[name], model.levers[name].policy_range[1]  # type: ignore[index]
        if lo >= hi:
            notes.append(f"{name} is held at the input's {lo:g} (at or above the top of its policy range, {hi:g})")
            continue
        parts = ("value",) if shape == "constant" else ("start", "end")
        out += [Decision(name, part, lo, hi) for part in parts]
    if not out:
        raise InputError("every policy lever is already at the top of its policy range in the input scenario: "
                         "nothing to optimise", sc.file, "levers")
    return out, notes


# ------------------------------------------------------------------------------------ ensemble


@dataclass
class Ensemble:
    """Calibrated parameter sets: run 0 is the central set, runs 1..n the ok samples."""

    params: dict[str, Any]  # name -> number or (m,) array, m = 1 + n
    m: int
    drawn: int  # samples drawn
    seed: int
    weights: np.ndarray | None = None  # (n,) history weights (None: the prior, equal weights)
    note: str = ""
    failed: int = 0

    @property
    def n(self) -> int:
        """Uncertainty samples that reproduce the calibration targets."""
        return self.m - 1

    @property
    def effective_size(self) -> float:
        """(sum w)^2 / sum w^2 (the sample count with equal weights)."""
        if self.weights is None:
            return float(self.n)
        w = self.weights
        return float(w.sum() ** 2 / (w**2).sum())


def condition(ens: Ensemble, cm: Compiled, sc: Scenario, workers: int | None = None) -> Ensemble:
    """Condition the ensemble on the model's history (history matching, as ``sensitivity --history match``).

    The samples are run under the policies in force during the history years (no scenario levers: the
    candidates act after the history) to the last observation; the samples that agree with every
    observation keep equal weights, the others weight 0. A model without observations keeps the prior.
    ``workers``: processes integrating the samples (default: every available core; same weights whatever N).
    """
    from . import conditioning as cd

    model = cm.model
    hist = model.history
    if hist is None or not hist.observations:
        ens.note = "prior ensemble (the model has no history observations)"
        return ens
    last = hist.last_observed_year or model.calibration.end + 1
    grid = TimeGrid(model.calibration.start, max(last, model.calibration.end + 1), sc.dt)
    samples = ParamBatch.from_values(ens.params, ens.m).take(np.arange(1, ens.m))
    run = run_batch(cm, samples, grid, sc.method, LeverPlan({}, model.calibration.lever_start), calibrate=False,
                    workers=workers).run
    c = cd.condition(model, run, "match")
    ens.weights = np.asarray(c.weights, float)
    kept = int((ens.weights > 0).sum())
    ens.note = (f"conditioned on history (match, implausibility <= {c.threshold:g}): {kept} of {ens.n} calibrated "
                f"samples agree with every observation of history.yaml")
    return ens


def build_ensemble(cm: Compiled, sc: Scenario, samples: int, seed: int, workers: int | None = None) -> Ensemble:
    """Draw ``samples`` uncertainty samples (Latin hypercube, ``seed``) and calibrate them with the central set.

    ``workers``: processes calibrating and integrating them (default: every available core); the ensemble is
    the same whatever the number.
    """
    model = cm.model
    problem = define_problem(model, sc)
    design = sample_mc(problem, samples, seed)
    central = ParamBatch.from_overrides(cm, [sc.parameters])
    x = design.x
    assert x is not None  # sample_mc keeps its rows
    params = central.repeat(samples + 1).with_values(
        {q.name: np.concatenate([[central.value(q.name, 0)], x[:, j]]) for j, q in enumerate(problem.uncertainties)})
    with np.errstate(all="ignore"):
        solved, res = calibrate_batch(cm, params, sc.dt, sc.method, workers=workers)
    ok = np.broadcast_to(res.ok, (samples + 1,))
    if not ok[0]:
        raise InputError(f"the central parameter set cannot be calibrated to {model.calibration.end} "
                         f"({np.atleast_1d(res.reason)[0]})", sc.file or None, "parameters")
    if not ok[1:].any():
        raise InputError(f"no uncertainty sample could be calibrated to {model.calibration.end} ({samples} tried)",
                         None, "--samples")
    keep = np.flatnonzero(ok)
    ens = Ensemble(solved.take(keep).as_dict(), keep.size, samples, seed, failed=int((~ok[1:]).sum()))
    return condition(ens, cm, sc, workers)


# ------------------------------------------------------------------------------------ evaluation


@dataclass
class Evaluation:
    """A batch of S candidates: cost (discounted, above the input), probabilities per goal."""

    x: np.ndarray  # (S, D)
    cost: np.ndarray  # (S,) 亿元, discounted sum over start..goal year of cost above the input
    cost_by_lever: np.ndarray  # (S, L) the same per policy lever
    prob: np.ndarray  # (S, G) P(goal met), scope in force
    prob_seed: np.ndarray  # (S, G) P(goal met) in the seed's scope
    central: np.ndarray  # (S, G) goal value of the central run (seed scope)


def scope_probability(goal: Goal, st: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-run P(goal met) in the scope in force (reported value vs threshold x scope) and in the seed's scope."""
    seed_p = np.where(np.isfinite(st.value), st.probability, 0.0)
    if st.value_reported is None:
        return seed_p, seed_p
    v, thr = np.nan_to_num(st.value_reported, nan=-np.inf), st.threshold_reported
    if goal.poisson:
        k = np.ceil(thr) - 1 if goal.test == ">=" else np.floor(thr)
        p = special.pdtrc(k, np.maximum(np.nan_to_num(st.value_reported, nan=0.0), 0.0))
    else:
        p = (v >= thr) if goal.test == ">=" else (v > thr)
    return np.asarray(p, float), seed_p


class Evaluator:
    """Runs batches of candidate packages on a fixed ensemble (one simulate call per batch).

    ``workers``: processes integrating each batch (default: every available core); every result is the same
    whatever the number (the batch's chunks do not depend on it).
    """

    def __init__(self, cm: Compiled, sc: Scenario, ens: Ensemble, decs: list[Decision], start: int,
                 goals: list[str], shape: str = "constant", workers: int | None = None) -> None:
        self.cm, self.sc, self.ens, self.decs, self.start, self.shape = cm, sc, ens, decs, start, shape
        self.workers = workers
        self.model = cm.model
        self.goal_year = goal_year(self.model)
        self.goals = goals
        self.input_start = policy_start(sc, self.model)  # the input's own levers act from its policy start
        self.levers = policy_levers(self.model)
        self.grid = TimeGrid(self.model.calibration.start, self.goal_year, sc.dt)
        self.years = np.arange(start, self.goal_year + 1)
        rate = float(np.asarray(ens.params["discount_rate"]).reshape(-1)[0]) if "discount_rate" in ens.params else 0.0
        self.discount = (1.0 + rate) ** -(self.years - start).astype(float)
        self.batches = 0
        self.runs = 0
        self.archive: list[Evaluation] = []
        self._input_costs: np.ndarray = self._costs(None)  # (years, L) central-run costs of the input scenario

    # -- batch ------------------------------------------------------------------------------
    def _simulate(self, x: np.ndarray | None, central_only: bool = False) -> tuple[Any, dict[str, Any], int]:
        ens = self.ens
        m = 1 if central_only else ens.m
        s = 1 if x is None else x.shape[0]
        n = s * m
        params = ParamBatch.from_values(ens.params, ens.m).take(np.tile(np.arange(m), s))  # run 0 first in each
        settings: dict[str, np.ndarray] = {}
        ramps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if x is not None:
            for j, d in enumerate(self.decs):
                col = np.repeat(x[:, j], m)
                if d.part == "value":
                    settings[d.lever] = col
                else:
                    a, b = ramps.get(d.lever, (col, col))
                    ramps[d.lever] = (col, b) if d.part == "start" else (a, col)
        # decisions act from the start year; NaN: the input's own setting
        plan = LeverPlan(self.sc.levers, self.input_start, settings, settings_from=self.start - 1)
        levers = plan.schedules(self.cm, self.grid, params)
        t = self.grid.times[:, None]
        for name, (a, b) in ramps.items():  # two-point ramps: the scenario ramp {start: a, end: b} from start to goal
            x0, x1 = self.start - 0.5, self.goal_year - 0.5
            frac = np.clip((t - x0) / (x1 - x0), 0.0, 1.0)
            act = (t >= self.start - 1) & ~np.isnan(a)[None, :]  # NaN: the input's own setting
            levers[name] = np.where(act, a[None, :] + (b - a)[None, :] * frac, levers[name])
        run = run_batch(self.cm, params, self.grid, self.sc.method, levers, calibrate=False, workers=self.workers).run
        self.batches += 1
        self.runs += n
        return run, params.as_dict(), m

    def _costs(self, x: np.ndarray | None) -> np.ndarray:
        """Central-run costs (years, L) of the input (x None) or (S, years, L) of candidates."""
        run, _, m = self._simulate(x, central_only=True)
        return self._cost_block(run, m)[0] if x is None else self._cost_block(run, m)

    def _cost_block(self, run: Any, m: int) -> np.ndarray:
        rows = [self.year_index(y) for y in self.years]
        c = np.stack([run.get(cost_name(k))[rows] for k in self.levers], axis=-1)  # (years, n, L)
        c = c[:, ::m, :]  # central runs (run 0 of each candidate)
        return np.transpose(c, (1, 0, 2))  # (S, years, L)

    def year_index(self, year: int | np.integer[Any]) -> int:
        return int(year - self.grid.start)

    def evaluate(self, x: np.ndarray) -> Evaluation:
        """Evaluate S candidates (rows of ``x``) on the ensemble in one batch."""
        x = np.atleast_2d(np.asarray(x, float))
        run, params, m = self._simulate(x)
        s = x.shape[0]
        status = evaluate(self.model, run, params=params)
        g_all = list(self.model.goals)
        prob = np.zeros((s, len(g_all)))
        prob_seed = np.zeros((s, len(g_all)))
        central = np.zeros((s, len(g_all)))
        w = self.ens.weights
        for g, name in enumerate(g_all):
            p, ps = scope_probability(self.model.goals[name], status[name])
            p, ps = p.reshape(s, m)[:, 1:], ps.reshape(s, m)[:, 1:]
            prob[:, g] = p.mean(axis=1) if w is None else (p * w).sum(axis=1) / w.sum()
            prob_seed[:, g] = ps.mean(axis=1) if w is None else (ps * w).sum(axis=1) / w.sum()
            central[:, g] = status[name].value.reshape(s, m)[:, 0]
        costs = self._cost_block(run, m)  # (S, years, L)
        extra = (costs - self._input_costs[None]) * self.discount[None, :, None]
        by_lever = np.nan_to_num(extra.sum(axis=1), nan=np.inf)
        ev = Evaluation(x, by_lever.sum(axis=1), by_lever, prob, prob_seed, central)
        self.archive.append(ev)
        return ev

    def cost_only(self, x: np.ndarray) -> np.ndarray:
        """(S,) discounted cost above the input of candidates ``x``, from their central runs alone."""
        x = np.atleast_2d(np.asarray(x, float))
        run, _, m = self._simulate(x, central_only=True)
        extra = (self._cost_block(run, m) - self._input_costs[None]) * self.discount[None, :, None]
        return extra.sum(axis=(1, 2))

    def goal_index(self, names: list[str]) -> list[int]:
        g_all = list(self.model.goals)
        return [g_all.index(n) for n in names]

    def lower(self) -> np.ndarray:
        return np.array([d.low for d in self.decs])

    def upper(self) -> np.ndarray:
        return np.array([d.high for d in self.decs])


# ---------------------------------------------------------------------------------- feasibility


@dataclass
class Reach:
    """Per goal: the input's probability, the best reachable (every lever at the top), the binding lever."""

    goal: str
    p_input: float
    p_best: float
    binding: str  # the lever whose removal from the all-top package costs most probability ('' if none)
    loss: float  # that probability loss
    feasible: bool


def reach(ev_: Evaluator, p: float) -> tuple[list[Reach], Evaluation]:
    """One batch: the input, the all-top package, and per lever (input + that lever at top), (top - that lever)."""
    lo, hi = ev_.lower(), ev_.upper()
    d = lo.size
    rows = [lo, hi]
    for j in range(d):
        up = lo.copy()
        up[j] = hi[j]
        rows.append(up)
    for j in range(d):
        down = hi.copy()
        down[j] = lo[j]
        rows.append(down)
    ev = ev_.evaluate(np.array(rows))
    out = []
    lever_of = [dd.lever for dd in ev_.decs]
    for g, name in enumerate(ev_.model.goals):
        p_in, p_top = ev.prob[0, g], ev.prob[1, g]
        gain = ev.prob[2:2 + d, g] - p_in  # lever alone from the input
        loss = p_top - ev.prob[2 + d:, g]  # lever removed from the all-top package
        per_lever: dict[str, tuple[float, float]] = {}
        for j, lev in enumerate(lever_of):  # a ramp has two decisions per lever: add them up
            a, b = per_lever.get(lev, (0.0, 0.0))
            per_lever[lev] = (a + loss[j], b + gain[j])
        best = max(per_lever.items(), key=lambda kv: (kv[1][0], kv[1][1]))
        binding = best[0] if max(best[1]) > 1e-12 else ""
        out.append(Reach(name, float(p_in), float(p_top), binding, float(best[1][0]), bool(p_top >= p)))
    return out, ev


# ------------------------------------------------------------------------------------ optimiser


@dataclass
class Result:
    """The package found and what it took."""

    x: np.ndarray  # (D,)
    evaluation: Evaluation  # of x alone (in sample)
    targeted: list[str]
    reach: list[Reach]
    generations: int
    batches: int
    runs: int
    de_message: str
    polish_steps: int
    notes: list[str] = field(default_factory=list)


def feasible_mask(ev: Evaluation, idx: list[int], p: float) -> np.ndarray:
    """(S,) True where every goal in ``idx`` has P >= p."""
    if not idx:
        return np.ones(ev.x.shape[0], bool)
    return np.asarray((ev.prob[:, idx] >= p).all(axis=1))


def relevant(ev_: Evaluator, reach_ev: Evaluation, targeted: list[str]) -> np.ndarray:
    """(D,) True for decisions whose lever moves the probability of a targeted goal in the reach batch.

    A lever is relevant when raising it alone from the input, or removing it from the all-top package,
    changes P of some targeted goal. Irrelevant levers are held at the input's own setting (they could
    only add cost).
    """
    d = len(ev_.decs)
    idx = ev_.goal_index(targeted)
    if not idx:
        return np.zeros(d, bool)
    pr = reach_ev.prob[:, idx]
    up = np.abs(pr[2:2 + d] - pr[0]).max(axis=1) > 0
    down = np.abs(pr[1] - pr[2 + d:2 + 2 * d]).max(axis=1) > 0
    moved = {dd.lever for j, dd in enumerate(ev_.decs) if up[j] or down[j]}
    return np.array([dd.lever in moved for dd in ev_.decs])


def optimize(ev_: Evaluator, p: float, targeted: list[str], seed: int, popsize: int = DEFAULT_POPSIZE,
             maxiter: int = DEFAULT_MAXITER, free: np.ndarray | None = None, progress: Any = None
             ) -> tuple[np.ndarray, int, str, int]:
    """Least-cost x with P(goal) >= p for the ``targeted`` goals, searching the ``free`` decisions only.

    Decisions that are not free are NaN in the result: the input's own setting. Returns
    (x, generations, message, polish steps).
    """
    from scipy.optimize import NonlinearConstraint, differential_evolution
    from scipy.stats import qmc

    lo_all, hi_all = ev_.lower(), ev_.upper()
    free = np.ones(lo_all.size, bool) if free is None else np.asarray(free, bool)
    idx = ev_.goal_index(targeted)
    held = np.where(free, lo_all, np.nan)
    if not idx or not free.any():  # nothing to meet, or no lever moves it: the input itself is the package
        return np.full(lo_all.size, np.nan), 0, "no goal to meet with a lever: the input scenario is the package", 0
    lo, hi = lo_all[free], hi_all[free]
    cache: dict[bytes, tuple[float, np.ndarray]] = {}

    def full(xs: np.ndarray) -> np.ndarray:
        out = np.tile(held, (xs.shape[0], 1))
        out[:, free] = xs
        return out

    def run(xs: np.ndarray) -> None:
        todo = [i for i in range(xs.shape[0]) if xs[i].tobytes() not in cache]
        if not todo:
            return
        ev = ev_.evaluate(full(xs[todo]))
        for k, i in enumerate(todo):
            cache[xs[i].tobytes()] = (float(ev.cost[k]), ev.prob[k, idx])

    def rows(xt: np.ndarray) -> np.ndarray:  # scipy's vectorised layout (D, S) -> (S, D)
        return np.ascontiguousarray(np.atleast_2d(xt.T if xt.ndim == 2 else xt[None, :]))

    def constraint(xt: np.ndarray) -> np.ndarray:  # (D, S) -> (G, S)
        xs = rows(xt)
        run(xs)
        return np.array([cache[r.tobytes()][1] for r in xs]).T

    def objective(xt: np.ndarray) -> np.ndarray:  # (D, S) -> (S,)
        xs = rows(xt)
        run(xs)
        return np.array([cache[r.tobytes()][0] for r in xs])

    rng = np.random.default_rng(seed)
    d = lo.size
    init = lo + qmc.LatinHypercube(d, rng=rng).random(max(popsize, 5) - 1) * (hi - lo)
    init = np.vstack([hi, init])  # the all-top package: feasible for every goal kept
    gens = [0]

    def callback(intermediate_result: Any) -> None:
        gens[0] += 1
        if progress is not None:
            progress.update(1)

    res = differential_evolution(
        objective, list(zip(lo, hi, strict=True)), strategy="best1bin", maxiter=maxiter, popsize=popsize,
        tol=1e-3, mutation=(0.5, 1.0), recombination=0.7, rng=np.random.default_rng(seed), callback=callback,
        polish=False, init=init, updating="deferred", vectorized=True,
        constraints=NonlinearConstraint(constraint, p, np.inf),
    )
    x = full(np.clip(res.x, lo, hi)[None, :])[0]
    best = ev_.evaluate(x[None, :])
    if not feasible_mask(best, idx, p)[0]:  # DE ended on an infeasible member: fall back to the all-top package
        x = full(hi[None, :])[0]
    x, steps = polish(ev_, x, idx, p, free)
    return x, gens[0], str(res.message), steps


def polish(ev_: Evaluator, x: np.ndarray, idx: list[int], p: float, free: np.ndarray) -> tuple[np.ndarray, int]:
    """Batched coordinate search: move levers back toward the input while every target stays met.

    A round is two batches: (A) each free lever alone moved to lo + f (x - lo) for f in POLISH_FACTORS;
    (B) the best feasible single moves applied cumulatively, largest saving first. The cheapest
    feasible candidate that lowers the cost is taken; stops after POLISH_ROUNDS rounds or when
    nothing improves.
    """
    lo = ev_.lower()
    cost = float(ev_.evaluate(x[None, :]).cost[0])
    steps = 0
    for _ in range(POLISH_ROUNDS):
        moves = [(int(j), f) for j in np.flatnonzero(free) if x[j] > lo[j] for f in POLISH_FACTORS]
        if not moves:
            break
        cand = np.tile(x, (len(moves), 1))
        for r, (j, f) in enumerate(moves):
            cand[r, j] = lo[j] + f * (x[j] - lo[j])
        ev_a = ev_.evaluate(cand)
        ok_a = feasible_mask(ev_a, idx, p) & (ev_a.cost < cost - 1e-12)
        best_move: dict[int, tuple[float, float]] = {}  # lever -> (saving, new value)
        for r in np.flatnonzero(ok_a).tolist():
            j = moves[r][0]
            saving = cost - float(ev_a.cost[r])
            if saving > best_move.get(j, (0.0, 0.0))[0]:
                best_move[j] = (saving, float(cand[r, j]))
        pool_x, pool_c = [cand[ok_a]], [ev_a.cost[ok_a]]
        if len(best_move) > 1:
            order = sorted(best_move, key=lambda j: -best_move[j][0])
            combo = np.tile(x, (len(order) - 1, 1))
            y = x.copy()
            for r, j in enumerate(order):
                y[j] = best_move[j][1]
                if r >= 1:
                    combo[r - 1] = y
            ev_b = ev_.evaluate(combo)
            ok_b = feasible_mask(ev_b, idx, p) & (ev_b.cost < cost - 1e-12)
            pool_x.append(combo[ok_b])
            pool_c.append(ev_b.cost[ok_b])
        px, pc = np.vstack(pool_x), np.concatenate(pool_c)
        if pc.size == 0:
            break
        k = int(np.argmin(pc))
        x, cost = px[k].copy(), float(pc[k])
        steps += 1
    return x, steps


# ---------------------------------------------------------------------------------------- pareto


def pareto(archive: list[Evaluation], p: float, goals: list[int], grid_p: tuple[float, ...]
           ) -> tuple[list[tuple[int, float, np.ndarray, list[int]]], list[tuple[float, float, np.ndarray]]]:
    """From every candidate evaluated: least cost per number of goals met at p, and per p for all ``goals``.

    These are the cheapest packages among those the search evaluated (upper bounds of the true least
    cost). Returns [(k goals met, cost, x, indices of the goals it meets)] and [(p, cost, x)] (cost NaN
    where none qualifies).
    """
    x = np.vstack([a.x for a in archive])
    cost = np.concatenate([a.cost for a in archive])
    prob = np.vstack([a.prob for a in archive])
    met = (prob[:, goals] >= p).sum(axis=1) if goals else np.zeros(x.shape[0], int)
    by_k = []
    for k in range(len(goals) + 1):
        sel = np.flatnonzero((met >= k) & np.isfinite(cost))
        if sel.size:
            i = sel[np.argmin(cost[sel])]
            by_k.append((k, float(cost[i]), x[i], [g for g in goals if prob[i, g] >= p]))
    by_p = []
    for q in grid_p:
        ok = (prob[:, goals] >= q).all(axis=1) if goals else np.ones(x.shape[0], bool)
        sel = np.flatnonzero(ok & np.isfinite(cost))
        if sel.size:
            i = sel[np.argmin(cost[sel])]
            by_p.append((q, float(cost[i]), x[i]))
        else:
            by_p.append((q, float("nan"), np.full(x.shape[1], np.nan)))
    return by_k, by_p


def price_parameters(model: Model) -> list[str]:
    """Parameters used only by cost equations (prices): they move the cost and nothing else."""
    used_by_costs: set[str] = set()
    used_elsewhere: set[str] = set()
    for v in model.variables.values():
        (used_by_costs if v.layer == "cost" else used_elsewhere).update(v.expr.names)
    return sorted(n for n in used_by_costs - used_elsewhere if n in model.params and model.params[n].range is not None)


def cost_range(ev_: Evaluator, x: np.ndarray) -> tuple[float, float]:
    """The package's cost with every price at the low, then the high end of its range (central run)."""
    out = []
    for end in (0, 1):
        params = dict(ev_.ens.params)
        for name in price_parameters(ev_.model):
            v = ev_.model.params[name].range[end]  # type: ignore[index]
            params[name] = v
        ens = Ensemble(params, ev_.ens.m, ev_.ens.drawn, ev_.ens.seed, ev_.ens.weights, ev_.ens.note)
        other = Evaluator(ev_.cm, ev_.sc, ens, ev_.decs, ev_.start, ev_.goals, ev_.shape)
        out.append(float(other.cost_only(x[None, :])[0]))
    return out[0], out[1]


def tolerance(p: float, n_eff: float) -> float:
    """The shortfall allowed on a fresh ensemble: max(0.05, two standard errors of a share p at size n_eff)."""
    return max(0.05, 2.0 * float(np.sqrt(p * (1.0 - p) / max(n_eff, 1.0))))


def parse_goals(model: Model, text: str | None) -> list[str]:
    """--goals a,b -> goal ids (default: all); unknown ids are an InputError with a hint."""
    if text is None:
        return list(model.goals)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise InputError(f"expected comma-separated goal ids, got {text!r}", None, "--goals")
    for n in names:
        if n not in model.goals:
            raise InputError(f"unknown goal {n!r}{suggest(n, model.goals)}", None, "--goals")
    return list(dict.fromkeys(names))
