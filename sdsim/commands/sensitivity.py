"""``simulate.py sensitivity SCENARIO --method oat|morris|sobol|mc``: which assumptions matter, how likely each goal is.

Every sample is re-calibrated to the calibration targets and integrated chunk by chunk
(:func:`sdsim.sensitivity.stream_experiments`:
the records of a chunk are reduced to the outcomes, the history comparisons and, for Monte Carlo,
percentile sketches, then dropped, so memory does not grow with the runs' records); samples with no
calibration solution are counted, reported and excluded (see :mod:`sdsim.sensitivity` for how each
method handles them). ``quantiles.csv`` is exact while every value fits in
:data:`sdsim.sketch.EXACT_BYTES` (10,000 samples do), else within the error bound the manifest states
(``used.quantiles``). Writes ``indices.csv``,
``goal_probability.csv`` (sobol, mc), ``quantiles.csv`` (mc), ``samples.npz``, figures and
``manifest.json`` to ``results/<scenario>_<method>[_levers]/``.

With ``--method mc`` the ensemble is also conditioned on the model's history (``--history
match|weights|off``, ``--implausibility``; :mod:`sdsim.conditioning`): prior and conditioned columns
in ``goal_probability.csv`` and ``quantiles.csv``, ``history.csv``, ``history_taught.csv`` and their
figures (:mod:`sdsim.commands.sensitivity_history`). Sobol', Morris and OAT stay prior-based.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import calibrate, parallel, plots
from .. import conditioning as cd
from .. import plots_sensitivity as ps
from .. import sensitivity as sa
from ..errors import InputError
from ..i18n import t
from ..report import Report
from ..results import check_target, manifest, result_dir, write_csv, write_json
from ..textable import num, render
from . import sensitivity_history as sh
from .common import heading, load, localize, require_goals, result_name, scenarios, warning_line

STAGES = ("sampling", "calibrating", "simulating", "analysing", "writing")


def _options(args: argparse.Namespace) -> tuple[int | None, list[str] | None]:
    """Check the options before any work; returns the sample size and the --params subset."""
    method = args.method
    if method not in sa.METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(sa.METHODS)}", None, "--method")
    if args.seed < 0:
        raise InputError(f"expected a seed >= 0, got {args.seed}", None, "--seed")
    n = args.samples if args.samples is not None else sa.DEFAULT_SAMPLES[method]
    if method == "oat":
        if args.samples is not None:
            raise InputError("oat takes no --samples (two runs per input: the ends of its range)", None, "--samples")
    elif n is not None and n < 2:
        raise InputError(f"expected at least 2, got {n}", None, "--samples")
    if method == "sobol" and n is not None and n & (n - 1):
        raise InputError(f"Sobol' sampling needs a power of two (e.g. 1024), got {n}", None, "--samples")
    if args.second_order and method != "sobol":
        raise InputError("--second-order applies to --method sobol only", None, "--second-order")
    subset = None
    if args.params is not None:
        subset = [s.strip() for s in args.params.split(",") if s.strip()]
        if not subset:
            raise InputError(f"expected a comma-separated list of names, got {args.params!r}", None, "--params")
    return n, subset


class _Progress:
    """A stage progress bar, shown only once the work has lasted a second.

    The long stages are single vectorised calls, so a background thread redraws the bar (stage
    name and elapsed time) twice a second while they run.
    """

    DELAY = 1.0

    def __init__(self) -> None:
        self.bar = tqdm(total=len(STAGES), delay=self.DELAY, leave=False, file=sys.stderr, disable=None,
                        bar_format="{desc} [{n}/{total} stages, {elapsed}]")
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            if time.monotonic() - self.t0 >= self.DELAY:
                self.bar.refresh()

    def set_description(self, text: str) -> None:
        self.bar.set_description_str(text, refresh=time.monotonic() - self.t0 >= self.DELAY)

    def update(self, k: int = 1) -> None:
        self.bar.update(k)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.bar.close()


def main(args: argparse.Namespace) -> int:
    """Sample, calibrate, simulate, analyse; print the most influential inputs and goal probabilities."""
    t_start = time.perf_counter()
    n, subset = _options(args)
    hmode, hthr = sh.check_options(args, args.method)
    model, cm = load(args)
    require_goals(model, "sensitivity")
    sc = scenarios(args, model, [args.scenario])[0]
    sa.require_recalibration(sc)
    problem = sa.define_problem(model, sc, args.levers, subset)
    method = args.method
    goal_year = max(g.year for g in model.goals.values())
    years = (sc.end if method == "mc" else goal_year) - sc.start + 1
    if n is not None:
        sa.check_samples(model, method, n, problem.d, years, args.second_order,
                         samples=not getattr(args, "no_samples", False))
    memory = {"streamed": True, "chunk_runs": calibrate.CHUNK, "estimate_bytes": sa.ensemble_bytes(
        model, method, n or 0, problem.d, years, args.second_order, samples=not getattr(args, "no_samples", False))}
    default = Path("results") / f"{result_name(sc)}_{method}{'_levers' if args.levers else ''}"
    if getattr(args, "member", None) is not None:
        return _export_member(args, model, sc, problem, n, default)
    target = check_target(args.out if args.out else default)
    no_plots = getattr(args, "no_plots", False)
    lang = plots.setup_language(args.lang) if not no_plots else "en"

    bar = _Progress()
    timings: dict[str, float] = {}
    try:
        bar.set_description(f"sampling ({method})")
        t0 = time.perf_counter()
        design = sa.sample(problem, method, n, args.seed, args.second_order, lean=True)
        timings["sample_s"] = time.perf_counter() - t0
        bar.update()
        # streamed: chunk by chunk, keeping the outcomes, the history comparisons and percentile sketches
        mc = method == "mc"
        exp = sa.stream_experiments(cm, problem, sc, design, end=sc.end if mc else goal_year, progress=bar,
                                    quantiles=mc, history=sa.compares_history(model, problem, method))
        timings.update(exp.timings)
        t0 = time.perf_counter()
        cond = sh.run(cm, problem, sc, design, exp, method, hmode, hthr)
        timings["condition_s"] = time.perf_counter() - t0

        bar.set_description("analysing")
        t0 = time.perf_counter()
        indices, grows, quant, cquant, used = _analyse(model, problem, design, exp, cond, method, args)
        timings["analyse_s"] = time.perf_counter() - t0
        bar.update()

        bar.set_description("writing results and figures")
        t0 = time.perf_counter()
        with result_dir(target) as d:
            files = _write_tables(d, model, problem, exp, indices, grows, quant, design, cquant, cond,
                                   samples=not getattr(args, "no_samples", False))
            if not no_plots:
                files += _write_figures(d, model, problem, exp, indices, grows, quant, method, lang, sc.label(lang),
                                        used, args.svg, cquant, cond)
            files += _report(model, sc, problem, exp, indices, grows, method, args.seed, files, cond,
                             args.lang, used.get("quantiles")).write(d)
            timings["write_s"] = time.perf_counter() - t0
            timings["total_s"] = time.perf_counter() - t_start
            _write_manifest(d, args, model, sc, problem, n, design, exp, cond, used, memory, timings, files, lang)
        bar.update()
    finally:
        bar.close()

    _summary(model, sc, problem, design, exp, indices, grows, method, n, args, used, timings, target, files, cond,
             args.lang)
    return 0


def _analyse(model: Any, problem: sa.Problem, design: sa.Design, exp: sa.Experiments, cond: cd.Conditioning | None,
             method: str, args: argparse.Namespace
             ) -> tuple[Any, list, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """The method's indices, the goal rows, the prior and conditioned quantiles (outcome units) and what was used."""
    quant: dict[str, np.ndarray] = {}
    cquant: dict[str, np.ndarray] = {}
    indices, probs, used = sa.analyse(model, problem, design, exp, method, args.seed, args.second_order)
    if method == "mc":
        quant, cquant, used["quantiles"] = _quantiles(exp, cond)
    grows = cd.goal_rows(exp, probs, cond)
    return indices, grows, quant, cquant, used


