"""Sensitivity and uncertainty analysis: problem, sampling, experiments, analysis.

Vocabulary (EMA Workbench): **uncertainties** are the model's assumptions we do not know
(parameters with a ``range`` that are neither fixed nor calibrated, including lever baseline
values with an uncertain ``range``); **levers** are what policy sets (analysed with
``levers=True`` over their ``policy_range``, as constant values from the end of the calibration
window); **outcomes** are the goal indicators in the goal year; an **experiment** is one row of
the design (one run).

Separation (SALib): :func:`define_problem` builds a :class:`Problem` (names, bounds,
distributions); ``sample_*`` return the design in the unit hypercube ``U`` and in model units
``X``; :func:`run_experiments` evaluates a design (every row re-calibrated to 2021 in one
vectorised call, then one batch integration); ``analyze_*`` compute indices from the outcomes.

Failed calibrations (a row whose assumptions leave no solution inside the bounds) are counted,
reported and excluded, never filled in:

* Monte Carlo and OAT: the row is dropped (probabilities are conditional on reproducing 2021;
  an OAT end with no solution has no swing);
* Sobol: every Saltelli block (the N base rows, each with its D + 2 rows A, AB_1..AB_D, B) that
  holds a failed row is dropped whole, so the estimator runs on N' <= N complete blocks;
* Morris: every trajectory (D + 1 rows) that holds a failed row is dropped whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compiler import Compiled
from .engine import Run, TimeGrid, simulate
from .errors import InputError
from .goals import evaluate
from .model import Model
from .runner import calibrated_params, parameter_batch, scenario_levers
from .scenario import Scenario, policy_start
from .yamlio import suggest

METHODS = ("oat", "morris", "sobol", "mc")
DEFAULT_SAMPLES = {"oat": None, "morris": 20, "sobol": 1024, "mc": 10_000}
MORRIS_LEVELS = 4
CONF_LEVEL = 0.95
BOOTSTRAP = 100  # SALib resamples for confidence intervals
TRUNCNORM_SDS = 4.0  # truncated normal: sd = (high - low) / TRUNCNORM_SDS, mean = baseline value
QUANTILES = (5, 25, 50, 75, 95)
MAX_SAMPLES = 10_000_000  # --samples above this is refused (README: bad input)
RUN_BYTES_FACTOR = 4  # working copies of one run's records during integration and analysis (measured ~3.5)


def experiment_rows(method: str, n: int, d: int, second_order: bool = False) -> int:
    """Rows (runs) of a design: Morris n(d + 1), Sobol' n(d + 2) (or n(2d + 2)), Monte Carlo n, OAT 2d + 1."""
    return {"oat": 2 * d + 1, "morris": n * (d + 1), "sobol": n * block_size(d, second_order), "mc": n}[method]


def bytes_per_run(model: Model, years: int) -> int:
    """Memory one run needs (bytes): every recorded variable for every year, times RUN_BYTES_FACTOR."""
    n_vars = len(model.stocks) + len(model.flows) + len(model.aux) + len(getattr(model, "annual", {}) or {}) + len(
        model.series)
    return 8 * max(n_vars, 1) * (years + 2) * RUN_BYTES_FACTOR


def machine_memory() -> int | None:
    """Physical memory (bytes), or the container's memory limit when lower; None if unknown."""
    import os

    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(f, encoding="ascii").read(64).strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            sizes.append(int(text))
    return min(sizes) if sizes else None


def check_samples(model: Model, method: str, n: int, d: int, years: int, second_order: bool = False) -> int:
    """The number of runs of the design, or an InputError when it is above MAX_SAMPLES or would not fit in memory."""
    if n > MAX_SAMPLES:
        raise InputError(f"expected at most {MAX_SAMPLES:,} (the documented cap), got {n:,}", None, "--samples")
    rows = experiment_rows(method, n, d, second_order)
    need = rows * bytes_per_run(model, years)
    have = machine_memory()
    if have is not None and need > have:
        fit = max(int(n * have / need), 0)
        raise InputError(f"{n:,} gives {rows:,} runs needing about {need / 2**30:,.1f} GiB of memory, more than this "
                         f"machine's {have / 2**30:,.1f} GiB; use at most about {fit:,}", None, "--samples")
    return rows


# -------------------------------------------------------------------------------------- problem


