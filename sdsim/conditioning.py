"""Conditioning an ensemble on history: which re-calibrated samples agree with what was published later.

Every sample of an ensemble is re-calibrated exactly to the calibration year; the history file
(``history.yaml``, rows of ``kind: observation``) holds what was published after it. This module
compares each sample's run with every observation and either keeps the samples that do not
contradict them (**history matching**, the default) or gives each sample a likelihood weight
(**weights**). The prior (every calibrated sample counts the same) and the conditioned ensemble
are then reported side by side.

The comparison works on ``log(model / observed)``. Its standard deviation is
``sigma = sqrt(sigma_obs**2 + sigma_discrepancy**2)``:

* ``sigma_obs`` from the row: a tolerance ``±x`` is a two-sigma half-width, ``sigma_obs = x / 2``;
  an ``interval [lo, hi]`` is a two-sigma window around its geometric centre,
  ``sigma_obs = log(hi / lo) / 4``;
* ``sigma_discrepancy`` the model discrepancy declared per series in the history file (the model is
  never treated as exact); an observation of a series without one is an error.

The **implausibility** of a sample for an observation is ``I = |log(model / observed)| / sigma``
(``inf`` when the model value is not positive or not finite).

**Groups.** Rows of the same ``group`` (one report measuring the same thing, e.g. a stock and its
inflow) count once: a group's implausibility is the **largest** of its rows' implausibilities (the
conservative choice: a sample cannot buy a bad fit on one row with a good fit on another). In history
matching "every group <= threshold" is the same as "every row <= threshold", so the grouping matters
for the weights (one likelihood term per group, not per row) and for the reports.

**History matching** keeps a sample when every group's implausibility is <= ``threshold`` (3 by
default, Pukelsheim's three-sigma rule). Fewer than :data:`MIN_KEPT` survivors is refused, naming
the observation that alone rules out most samples (the remedy is more samples or a better model,
never a wider tolerance).

**Weights** are Gaussian likelihoods ``w = exp(-sum_g I_g**2 / (2 T))`` with temperature ``T``:
``T = 1`` (the untempered likelihood) unless that leaves an effective sample size
``ESS = (sum w)**2 / sum w**2`` below ``max(MIN_KEPT, ESS_SHARE * n)``; then ``T`` is the smallest
temperature reaching it (bisection on log T). The temperature is reported.

**Conflicts.** An observation outside the prior 1-99 % band is a structural conflict between the model
and the data: it is reported and **not** used (reweighting onto the tail of the prior would hide the
conflict). The band is the prior *predictive* band of the observation: the model values of all
calibrated samples, each with the comparison's error ``sigma`` (the observation's own uncertainty and
the model discrepancy), i.e. the conflict test is ``F(observed) < 1 %`` or ``> 99 %`` with
``F(y) = mean_i Phi((log y - log v_i) / sigma)``. The band of the bare model values would call an
observation a conflict whenever the ensemble is narrower than the observation's own tolerance (an
ensemble re-calibrated exactly one year earlier is narrow), even at an implausibility well below 1;
both bands are reported in history.csv.

**What is never evidence**: rows that are not observations (targets, inputs, context), rows that set
a prior or a parameter (``sets:`` in the history file), rows equal to a calibration target (a
variable in its calibration year: exact in every sample), rows of an exogenous input series, and
rows outside the run.

**Which runs.** History happened under baseline policies. A scenario's levers act from its
``policy_start``; when that is after the last observation, the ensemble's own runs are the history
runs. Otherwise the same design is run once more with the scenario's levers removed
(:func:`history_experiments`). Either way the kept samples (same ids) are used under the scenario.

**Streamed ensembles** (:func:`sdsim.sensitivity.stream_experiments`) keep, per sample, only the model
value of each observation (computed chunk by chunk from the history runs); :func:`condition_values`
conditions on those exactly as :func:`condition` does on the runs, and :func:`condition_streamed`
adds the hindcast bands and conditioned percentiles from the ensemble's sketches (:mod:`sdsim.sketch`).

Nothing here names a model variable or a year: everything comes from the model files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special, stats

from .errors import InputError, ModelError
from .history import HistoryRow, value_at

if TYPE_CHECKING:
    from .compiler import Compiled
    from .engine import Run
    from .model import Model
    from .scenario import Scenario
    from .sensitivity import Design, Experiments, GoalProbability, Problem

MODES = ("match", "weights", "off")
IMPLAUSIBILITY = 3.0  # default cut-off of history matching (three-sigma rule)
MIN_KEPT = 30  # fewer survivors than this is refused
ESS_SHARE = 0.01  # weights: temper until the ESS reaches max(MIN_KEPT, ESS_SHARE * n)
CONFLICT_BAND = (1.0, 99.0)  # an observation outside this prior percentile band is a conflict
REPORT_Q = (5.0, 50.0, 95.0)
CONF_LEVEL = 0.95


# ------------------------------------------------------------------------------------ evidence


@dataclass(frozen=True)
class Observation:
    """An evidence row with its log-scale centre and standard deviations."""

    row: HistoryRow
    log_obs: float  # log of the observed value (geometric centre of an interval)
    sigma_obs: float
    sigma_disc: float

    @property
    def sigma(self) -> float:
        """sqrt(sigma_obs^2 + sigma_discrepancy^2), on log(model / observed)."""
        return math.hypot(self.sigma_obs, self.sigma_disc)

    @property
    def group(self) -> str:
        """The row's group (its own id when it has none)."""
        return self.row.group or self.row.id

    @property
    def tolerance_text(self) -> str:
        """The row's tolerance as written (a relative half-width, or the interval)."""
        r = self.row
        if r.interval is not None:
            return f"[{r.interval[0]:g}, {r.interval[1]:g}]"
        return f"{r.tolerance:g}"


