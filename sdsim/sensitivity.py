"""Sensitivity and uncertainty analysis: problem, sampling, experiments, analysis.

Vocabulary (EMA Workbench): **uncertainties** are the model's assumptions we do not know
(parameters with a ``range`` that are neither fixed nor calibrated, including lever baseline
values with an uncertain ``range``); **levers** are what policy sets (analysed with
``levers=True`` over their ``policy_range``, as constant values from the end of the calibration
window); **outcomes** are the goal indicators in the goal year; an **experiment** is one row of
the design (one run).

Separation (SALib): :func:`define_problem` builds a :class:`Problem` (names, bounds,
distributions); ``sample_*`` return the design in the unit hypercube ``U`` and in model units
``X``; :func:`run_experiments` evaluates a design (every row re-calibrated to the calibration targets in one
vectorised call, then one batch integration, every record held) and :func:`stream_experiments` the
same chunk by chunk, keeping only what the outputs need (memory bounded by the chunk size);
``analyze_*`` compute indices from the outcomes.

Failed calibrations (a row whose assumptions leave no solution inside the bounds) are counted,
reported and excluded, never filled in:

* Monte Carlo and OAT: the row is dropped (probabilities are conditional on reproducing the calibration targets;
  an OAT end with no solution has no swing);
* Sobol: every Saltelli block (the N base rows, each with its D + 2 rows A, AB_1..AB_D, B) that
  holds a failed row is dropped whole, so the estimator runs on N' <= N complete blocks;
* Morris: every trajectory (D + 1 rows) that holds a failed row is dropped whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .batch import LeverPlan, ParamBatch, run_batch
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


BASE_BYTES = 250 * 2**20  # the process before the ensemble: interpreter, numpy/scipy/matplotlib, the model (measured ~240 MB)


def ensemble_bytes(model: Model, method: str, n: int, d: int, years: int, second_order: bool = False,
                   samples: bool = True, workers: int | None = None) -> int:
    """Peak memory (bytes) of ``sensitivity`` streaming a design of ``n`` (see :func:`stream_experiments`).

    ``BASE_BYTES``, plus per worker the records of one chunk (:data:`sdsim.calibrate.CHUNK` runs,
    :func:`bytes_per_run`) and, for Monte Carlo, the percentile sketches (exact values up to
    :data:`sdsim.sketch.EXACT_BYTES`, else the prior and conditioned histograms), plus per design row
    the design (``u``; Sobol', Morris and OAT also hold ``x``, and SALib's sampler two copies more),
    its outcomes, solved parameters and observation values, and the analysis' rank arrays. With
    ``samples`` (samples.npz) the whole (n, d) value matrix and the per-row tables are built once more.
    """
    from . import parallel
    from . import sketch as sk
    from .calibrate import CHUNK

    rows = experiment_rows(method, n, d, second_order)
    w = min(parallel.resolve(workers), max(-(-rows // CHUNK), 1))
    n_vars = len(model.stocks) + len(model.flows) + len(model.aux) + len(getattr(model, "annual", {}) or {}) + len(
        model.series)
    goals = len(model.goals)
    free = len(model.calibration.free)
    obs = len(getattr(getattr(model, "history", None), "observations", []) or [])
    # a chunk's calibration batch and records: half of bytes_per_run's four working copies (measured on the Yubei
    # model: 530 MB peak for 100,000 samples with one worker, 1.36 GB in the larger of two processes for 1e6)
    fixed = BASE_BYTES + w * min(rows, CHUNK) * bytes_per_run(model, years) // 2
    if method == "mc":
        streams = n_vars * (years + 2)
        fixed += 2 * min(8 * streams * rows, sk.EXACT_BYTES) if sk.is_exact(streams, rows) else \
            3 * w * 8 * streams * (sk.BINS + 2)
    per_row = 8 * (d if method == "mc" else 4 * d)  # design u (and x, and SALib's temporaries)
    per_row += 8 * (2 * goals + free + obs + 2) + 16  # outcomes, P(met), free, observations, weight, ok/reason
    per_row += 8 * (6 + goals)  # ranks of one input and of the outcomes (analysis)
    if samples:
        per_row += 8 * (2 * d + 2 * goals + free + 2)
    return int(fixed + rows * per_row)


def check_samples(model: Model, method: str, n: int, d: int, years: int, second_order: bool = False,
                  samples: bool = True, workers: int | None = None) -> int:
    """The number of runs of the design, or an InputError when it is above MAX_SAMPLES or would not fit in memory
    (:func:`ensemble_bytes`: the ensemble is streamed, so memory grows with a few numbers per run)."""
    if n > MAX_SAMPLES:
        raise InputError(f"expected at most {MAX_SAMPLES:,} (the documented cap), got {n:,}", None, "--samples")
    rows = experiment_rows(method, n, d, second_order)
    need = ensemble_bytes(model, method, n, d, years, second_order, samples, workers)
    have = machine_memory()
    if have is not None and need > have:
        lo, hi = 0, n  # the largest sample size that fits (the estimate grows with n)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ensemble_bytes(model, method, mid, d, years, second_order, samples, workers) <= have:
                lo = mid
            else:
                hi = mid - 1
        raise InputError(f"{n:,} gives {rows:,} runs needing about {need / 2**30:,.1f} GiB of memory, more than this "
                         f"machine's {have / 2**30:,.1f} GiB; use at most about {lo:,}"
                         + ("" if not samples else " (or leave out samples.npz with --no-samples)"), None, "--samples")
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


def _bounds(r: tuple[float, float] | None) -> tuple[float, float]:
    """A range known to be set (the pools keep only inputs with one): (low, high) in the input's units."""
    assert r is not None
    return r


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
        items = [Uncertainty(n, *_bounds(p.policy_range), "uniform", float("nan"), p.units, p.en, p.zh, True)
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
        items = [Uncertainty(n, *_bounds(p.range), p.distribution, float(p.value), p.units, p.en, p.zh, False)
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
        return f"'{name}' is calibrated (solved to reproduce {model.calibration.end}), not an uncertainty"
    if p.fixed:
        return f"'{name}' is fixed (fixed: true in parameters.yaml), not an uncertainty" + (
            "; use --levers for policy sensitivity" if p.is_lever else "")
    return f"'{name}' has no uncertainty range"


# ------------------------------------------------------------------------------------- sampling


@dataclass
class Design:
    """A design: unit-hypercube ``u`` (NaN = the scenario's own setting) and values ``x``, (n, d).

    A *lean* design (``x`` None, ``transform`` set) holds only ``u`` and computes values row block by
    row block (:meth:`rows`) or column by column (:meth:`column`); :meth:`values` builds the whole
    ``x`` when it is really needed (samples.npz).
    """

    method: str
    u: np.ndarray
    x: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)
    transform: Any = None  # (m, d) u -> (m, d) x, for a lean design
    columns: Any = None  # (j, u column) -> x column, for a lean design

    @property
    def n(self) -> int:
        """Number of experiments (rows)."""
        return int(self.u.shape[0])

    def rows(self, sl: Any) -> np.ndarray:
        """(m, d) values of the rows ``sl`` (a slice or an index array)."""
        return self.x[sl] if self.x is not None else self.transform(self.u[sl])

    def column(self, j: int, sel: Any = slice(None)) -> np.ndarray:
        """Values of input ``j`` on the rows ``sel`` (equal to ``x[sel, j]``)."""
        return self.x[sel, j] if self.x is not None else self.columns(j, self.u[sel, j])

    def values(self) -> np.ndarray:
        """The whole (n, d) value matrix (built for a lean design: memory grows with n)."""
        return self.x if self.x is not None else self.transform(self.u)


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
    u = saltelli(problem.d, n, seed, second_order)
    return Design("sobol", u, problem.transform(u), {"N": n, "second_order": second_order,
                                                      "block": block_size(problem.d, second_order)})


def saltelli(d: int, n: int, seed: int, second_order: bool = False) -> np.ndarray:
    """SALib's ``sobol.sample`` (no groups, no skipped values, unit bounds) built with array copies instead of
    its Python loop over every element (about 1 s for N = 1024, d = 60): the same scrambled Sobol' base
    sequence (A = its first d columns, B = the last d), then per base row A, AB_1..AB_d (A with column k
    from B), with second order BA_1..BA_d, and B. Bit-identical to SALib (its scaling to [0, 1] is exact)."""
    import warnings

    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy ``seed`` keyword, passed as SALib passes it
        base = qmc.Sobol(d=2 * d, scramble=True, seed=seed).random(n)
    a, b = base[:, :d], base[:, d:]
    out = np.empty((n, block_size(d, second_order), d))
    k = np.arange(d)
    out[:, 0] = a
    out[:, 1:d + 1] = a[:, None, :]
    out[:, 1 + k, k] = b
    if second_order:
        out[:, d + 1:2 * d + 1] = b[:, None, :]
        out[:, d + 1 + k, k] = a
    out[:, -1] = b
    return out.reshape(-1, d)


def sample_mc(problem: Problem, n: int, seed: int, sampler: str = "lhs", lean: bool = False) -> Design:
    """Monte Carlo design from scipy.stats.qmc: Latin hypercube (``lhs``) or scrambled Sobol.

    ``lean`` (Latin hypercube only): the same design built in place without scipy's three (n, d)
    temporaries and returned without ``x`` (values are computed by row blocks or columns), so the
    design holds 8 d bytes per row instead of about 40 d at its peak.
    """
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    info = {"sampler": "LatinHypercube" if sampler == "lhs" else "scrambled Sobol"}
    if lean and sampler == "lhs":
        eng = qmc.LatinHypercube(problem.d, rng=rng)
        u = _lhs_in_place(eng.rng, n, problem.d)
        return Design("mc", u, None, info, problem.transform,
                      lambda j, col: problem.uncertainties[j].ppf(col))
    eng = qmc.LatinHypercube(problem.d, rng=rng) if sampler == "lhs" else qmc.Sobol(problem.d, scramble=True, rng=rng)
    u = eng.random(n)
    return Design("mc", u, problem.transform(u), info)


def _lhs_in_place(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """scipy's scrambled Latin hypercube (``LatinHypercube._random_lhs``: uniforms (n, d), then one shuffled
    permutation of 1..n per column, u = (perm - uniform) / n) drawn from the same stream in the same order,
    computed in place: bit-identical, holding one (n, d) array."""
    u = np.empty((n, d))
    step = max(1, (1 << 20) // max(d, 1))
    for a in range(0, n, step):  # the same draws as one uniform(size=(n, d)) call, row block by row block
        u[a:a + step] = rng.uniform(size=(min(n, a + step) - a, d))
    for i in range(d):
        perm = np.arange(1, n + 1)
        rng.shuffle(perm)
        u[:, i] = (perm - u[:, i]) / n
    return u


def block_size(d: int, second_order: bool = False) -> int:
    """Rows per Saltelli block."""
    return 2 * d + 2 if second_order else d + 2


def sample(problem: Problem, method: str, n: int | None, seed: int, second_order: bool = False,
           lean: bool = False) -> Design:
    """The design of ``method`` (one of :data:`METHODS`): ``n`` trajectories (morris), base samples (sobol) or
    samples (mc; ``lean``: built in place, see :func:`sample_mc`); OAT takes no ``n``."""
    if method == "oat":
        return sample_oat(problem)
    assert n is not None, "every method but oat needs a sample size"
    if method == "morris":
        return sample_morris(problem, n, seed)
    if method == "sobol":
        return sample_sobol(problem, n, seed, second_order)
    return sample_mc(problem, n, seed, lean=lean)


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
    run: Run | None  # the runs of the ok rows (in row order); None when streamed (see ``stream``)
    free: dict[str, np.ndarray]  # solved free parameters, (n,) each (NaN where not ok)
    max_residual: float  # largest |relative residual| of the calibration targets over ok rows
    timings: dict[str, float] = field(default_factory=dict)
    stream: Stream | None = None  # what a streamed ensemble kept of its runs (stream_experiments)

    @property
    def years(self) -> np.ndarray:
        """Years of the runs."""
        return self.run.years if self.run is not None else self.stream.years  # type: ignore[union-attr]

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
        raise InputError("sensitivity re-calibrates every sample to the calibration targets; a scenario with "
                         "'recalibrate: false' cannot be analysed", scenario.file, "recalibrate")


def _scalar(v: Any) -> Any:
    return float(np.asarray(v).reshape(-1)[0]) if np.ndim(v) and np.size(v) == 1 else v


def run_experiments(
    cm: Compiled, problem: Problem, scenario: Scenario, design: Design, end: int | None = None,
    progress: Any = None, workers: int | None = None,
) -> Experiments:
    """Calibrate every row of ``design`` (one vectorised call), then integrate all rows in one batch
    (:func:`sdsim.batch.run_batch`, the pipeline of every command).

    Uncertainties set parameter values (lever baselines included); policy-mode rows set lever
    values from the end of the calibration window (NaN: the scenario's own setting). The scenario's
    levers act from the window's end exactly as in :func:`sdsim.runner.run_scenarios`.
    ``end`` is the last simulated year (default: the scenario's end). ``progress`` (tqdm-like)
    gets ``set_description``/``update`` calls per stage. ``workers`` processes calibrate and integrate
    chunks of the design (default: every available core); the outcomes are bit-identical whatever
    the number.
    """
    require_recalibration(scenario)
    cm = cm.with_tables(scenario.tables)  # the scenario's graphical functions, for calibration and runs
    model = cm.model
    cal = model.calibration
    x = design.values()
    n = x.shape[0]
    timings: dict[str, float] = {}
    batch = ParamBatch.from_design(cm, scenario.parameters,
                                   {q.name: x[:, j] for j, q in enumerate(problem.uncertainties) if not q.lever}, n=n)
    settings = {q.name: x[:, j] for j, q in enumerate(problem.uncertainties) if q.lever}
    grid = TimeGrid(cal.start, end if end is not None else scenario.end, scenario.dt)
    texts = {"calibrate": f"calibrating {n:,} samples to {cal.end}", "simulate": "simulating {runs:,} runs "
             f"{grid.start}-{grid.end}"}

    def on_stage(name: str, runs: int) -> None:
        if progress is not None and name in texts:
            if name == "simulate":
                progress.update(1)  # the calibration is done
            progress.set_description(texts[name].format(runs=runs))

    b = run_batch(cm, batch, grid, scenario.method, LeverPlan(scenario.levers, policy_start(scenario, model), settings),
                  only_ok=True, workers=workers, on_stage=on_stage)
    if progress is not None:
        progress.update(1)
    ok, reason, idx, run, res = b.ok, b.reason, b.simulated, b.run, b.calibration
    assert res is not None  # run_batch calibrates unless told not to
    free = {f.name: np.where(ok, b.params.column(f.name), np.nan) for f in cal.free}
    timings.update(b.timings)
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


# ---------------------------------------------------------------------------------- streamed ensembles


@dataclass
class Stream:
    """What a streamed ensemble keeps of its runs (:func:`stream_experiments`); the runs themselves are dropped.

    ``names`` x ``years``: the percentile streams of the runs (variable-major: stream ``k * len(years) + i``
    is variable ``k`` in year ``i``), ``prior`` their :class:`sdsim.sketch.Quantiles` over the calibrated
    runs (None when not asked). ``obs``: the observations compared with every run
    (:func:`sdsim.conditioning.evidence`), ``obs_values`` (n, len(obs)) their model values per design row
    (NaN where not calibrated), ``obs_notes`` ('' | 'back-cast' | 'outside the run'). ``hist_names`` x
    ``hist_years``: the observed variables over the history years of the history runs (the ensemble's
    own runs when ``hist_shared``, else the same samples under baseline levers), ``hist_prior`` their
    sketch.
    """

    years: np.ndarray
    names: list[str]
    prior: Any
    obs: list[Any] = field(default_factory=list)
    obs_values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    obs_notes: list[str] = field(default_factory=list)
    hist_years: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    hist_names: list[str] = field(default_factory=list)
    hist_prior: Any = None
    hist_shared: bool = True
    hist_source: str = ""
    context: dict[str, Any] = field(default_factory=dict, repr=False)  # what a second pass needs

    def table(self, result: np.ndarray, names: list[str] | None = None, years: np.ndarray | None = None
              ) -> dict[str, np.ndarray]:
        """(S, Q) percentiles as {variable: (years, Q)}."""
        names = self.names if names is None else names
        ny = (self.years if years is None else years).size
        return {name: result[k * ny:(k + 1) * ny] for k, name in enumerate(names)}


def _design_params(base: dict[str, Any], problem: Problem, x: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parameters (uncertainty columns from ``x``, NaN: the scenario's value) and lever settings of design rows."""
    params = dict(base)
    settings: dict[str, np.ndarray] = {}
    for j, q in enumerate(problem.uncertainties):
        col = x[:, j].copy()
        if q.lever:
            settings[q.name] = col
        else:
            col[np.isnan(col)] = base[q.name]
            params[q.name] = col
    return params, settings


def _subset(values: dict[str, Any], idx: np.ndarray, m: int) -> dict[str, Any]:
    """The runs ``idx`` of a batch of ``m`` (per-run arrays cut, numbers kept), as :func:`run_experiments` does."""
    return {k: (np.asarray(v)[idx] if np.ndim(v) and np.size(v) == m and m > 1 else _scalar(v)) for k, v in values.items()}


def output_streams(cm: Compiled) -> list[str]:
    """The variables of timeseries.csv (:func:`sdsim.results.output_names`) known from the compiled model alone."""
    model = cm.model
    recorded = set(cm.stocks) | set(cm.rates) | set(cm.aux)
    names = [n for n in model.stocks] + [n for n in model.flows] + [n for n in model.aux]
    names = [n for n in names if n in recorded]
    return names + list(cm.annual_names) + list(model.series)


def _stack(run: Run, names: list[str], sel: Any = slice(None)) -> np.ndarray:
    """(len(names) * years, n) values of ``names`` (variable-major)."""
    return np.concatenate([run.get(nm)[sel] for nm in names]) if names else np.zeros((0, run.n))


def _filled(alloc: Any, shape: tuple[int, ...], value: Any, dtype: Any = float) -> np.ndarray:
    """An array from ``alloc`` (np.empty or shared memory) of ``shape`` set to ``value``."""
    a: np.ndarray = alloc(shape, dtype)
    a.fill(value)
    return a


@dataclass
class _HistorySetup:
    """How a streamed ensemble compares its runs with the history (:func:`stream_experiments` ``history``).

    ``obs``: the observations; ``names`` x ``grid.years[sel]``: the observed variables over the history
    years (calendar years) of the history runs; ``shared``: those are the ensemble's own runs, else the
    same samples under ``base_sc`` (the scenario without levers) on ``grid``; ``source`` says which.
    """

    obs: list[Any]
    names: list[str]
    grid: TimeGrid
    sel: np.ndarray
    shared: bool
    source: str
    base_sc: Scenario


def _history_setup(model: Model, scenario: Scenario, grid: TimeGrid, history: bool) -> _HistorySetup:
    """The observations and history runs to compare (none unless ``history``); ``grid``: the ensemble's own."""
    cal = model.calibration
    obs: list[Any] = []
    hist_names: list[str] = []
    hgrid, hsel, shared_hist, source, base_sc = grid, np.zeros(0, bool), True, "", scenario
    if history:
        from dataclasses import replace

        from . import conditioning as cd

        obs, _ = cd.evidence(model)
        shared_hist = cd.history_is_shared(model, scenario)
        if not shared_hist:
            goal_year = max((g.year for g in model.goals.values()), default=scenario.end)
            import math

            hend = max(goal_year, math.ceil(max(o.row.time for o in obs)))
            hgrid = TimeGrid(cal.start, min(hend, scenario.end), scenario.dt)
            base_sc = replace(scenario, levers={})
        source = ("the ensemble's own runs (the scenario's levers act after the last observation)" if shared_hist else
                  "the same samples re-run without the scenario's levers (they act before the last observation)")
        if obs:
            last = max(o.row.time for o in obs)
            hsel = hgrid.years <= int(np.ceil(last - 1e-9)) + 1
            hist_names = list(dict.fromkeys(o.row.variable for o in obs))
    return _HistorySetup(obs, hist_names, hgrid, hsel, shared_hist, source, base_sc)


# one chunk's report: failed rows, their reasons, largest |relative residual|, observation notes, cpu s (calibrate, simulate)
_ChunkResult = tuple[np.ndarray, np.ndarray, float, list[str | None], float, float]


class _Chunks:
    """The per-chunk work of :func:`stream_experiments` and the per-row buffers it fills.

    ``work(i, slot)`` calibrates, integrates and evaluates chunk ``parts[i]`` of the design, writing
    ``ok``, ``outcomes``, ``prob``, ``free`` and ``obs_values`` (shared memory when ``alloc`` gives it)
    and adding to the sketches ``prior`` and ``hist_prior`` in ``slot``.
    """

    def __init__(self, cm: Compiled, problem: Problem, scenario: Scenario, design: Design, base: dict[str, Any],
                 grid: TimeGrid, parts: Sequence[slice], names: list[str], h: _HistorySetup, history: bool,
                 alloc: Any) -> None:
        self.cm, self.model, self.problem, self.scenario, self.design = cm, cm.model, problem, scenario, design
        self.base, self.grid, self.parts, self.names, self.h, self.history = base, grid, parts, names, h, history
        self.goals = list(self.model.goals)
        self.free_names = [f.name for f in self.model.calibration.free]
        n = design.n
        self.ok = _filled(alloc, (n,), False, bool)
        self.outcomes = _filled(alloc, (n, len(self.goals)), np.nan)
        self.prob = _filled(alloc, (n, len(self.goals)), np.nan)
        self.free = _filled(alloc, (n, len(self.free_names)), np.nan)
        self.obs_values = _filled(alloc, (n, len(h.obs)), np.nan)
        self.prior: Any = None
        self.hist_prior: Any = None

    def integrate(self, sub: dict[str, Any], settings: dict[str, np.ndarray], m: int, on: TimeGrid,
                  sc: Scenario) -> Run:
        """``m`` runs of the parameters ``sub`` and lever ``settings`` under ``sc``'s levers on ``on``."""
        levers = scenario_levers(self.cm, on, sub, sc.levers, settings, first_year=policy_start(sc, self.model))
        with np.errstate(all="ignore"):
            return simulate(self.cm, sub, levers, on, self.scenario.method, n=m, workers=1)

    @staticmethod
    def add(q: Any, values: np.ndarray, rows: np.ndarray, slot: int) -> None:
        """Add the (streams, runs) ``values`` of design ``rows`` to the sketch ``q``."""
        if not q.exact and not q.ranged:  # the pilot: the first chunk, computed before any other
            q.set_range(values)
        q.add(values, rows, slot=slot)

    def work(self, i: int, slot: int) -> _ChunkResult:
        """Calibrate, integrate and evaluate chunk ``i``; what it reports (times in s)."""
        import time

        from .history import value_at

        h = self.h
        sl = self.parts[i]
        rows = np.arange(sl.start, sl.stop)
        m = rows.size
        params, settings = _design_params(self.base, self.problem, self.design.rows(sl))
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            solved, res = calibrated_params(self.cm, params, self.scenario.dt, self.scenario.method, strict=False,
                                            workers=1)
        t1 = time.perf_counter()
        okc = np.broadcast_to(res.ok, (m,))
        reason = np.broadcast_to(res.reason, (m,))
        self.ok[sl] = okc
        for j, f in enumerate(self.free_names):
            self.free[sl, j] = np.where(okc, np.broadcast_to(np.asarray(solved[f], float), (m,)), np.nan)
        resid = np.abs(res.residuals[res.ok])
        rmax = float(resid.max()) if resid.size else -np.inf
        idx = np.flatnonzero(okc)
        seen: list[str | None] = [None] * len(h.obs)
        if idx.size:
            sub = _subset(solved, idx, m)
            sub_settings = {k: v[idx] for k, v in settings.items()}
            run = self.integrate(sub, sub_settings, idx.size, self.grid, self.scenario)
            status = evaluate(self.model, run)
            for g, name in enumerate(self.goals):
                self.outcomes[rows[idx], g] = status[name].value
                self.prob[rows[idx], g] = status[name].probability
            if self.prior is not None:
                self.add(self.prior, _stack(run, self.names), rows[idx], slot)
            if self.history and h.obs:
                hrun = run if h.shared else self.integrate(sub, sub_settings, idx.size, h.grid, h.base_sc)
                for k, o in enumerate(h.obs):
                    v, seen[k] = value_at(hrun, o.row)
                    self.obs_values[rows[idx], k] = v
                if self.hist_prior is not None:
                    self.add(self.hist_prior, _stack(hrun, h.names, h.sel), rows[idx], slot)
        fail = ~okc
        return rows[fail], np.asarray(reason[fail], dtype=object), rmax, seen, t1 - t0, time.perf_counter() - t1


def compares_history(model: Model, problem: Problem, method: str) -> bool:
    """Whether an ensemble keeps what history matching needs: Monte Carlo over the uncertainties (not the levers)
    of a model with a history file."""
    return method == "mc" and not problem.levers and model.history is not None


def stream_experiments(
    cm: Compiled, problem: Problem, scenario: Scenario, design: Design, end: int | None = None,
    progress: Any = None, workers: int | None = None, quantiles: bool = False, history: bool = False,
    exact_bytes: int | None = None,
) -> Experiments:
    """:func:`run_experiments` chunk by chunk, keeping only what the outputs need; ``exp.run`` is None.

    Each chunk of :data:`sdsim.calibrate.CHUNK` design rows (the chunks :func:`run_experiments`
    calibrates, so the results are the same) is calibrated, integrated and evaluated, and its records
    are reduced at once to: the goal outcomes and probabilities, the solved free parameters, and with
    ``quantiles`` the percentile sketch of every output variable in every year
    (:class:`sdsim.sketch.Quantiles`; exact while the values fit in ``exact_bytes``), with ``history`` the
    model values of every observation and a sketch of the observed variables over the history years.
    Memory is that of a few chunks plus a few numbers per row, whatever the number of rows. Chunks
    go to ``workers`` processes writing into shared memory; results do not depend on their number.
    """
    import time

    from . import parallel
    from . import sketch as sk
    from .calibrate import CHUNK

    require_recalibration(scenario)
    cm = cm.with_tables(scenario.tables)
    model = cm.model
    n = design.n
    limit = sk.EXACT_BYTES if exact_bytes is None else exact_bytes
    grid = TimeGrid(model.calibration.start, end if end is not None else scenario.end, scenario.dt)
    base = {k: _scalar(v) for k, v in parameter_batch(cm, [scenario.parameters]).items()}
    parts = parallel.chunks(n, CHUNK)
    w = min(parallel.resolve(workers), len(parts))
    names = output_streams(cm) if quantiles else []
    h = _history_setup(model, scenario, grid, history)
    c = _Chunks(cm, problem, scenario, design, base, grid, parts, names, h, history,
                parallel.shared_empty if w > 1 else np.empty)
    if quantiles:
        c.prior = sk.Quantiles(len(names) * grid.years.size, n, sk.is_exact(len(names) * grid.years.size, n, limit),
                               w, w > 1)
    hs = len(h.names) * int(h.sel.sum())
    c.hist_prior = sk.Quantiles(hs, n, sk.is_exact(hs, n, limit), w, w > 1) if h.names else None

    if progress is not None:
        progress.set_description(f"calibrating and simulating {n:,} samples in chunks of {CHUNK:,}")
    t0 = time.perf_counter()
    pilot = any(q is not None and not q.exact for q in (c.prior, c.hist_prior))
    done = [c.work(0, 0)] if pilot else []
    rest = list(range(len(done), len(parts)))
    w2 = min(parallel.resolve(workers), len(rest)) if rest else 1
    done += parallel.run_chunks(lambda k: c.work(rest[k], k % max(w2, 1)), len(rest), workers)
    wall = time.perf_counter() - t0
    return _assemble(c, done, wall, progress, workers)


def _assemble(c: _Chunks, done: list[_ChunkResult], wall: float, progress: Any, workers: int | None) -> Experiments:
    """The streamed :class:`Experiments` from the filled buffers and the chunks' reports (``wall`` in s)."""
    h, n = c.h, c.design.n
    notes: list[str | None] = [None] * len(h.obs)
    reason_all = np.full(n, "", dtype=object)
    for rows_f, why, _, seen, _, _ in done:
        reason_all[rows_f] = why
        notes = [a if a is not None else b for a, b in zip(notes, seen, strict=True)]
    if progress is not None:
        progress.update(2)
    if not c.ok.any():
        raise InputError(f"no sample could be calibrated to {c.model.calibration.end} ({n} tried; first reason: "
                         f"{reason_all[0]})")
    rmax = max(r for _, _, r, _, _, _ in done)
    cal_s, sim_s = sum(r[4] for r in done), sum(r[5] for r in done)
    timings = {"ensemble_s": wall, "calibrate_cpu_s": cal_s, "simulate_cpu_s": sim_s}
    stream = Stream(c.grid.years, c.names, c.prior, h.obs, c.obs_values,
                    [x if x is not None else "outside the run" for x in notes],
                    h.grid.years[h.sel], h.names, c.hist_prior, h.shared, h.source,
                    {"cm": c.cm, "problem": c.problem, "scenario": c.scenario, "base_sc": h.base_sc, "design": c.design,
                     "grid": c.grid, "hgrid": h.grid, "hsel": h.sel, "base": c.base, "free_names": c.free_names,
                     "workers": workers, "integrate": c.integrate})
    return Experiments(c.design, c.goals, c.ok, reason_all, c.outcomes, c.prob, None,
                       {f: c.free[:, j] for j, f in enumerate(c.free_names)}, max(rmax, 0.0), timings, stream)


def stream_weighted(exp: Experiments, weights: np.ndarray, qs: tuple[float, ...] | None,
                    hist_qs: tuple[float, ...] | None) -> tuple[Any, Any]:
    """Weighted percentiles of a streamed ensemble's streams (main, history): :class:`sdsim.sketch.Result` each
    (None when not kept or when its percentiles ``qs``/``hist_qs`` are None).

    ``weights`` (n,) over the design rows (0: left out). Exact sketches answer from their values; binned
    ones need the runs again, so the rows with positive weight are integrated once more from their
    solved free parameters (no calibration: the same runs) and added with their quantised weights.
    Equal positive weights give numpy's percentiles over those rows, unequal ones the weighted Hazen
    rule (:func:`sdsim.conditioning.weighted_percentiles`).
    """
    from . import parallel
    from . import sketch as sk
    from .calibrate import CHUNK

    st = exp.stream
    assert st is not None
    pos = weights > 0
    wp = weights[pos]
    weighted = bool(wp.size) and not np.all(wp == wp[0])
    out: list[Any] = [None, None]
    redo: list[tuple[int, Any]] = []
    asked: dict[int, tuple[float, ...]] = {}
    for k, (q, qq) in enumerate(((st.prior, qs), (st.hist_prior, hist_qs))):
        if q is None or qq is None:  # not kept, or not asked
            continue
        if q.exact:
            out[k] = q.result(qq, weighted, weights)
        else:
            redo.append((k, q))
            asked[k] = qq
    if not redo:
        return out[0], out[1]
    ctx = st.context
    rows = np.flatnonzero(pos)
    parts = parallel.chunks(rows.size, CHUNK)
    w = min(parallel.resolve(ctx["workers"]), max(len(parts), 1))
    fresh = {}
    for k, q in redo:
        z = sk.Quantiles(q.streams, 0, False, w, w > 1)
        z.lo, z.width, z.ranged = q.lo, q.width, True
        fresh[k] = z
    iw = sk.quantise(weights, float(wp.max())) if weighted else None
    free_names = ctx["free_names"]
    design, problem, base = ctx["design"], ctx["problem"], ctx["base"]

    def work(i: int) -> None:
        r = rows[parts[i]]
        m = r.size
        params, settings = _design_params(base, problem, design.rows(r))
        for f in free_names:
            params[f] = exp.free[f][r]
        sub = _subset(params, np.arange(m), m)
        run = ctx["integrate"](sub, settings, m, ctx["grid"], ctx["scenario"])
        slot = i % w
        wi = iw[r] if iw is not None else None
        if 0 in fresh:
            fresh[0].add(_stack(run, st.names), r, wi, slot)
        if 1 in fresh:
            hrun = run if st.hist_shared else ctx["integrate"](sub, settings, m, ctx["hgrid"], ctx["base_sc"])
            fresh[1].add(_stack(hrun, st.hist_names, ctx["hsel"]), r, wi, slot)

    parallel.run_chunks(work, len(parts), ctx["workers"])
    for k, z in fresh.items():
        out[k] = z.result(asked[k], weighted)
    return out[0], out[1]


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
    return np.asarray(ok.reshape(-1, size).all(axis=1))


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
                  second_order: bool = False, workers: int | None = 1) -> tuple[list[Index], int]:
    """S1 and ST (and S2) with CONF_LEVEL bootstrap intervals, on complete Saltelli blocks only.

    Returns the indices and the number of blocks used. ``workers`` processes analyse the outputs
    (each output's bootstrap is seeded by ``seed`` alone, so the indices do not depend on their number).
    """
    from . import parallel

    size = block_size(problem.d, second_order)
    keep = complete_groups(ok, size)
    if keep.sum() < 2:
        raise InputError(f"Sobol analysis needs at least 2 complete blocks; {int(keep.sum())} had every sample calibrated")
    rows = np.repeat(keep, size)
    out = []
    results = parallel.run_chunks(lambda g: sobol_indices(problem.salib(), outcomes[rows, g], second_order, seed),
                                  len(names), workers)
    for g, name in enumerate(names):
        spread = _spread_row("sobol", name, outcomes[rows, g])
        out.append(spread)
        res = results[g]
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


def _standard_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks of ``v`` (ties averaged), centred and divided by their standard deviation (0 for a constant)."""
    from scipy import stats

    r = stats.rankdata(v)
    sd = r.std()
    return (r - r.mean()) / (sd if sd != 0 else np.inf)


PARALLEL_ROWS = 50_000  # column-by-column analyses of at least this many rows go to the workers


def by_column(fn: Callable[[int], Any], d: int, rows: int) -> list[Any]:
    """``[fn(0), ..., fn(d - 1)]``, one input column each; for large ensembles (``rows`` at least
    :data:`PARALLEL_ROWS`) computed by the workers (:mod:`sdsim.parallel`), the same numbers either way."""
    from . import parallel

    return parallel.run_chunks(fn, d, None if rows >= PARALLEL_ROWS else 1)


def analyze_mc(problem: Problem, x: np.ndarray | Design, outcomes: np.ndarray, ok: np.ndarray,
               names: list[str]) -> list[Index]:
    """Spearman rank correlation of each input with each outcome over the ok rows, with a Fisher-z interval.

    ``x``: the (n, d) input values, or the design (then ranked column by column, for large designs).

    The interval uses the standard error 1.06 / sqrt(n - 3) of Fieller, Hartley & Pearson (1957).
    """
    from scipy import stats

    ys = outcomes[ok]
    n = ys.shape[0]
    ry = stats.rankdata(ys, axis=0)
    ry = (ry - ry.mean(0)) / np.where(ry.std(0) == 0, np.inf, ry.std(0))
    if isinstance(x, Design):  # column by column: memory of a few columns, not of the (n, d) design
        design = x
        rho = np.stack(by_column(lambda j: _standard_ranks(design.column(j, ok)) @ ry / n, problem.d, n)) \
            if problem.d else np.zeros((0, ys.shape[1]))
    else:
        rx = stats.rankdata(x[ok], axis=0)
        rx = (rx - rx.mean(0)) / np.where(rx.std(0) == 0, np.inf, rx.std(0))
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


def analyse(model: Model, problem: Problem, design: Design, exp: Experiments, method: str, seed: int,
            second_order: bool = False, workers: int | None = None
            ) -> tuple[list[Index], list[GoalProbability], dict[str, Any]]:
    """The indices of ``method`` over the experiments, the prior goal probabilities (sobol: over the complete
    base rows; mc: over every calibrated sample; none for oat and morris) and what was used (morris
    ``trajectories``, sobol ``blocks``)."""
    names = exp.outcome_names
    probs: list[GoalProbability] = []
    used: dict[str, Any] = {}
    if method == "oat":
        indices = analyze_oat(problem, exp)
    elif method == "morris":
        indices, used["trajectories"] = analyze_morris(problem, design, exp.outcomes, exp.ok, names, seed)
    elif method == "sobol":
        indices, used["blocks"] = analyze_sobol(problem, exp.outcomes, exp.ok, names, seed, second_order,
                                                workers=workers)
        probs = goal_probability(model, exp, sobol_base_rows(problem, exp.ok, second_order))
    else:
        indices = analyze_mc(problem, design if design.x is None else design.x, exp.outcomes, exp.ok, names)
        probs = goal_probability(model, exp)
    return indices, probs, used