@dataclass(frozen=True)
class Uncertainty:
    """One sampled input: a parameter's uncertain value or a lever's policy setting.

    ``low``/``high`` are in the parameter's units; ``baseline`` is the value the scenario uses
    (NaN for a lever in policy mode: the scenario's own setting).
    """

    name: str
    low: float
    high: float
    distribution: str = "uniform"  # uniform | loguniform | triangular | truncnormal
    baseline: float = float("nan")
    units: str = ""
    en: str = ""
    zh: str = ""
    lever: bool = False  # True: a lever setting from the calibration end (policy mode)

    def label(self, lang: str = "en") -> str:
        """Display label."""
        return (self.zh if lang == "zh" else self.en) or self.en or self.name

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Values for unit-interval quantiles ``u`` (inverse CDF of the distribution)."""
        u = np.asarray(u, dtype=float)
        lo, hi = self.low, self.high
        if hi == lo:
            return np.full_like(u, lo)
        if self.distribution == "loguniform":
            return lo * np.exp(u * np.log(hi / lo))
        if self.distribution in ("triangular", "truncnormal"):
            from scipy import stats  # imported when needed: scipy.stats costs ~0.5 s
        if self.distribution == "triangular":
            mode = self.baseline if np.isfinite(self.baseline) else (lo + hi) / 2
            return stats.triang.ppf(u, (mode - lo) / (hi - lo), loc=lo, scale=hi - lo)
        if self.distribution == "truncnormal":
            mean = self.baseline if np.isfinite(self.baseline) else (lo + hi) / 2
            sd = (hi - lo) / TRUNCNORM_SDS
            return stats.truncnorm.ppf(u, (lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd)
        return lo + u * (hi - lo)


@dataclass
class Problem:
    """What is sampled: uncertainties (or levers), their bounds and distributions."""

    uncertainties: list[Uncertainty]
    levers: bool = False  # policy mode: the entries are lever settings
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Names in design-column order."""
        return [u.name for u in self.uncertainties]

    @property
    def d(self) -> int:
        """Number of sampled inputs."""
        return len(self.uncertainties)

    def salib(self) -> dict[str, Any]:
        """SALib problem in the unit hypercube (values come from :meth:`transform`)."""
        return {"num_vars": self.d, "names": self.names, "bounds": [[0.0, 1.0]] * self.d}

    def transform(self, u: np.ndarray) -> np.ndarray:
        """(n, d) unit-hypercube design -> (n, d) values in model units."""
        u = np.asarray(u, dtype=float)
        return np.stack([q.ppf(u[:, j]) for j, q in enumerate(self.uncertainties)], axis=1)

    def describe(self) -> list[dict[str, Any]]:
        """The problem as plain data (for the manifest)."""
        return [{"name": q.name, "low": q.low, "high": q.high, "distribution": q.distribution,
                 "baseline": None if not np.isfinite(q.baseline) else q.baseline, "units": q.units,
                 "lever_setting": q.lever} for q in self.uncertainties]


def define_problem(
    model: Model, scenario: Scenario | None = None, levers: bool = False, subset: list[str] | None = None
) -> Problem:
    """The uncertainties of ``model`` (or, with ``levers``, its levers over their policy ranges).

    Uncertainties are parameters with ``p.uncertain`` (a range, not fixed, not calibrated);
    lever baseline values with a range are included (their sampled value holds in the calibration
    window and, unless the scenario sets the lever, after it). Parameters the scenario overrides
    are left out (the scenario fixes them). ``subset`` keeps only the named inputs; unknown or
    unusable names raise :class:`InputError` with a hint.
    """
    overridden = dict(scenario.parameters) if scenario is not None else {}
    notes: list[str] = []
    if levers:
        pool = {n: p for n, p in model.levers.items() if p.policy_range is not None}
        items = [Uncertainty(n, *p.policy_range, "uniform", float("nan"), p.units, p.en, p.zh, True)
                 for n, p in pool.items()]
        others = [n for n, p in pool.items() if p.role != "policy" and (subset is None or n not in subset)]
        if others:
            # external conditions (GDP growth, shocks) are not policy choices, and a one-off event (a pulse
            # in one year) held as a constant from the policy start would repeat every year: analysed only when named
            items = [q for q in items if q.name not in others]
            notes.append(f"not analysed (external conditions and one-off events, not policies; name them with "
                         f"--params to hold them constant from the policy start): {', '.join(others)}")
    else:
        pool = {n: p for n, p in model.params.items() if p.uncertain and n not in overridden}
        items = [Uncertainty(n, *p.range, p.distribution, float(p.value), p.units, p.en, p.zh, False)  # type: ignore[misc]
                 for n, p in pool.items()]
        skipped = sorted(n for n in overridden if n in model.params and model.params[n].uncertain)
        if skipped:
            notes.append(f"not sampled (set by the scenario): {', '.join(skipped)}")
    if subset is not None:
        chosen = []
        for name in subset:
            if name not in pool:
                raise InputError(_why_not(model, name, levers, overridden), None, "--params")
            if name in chosen:
                raise InputError(f"'{name}' is named twice", None, "--params")
            chosen.append(name)
        items = [q for q in items if q.name in chosen]
        items.sort(key=lambda q: chosen.index(q.name))
    if not items:
        raise InputError("nothing to analyse: no uncertain inputs", None, "--params")
    return Problem(items, levers, notes)


