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
from ..i18n import t
from ..report import Report
from ..results import write_csv
from ..textable import num, render
from .common import localize


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
    return cd.condition_experiments(cm, problem, sc, design, exp, mode, thr)


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
    les = cd.lessons(problem, exp.design.x[exp.ok], cond)
    if les:
        write_csv(d / "history_taught.csv", LESSON_COLUMNS,
                  ([le.name, le.low, le.high, *le.prior, *le.cond, le.shift, le.narrowing, le.driver, le.rho]
                   for le in les))
        files.append("history_taught.csv")
    return files


# ------------------------------------------------------------------------------------ printing

def prob_header(lang: str = "en") -> list[str]:
    """Header of the goal-probability table."""
    return [t(f"senscli.prob.{k}", lang) for k in ("goal", "threshold", "median", "band", "prior", "interval",
                                                   "conditioned", "interval")]


PROB_HEADER = prob_header("en")


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


def prior_only_note(method: str, lang: str = "en") -> str:
    """Why a Sobol', Morris or OAT run is prior-based."""
    return t("senscli.prior_only", lang, method=method)


def status_lines(exp: sa.Experiments, cond: cd.Conditioning | None, lang: str = "en") -> list[str]:
    """The history lines of the printed summary: what was kept, conflicts, what history taught."""
    def tr(text: str) -> str:  # a text sdsim.conditioning writes in English
        return localize(text, lang, "senscli.form.")

    n_all = exp.ok.size
    rej = exp.n_failed / n_all if n_all else 0.0
    lines = [t("senscli.rejection", lang, rate=f"{rej:.1%}", failed=f"{exp.n_failed:,}", n=f"{n_all:,}")]
    if cond is None:
        return lines
    if not cond.active:
        lines.append(t("senscli.history_off", lang, note=tr(cond.note) if cond.note else "--history off"))
        lines += [t("senscli.conflict_line", lang, text=_conflict_text(r, lang)) for r in cond.conflicts]
        return lines
    used = cond.used
    if cond.mode == "match":
        what = t("senscli.kept", lang, kept=f"{int(cond.kept.sum()):,}", n=f"{cond.n:,}", thr=f"{cond.threshold:g}")
    else:
        what = t("senscli.weights", lang, n=f"{cond.n:,}", ess=f"{cond.ess:,.0f}") + (
            t("senscli.tempered", lang, temp=f"{cond.temperature:.3g}") if cond.temperature > 1
            else t("senscli.untempered", lang))
    mode = localize(cond.mode, lang, "senscli.mode.")
    lines.append(t("senscli.history", lang, mode=mode, what=what, used=len(used), groups=len(cond.groups()),
                   source=tr(cond.source)))
    if cond.note:
        lines.append(t("common.note_line", lang, note=tr(cond.note)))
    for r in cond.rows:
        o = r.obs.row
        state = (t("senscli.state.conflict", lang) if r.conflict else t("senscli.state.not_comparable", lang)
                 if not r.used else t("senscli.state.rules_out", lang, n=f"{r.ruled_out:,}"))
        tol = f"± {100 * o.tolerance:g} %" if o.tolerance is not None else t("senscli.in", lang, tol=r.obs.tolerance_text)
        when = (t("senscli.over", lang, a=f"{o.period[0]:g}", b=f"{o.period[1]:g}") if o.period
                else t("senscli.at", lang, time=f"{o.time:g}"))
        lines.append(t("senscli.obs_line", lang, id=o.id, variable=o.variable, when=when, observed=num(o.value), tol=tol,
                       median=num(r.prior[2]), lo=num(r.prior[1]), hi=num(r.prior[3]), cond=num(r.cond[1]),
                       state=state))
    for r in cond.conflicts:
        lines.append(t("senscli.conflict_line", lang, text=_conflict_text(r, lang)))
    for r in cond.rows:
        o = r.obs.row
        if not r.conflict and np.isfinite(r.prior).all() and not r.prior[0] <= o.value <= r.prior[-1]:
            lo, hi = cd.CONFLICT_BAND
            lines.append(t("senscli.narrow", lang, id=o.id, lo=f"{lo:g}", hi=f"{hi:g}", a=num(r.prior[0]),
                           b=num(r.prior[-1]), point=f"{100 * r.predictive_cdf:.3g}"))
    for row, why in cond.excluded:
        lines.append(t("senscli.not_evidence", lang, id=row.id, why=tr(why)))
    return lines


