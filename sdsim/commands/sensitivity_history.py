"""The history part of ``sensitivity``: conditioning the ensemble, its tables, printed lines and report section.

Kept apart from :mod:`sdsim.commands.sensitivity` so that the command only calls in here; the
statistics are in :mod:`sdsim.conditioning`.

``history.csv``, one row per observation: ``time`` is ``t`` or the end of a flow's period (its start
in ``period_from``); ``tolerance`` the relative half-width (or ``[low, high]``); ``prior_*`` percentiles
of the model values over every calibrated sample, ``cond_*`` over the conditioned ensemble (empty with
``--history off``); ``inside``: the (conditioned) median lies in the observation's window; ``conflict``:
the observation lies outside the prior predictive 1-99 % band (``prior_predictive_cdf``), so it was
not used; ``sigma`` the comparison's standard deviation on log(model / observed); ``ruled_out_alone``
the samples this row alone rules out at the threshold.

``history_taught.csv``, one row per uncertainty, most moved first: prior and conditioned 5/50/95 %,
``median_shift_of_range`` = (conditioned - prior median) / (high - low), ``band_narrowing`` = 1 -
conditioned / prior 5-95 % width, and the observation whose model value has the largest rank
correlation with the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import conditioning as cd
from .. import sensitivity as sa
from ..errors import InputError
from ..report import Report
from ..results import write_csv
from ..textable import num, render


def check_options(args: Any, method: str) -> tuple[str, float]:
    """--history and --implausibility, checked before any work."""
    mode = getattr(args, "history", "match") or "match"
    thr = getattr(args, "implausibility", cd.IMPLAUSIBILITY)
    if mode not in cd.MODES:
        raise InputError(f"expected one of {', '.join(cd.MODES)}, got {mode!r}", None, "--history")
    if thr is None or not np.isfinite(thr) or thr <= 0:
        raise InputError(f"expected a number > 0 (a number of standard deviations), got {thr}", None,
                         "--implausibility")
    return mode, float(thr)


def run(cm: Any, problem: sa.Problem, sc: Any, design: sa.Design, exp: sa.Experiments, method: str, mode: str,
        thr: float) -> cd.Conditioning | None:
    """Condition a Monte Carlo ensemble (None for the other methods: they stay prior-based)."""
    if method != "mc":
        return None
    if exp.stream is not None:  # a streamed ensemble: its kept observation values and sketches
        return cd.condition_streamed(cm, problem, sc, exp, mode, thr, sa.QUANTILES)
    return cd.condition_experiments(cm, problem, sc, design, exp, mode, thr)


def inputs(exp: sa.Experiments) -> Any:
    """The calibrated samples' input values for :func:`sdsim.conditioning.lessons`: the (n_ok, d) matrix, or
    for a lean design a function giving them column by column."""
    if exp.design.x is not None:
        return exp.design.x[exp.ok]
    return lambda j: exp.design.column(j, exp.ok)


# -------------------------------------------------------------------------------------- tables

GOAL_COLUMNS = ["goal", "variable", "year", "test", "threshold", "units", "n_samples", "n_met", "p_prior",
                "p_prior_low", "p_prior_high", "p_conditioned", "p_conditioned_low", "p_conditioned_high", "ess",
                "interval", "how", "p5_value", "median_value", "p95_value", "cond_p5_value", "cond_median_value",
                "cond_p95_value"]
HISTORY_COLUMNS = ["id", "variable", "time", "observed", "tolerance", "prior_p5", "prior_median", "prior_p95",
                   "cond_p5", "cond_median", "cond_p95", "inside", "conflict", "period_from", "group", "sigma",
                   "prior_p1", "prior_p99", "prior_predictive_cdf", "ruled_out_alone", "used", "note"]
LESSON_COLUMNS = ["parameter", "low", "high", "prior_p5", "prior_median", "prior_p95", "cond_p5", "cond_median",
                  "cond_p95", "median_shift_of_range", "band_narrowing", "most_related_observation", "spearman"]


def write_goal_probability(path: Path, model: Any, rows: list[cd.GoalRow]) -> None:
    """goal_probability.csv: prior and conditioned probabilities with their intervals."""
    def line(r: cd.GoalRow) -> list[Any]:
        g, p = model.goals[r.goal], r.prior
        return [p.goal, g.variable, g.year, g.test, g.threshold, g.units, p.n, p.expected_met, p.probability,
                p.ci_low, p.ci_high, r.p_conditioned, r.low, r.high, r.ess,
                f"Wilson {sa.CONF_LEVEL:.0%} (conditioned: on the effective sample size)", p.how, p.p5, p.median,
                p.p95, r.cond_p5, r.cond_median, r.cond_p95]
    write_csv(path, GOAL_COLUMNS, (line(r) for r in rows))


def write_tables(d: Path, problem: sa.Problem, exp: sa.Experiments, cond: cd.Conditioning) -> list[str]:
    """history.csv (and history_taught.csv when conditioned)."""
    def yn(b: bool) -> str:
        return "yes" if b else "no"

    rows = []
    for r in cond.rows:
        o = r.obs.row
        rows.append([o.id, o.variable, o.time, o.value, r.obs.tolerance_text, r.prior[1], r.prior[2], r.prior[3],
                     r.cond[0], r.cond[1], r.cond[2], yn(r.inside), yn(r.conflict),
                     o.period[0] if o.period else "", r.obs.group, r.obs.sigma, r.prior[0], r.prior[-1],
                     r.predictive_cdf, r.ruled_out, yn(r.used and cond.active),
                     r.note])
    write_csv(d / "history.csv", HISTORY_COLUMNS, rows)
    files = ["history.csv"]
    les = cd.lessons(problem, inputs(exp), cond)
    if les:
        write_csv(d / "history_taught.csv", LESSON_COLUMNS,
                  ([le.name, le.low, le.high, *le.prior, *le.cond, le.shift, le.narrowing, le.driver, le.rho]
                   for le in les))
        files.append("history_taught.csv")
    return files


# ------------------------------------------------------------------------------------ printing

PROB_HEADER = ["goal", "threshold", "median", "5–95 %", "P prior", "95% interval", "P conditioned", "95% interval"]


def prob_rows(model: Any, rows: list[cd.GoalRow]) -> list[list[str]]:
    """goal, threshold, median, 5-95 %, prior P and interval, conditioned P and interval."""
    from ..plots_sensitivity import pct

    out = []
    for r in rows:
        g, p = model.goals[r.goal], r.prior
        cond = [pct(r.p_conditioned), f"{pct(r.low)} – {pct(r.high)}"] if np.isfinite(r.p_conditioned) else ["", ""]
        out.append([p.goal, f"{g.test} {num(g.threshold)}", num(p.median), f"{num(p.p5)} – {num(p.p95)}",
                    pct(p.probability), f"{pct(p.ci_low)} – {pct(p.ci_high)}", *cond])
    return out


def prior_only_note(method: str) -> str:
    """Why a Sobol', Morris or OAT run is prior-based."""
    return (f"{method}: every result is prior-based (each assumption over its whole range); its design needs "
            "unconditioned samples, so history does not condition it (use --method mc for conditioned probabilities)")