def _write_manifest(d: Path, args: argparse.Namespace, model: Any, sc: Any, problem: sa.Problem, n: int | None,
                    design: sa.Design, exp: sa.Experiments, cond: cd.Conditioning | None, used: dict[str, Any],
                    memory: dict[str, Any], timings: dict[str, float], files: list[str], lang: str) -> None:
    """Write manifest.json: inputs, design, calibration failures, what was used, memory (bytes), timings (s)."""
    method = args.method
    write_json(d / "manifest.json", manifest(
        model, "sensitivity", timings["total_s"],
        scenario=sc.resolved(), method=method, random_seed=args.seed, samples=n,
        experiments=design.n, design=design.info, mode="levers" if args.levers else "uncertainties",
        problem=problem.describe(), notes=problem.notes,
        calibration={
            "failed": exp.n_failed, "by_reason": exp.failure_counts(),
            "max_abs_relative_residual": exp.max_residual,
            "handling": _handling(method, "en", model.calibration.end),
        },
        used=used, memory=memory, confidence_level=sa.CONF_LEVEL, bootstrap_resamples=sa.BOOTSTRAP,
        history=cond.describe() if cond is not None else {"mode": "off", "note": sh.prior_only_note(method)},
        timings_s={k: round(v, 4) for k, v in timings.items()},
        files=[*files, "manifest.json"], language=lang,
    ))