def _history_file(model: Model) -> str:
    return str(model.directory / "history.yaml")


def evidence(model: Model) -> tuple[list[Observation], list[tuple[HistoryRow, str]]]:
    """The observations that may condition an ensemble, and the observation rows left out (with why).

    Raises :class:`ModelError` for an observation that is not positive (no log) or whose series has
    no declared model discrepancy.
    """
    hist = getattr(model, "history", None)
    if hist is None:
        return [], []
    targets = {(t.variable, int(t.year)) for t in model.calibration.targets if getattr(t, "variable", None)}
    used: list[Observation] = []
    left: list[tuple[HistoryRow, str]] = []
    file = _history_file(model)
    for r in hist.observations:
        if r.sets:
            left.append((r, f"set the prior or value of {', '.join(r.sets)}"))
            continue
        if r.variable in model.series:
            left.append((r, "an input series of the model, not an outcome"))
            continue
        if r.t is not None and float(r.t).is_integer() and (r.variable, int(r.t)) in targets:
            left.append((r, "a calibration target: exact in every sample"))
            continue
        if r.value <= 0:
            raise ModelError(f"an observation compared on a log scale must be positive, got {r.value:g}", file,
                             f"rows.{r.id}.value")
        if r.variable not in hist.discrepancy:
            raise ModelError(f"observation of '{r.variable}' but no model discrepancy is declared for it (add "
                             f"discrepancy.{r.variable}: the model is never exact)", file, f"rows.{r.id}")
        if r.interval is not None:
            lo, hi = r.interval
            if not 0 < lo < hi:
                raise ModelError(f"an interval needs 0 < low < high, got [{lo:g}, {hi:g}]", file,
                                 f"rows.{r.id}.interval")
            log_obs, s_obs = 0.5 * math.log(lo * hi), math.log(hi / lo) / 4
        else:
            log_obs, s_obs = math.log(r.value), float(r.tolerance) / 2
        used.append(Observation(r, log_obs, s_obs, hist.discrepancy[r.variable]))
    return used, left


# ---------------------------------------------------------------------------------- statistics


def ess(w: np.ndarray) -> float:
    """Effective sample size (sum w)^2 / sum w^2 of non-negative weights."""
    s = float(w.sum())
    return s * s / float((w * w).sum()) if s > 0 else 0.0