def status_lines(exp: sa.Experiments, cond: cd.Conditioning | None) -> list[str]:
    """The history lines of the printed summary: what was kept, conflicts, what history taught."""
    n_all = exp.ok.size
    rej = exp.n_failed / n_all if n_all else 0.0
    lines = [f"Calibration rejection rate: {rej:.1%} ({exp.n_failed:,} of {n_all:,} samples without solution)"]
    if cond is None:
        return lines
    if not cond.active:
        lines.append(f"History: off ({cond.note or '--history off'}); probabilities are prior-based")
        lines += [f"  conflict: {_conflict_text(r)}" for r in cond.conflicts]
        return lines
    used = cond.used
    what = (f"kept {int(cond.kept.sum()):,} of {cond.n:,} calibrated samples (every implausibility <= "
            f"{cond.threshold:g})" if cond.mode == "match" else
            f"likelihood weights on {cond.n:,} calibrated samples, effective sample size {cond.ess:,.0f}"
            + (f" (tempered, T = {cond.temperature:.3g})" if cond.temperature > 1 else " (untempered)"))
    lines.append(f"History ({cond.mode}): {what}; {len(used)} observations in {len(cond.groups())} groups; "
                 f"runs: {cond.source}")
    if cond.note:
        lines.append(f"  note: {cond.note}")
    for r in cond.rows:
        o = r.obs.row
        state = "CONFLICT (not used)" if r.conflict else ("not comparable" if not r.used else
                                                          f"rules out {r.ruled_out:,} alone")
        tol = f"± {100 * o.tolerance:g} %" if o.tolerance is not None else f"in {r.obs.tolerance_text}"
        when = f"over ({o.period[0]:g}, {o.period[1]:g}]" if o.period else f"at {o.time:g}"
        lines.append(f"  {o.id}: {o.variable} {when} observed {num(o.value)} {tol}; prior "
                     f"median {num(r.prior[2])} [{num(r.prior[1])} – {num(r.prior[3])}] -> conditioned "
                     f"{num(r.cond[1])}; {state}")
    for r in cond.conflicts:
        lines.append(f"  conflict: {_conflict_text(r)}")
    for r in cond.rows:
        o = r.obs.row
        if not r.conflict and np.isfinite(r.prior).all() and not r.prior[0] <= o.value <= r.prior[-1]:
            lo, hi = cd.CONFLICT_BAND
            lines.append(f"  note: {o.id} lies outside the {lo:g}–{hi:g} % band of the bare model values "
                         f"({num(r.prior[0])} – {num(r.prior[-1])}) but inside the prior predictive band (its "
                         f"{100 * r.predictive_cdf:.3g} % point): the ensemble is narrower than the observation's "
                         "own uncertainty, so this is not a conflict")
    for row, why in cond.excluded:
        lines.append(f"  not evidence: {row.id} ({why})")
    return lines