MEMBER_MARKER = "# Written by sdsim sensitivity --member"


def _quantiles(exp: sa.Experiments, cond: cd.Conditioning | None
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Prior and conditioned percentiles of every output variable in every year, from the ensemble's sketches,
    and how they were computed (exact, or binned with the largest error bound) for the manifest."""
    st = exp.stream
    if st is None or st.prior is None:
        return {}, {}, {}
    prior = st.prior.result(sa.QUANTILES)
    how = {"prior": prior.describe()}
    cquant: dict[str, np.ndarray] = {}
    if cond is not None and cond.active:
        post = cond.cache.get("quantiles")
        if post is not None:
            cquant = st.table(post.values)
            how["conditioned"] = post.describe()
        if cond.band_error:
            how["history_bands"] = cond.band_error
    return st.table(prior.values), cquant, how


def member_scenario(sc: Any, problem: sa.Problem, row: np.ndarray, k: int, what: str) -> dict[str, Any]:
    """Experiment ``row`` of a design as a scenario file's data: the scenario as resolved, plus the sampled values.

    Uncertainties (lever baselines included) become ``parameters`` (from t0, re-calibrated, as sampled);
    policy-mode lever settings become constant ``levers`` (from the first lever year, like ``--set``).
    """
    levers = {name: fn.to_yaml() for name, fn in sc.levers.items()}
    params = dict(sc.parameters)
    for q, v in zip(problem.uncertainties, row, strict=True):
        if not np.isfinite(v):  # NaN: the scenario's own setting
            continue
        if q.lever:
            levers[q.name] = float(v)
        else:
            params[q.name] = float(v)
    name = f"{sc.name}_member{k}"
    if len(name) > 64:
        name = f"{sc.name[: 64 - len(f'_member{k}')]}_member{k}"
    return {
        "name": name,
        "title": {"en": f"{sc.label('en')}: ensemble member {k}",
                  **({"zh": f"{sc.title['zh']}：第{k}个样本"} if sc.title.get("zh") else {})},
        "description": f"Experiment {k} of `{what}` on {sc.file}; `simulate.py run` on this file reproduces it.",
        "end": sc.end, "dt": f"1/{round(1 / sc.dt)}", "method": sc.method,
        "levers": levers, "parameters": params,
    }


def _export_member(args: argparse.Namespace, model: Any, sc: Any, problem: sa.Problem, n: int | None,
                   default: Path) -> int:
    """Write experiment ``--member K`` of the design as a scenario file (no analysis)."""
    import yaml

    from ..results import check_file_target, file_starts_with
    from ..xmile import write_text

    design = sa.sample(problem, args.method, n, args.seed, args.second_order)
    x = design.x
    assert x is not None  # a design that is not lean keeps its rows
    rows = x.shape[0]
    k = args.member
    if not 0 <= k < rows:
        raise InputError(f"expected an experiment number from 0 to {rows - 1} (this design has {rows:,}), got {k}",
                         None, "--member")
    out = Path(args.out) if args.out else default.with_name(f"{default.name}_member{k}.yaml")
    check_file_target(out, lambda p: file_starts_with(p, MEMBER_MARKER), "a scenario file")
    sets = "".join(f" --set {s}" for s in getattr(args, "set", []) or [])
    what = (f"sensitivity --method {args.method}" + (f" --samples {n}" if n is not None and args.method != "oat" else "")
            + f" --seed {args.seed}" + (" --levers" if args.levers else "")
            + (f" --params {args.params}" if args.params else "") + (" --second-order" if args.second_order else "")
            + sets)
    data = member_scenario(sc, problem, x[k], k, what.replace("sensitivity ", f"sensitivity {sc.file} ", 1))
    text = (f"{MEMBER_MARKER} {k}: `{what}` on {sc.file}.\n# `simulate.py run` on this file reproduces that "
            "experiment (uncertainties as parameters from the start, re-calibrated; lever settings from "
            f"{model.calibration.end + 1}).\n" + yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    try:
        write_text(out, text)
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot write the file: {reason}", str(out), "--out") from None
    lang = args.lang
    print(heading(sc, lang))
    print(t("senscli.member", lang, k=k, rows=f"{rows:,}", what=what))
    for q, v in zip(problem.uncertainties, x[k], strict=True):
        if np.isfinite(v):
            print(f"  {q.name} = {v:.10g}" + (t("senscli.member_lever", lang, year=model.calibration.end + 1)
                                                if q.lever else ""))
    print(t("senscli.member_out", lang, out=out))
    return 0


def _handling(method: str, lang: str, year: int | str) -> str:
    """How a method treats samples with no calibration solution (``year``: the calibration year)."""
    return t(f"senscli.handling.{method}", lang, year=year)


def _write_tables(d: Path, model: Any, problem: sa.Problem, exp: sa.Experiments, indices: list[sa.Index],
                  probs: list[cd.GoalRow], quant: dict[str, np.ndarray], design: sa.Design,
                  cquant: dict[str, np.ndarray], cond: cd.Conditioning | None, samples: bool = True) -> list[str]:
    write_csv(d / "indices.csv", ["method", "parameter", "output", "index", "value", "ci_low", "ci_high", "note"],
              ([i.method, i.parameter, i.output, i.index, i.value, i.ci_low, i.ci_high,
                ("unaffected by these inputs" if i.index == "relative_spread" else "round-off, not an effect")
                if i.note == sa.UNAFFECTED else ""] for i in indices))
    files = ["indices.csv"]
    if probs:
        sh.write_goal_probability(d / "goal_probability.csv", model, probs)
        files.append("goal_probability.csv")
    if quant:
        years = exp.years
        empty = np.full(len(sa.QUANTILES), np.nan)
        rows = ([name, int(y), *q[i], *(cquant[name][i] if name in cquant else empty)]
                for name, q in quant.items() for i, y in enumerate(years))
        write_csv(d / "quantiles.csv", ["variable", "year", *[f"p{k}" for k in sa.QUANTILES],
                                        *[f"cond_p{k}" for k in sa.QUANTILES]], rows)
        files.append("quantiles.csv")
    if cond is not None:
        files += sh.write_tables(d, problem, exp, cond)
    if not samples:  # --no-samples: the per-sample table is optional (it grows with the number of runs)
        return files
    free = sorted(exp.free)
    unit: dict[str, Any] = {"u": design.u} if design.method == "morris" else {}  # Morris analysis needs the unit-grid design
    weight = np.full(exp.ok.size, np.nan)
    if cond is not None and cond.active:
        weight[exp.ok] = cond.weights
    np.savez(
        d / "samples.npz", names=np.array(problem.names), x=design.values(), **unit, ok=exp.ok, history_weight=weight,
        reason=exp.reason.astype(str), outcome_names=np.array(exp.outcome_names), outcomes=exp.outcomes,
        probability=exp.probability, free_names=np.array(free),
        free=np.column_stack([np.zeros((design.n, 0)), *(exp.free[f] for f in free)]),
    )
    files.append("samples.npz")
    return files


def _write_figures(d: Path, model: Any, problem: sa.Problem, exp: sa.Experiments, indices: list[sa.Index],
                   grows: list[cd.GoalRow], quant: dict[str, np.ndarray], method: str, lang: str,
                   title: str, used: dict[str, Any], svg: bool, cquant: dict[str, np.ndarray],
                   cond: cd.Conditioning | None) -> list[str]:
    from .. import plots_conditioning as pc

    probs = [r.prior for r in grows]
    if problem.levers:
        title = f"{title}, {ps.tx('levers_mode', lang)}"
    jobs: list[tuple[str, Any]] = []  # (file name, a function drawing the figure)
    flat = sa.unaffected_outputs(indices)
    for goal in exp.outcome_names:
        if goal in flat and method != "mc":
            med = float(np.nanmedian(exp.outcomes[exp.ok, exp.outcome_names.index(goal)]))
            jobs.append((f"{ {'oat': 'tornado'}.get(method, method)}_{goal}",
                         lambda g=goal, m=med: ps.unaffected_figure(model, problem, g, lang, title, flat[g], method, m)))
        elif method == "oat":
            jobs.append((f"tornado_{goal}", lambda g=goal: ps.tornado(model, problem, indices, g, lang, title)))
        elif method == "morris":
            jobs.append((f"morris_{goal}", lambda g=goal: ps.morris_figure(model, problem, indices, g, lang, title,
                                                                          used["trajectories"])))
        elif method == "sobol":
            jobs.append((f"sobol_{goal}", lambda g=goal: ps.sobol_figure(model, problem, indices, g, lang, title,
                                                                        used["blocks"], int(exp.ok.sum()),
                                                                        sa.CONF_LEVEL)))
    if quant:
        def fan() -> Any:
            fig = ps.fan_chart(model, exp.years, quant, probs, lang, title, int(exp.ok.sum()))
            if cond is not None:
                pc.add_conditioning(fig, model, exp.years, cquant, grows, cond, lang)
            return fig
        jobs.append(("fan_chart", fan))
    if probs:
        def prob() -> Any:
            fig = ps.probability_figure(model, probs, lang, title, exp.n_failed, sa.CONF_LEVEL)
            if cond is not None and cond.active:
                pc.add_conditioned_probabilities(fig, grows, lang)
            return fig
        jobs.append(("goal_probability", prob))
    if cond is not None and cond.rows:
        jobs.append(("history", lambda: pc.hindcast_figure(model, history_years(exp), cond, lang, title)))
    if cond is not None and cond.active:
        jobs.append(("history_taught", lambda: pc.lessons_figure(problem, cd.lessons(problem, sh.inputs(exp), cond),
                                                                 cond, lang, title)))

    def draw(i: int) -> list[str]:
        name, make = jobs[i]
        return [p.name for p in plots.save(make(), d / name, svg)]

    # the figures are independent: drawn by the free workers (the same files whatever their number)
    out: list[str] = []
    for drawn in parallel.run_chunks(draw, len(jobs)):
        out += drawn
    return out


def design_x(exp: sa.Experiments) -> np.ndarray:
    """(n_ok, d) input values of the calibrated samples."""
    return exp.design.rows(exp.ok)


def history_years(exp: sa.Experiments) -> Any:
    """What the hindcast figure reads the history years from: the runs, or a streamed ensemble's history years."""
    if exp.run is not None or exp.stream is None:
        return exp.run
    from types import SimpleNamespace

    return SimpleNamespace(years=exp.stream.hist_years)


def _fmt_index(method: str, i: sa.Index, signed: dict[tuple[str, str], float]) -> str:
    if method == "oat":
        v = signed[(i.parameter, i.output)]
        return f"{i.parameter} ({'+' if v >= 0 else ''}{num(v)})"
    if method == "mc":
        v = signed[(i.parameter, i.output)]
        return f"{i.parameter} (ρ {v:+.2f})"
    if method == "sobol":
        return f"{i.parameter} (ST {i.value:.2f})"
    return f"{i.parameter} (μ* {num(i.value)})"


def top_header(lang: str = "en") -> list[str]:
    """Header of the most-influential-inputs table."""
    return [t(f"senscli.top.{k}", lang) for k in ("goal", "first", "second", "third")]


TOP_HEADER = top_header("en")


def unaffected_text(spread: float, lang: str = "en") -> str:
    """Table cell of an output these inputs do not move."""
    how = t("senscli.constant", lang) if spread == 0 else t("senscli.roundoff", lang, spread=f"{spread:.0e}",
                                                             rtol=f"{sa.UNAFFECTED_RTOL:.0e}")
    return t("senscli.unaffected", lang, how=how)


PROB_HEADER = sh.PROB_HEADER


def _top_rows(exp: sa.Experiments, indices: list[sa.Index], method: str, lang: str = "en"
              ) -> tuple[str, list[list[str]]]:
    """(what the index measures, rows: goal and its three most influential inputs)."""
    key = {"oat": "swing", "mc": "spearman"}.get(method)
    signed = {(i.parameter, i.output): i.value for i in indices if i.index == key} if key else {}
    label = t(f"senscli.index.{method}", lang)
    rows = []
    flat = sa.unaffected_outputs(indices)
    for goal in exp.outcome_names:
        if goal in flat:
            rows.append([goal, unaffected_text(flat[goal], lang), "", ""])
            continue
        top = [i for i in sa.ranking(indices, method, goal) if i.value > 0][:3]  # an inert input is not "influential"
        cells = [_fmt_index(method, i, signed) for i in top] or [t("senscli.no_input", lang)]
        rows.append([goal, *cells, *[""] * (3 - len(cells))])
    return label, rows


def _prob_rows(model: Any, probs: list[cd.GoalRow]) -> list[list[str]]:
    """goal, threshold, median, 5-95 %, prior P(met) and interval, conditioned P(met) and interval."""
    return sh.prob_rows(model, probs)


def _caption(file: str, lang: str) -> str:
    """Caption of a figure file of this command (tornado_<goal>.png, fan_chart.png ...)."""
    stem = file[:-4]
    if lang == "en":
        return stem.replace("_", " ")
    for kind in ("tornado", "morris", "sobol"):
        if stem.startswith(kind + "_"):
            return t(f"senscli.fig.{kind}", lang, goal=stem[len(kind) + 1:])
    key = f"senscli.fig.{stem}"
    from ..i18n import has

    return t(key, lang) if has(key) else stem.replace("_", " ")


def _report(model: Any, sc: Any, problem: sa.Problem, exp: sa.Experiments, indices: list[sa.Index],
            probs: list[cd.GoalRow], method: str, seed: int, files: list[str], cond: cd.Conditioning | None,
            lang: str = "en", quantiles: dict[str, Any] | None = None) -> Report:
    """report.md / report.html: the tables of the printed summary and every figure."""
    what = t("senscli.what.levers" if problem.levers else "senscli.what.uncertainties", lang)
    rep = Report(t("senscli.report_title", lang, method=method, title=sc.label(lang)), lang)
    rep.text(t("senscli.report_lead", lang, heading=heading(sc, lang), d=problem.d, what=what, seed=seed,
               n=f"{exp.ok.size:,}", ok=f"{int(exp.ok.sum()):,}", year=model.calibration.end,
               residual=f"{exp.max_residual:.1e}", failed=f"{exp.n_failed:,}",
               handling=_handling(method, lang, model.calibration.end)))
    for note in problem.notes:
        rep.text(t("senscli.note", lang, note=localize(note, lang, "senscli.form.")))
    label, rows = _top_rows(exp, indices, method, lang)
    rep.heading(t("senscli.top_title", lang, what=what, label=label))
    rep.table(top_header(lang), rows)
    if probs:
        rep.heading(t("senscli.prob_title", lang, year=next(iter(model.goals.values())).year))
        rep.table(sh.prob_header(lang), _prob_rows(model, probs))
    sh.report_section(rep, problem, exp, cond, method, lang)
    binned = (quantiles or {}).get("prior", {}).get("error_bound_relative_to_the_percentiles_span")
    if binned:  # exact percentiles (every value held) need no note
        rep.text(t("sens.quantile_error", lang, runs=f"{int(exp.ok.sum()):,}", max_rel=f"{binned['max']:.2%}",
                   median_rel=f"{binned['median']:.3%}"))
    for f in files:
        if f.endswith(".png"):
            rep.image(f, _caption(f, lang))
    return rep


def _summary(model: Any, sc: Any, problem: sa.Problem, design: sa.Design, exp: sa.Experiments,
             indices: list[sa.Index], probs: list[cd.GoalRow], method: str, n: int | None,
             args: argparse.Namespace, used: dict[str, Any], timings: dict[str, float], target: Path,
             files: list[str], cond: cd.Conditioning | None = None, lang: str = "en") -> None:
    print(heading(sc, lang))
    for w in sc.warnings:
        print(warning_line(w, lang))
    what = t("senscli.what.levers" if problem.levers else "senscli.what.uncertainties", lang)
    size = t(f"senscli.size.{method}", lang, n=n, sampler=localize(str(design.info.get("sampler")), lang, "senscli.form."))
    print(t("senscli.lead", lang, method=method, size=size, d=problem.d, what=what, seed=args.seed,
            experiments=f"{design.n:,}"))
    for note in problem.notes:
        print(t("common.note_line", lang, note=localize(note, lang, "senscli.form.")))
    ok = int(exp.ok.sum())
    print(t("senscli.calibration", lang, ok=f"{ok:,}", n=f"{exp.ok.size:,}", year=model.calibration.end,
            residual=f"{exp.max_residual:.1e}", failed=f"{exp.n_failed:,}"))
    if exp.n_failed:
        reasons = ", ".join(f"{localize(r, lang, 'senscli.form.')}: {k}" for r, k in sorted(exp.failure_counts().items()))
        print(f"  ({reasons}); {_handling(method, lang, model.calibration.end)}")
        if "trajectories" in used:
            print(t("senscli.morris_uses", lang, used=used["trajectories"], n=n))
        if "blocks" in used:
            print(t("senscli.sobol_uses", lang, used=used["blocks"], n=n))
    label, rows = _top_rows(exp, indices, method, lang)
    print("\n" + t("senscli.top_title", lang, what=what, label=label))
    print(render(top_header(lang), rows))
    if cond is None:
        print(t("common.note_line", lang, note=sh.prior_only_note(method, lang)))
    if probs:
        src = t("senscli.src", lang, n=f"{probs[0].prior.n:,}") + (t("senscli.src_sobol", lang) if method == "sobol"
                                                                   else "")
        if cond is not None and cond.active:
            src += (t("senscli.src_kept", lang, kept=f"{int(cond.kept.sum()):,}") if cond.mode == "match"
                    else t("senscli.src_ess", lang, ess=f"{cond.ess:,.0f}"))
        print("\n" + t("senscli.prob_title_src", lang, year=next(iter(model.goals.values())).year, src=src))
        print(render(sh.prob_header(lang), _prob_rows(model, probs), [False, True, True, True, True, True, True, True]))
        for p in (r.prior for r in probs):
            g = model.goals[p.goal]
            if g.poisson:
                print(t("senscli.poisson", lang, goal=p.goal, test=g.test, threshold=num(g.threshold)))
    print()
    sh.print_history(problem, exp, cond, lang)
    stages = ", ".join(t("senscli.stage", lang, stage=localize(k[:-2], lang, "senscli.stage."), secs=f"{v:.2f}")
                       for k, v in timings.items() if k != "total_s")
    print("\n" + t("senscli.time", lang, secs=f"{timings.get('total_s', 0):.1f}", stages=stages))
    figs = sum(f.endswith(".png") for f in files)
    listed = [f for f in files if not f.endswith((".png", ".svg"))] + ([t("senscli.figures", lang, n=figs)]
                                                                       if figs else [])
    print(t("common.written", lang, target=target, files=", ".join(listed)))