def _why_not(model: Model, name: str, levers: bool, overridden: dict[str, float]) -> str:
    what = "lever" if levers else "uncertainty"
    p = model.params.get(name)
    if p is None:
        pool = model.levers if levers else [n for n, q in model.params.items() if q.uncertain]
        return f"unknown {what} '{name}'{suggest(name, pool)}"
    if levers:
        return f"'{name}' is a parameter, not a lever (drop --levers to analyse parameters)"
    if name in overridden:
        return f"'{name}' is set by the scenario (parameters.{name} = {overridden[name]:g}); it is not sampled"
    if p.provenance == "calibrated":
        return f"'{name}' is calibrated (solved to reproduce 2021), not an uncertainty"
    if p.fixed:
        return f"'{name}' is fixed (fixed: true in parameters.yaml), not an uncertainty" + (
            "; use --levers for policy sensitivity" if p.is_lever else "")
    return f"'{name}' has no uncertainty range"


# ------------------------------------------------------------------------------------- sampling


@dataclass
class Design:
    """A design: unit-hypercube ``u`` (NaN = the scenario's own setting) and values ``x``, (n, d)."""

    method: str
    u: np.ndarray
    x: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def sample_oat(problem: Problem) -> Design:
    """Row 0 = baseline; rows 1 + 2j and 2 + 2j = input j at the low and high end of its range."""
    d = problem.d
    base_u = np.full(d, np.nan)
    base_x = np.array([q.baseline for q in problem.uncertainties], dtype=float)
    u = np.tile(base_u, (1 + 2 * d, 1))
    x = np.tile(base_x, (1 + 2 * d, 1))
    for j, q in enumerate(problem.uncertainties):
        u[1 + 2 * j, j], u[2 + 2 * j, j] = 0.0, 1.0
        x[1 + 2 * j, j], x[2 + 2 * j, j] = q.low, q.high
    return Design("oat", u, x, {"rows": "baseline, then (low, high) per input"})


def sample_morris(problem: Problem, trajectories: int, seed: int, levels: int = MORRIS_LEVELS) -> Design:
    """SALib Morris design: ``trajectories`` trajectories of d + 1 rows on a ``levels``-level grid."""
    from SALib.sample import morris

    u = morris.sample(problem.salib(), trajectories, num_levels=levels, seed=seed)
    return Design("morris", u, problem.transform(u), {"trajectories": trajectories, "levels": levels})


def sample_sobol(problem: Problem, n: int, seed: int, second_order: bool = False) -> Design:
    """SALib Sobol' (Saltelli) design: N blocks of d + 2 rows (2d + 2 with second order)."""
    from SALib.sample import sobol

    u = sobol.sample(problem.salib(), n, calc_second_order=second_order, scramble=True, seed=seed)
    return Design("sobol", u, problem.transform(u), {"N": n, "second_order": second_order,
                                                      "block": block_size(problem.d, second_order)})


def sample_mc(problem: Problem, n: int, seed: int, sampler: str = "lhs") -> Design:
    """Monte Carlo design from scipy.stats.qmc: Latin hypercube (``lhs``) or scrambled Sobol."""
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    eng = qmc.LatinHypercube(problem.d, rng=rng) if sampler == "lhs" else qmc.Sobol(problem.d, scramble=True, rng=rng)
    u = eng.random(n)
    return Design("mc", u, problem.transform(u), {"sampler": "LatinHypercube" if sampler == "lhs" else "scrambled Sobol"})


def block_size(d: int, second_order: bool = False) -> int:
    """Rows per Saltelli block."""
    return 2 * d + 2 if second_order else d + 2