def _conflict_text(r: cd.RowResult, lang: str = "en") -> str:
    o = r.obs.row
    lo, hi = cd.CONFLICT_BAND
    return t("senscli.conflict", lang, id=o.id, variable=o.variable, time=f"{o.time:g}", observed=num(o.value),
             lo=f"{lo:g}", hi=f"{hi:g}", point=f"{100 * r.predictive_cdf:.3g}", a=num(r.prior[0]), b=num(r.prior[-1]))


def lesson_header(lang: str = "en") -> list[str]:
    """Header of the 'what history taught' table."""
    return [t(f"senscli.lesson.{k}", lang) for k in ("uncertainty", "prior", "conditioned", "shift", "narrower",
                                                     "related")]


LESSON_HEADER = lesson_header("en")


def lesson_rows(les: list[cd.Lesson], top: int = 8) -> list[list[str]]:
    """The most-moved uncertainties as text rows."""
    return [[le.name, f"{num(le.prior[1])} [{num(le.prior[0])} – {num(le.prior[2])}]",
             f"{num(le.cond[1])} [{num(le.cond[0])} – {num(le.cond[2])}]", f"{le.shift:+.2f}", f"{le.narrowing:.0%}",
             f"{le.driver} (ρ {le.rho:+.2f})" if le.driver else ""] for le in les[:top]]


def lesson_sentences(les: list[cd.Lesson], lang: str = "en") -> list[str]:
    """One sentence per input history moved (median shift or band narrowing >= MOVED of its range)."""
    out = []
    for le in les:
        if le.moved < cd.MOVED:
            break
        out.append(t("senscli.moved", lang, name=le.name, prior=num(le.prior[1]), cond=num(le.cond[1]),
                     shift=f"{le.shift:+.2f}", narrower=f"{max(le.narrowing, 0):.0%}")
                   + (t("senscli.absorbs", lang, driver=le.driver, rho=f"{le.rho:+.2f}")
                      if le.driver and abs(le.rho) >= 0.3 else ""))
    return out or [t("senscli.moved_none", lang)]


def print_history(problem: sa.Problem, exp: sa.Experiments, cond: cd.Conditioning | None, lang: str = "en") -> None:
    """Print the history lines and the 'what history taught' table."""
    for line in status_lines(exp, cond, lang):
        print(line)
    if cond is None or not cond.active:
        return
    les = cd.lessons(problem, exp.design.x[exp.ok], cond)
    print("\n" + t("senscli.taught_title", lang))
    print(render(lesson_header(lang), lesson_rows(les)))
    for s in lesson_sentences(les, lang):
        print(f"  {s}")


def report_section(rep: Report, problem: sa.Problem, exp: sa.Experiments, cond: cd.Conditioning | None,
                   method: str, lang: str = "en") -> None:
    """The history part of report.md."""
    if cond is None:
        rep.text(prior_only_note(method, lang))
        return
    rep.heading(t("senscli.history_heading", lang))
    for line in status_lines(exp, cond, lang):
        rep.text(line.strip())
    if cond.active:
        les = cd.lessons(problem, exp.design.x[exp.ok], cond)
        rep.heading(t("senscli.taught_heading", lang))
        rep.table(lesson_header(lang), lesson_rows(les, top=15))
        for s in lesson_sentences(les, lang):
            rep.text(s)