def _conflict_text(r: cd.RowResult) -> str:
    o = r.obs.row
    lo, hi = cd.CONFLICT_BAND
    return (f"{o.id} ({o.variable} at {o.time:g}) observed {num(o.value)} lies outside the prior predictive {lo:g}–{hi:g} % "
            f"band (at its {100 * r.predictive_cdf:.3g} % point; model values {num(r.prior[0])} – {num(r.prior[-1])}): "
            "a structural conflict between the model and the data, reported and not used")


LESSON_HEADER = ["uncertainty", "prior median [5–95 %]", "conditioned median [5–95 %]", "shift (of range)",
                 "band narrower", "most related observation"]


def lesson_rows(les: list[cd.Lesson], top: int = 8) -> list[list[str]]:
    """The most-moved uncertainties as text rows."""
    return [[le.name, f"{num(le.prior[1])} [{num(le.prior[0])} – {num(le.prior[2])}]",
             f"{num(le.cond[1])} [{num(le.cond[0])} – {num(le.cond[2])}]", f"{le.shift:+.2f}", f"{le.narrowing:.0%}",
             f"{le.driver} (ρ {le.rho:+.2f})" if le.driver else ""] for le in les[:top]]


def lesson_sentences(les: list[cd.Lesson]) -> list[str]:
    """One sentence per input history moved (median shift or band narrowing >= MOVED of its range)."""
    out = []
    for le in les:
        if le.moved < cd.MOVED:
            break
        out.append(f"History moved {le.name}: median {num(le.prior[1])} -> {num(le.cond[1])} ({le.shift:+.2f} of its "
                   f"range), 5–95 % band {max(le.narrowing, 0):.0%} narrower"
                   + (f"; it absorbs observation {le.driver} (rank correlation {le.rho:+.2f} with the model's value)"
                      if le.driver and abs(le.rho) >= 0.3 else ""))
    return out or ["History moved no uncertainty by 10 % of its range or more"]


def print_history(problem: sa.Problem, exp: sa.Experiments, cond: cd.Conditioning | None) -> None:
    """Print the history lines and the 'what history taught' table."""
    for line in status_lines(exp, cond):
        print(line)
    if cond is None or not cond.active:
        return
    les = cd.lessons(problem, inputs(exp), cond)
    print("\nWhat history taught the model (prior vs conditioned; shift of the median in units of the range)")
    print(render(LESSON_HEADER, lesson_rows(les)))
    for s in lesson_sentences(les):
        print(f"  {s}")


def report_section(rep: Report, problem: sa.Problem, exp: sa.Experiments, cond: cd.Conditioning | None,
                   method: str) -> None:
    """The history part of report.md."""
    if cond is None:
        rep.text(prior_only_note(method))
        return
    rep.heading("History: prior and conditioned ensemble")
    for line in status_lines(exp, cond):
        rep.text(line.strip())
    if cond.active:
        les = cd.lessons(problem, inputs(exp), cond)
        rep.heading("What history taught the model")
        rep.table(LESSON_HEADER, lesson_rows(les, top=15))
        for s in lesson_sentences(les):
            rep.text(s)