# ---------------------------------------------------------------------------------- experiments


@dataclass
class Experiments:
    """Outcomes of a design. Rows whose calibration failed have NaN outcomes and ``ok`` False."""

    design: Design
    outcome_names: list[str]  # goal names
    ok: np.ndarray  # (n,) calibration solved within bounds
    reason: np.ndarray  # (n,) why not ("" when ok)
    outcomes: np.ndarray  # (n, G) goal indicator values in the goal year
    probability: np.ndarray  # (n, G) P(goal met) per row (0/1, or Poisson for count goals)
    run: Run  # the runs of the ok rows (in row order)
    free: dict[str, np.ndarray]  # solved free parameters, (n,) each (NaN where not ok)
    max_residual: float  # largest |relative residual| of the 2021 targets over ok rows
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Rows with no calibration solution."""
        return int((~self.ok).sum())

    def failure_counts(self) -> dict[str, int]:
        """Failed rows by reason."""
        out: dict[str, int] = {}
        for r in self.reason[~self.ok]:
            out[str(r)] = out.get(str(r), 0) + 1
        return out


def require_recalibration(scenario: Scenario) -> None:
    """Every sample is re-calibrated, so a scenario with ``recalibrate: false`` cannot be analysed."""
    if not scenario.recalibrate:
        raise InputError("sensitivity re-calibrates every sample to 2021; a scenario with 'recalibrate: false' "
                         "cannot be analysed", scenario.file, "recalibrate")


def _scalar(v: Any) -> Any:
    return float(np.asarray(v).reshape(-1)[0]) if np.ndim(v) and np.size(v) == 1 else v


def run_experiments(
    cm: Compiled, problem: Problem, scenario: Scenario, design: Design, end: int | None = None,
    progress: Any = None, workers: int | None = None,
) -> Experiments:
    """Calibrate every row of ``design`` to 2021 (one vectorised call), then integrate all rows in one batch.

    Uncertainties set parameter values (lever baselines included); policy-mode rows set lever
    values from the end of the calibration window (NaN: the scenario's own setting). The scenario's
    levers act from the window's end exactly as in :func:`sdsim.runner.run_scenarios`.
    ``end`` is the last simulated year (default: the scenario's end). ``progress`` (tqdm-like)
    gets ``set_description``/``update`` calls per stage. ``workers`` processes calibrate and integrate
    chunks of the design (default: every available core); the outcomes are bit-identical whatever
    the number.
    """
    import time

    require_recalibration(scenario)
    cm = cm.with_tables(scenario.tables)  # the scenario's graphical functions, for calibration and runs
    model = cm.model
    cal = model.calibration
    x = design.x
    n = x.shape[0]
    timings: dict[str, float] = {}

    def stage(text: str) -> None:
        if progress is not None:
            progress.set_description(text)

    params = {k: _scalar(v) for k, v in parameter_batch(cm, [scenario.parameters]).items()}
    settings: dict[str, np.ndarray] = {}
    for j, q in enumerate(problem.uncertainties):
        col = x[:, j].copy()
        if q.lever:
            settings[q.name] = col
        else:
            col[np.isnan(col)] = params[q.name]
            params[q.name] = col
    stage(f"calibrating {n:,} samples to {cal.end}")
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):  # samples without a solution are flagged and counted, not printed by numpy
        solved, res = calibrated_params(cm, params, scenario.dt, scenario.method, strict=False, workers=workers)
    timings["calibrate_s"] = time.perf_counter() - t0
    if progress is not None:
        progress.update(1)
    ok = np.broadcast_to(res.ok, (n,)).copy()
    reason = np.broadcast_to(res.reason, (n,)).copy()
    free = {f.name: np.where(ok, np.broadcast_to(np.asarray(solved[f.name], float), (n,)), np.nan) for f in cal.free}
    if not ok.any():
        raise InputError(f"no sample could be calibrated to {cal.end} ({n} tried; first reason: {reason[0]})")
    idx = np.flatnonzero(ok)
    sub = {}
    for k, v in solved.items():
        if np.ndim(v) and np.size(v) == n and n > 1:
            sub[k] = np.asarray(v)[idx]
        else:
            sub[k] = _scalar(v)
    sub_settings = {k: v[idx] for k, v in settings.items()}
    grid = TimeGrid(cal.start, end if end is not None else scenario.end, scenario.dt)
    stage(f"simulating {idx.size:,} runs {grid.start}-{grid.end}")
    t0 = time.perf_counter()
    levers = scenario_levers(cm, grid, sub, scenario.levers, sub_settings, first_year=policy_start(scenario, model))
    with np.errstate(all="ignore"):
        run = simulate(cm, sub, levers, grid, scenario.method, n=idx.size, workers=workers)
    timings["simulate_s"] = time.perf_counter() - t0
    if progress is not None:
        progress.update(1)
    status = evaluate(model, run)
    names = list(model.goals)
    outcomes = np.full((n, len(names)), np.nan)
    prob = np.full((n, len(names)), np.nan)
    for g, name in enumerate(names):
        outcomes[idx, g] = status[name].value
        prob[idx, g] = status[name].probability
    resid = np.abs(res.residuals[res.ok])
    return Experiments(design, names, ok, reason, outcomes, prob, run, free, float(resid.max()) if resid.size else 0.0,
                       timings)


# -------------------------------------------------------------------------------------- analysis


@dataclass
class Index:
    """One sensitivity index: ``value`` of ``index`` for ``parameter`` on ``output``, with a CI."""

    method: str
    parameter: str
    output: str
    index: str
    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    note: str = ""  # "unaffected" when the output does not move with these inputs (see UNAFFECTED_RTOL)


RANKING = {"oat": "abs_swing", "morris": "mu_star", "sobol": "ST", "mc": "abs_spearman"}
UNAFFECTED_RTOL = 1e-9  # an output whose spread is at most this share of its size is unaffected by the inputs
UNAFFECTED = "unaffected"


def relative_spread(y: np.ndarray) -> float:
    """(max - min) / max |y| over the finite values (0 for a constant or all-zero output, NaN with none)."""
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y)]
    if y.size == 0:
        return float("nan")
    scale = float(np.max(np.abs(y)))
    return float(np.ptp(y)) / scale if scale > 0 else 0.0


def is_unaffected(y: np.ndarray) -> bool:
    """True when ``y`` varies by no more than round-off: relative spread <= UNAFFECTED_RTOL."""
    r = relative_spread(y)
    return bool(np.isfinite(r) and r <= UNAFFECTED_RTOL)


def _spread_row(method: str, output: str, y: np.ndarray) -> Index:
    """The relative spread of an output over the runs analysed, flagged when it is unaffected."""
    return Index(method, "(all inputs)", output, "relative_spread", relative_spread(y),
                 note=UNAFFECTED if is_unaffected(y) else "")


def unaffected_outputs(indices: list[Index]) -> dict[str, float]:
    """Outputs marked unaffected, with their relative spread."""
    return {i.output: i.value for i in indices if i.index == "relative_spread" and i.note == UNAFFECTED}


def analyze_oat(problem: Problem, exp: Experiments) -> list[Index]:
    """Per input and outcome: outcome at the low end, at the high end, swing = high - low."""
    out = []
    y = exp.outcomes
    for g, name in enumerate(exp.outcome_names):
        spread = _spread_row("oat", name, y[:, g])
        out += [spread, Index("oat", "(baseline)", name, "value", float(y[0, g]))]
        scale = float(np.nanmax(np.abs(y[:, g]))) if np.isfinite(y[:, g]).any() else 0.0
        for j, q in enumerate(problem.uncertainties):
            lo, hi = y[1 + 2 * j, g], y[2 + 2 * j, g]
            swing = float(hi - lo)
            note = ""
            if np.isfinite(swing) and abs(swing) <= UNAFFECTED_RTOL * scale:
                swing, note = 0.0, UNAFFECTED  # round-off, not an effect
            out += [
                Index("oat", q.name, name, "low_value", float(lo), note=note),
                Index("oat", q.name, name, "high_value", float(hi), note=note),
                Index("oat", q.name, name, "swing", swing, note=note),
                Index("oat", q.name, name, "abs_swing", abs(swing), note=note),
            ]
    return out


def complete_groups(ok: np.ndarray, size: int) -> np.ndarray:
    """(n_groups,) True for groups of ``size`` consecutive rows that are all ok."""
    return ok.reshape(-1, size).all(axis=1)


def _salib_seed(seed: int) -> int:
    return int(seed) + 1  # SALib ignores a seed of 0 (``if seed:``), so shift to stay reproducible


def analyze_morris(problem: Problem, design: Design, outcomes: np.ndarray, ok: np.ndarray, names: list[str],
                   seed: int) -> tuple[list[Index], int]:
    """SALib Morris on complete trajectories: mu*, mu, sigma per input and outcome (effects per whole range).

    Returns the indices and the number of trajectories used.
    """
    from SALib.analyze import morris

    size = problem.d + 1
    keep = complete_groups(ok, size)
    if keep.sum() < 2:
        raise InputError(f"Morris analysis needs at least 2 complete trajectories; {int(keep.sum())} had every "
                         "sample calibrated")
    rows = np.repeat(keep, size)
    u = design.u[rows]
    out = []
    for g, name in enumerate(names):
        y = outcomes[rows, g]
        spread = _spread_row("morris", name, y)
        out.append(spread)
        if spread.note == UNAFFECTED:  # round-off noise would be ranked as effects
            res = {"mu_star": np.zeros(problem.d), "mu": np.zeros(problem.d), "sigma": np.zeros(problem.d),
                   "mu_star_conf": np.zeros(problem.d)}
        else:
            res = morris.analyze(problem.salib(), u, y, num_resamples=BOOTSTRAP, conf_level=CONF_LEVEL,
                                 num_levels=MORRIS_LEVELS, seed=_salib_seed(seed))
        for j, q in enumerate(problem.uncertainties):
            ms, c = float(res["mu_star"][j]), float(res["mu_star_conf"][j])
            out += [
                Index("morris", q.name, name, "mu_star", ms, ms - c, ms + c, spread.note),
                Index("morris", q.name, name, "mu", float(res["mu"][j]), note=spread.note),
                Index("morris", q.name, name, "sigma", float(res["sigma"][j]), note=spread.note),
            ]
    return out, int(keep.sum())


def sobol_indices(problem: dict[str, Any], y: np.ndarray, second_order: bool, seed: int) -> dict[str, np.ndarray]:
    """SALib Sobol' analysis of one output over complete blocks (zeros for a constant output)."""
    from SALib.analyze import sobol

    d = problem["num_vars"]
    if is_unaffected(y):  # constant up to round-off: the variance ratios of noise are meaningless
        z = np.zeros(d)
        res = {"S1": z, "S1_conf": z, "ST": z, "ST_conf": z}
        if second_order:
            res.update(S2=np.zeros((d, d)), S2_conf=np.zeros((d, d)))
        return res
    return sobol.analyze(problem, y, calc_second_order=second_order, num_resamples=BOOTSTRAP,
                         conf_level=CONF_LEVEL, seed=_salib_seed(seed))


def analyze_sobol(problem: Problem, outcomes: np.ndarray, ok: np.ndarray, names: list[str], seed: int,
                  second_order: bool = False) -> tuple[list[Index], int]:
    """S1 and ST (and S2) with CONF_LEVEL bootstrap intervals, on complete Saltelli blocks only.

    Returns the indices and the number of blocks used.
    """
    size = block_size(problem.d, second_order)
    keep = complete_groups(ok, size)
    if keep.sum() < 2:
        raise InputError(f"Sobol analysis needs at least 2 complete blocks; {int(keep.sum())} had every sample calibrated")
    rows = np.repeat(keep, size)
    out = []
    for g, name in enumerate(names):
        spread = _spread_row("sobol", name, outcomes[rows, g])
        out.append(spread)
        res = sobol_indices(problem.salib(), outcomes[rows, g], second_order, seed)
        for j, q in enumerate(problem.uncertainties):
            for key in ("S1", "ST"):
                v, c = float(res[key][j]), float(res[f"{key}_conf"][j])
                out.append(Index("sobol", q.name, name, key, v, v - c, v + c, spread.note))
        if second_order:
            for a in range(problem.d):
                for b in range(a + 1, problem.d):
                    v, c = float(res["S2"][a, b]), float(res["S2_conf"][a, b])
                    pair = f"{problem.names[a]}:{problem.names[b]}"
                    out.append(Index("sobol", pair, name, "S2", v, v - c, v + c, spread.note))
    return out, int(keep.sum())


def sobol_base_rows(problem: Problem, ok: np.ndarray, second_order: bool = False) -> np.ndarray:
    """Indices of the A and B rows of complete blocks (a quasi-random sample of the inputs)."""
    size = block_size(problem.d, second_order)
    keep = np.flatnonzero(complete_groups(ok, size))
    return np.sort(np.concatenate([keep * size, keep * size + size - 1]))


def analyze_mc(problem: Problem, x: np.ndarray, outcomes: np.ndarray, ok: np.ndarray, names: list[str]) -> list[Index]:
    """Spearman rank correlation of each input with each outcome over the ok rows, with a Fisher-z interval.

    The interval uses the standard error 1.06 / sqrt(n - 3) of Fieller, Hartley & Pearson (1957).
    """
    from scipy import stats

    xs, ys = x[ok], outcomes[ok]
    n = xs.shape[0]
    rx = stats.rankdata(xs, axis=0)
    ry = stats.rankdata(ys, axis=0)
    rx = (rx - rx.mean(0)) / np.where(rx.std(0) == 0, np.inf, rx.std(0))
    ry = (ry - ry.mean(0)) / np.where(ry.std(0) == 0, np.inf, ry.std(0))
    rho = rx.T @ ry / n  # (d, G)
    z = stats.norm.ppf(0.5 + CONF_LEVEL / 2) * 1.06 / np.sqrt(max(n - 3, 1))
    out = []
    for g, name in enumerate(names):
        spread = _spread_row("mc", name, ys[:, g])
        out.append(spread)
        for j, q in enumerate(problem.uncertainties):
            if spread.note == UNAFFECTED:  # ranks of round-off noise are not an association
                out.append(Index("mc", q.name, name, "spearman", 0.0, 0.0, 0.0, UNAFFECTED))
                out.append(Index("mc", q.name, name, "abs_spearman", 0.0, note=UNAFFECTED))
                continue
            r = float(np.clip(rho[j, g], -1.0, 1.0))
            at = np.arctanh(np.clip(r, -0.999999, 0.999999))
            lo, hi = float(np.tanh(at - z)), float(np.tanh(at + z))
            out.append(Index("mc", q.name, name, "spearman", r, lo, hi))
            out.append(Index("mc", q.name, name, "abs_spearman", abs(r)))
    return out


def ranking(indices: list[Index], method: str, output: str) -> list[Index]:
    """Indices of ``output`` by the method's ranking index, most influential first (NaN last)."""
    key = RANKING[method]
    rows = [i for i in indices if i.output == output and i.index == key]
    return sorted(rows, key=lambda i: (not np.isfinite(i.value), -np.nan_to_num(i.value, nan=0.0), i.parameter))


# ------------------------------------------------------------------------------ goal probability


@dataclass
class GoalProbability:
    """Probability that a goal is met in the goal year, over the calibrated samples."""

    goal: str
    n: int
    expected_met: float  # number met (Poisson goals: the sum of per-sample probabilities)
    probability: float
    ci_low: float
    ci_high: float
    how: str
    p5: float
    median: float
    p95: float


def goal_probability(model: Model, exp: Experiments, rows: np.ndarray | None = None) -> list[GoalProbability]:
    """P(goal met) with a Wilson 95 % binomial interval on the rows (default: all ok rows).

    Count goals with a Poisson law (``star_listings``) average each sample's P(N passes the test);
    their interval is the Wilson interval of that mean as if it were a share of n, which is
    conservative (the averaged probability varies less than a 0/1 count).
    """
    from scipy import stats

    sel = exp.ok if rows is None else np.isin(np.arange(exp.ok.size), rows) & exp.ok
    n = int(sel.sum())
    out = []
    for g, name in enumerate(exp.outcome_names):
        goal = model.goals[name]
        p = exp.probability[sel, g]
        k = float(p.sum())
        ci = stats.binomtest(int(round(k)), n).proportion_ci(confidence_level=CONF_LEVEL, method="wilson")
        v = exp.outcomes[sel, g]
        q5, q50, q95 = np.percentile(v, [5, 50, 95])
        how = "mean Poisson P(count passes)" if goal.poisson else "share of samples meeting the goal"
        out.append(GoalProbability(name, n, k, k / n, float(ci.low), float(ci.high), how, q5, q50, q95))
    return out


def quantiles(run: Run, names: list[str], qs: tuple[int, ...] = QUANTILES) -> dict[str, np.ndarray]:
    """(years, len(qs)) percentiles over the runs of each named variable (NaN years stay NaN)."""
    out = {}
    for name in names:
        v = run.get(name)
        good = np.isfinite(v).all(axis=1)
        q = np.full((v.shape[0], len(qs)), np.nan)
        if good.any():
            q[good] = np.percentile(v[good], qs, axis=1).T
        out[name] = q
    return out