def wilson(p: np.ndarray | float, n: float, conf: float = CONF_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a share ``p`` over ``n`` (possibly an effective, non-integer) samples."""
    p = np.asarray(p, dtype=float)
    if not n > 0:
        return np.full_like(p, np.nan), np.full_like(p, np.nan)
    z = stats.norm.ppf(0.5 + conf / 2)
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z / d * np.sqrt(np.maximum(p * (1 - p), 0.0) / n + z * z / (4 * n * n))
    lo = np.where(p <= 0, 0.0, np.clip(centre - half, 0, 1))  # exact ends (no round-off residue)
    hi = np.where(p >= 1, 1.0, np.clip(centre + half, 0, 1))
    return lo, hi


def weighted_percentiles(v: np.ndarray, w: np.ndarray | None, qs: tuple[float, ...] | list[float]) -> np.ndarray:
    """Percentiles ``qs`` (0-100) along the last axis of ``v`` (m, n) or (n,), weighted by ``w`` (n,).

    Equal positive weights (or ``w`` None) give exactly :func:`numpy.percentile` over the samples with
    positive weight, so history matching and the prior use the same definition. Unequal weights use
    the weighted Hazen rule: sample k sits at cumulative share (W_k - w_k / 2) / W, linear between.
    Rows holding a non-finite value give NaN.
    """
    v = np.asarray(v, dtype=float)
    one = v.ndim == 1
    v2 = v[None, :] if one else v
    q = np.asarray(qs, dtype=float)
    out = np.full((v2.shape[0], q.size), np.nan)
    if w is None:
        w = np.ones(v2.shape[1])
    sel = w > 0
    good = np.isfinite(v2[:, sel]).all(axis=1)
    if not sel.any() or not good.any():
        return out[0] if one else out
    vs, ws = v2[np.ix_(good, sel)], w[sel]
    if np.all(ws == ws[0]):
        out[good] = np.percentile(vs, q, axis=1).T
        return out[0] if one else out
    order = np.argsort(vs, axis=1, kind="stable")
    sv = np.take_along_axis(vs, order, axis=1)
    sw = ws[order]
    pos = (np.cumsum(sw, axis=1) - 0.5 * sw) / ws.sum()
    res = np.empty((sv.shape[0], q.size))
    rows = np.arange(sv.shape[0])
    for k, qq in enumerate(q / 100):  # a handful of percentiles, each vectorised over rows and samples
        hi = np.clip((pos < qq).sum(axis=1), 1, sv.shape[1] - 1)
        lo = hi - 1
        p0, p1 = pos[rows, lo], pos[rows, hi]
        frac = np.clip((qq - p0) / np.where(p1 > p0, p1 - p0, 1.0), 0.0, 1.0)
        res[:, k] = sv[rows, lo] + frac * (sv[rows, hi] - sv[rows, lo])
    out[good] = res
    return out[0] if one else out


# ---------------------------------------------------------------------------------- conditioning


@dataclass
class RowResult:
    """One observation against the ensemble: the model values, prior band, conflict, implausibility."""

    obs: Observation
    values: np.ndarray  # (n,) model values of the calibrated samples
    note: str  # '' | 'back-cast' | 'outside the run'
    prior: np.ndarray  # percentiles CONFLICT_BAND[0], 5, 50, 95, CONFLICT_BAND[1] of the prior values
    conflict: bool
    predictive_cdf: float  # F(observed) under the prior predictive law (conflict outside CONFLICT_BAND)
    implausibility: np.ndarray  # (n,)
    ruled_out: int  # samples this row alone rules out (implausibility > threshold)
    cond: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))  # conditioned 5, 50, 95 %

    @property
    def used(self) -> bool:
        """Whether the row conditions the ensemble (comparable and not a conflict)."""
        return not self.conflict and self.note != "outside the run"

    @property
    def inside(self) -> bool:
        """Whether the model's median (conditioned when conditioned, else prior) lies inside the observation's
        window (value ± tolerance, or its interval), as in the hindcast table of ``check``."""
        median = self.cond[1] if np.isfinite(self.cond[1]) else self.prior[2]
        lo, hi = self.obs.row.bounds  # type: ignore[misc]
        return bool(lo <= median <= hi)


@dataclass
class Conditioning:
    """The result of conditioning ``n`` calibrated samples on the history file's observations."""

    mode: str  # match | weights | off
    threshold: float
    n: int
    rows: list[RowResult]
    excluded: list[tuple[HistoryRow, str]]
    weights: np.ndarray | None  # (n,) over the calibrated samples, summing to 1; None with mode off
    ess: float  # effective sample size (the number kept in history matching)
    temperature: float = 1.0
    source: str = "the ensemble's own runs"
    note: str = ""  # why the mode was switched off, if it was
    run: Any = None  # the history runs (engine.Run of the calibrated samples), set by the caller
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # results derived once (lessons)
    bands: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # streamed: var -> prior, cond
    band_error: dict[str, Any] = field(default_factory=dict)  # streamed: how the bands were computed

    def band(self, var: str, run: Any, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Prior and conditioned (None when not conditioned) 5/50/95 % of ``var`` over the years ``sel`` of the
        history runs: from ``run`` (a Run), or precomputed by a streamed ensemble (``bands``)."""
        if var in self.bands:
            prior, post = self.bands[var]
            return prior, (post if self.active else None)
        v = run.get(var)[sel]  # (years, n)
        return (weighted_percentiles(v, None, (5, 50, 95)),
                weighted_percentiles(v, self.weights, (5, 50, 95)) if self.active else None)

    @property
    def active(self) -> bool:
        """Whether the ensemble is conditioned."""
        return self.weights is not None

    @property
    def kept(self) -> np.ndarray:
        """(n,) samples with positive weight (all of them when not conditioned)."""
        return np.ones(self.n, bool) if self.weights is None else self.weights > 0

    @property
    def conflicts(self) -> list[RowResult]:
        """Observations outside the prior band (reported, not used)."""
        return [r for r in self.rows if r.conflict]

    @property
    def used(self) -> list[RowResult]:
        """Observations that condition the ensemble."""
        return [r for r in self.rows if r.used]

    def groups(self) -> dict[str, list[str]]:
        """Group -> ids of the used rows."""
        out: dict[str, list[str]] = {}
        for r in self.used:
            out.setdefault(r.obs.group, []).append(r.obs.row.id)
        return out

    def describe(self) -> dict[str, Any]:
        """Settings and observations as plain data (for the manifest)."""
        return {
            "mode": self.mode, "implausibility_threshold": self.threshold, "min_kept": MIN_KEPT,
            "conflict_band_percentiles": list(CONFLICT_BAND), "source": self.source, "note": self.note,
            "samples": self.n, "kept": int(self.kept.sum()) if self.active else None,
            "effective_sample_size": self.ess if self.active else None,
            "temperature": self.temperature if self.mode == "weights" else None,
            "group_rule": "a group's implausibility is the largest of its rows'",
            "conflict_rule": "observed value outside the prior predictive band: model values of all calibrated "
                             "samples with the comparison's sigma (observation and discrepancy), percentiles "
                             f"{CONFLICT_BAND[0]:g}-{CONFLICT_BAND[1]:g}",
            "tempering_rule": (f"T = 1 unless the ESS falls below max({MIN_KEPT}, {ESS_SHARE:g} n); then the "
                               "smallest T reaching it") if self.mode == "weights" else None,
            "observations": [{
                "id": r.obs.row.id, "variable": r.obs.row.variable, "time": r.obs.row.time,
                "period": list(r.obs.row.period) if r.obs.row.period else None, "observed": r.obs.row.value,
                "tolerance": r.obs.tolerance_text, "group": r.obs.group, "sigma_obs": r.obs.sigma_obs,
                "sigma_discrepancy": r.obs.sigma_disc, "sigma": r.obs.sigma, "conflict": r.conflict,
                "used": r.used, "note": r.note, "ruled_out_alone": r.ruled_out,
                "prior_predictive_cdf": r.predictive_cdf,
            } for r in self.rows],
            "not_evidence": [{"id": r.id, "why": why} for r, why in self.excluded],
        }


def condition(model: Model, run: Run, mode: str = "match", threshold: float = IMPLAUSIBILITY,
              min_kept: int = MIN_KEPT) -> Conditioning:
    """Condition the ``run.n`` calibrated samples of ``run`` (their history) on the model's observations.

    ``run`` holds the samples' runs under the policies in force during the history years. Returns
    the per-row comparison, the weights (0/1 in history matching, normalised to sum 1) and the
    effective sample size. Raises :class:`InputError` when history matching keeps fewer than
    ``min_kept`` samples.
    """
    if mode not in MODES:
        raise InputError(f"expected one of {', '.join(MODES)}, got {mode!r}", None, "--history")
    if not threshold > 0:
        raise InputError(f"expected a number > 0, got {threshold:g}", None, "--implausibility")
    obs, _ = evidence(model)
    return condition_values(model, [value_at(run, o.row) for o in obs], run.n, mode, threshold, min_kept)


def condition_values(model: Model, values: list[tuple[np.ndarray, str]], n: int, mode: str = "match",
                     threshold: float = IMPLAUSIBILITY, min_kept: int = MIN_KEPT) -> Conditioning:
    """:func:`condition` from the model values of each observation: ``values[k]`` = ((n,) values, note) of
    observation ``k`` of :func:`evidence` over the ``n`` calibrated samples (as :func:`sdsim.history.value_at`
    gives them), so that a streamed ensemble need not keep its runs."""
    if mode not in MODES:
        raise InputError(f"expected one of {', '.join(MODES)}, got {mode!r}", None, "--history")
    if not threshold > 0:
        raise InputError(f"expected a number > 0, got {threshold:g}", None, "--implausibility")
    obs, excluded = evidence(model)
    rows: list[RowResult] = []
    for o, (v, note) in zip(obs, values, strict=True):
        v = np.asarray(v, dtype=float)
        finite = np.isfinite(v)
        if note == "outside the run" or not finite.any():
            rows.append(RowResult(o, v, "outside the run", np.full(5, np.nan), False, math.nan, np.zeros(n), 0))
            continue
        prior = np.percentile(v[finite], [CONFLICT_BAND[0], *REPORT_Q, CONFLICT_BAND[1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (o.log_obs - np.log(v)) / o.sigma
        z = np.where(finite & (v > 0), z, np.inf)  # a non-positive model value lies below any observation
        cdf = float(special.ndtr(z[finite]).mean())
        conflict = not CONFLICT_BAND[0] / 100 <= cdf <= CONFLICT_BAND[1] / 100
        imp = np.where(finite, np.abs(z), np.inf)
        rows.append(RowResult(o, v, note, prior, conflict, cdf, imp, int((imp > threshold).sum())))
    cond = Conditioning(mode, threshold, n, rows, excluded, None, float(n))
    if mode == "off":
        return cond
    used = cond.used
    if not used:
        cond.note = "no usable observation: the conditioned ensemble is the prior"
        cond.weights = np.full(n, 1.0 / n)
        _fill_conditioned(cond)
        return cond
    groups = cond.groups()
    index = {r.obs.row.id: r for r in used}
    gi = np.stack([np.max(np.stack([index[i].implausibility for i in ids]), axis=0) for ids in groups.values()])
    if mode == "match":
        keep = (gi <= threshold).all(axis=0)
        k = int(keep.sum())
        if k < min_kept:
            worst = max(used, key=lambda r: r.ruled_out)
            raise InputError(
                f"history matching keeps {k} of {n:,} calibrated samples, fewer than {min_kept}: observation "
                f"'{worst.obs.row.id}' ({worst.obs.row.variable} at {worst.obs.row.time:g}) alone rules out "
                f"{worst.ruled_out:,}; use more samples or improve the model (never a wider tolerance)",
                None, "--history")
        cond.weights = np.asarray(keep / k)
        cond.ess = float(k)
    else:
        loglik = -0.5 * (gi ** 2).sum(axis=0)
        cond.temperature, w = _temper(loglik, max(min_kept, ESS_SHARE * n))
        cond.weights = w
        cond.ess = ess(w)
    _fill_conditioned(cond)
    return cond


def _weights_at(loglik: np.ndarray, temperature: float) -> np.ndarray:
    finite = np.isfinite(loglik)
    if not finite.any():
        return np.zeros_like(loglik)
    z = np.where(finite, loglik / temperature, -np.inf)
    w = np.exp(z - z[finite].max())
    return w / w.sum()


def _temper(loglik: np.ndarray, target: float) -> tuple[float, np.ndarray]:
    """The smallest temperature T >= 1 whose weights have an ESS >= ``target`` (T = 1 when it already has)."""
    w = _weights_at(loglik, 1.0)
    if not np.isfinite(loglik).any():
        raise InputError("every sample has a non-positive or non-finite value of an observed series; nothing to "
                         "weight", None, "--history")
    if ess(w) >= target:
        return 1.0, w
    reachable = min(target, float(np.isfinite(loglik).sum()))
    lo, hi = 0.0, 1.0
    while ess(_weights_at(loglik, math.exp(hi))) < reachable * (1 - 1e-9) and hi < 60:
        lo, hi = hi, hi * 2
    for _ in range(50):  # bisection on log T
        mid = 0.5 * (lo + hi)
        if ess(_weights_at(loglik, math.exp(mid))) >= reachable * (1 - 1e-9):
            hi = mid
        else:
            lo = mid
    t = math.exp(hi)
    return t, _weights_at(loglik, t)


def _fill_conditioned(cond: Conditioning) -> None:
    for r in cond.rows:
        if np.isfinite(r.values).any():
            r.cond = weighted_percentiles(np.where(np.isfinite(r.values), r.values, np.nan), cond.weights, REPORT_Q)


def switched_off(n: int, reason: str) -> Conditioning:
    """A Conditioning that does not condition (mode off, no rows), with ``reason`` in its note."""
    return Conditioning("off", IMPLAUSIBILITY, n, [], [], None, float(n), note=reason)


# ----------------------------------------------------------------------------------- history runs


def history_is_shared(model: Model, scenario: Scenario) -> bool:
    """True when the scenario's runs equal the baseline's over every observation (levers act after them)."""
    from .scenario import policy_start

    if not scenario.levers:
        return True
    obs, _ = evidence(model)
    if not obs:
        return True
    last = max(o.row.time for o in obs)
    return policy_start(scenario, model) - 1 >= last - 1e-9


def history_experiments(cm: Compiled, problem: Problem, scenario: Scenario, design: Design, exp: Experiments
                        ) -> tuple[Run, str]:
    """The runs of the ok samples under the policies of the history years, and where they come from.

    The scenario's own runs when its levers act after the last observation; otherwise the same design
    re-run with the scenario's levers removed (its parameter overrides kept: they are assumptions
    about the world).
    """
    from .sensitivity import run_experiments

    if exp.run is None:
        raise InputError("internal: history_experiments needs the ensemble's runs, not a streamed ensemble")
    if history_is_shared(cm.model, scenario):
        return exp.run, "the ensemble's own runs (the scenario's levers act after the last observation)"
    base = replace(scenario, levers={})
    obs, _ = evidence(cm.model)
    goal_year = max((g.year for g in cm.model.goals.values()), default=scenario.end)
    end = max(goal_year, math.ceil(max(o.row.time for o in obs)))
    hexp = run_experiments(cm, problem, base, design, end=min(end, scenario.end))
    if not np.array_equal(hexp.ok, exp.ok):  # calibration does not see levers acting after the window
        raise InputError("internal: calibration differs between the scenario and its baseline")
    if hexp.run is None:
        raise InputError("internal: the re-run ensemble has no runs")
    return hexp.run, "the same samples re-run without the scenario's levers (they act before the last observation)"


def _not_conditioned(cm: Compiled, problem: Problem, n: int) -> Conditioning | None:
    """A switched-off conditioning when history cannot condition this ensemble (lever sampling, no history file)."""
    if problem.levers:
        return switched_off(n, "the sampled inputs are lever settings acting after the history, not assumptions "
                               "about the world: history does not condition them")
    if cm.model.history is None:
        return switched_off(n, "the model has no history file")
    return None


def condition_experiments(cm: Compiled, problem: Problem, scenario: Scenario, design: Design, exp: Experiments,
                          mode: str = "match", threshold: float = IMPLAUSIBILITY) -> Conditioning:
    """The API entry point: condition a Monte Carlo ensemble (``exp`` from :func:`sdsim.sensitivity.run_experiments`)
    on the model's history. The weights are over the calibrated samples (``exp.ok``), in row order, and
    apply under the scenario and under any other scenario run with the same design.
    """
    n = int(exp.ok.sum())
    off = _not_conditioned(cm, problem, n)
    if off is not None:
        return off
    run, source = history_experiments(cm, problem, scenario, design, exp)
    c = condition(cm.model, run, mode, threshold)
    c.source, c.run = source, run
    return c


def condition_streamed(cm: Compiled, problem: Problem, scenario: Scenario, exp: Experiments, mode: str = "match",
                       threshold: float = IMPLAUSIBILITY, qs: tuple[float, ...] | None = None) -> Conditioning:
    """:func:`condition_experiments` for a streamed ensemble (:func:`sdsim.sensitivity.stream_experiments` with
    ``history``): the observation values kept per row replace the runs, and the hindcast bands (prior
    and conditioned 5/50/95 % of the observed variables) are computed from the ensemble's sketches.

    With ``qs``, the conditioned percentiles ``qs`` of the ensemble's own streams are computed in the
    same pass (:func:`sdsim.sensitivity.stream_weighted`) and left in ``cache["quantiles"]``
    (a :class:`sdsim.sketch.Result`)."""
    from .sensitivity import stream_weighted

    n = int(exp.ok.sum())
    off = _not_conditioned(cm, problem, n)
    if off is not None:
        return off
    st = exp.stream
    if st is None or (st.obs and st.hist_prior is None):
        raise InputError("internal: the ensemble was streamed without its history quantities")
    ok = exp.ok
    c = condition_values(cm.model, [(st.obs_values[ok, k], note) for k, note in enumerate(st.obs_notes)], n, mode,
                         threshold)
    c.source = st.hist_source
    if st.hist_prior is not None and c.rows:
        q = (5, 50, 95)
        prior = st.hist_prior.result(q)
        post = None
        if c.active:
            full = np.zeros(ok.size)
            full[ok] = c.weights
            main, post = stream_weighted(exp, full, qs if st.prior is not None else None, q)
            c.cache["quantiles"] = main
        ny = st.hist_years.size
        for k, var in enumerate(st.hist_names):
            cut = slice(k * ny, (k + 1) * ny)
            c.bands[var] = (prior.values[cut], post.values[cut] if post is not None else np.full((ny, 3), np.nan))
        c.band_error = {"prior": prior.describe(), **({"conditioned": post.describe()} if post is not None else {})}
    return c


# --------------------------------------------------------------------------------- goal tables


@dataclass
class GoalRow:
    """Prior and conditioned probability of one goal."""

    prior: GoalProbability
    p_conditioned: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    ess: float = float("nan")
    cond_p5: float = float("nan")
    cond_median: float = float("nan")
    cond_p95: float = float("nan")

    @property
    def goal(self) -> str:
        """The goal's name."""
        return self.prior.goal


def goal_rows(exp: Experiments, probs: list[GoalProbability], cond: Conditioning | None) -> list[GoalRow]:
    """Prior probabilities (``probs``, from :func:`sdsim.sensitivity.goal_probability`) beside conditioned ones.

    The conditioned probability is the weighted mean of each sample's P(met) (0/1, or Poisson);
    its Wilson interval uses the effective sample size. Without conditioning the columns stay NaN.
    """
    out = [GoalRow(p) for p in probs]
    if cond is None or not cond.active:
        return out
    w = cond.weights
    ok = exp.ok
    for g, row in enumerate(out):
        pv = exp.probability[ok, g]
        p = float(np.sum(w * pv))
        lo, hi = wilson(p, cond.ess)
        q = weighted_percentiles(exp.outcomes[ok, g], w, REPORT_Q)
        row.p_conditioned, row.low, row.high, row.ess = p, float(lo), float(hi), cond.ess
        row.cond_p5, row.cond_median, row.cond_p95 = (float(x) for x in q)
    return out


def conditioned_quantiles(run: Run, names: list[str], cond: Conditioning, qs: tuple[int, ...]) -> dict[str, np.ndarray]:
    """(years, len(qs)) weighted percentiles of each named variable over the conditioned samples."""
    if not names:
        return {}
    years = run.years.size
    stacked = weighted_percentiles(np.concatenate([run.get(name) for name in names]), cond.weights, qs)  # one call
    return {name: stacked[k * years:(k + 1) * years] for k, name in enumerate(names)}


# ---------------------------------------------------------------------------- what history taught


@dataclass
class Lesson:
    """One uncertainty's prior and conditioned distribution."""

    name: str
    low: float
    high: float
    prior: np.ndarray  # 5, 50, 95 %
    cond: np.ndarray
    shift: float  # (conditioned median - prior median) / (high - low)
    narrowing: float  # 1 - conditioned 5-95 % width / prior width
    driver: str  # the used observation whose model value correlates most with this input ('' if none)
    rho: float  # that Spearman rank correlation

    @property
    def moved(self) -> float:
        """How much history moved the input: the larger of |shift| and the narrowing."""
        return max(abs(self.shift), self.narrowing)


MOVED = 0.1  # an input is 'moved' by history when its median shifts or its band narrows by >= 10 % of its range


def lessons(problem: Problem, x: np.ndarray | Any, cond: Conditioning) -> list[Lesson]:
    """Prior vs conditioned distribution of every uncertainty (``x``: (n, d) values of the calibrated samples,
    or a function ``j -> (n,)`` giving them column by column), most moved first.
    """
    if not cond.active:
        return []
    if "lessons" in cond.cache:
        return cond.cache["lessons"]
    used = cond.used
    ry = None
    if used:
        ry = stats.rankdata(np.stack([np.nan_to_num(r.values, nan=-np.inf) for r in used], axis=1), axis=0)
        ry = (ry - ry.mean(0)) / np.where(ry.std(0) == 0, np.inf, ry.std(0))
    if callable(x):  # column by column (a large design): percentiles and ranks of one input at a time
        from .sensitivity import _standard_ranks, by_column

        def one(j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            col = x(j)
            r = _standard_ranks(col) @ ry / col.size if ry is not None else np.zeros(len(used))
            return weighted_percentiles(col, None, REPORT_Q), weighted_percentiles(col, cond.weights, REPORT_Q), r

        cols = by_column(one, problem.d, cond.n)
        prior = np.array([c[0] for c in cols]).reshape(problem.d, len(REPORT_Q))
        post = np.array([c[1] for c in cols]).reshape(problem.d, len(REPORT_Q))
        rho = np.array([c[2] for c in cols]).reshape(problem.d, len(used))
    else:
        prior = weighted_percentiles(x.T, None, REPORT_Q)
        post = weighted_percentiles(x.T, cond.weights, REPORT_Q)
        rho = np.zeros((x.shape[1], len(used)))
        if ry is not None:
            rx = stats.rankdata(x, axis=0)
            rx = (rx - rx.mean(0)) / np.where(rx.std(0) == 0, np.inf, rx.std(0))
            rho = rx.T @ ry / x.shape[0]
    out = []
    for j, q in enumerate(problem.uncertainties):
        span = q.high - q.low
        pw, cw = prior[j, 2] - prior[j, 0], post[j, 2] - post[j, 0]
        shift = (post[j, 1] - prior[j, 1]) / span if span > 0 else 0.0
        narrowing = 1 - cw / pw if pw > 0 else 0.0
        k = int(np.argmax(np.abs(rho[j]))) if used else -1
        out.append(Lesson(q.name, q.low, q.high, prior[j], post[j], float(shift), float(narrowing),
                          used[k].obs.row.id if k >= 0 else "", float(rho[j, k]) if k >= 0 else 0.0))
    cond.cache["lessons"] = sorted(out, key=lambda le: (-le.moved, le.name))
    return cond.cache["lessons"]
