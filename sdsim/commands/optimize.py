"""``simulate.py optimize SCENARIO``: the least-cost lever package meeting the goals with P >= p.

Writes, atomically, to ``results/<scenario>_optimize/``: ``package.yaml`` (a self-contained
scenario: no ``extends``; run, compare and sensitivity accept it), ``targets.csv`` (goal,
targeted, scope, p_in_sample, p_fresh), ``package.csv`` (per lever: input, package, policy range,
discounted cost above the input), ``pareto.csv`` and ``pareto.png`` (cost against the number of
goals met at p, and against p for the all-goals package), ``reach.csv`` (per goal: the best
probability with every lever at the top, the lever that binds), ``report.md``/``report.html``
and ``manifest.json``. See :mod:`sdsim.optimize` for the method.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from .. import optimize as po
from .. import plots
from ..errors import InputError
from ..i18n import t
from ..report import Report
from ..results import check_target, manifest, result_dir, write_csv, write_json
from ..scenario import goal_year, policy_start
from ..sensitivity import MAX_SAMPLES, bytes_per_run, machine_memory, require_recalibration
from ..textable import num, render
from .common import heading, load, localize, result_name, scenarios, warning_line

P_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def _options(args: argparse.Namespace) -> None:
    """Check the options before any work."""
    p = args.probability
    if not (np.isfinite(p) and 0.0 < p < 1.0):
        raise InputError(f"expected a probability strictly between 0 and 1, got {p:g}", None, "--probability")
    if args.samples <= 0:
        raise InputError(f"expected a number of samples >= 1, got {args.samples}", None, "--samples")
    if args.samples > MAX_SAMPLES:
        raise InputError(f"expected at most {MAX_SAMPLES:,}, got {args.samples:,}", None, "--samples")
    if args.seed < 0:
        raise InputError(f"expected a seed >= 0, got {args.seed}", None, "--seed")
    if args.popsize < 5:
        raise InputError(f"expected at least 5 candidates per generation, got {args.popsize}", None, "--popsize")
    if args.maxiter < 1:
        raise InputError(f"expected at least 1 generation, got {args.maxiter}", None, "--maxiter")


@dataclass
class _Search:
    """What the search and its fresh re-estimate found (probabilities in [0, 1], costs in the model's cost units)."""

    ens: po.Ensemble
    ev: po.Evaluator
    reach: list[po.Reach]
    targeted: list[str]
    out_of_reach: list[str]
    x: np.ndarray
    gens: int
    message: str
    steps: int
    final: Any
    prices: tuple[float, float]
    fresh_seed: int
    fresh_ens: po.Ensemble
    fresh: Any


def _start_year(args: argparse.Namespace, model: Any, sc: Any, gy: int) -> tuple[int, int]:
    """The package's first acting year and the input scenario's policy start (both calendar years), checked."""
    start = args.start if args.start is not None else po.default_start(model, sc)
    cal = model.calibration
    if not cal.end < start <= gy:
        raise InputError(f"expected a year from {cal.end + 1} ({cal.end} is the calibration year) to the goal year "
                         f"{gy}, got {start}", None, "--start")
    if args.shape == "ramp" and start >= gy:
        raise InputError(f"a ramp runs from the start year to the goal year {gy}; start {start} leaves no room",
                         None, "--start")
    input_start = policy_start(sc, model)
    if start < input_start:
        raise InputError(f"expected a year from {input_start} (the input scenario's policy start: the years before are "
                         f"history and ran under its own policies; set policy_start in the scenario to start earlier), "
                         f"got {start}", None, "--start")
    if sc.levers and start > input_start and args.shape == "ramp":
        raise InputError(f"a ramp package starting after the input's policy start ({input_start}) cannot be written "
                         f"as one scenario; use --start {input_start} or --shape constant, got {start}", None, "--start")
    return start, input_start


def _check_steps(cm: Any, sc: Any, decs: list, start: int, input_start: int, gy: int) -> None:
    """A package acting after the input's policy start steps each lever from the input's value: it must be held."""
    if sc.levers and start > input_start:  # the package will step each lever at the start from the input's value
        for dd in decs:
            if po.held_before(cm, sc, dd.lever, start, gy) is None:
                raise InputError(f"the input's lever {dd.lever} changes between its policy start ({input_start}) and "
                                 f"{start}, so a package acting from {start} cannot be written as one scenario; use "
                                 f"--start {input_start}", sc.file, f"levers.{dd.lever}")


def _default_dir(args: argparse.Namespace, sc: Any) -> Path:
    """``results/<scenario>_optimize``; a search with non-default settings gets its own folder."""
    # a search with non-default settings gets its own folder, so it never replaces the plain result
    variant = "".join(f"+{k}={v}" for k, v in (("start", args.start), ("p", args.probability if args.probability != 0.8
                                                                            else None), ("goals", args.goals),
                                                 ("shape", args.shape if args.shape != "constant" else None))
                      if v is not None)
    return Path("results") / f"{result_name(sc)}_optimize{variant}"


def _search(args: argparse.Namespace, model: Any, cm: Any, sc: Any, decs: list, notes: list[str], start: int,
            targets_asked: list[str], p: float, timings: dict[str, float]) -> _Search:
    """Build the ensemble, find the reach, search, round, and re-estimate on a fresh ensemble (timings in s)."""
    bar = tqdm(total=args.maxiter, desc="optimize", delay=1.0, leave=False, file=sys.stderr, disable=None,
               bar_format="{desc} [{n}/{total} generations, {elapsed}]")
    try:
        t0 = time.perf_counter()
        bar.set_description_str(f"calibrating {args.samples} samples")
        workers = getattr(args, "workers", None)  # --workers N (None: every available core)
        ens = po.build_ensemble(cm, sc, args.samples, args.seed, workers)
        timings["ensemble_s"] = time.perf_counter() - t0
        ev = po.Evaluator(cm, sc, ens, decs, start, list(model.goals), args.shape, workers)

        t0 = time.perf_counter()
        bar.set_description_str("reach: every lever at the top")
        reach, reach_ev = po.reach(ev, p)
        timings["reach_s"] = time.perf_counter() - t0
        reach_of = {r.goal: r for r in reach}
        targeted = [g for g in targets_asked if reach_of[g].feasible]
        out_of_reach = [g for g in targets_asked if not reach_of[g].feasible]

        t0 = time.perf_counter()
        bar.set_description_str(f"searching ({len(targeted)} goals at P >= {p:g})")
        free = po.relevant(ev, reach_ev, targeted)
        held = sorted({d.lever for d, f in zip(decs, free, strict=True) if not f})
        if held:
            notes.append("held at the input's own setting (raising them moves no targeted goal's probability): "
                         + ", ".join(held))
        x, gens, message, steps = po.optimize(ev, p, targeted, args.seed, args.popsize, args.maxiter, free,
                                              progress=bar)
        timings["search_s"] = time.perf_counter() - t0
        x = _rounded(x, ev.lower(), ev.upper())
        final = ev.evaluate(x[None, :])
        prices = po.cost_range(ev, x)

        t0 = time.perf_counter()
        bar.set_description_str(f"fresh ensemble ({po.FRESH_FACTOR * args.samples} samples)")
        fresh_seed = args.seed + po.FRESH_SEED_OFFSET
        fresh_ens = po.build_ensemble(cm, sc, po.FRESH_FACTOR * args.samples, fresh_seed, workers)
        fresh_ev = po.Evaluator(cm, sc, fresh_ens, decs, start, list(model.goals), args.shape, workers)
        fresh = fresh_ev.evaluate(x[None, :])
        timings["fresh_s"] = time.perf_counter() - t0
    finally:
        bar.close()
    return _Search(ens, ev, reach, targeted, out_of_reach, x, gens, message, steps, final, prices, fresh_seed,
                   fresh_ens, fresh)


def main(args: argparse.Namespace) -> int:
    """Find the package, re-estimate it on a fresh ensemble, write and print the results."""
    t_start = time.perf_counter()
    _options(args)
    model, cm = load(args)
    sc = scenarios(args, model, [args.scenario])[0]
    require_recalibration(sc)
    targets_asked = po.parse_goals(model, args.goals)
    gy = goal_year(model)
    start, input_start = _start_year(args, model, sc, gy)
    decs, notes = po.decisions(cm, sc, start, gy, args.shape)
    _check_memory(model, sc, args, gy, len(decs))
    _check_steps(cm, sc, decs, start, input_start, gy)
    target = check_target(args.out if args.out else _default_dir(args, sc))
    lang = plots.setup_language(args.lang) if not args.no_plots else "en"
    p = float(args.probability)
    timings: dict[str, float] = {}
    s = _search(args, model, cm, sc, decs, notes, start, targets_asked, p, timings)
    ens, ev, fresh_ens, final, fresh, targeted = s.ens, s.ev, s.fresh_ens, s.final, s.fresh, s.targeted

    goals = list(model.goals)
    idx_t = ev.goal_index(targeted)
    by_k, by_p = po.pareto(ev.archive, p, idx_t, P_GRID)
    tol = po.tolerance(p, fresh_ens.effective_size)
    holds = {g: bool(fresh.prob[0, goals.index(g)] >= p - tol) for g in targeted}
    levels = _package_levers(ev, s.x)

    t0 = time.perf_counter()
    with result_dir(target) as d:
        files, lever_cols = _write_tables(d, args, model, sc, s, decs, levels, by_k, by_p, p, len(idx_t), start, gy,
                                          lang)
        files += _report(model, sc, ev, ens, fresh_ens, final, fresh, s.reach, targeted, s.out_of_reach, levels, p,
                         tol, holds, start, gy, notes, files, s.prices, args.lang).write(d)
        timings["write_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_start
        _write_manifest(d, args, model, sc, s, targets_asked, start, gy, decs, lever_cols, tol, holds, notes, timings,
                        files, lang)
    _summary(model, sc, ev, ens, fresh_ens, final, fresh, s.reach, targeted, s.out_of_reach, levels, p, tol, holds,
             start, gy, notes, timings, target, s.gens, s.prices, args.lang)
    return 0


def _write_tables(d: Path, args: argparse.Namespace, model: Any, sc: Any, s: _Search, decs: list,
                  levels: dict[str, tuple[float, Any]], by_k: list, by_p: list, p: float, n_targeted: int, start: int,
                  gy: int, lang: str) -> tuple[list[str], list[str]]:
    """Write package.yaml, the CSV tables and the Pareto figure into ``d``; the files written and the lever columns."""
    ev, final, goals = s.ev, s.final, list(model.goals)
    files = []
    _write_package(d / "package.yaml", model, sc, ev, s.x, p, s.targeted, s.out_of_reach, start, gy, s.ens)
    files.append("package.yaml")
    write_csv(d / "targets.csv", ["goal", "targeted", "scope", "p_in_sample", "p_fresh"],
              ([g, "yes" if g in s.targeted else "no", _scope(model, g), final.prob[0, i], s.fresh.prob[0, i]]
               for i, g in enumerate(goals)))
    files.append("targets.csv")
    write_csv(d / "package.csv", ["lever", "units", "input", "package", "policy_low", "policy_high",
                                  "discounted_cost_above_input"],
              ([lv, model.levers[lv].units, lo, _fmt_level(v), *model.levers[lv].policy_range,
                final.cost_by_lever[0, ev.levers.index(lv)]] for lv, (lo, v) in levels.items()))
    files.append("package.csv")
    write_csv(d / "reach.csv", ["goal", "scope", "p_input", "p_all_levers_at_top", "reachable_at_p",
                                "binding_lever", "probability_lost_without_it"],
              ([r.goal, _scope(model, r.goal), r.p_input, r.p_best, "yes" if r.feasible else "no", r.binding,
                r.loss] for r in s.reach))
    files.append("reach.csv")
    lever_cols = [f"{dd.lever}" + ("" if dd.part == "value" else f"_{dd.part}") for dd in decs]
    rows = [["goals_met", k, p, c, *xx] for k, c, xx, _ in by_k] + [["all_goals_at_p", n_targeted, q, c, *xx]
                                                                   for q, c, xx in by_p]
    write_csv(d / "pareto.csv", ["curve", "goals_met", "probability", "cost", *lever_cols], rows)
    files.append("pareto.csv")
    if not args.no_plots:
        fig = plots.styled(_pareto_figure)(by_k, by_p, p, n_targeted, sc.label(lang), s.ens.n, goals,
                                           float(final.cost[0]), lang)
        files += [f.name for f in plots.save(fig, d / "pareto", args.svg)]
    return files, lever_cols


def _write_manifest(d: Path, args: argparse.Namespace, model: Any, sc: Any, s: _Search, targets_asked: list[str],
                    start: int, gy: int, decs: list, lever_cols: list[str], tol: float, holds: dict[str, bool],
                    notes: list[str], timings: dict[str, float], files: list[str], lang: str) -> None:
    """Write manifest.json: inputs, settings, the package, its cost and the fresh check (timings in s)."""
    ens, fresh_ens, ev, prices = s.ens, s.fresh_ens, s.ev, s.prices
    write_json(d / "manifest.json", manifest(
        model, "optimize", timings["total_s"], scenario=sc.resolved(), random_seed=args.seed,
        fresh_seed=s.fresh_seed, samples=args.samples, samples_ok=ens.n, fresh_samples=fresh_ens.drawn,
        fresh_samples_ok=fresh_ens.n, ensemble=ens.note, probability=float(args.probability),
        goals_asked=targets_asked, goals_targeted=s.targeted, goals_out_of_reach=s.out_of_reach, start=start,
        goal_year=gy, shape=args.shape,
        decisions=[{"lever": dd.lever, "part": dd.part, "low": dd.low, "high": dd.high} for dd in decs],
        package={c: float(v) for c, v in zip(lever_cols, s.x, strict=True)}, cost=float(s.final.cost[0]),
        cost_at_price_ends={"low": prices[0], "high": prices[1], "prices": po.price_parameters(model)},
        discount_rate=float(np.asarray(ens.params.get("discount_rate", 0.0)).reshape(-1)[0]),
        optimiser={"method": "scipy.optimize.differential_evolution", "vectorized": True, "strategy": "best1bin",
                   "popsize": args.popsize, "maxiter": args.maxiter, "tol": 1e-3, "mutation": [0.5, 1.0],
                   "recombination": 0.7, "polish": "batched coordinate search toward the input",
                   "generations": s.gens, "message": s.message, "polish_steps": s.steps},
        fresh_check={"tolerance": tol, "effective_size": fresh_ens.effective_size, "holds": holds},
        batches=ev.batches, runs=ev.runs, notes=notes, timings_s={k: round(v, 3) for k, v in timings.items()},
        files=[*files, "manifest.json"], language=lang,
    ))


# --------------------------------------------------------------------------------------- helpers


def _check_memory(model: Any, sc: Any, args: argparse.Namespace, gy: int, d: int) -> None:
    """InputError when one generation (popsize x (1 + samples) runs, reach: (2 + 2d) x ...) would not fit in memory."""
    years = gy - model.calibration.start + 1
    steps = years * round(1 / sc.dt) + 1
    per_run = bytes_per_run(model, years) + 2 * 8 * steps * len(model.levers)  # records + lever schedules
    runs = max(args.popsize, 2 + 2 * d) * (args.samples + 1)
    have = machine_memory()
    if have is not None and runs * per_run > have:
        fit = max(int(have / per_run / max(args.popsize, 2 + 2 * d)) - 1, 0)
        raise InputError(f"{args.samples:,} samples make batches of {runs:,} runs needing about "
                         f"{runs * per_run / 2**30:,.1f} GiB, more than this machine's {have / 2**30:,.1f} GiB; use at "
                         f"most about {fit:,}", None, "--samples")


def _scope(model: Any, goal: str, lang: str = "en") -> str:
    g = model.goals[goal]
    return t("opt.scope.reported", lang, scale=g.threshold_scale) if g.reported is not None else t("opt.scope.seed",
                                                                                                    lang)


def _rounded(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Values rounded up to 4 significant digits (inside the bounds), so package.yaml is readable and exact."""
    out = x.copy()
    for j, v in enumerate(x):
        if np.isnan(v):  # the input's own setting
            continue
        if v <= lo[j]:
            out[j] = lo[j]
            continue
        mag = 10.0 ** (np.floor(np.log10(abs(v))) - 3) if v != 0 else 1e-4
        out[j] = min(np.ceil(v / mag - 1e-9) * mag, hi[j])
        out[j] = float(f"{out[j]:.10g}")
    return out


def _package_levers(ev: po.Evaluator, x: np.ndarray) -> dict[str, tuple[float, Any]]:
    """lever -> (input level, package value: a number or (start, end) of a ramp)."""
    out: dict[str, tuple[float, Any]] = {}
    for j, d in enumerate(ev.decs):
        if np.isnan(x[j]):
            out[d.lever] = (d.low, None)  # held at the input's own setting
        elif d.part == "value":
            out[d.lever] = (d.low, float(x[j]))
        else:
            lo, (a, b) = out.get(d.lever, (d.low, (d.low, d.low)))
            out[d.lever] = (lo, (float(x[j]), b) if d.part == "start" else (a, float(x[j])))
    return out


def _fmt_level(v: Any, lang: str = "en") -> str:
    if v is None:
        return t("opt.input", lang)
    return f"{v[0]:g} -> {v[1]:g}" if isinstance(v, tuple) else f"{v:g}"


def _write_package(path: Path, model: Any, sc: Any, ev: po.Evaluator, x: np.ndarray, p: float, targeted: list[str],
                   out_of_reach: list[str], start: int, gy: int, ens: po.Ensemble) -> None:
    """A self-contained scenario: levers from the start year, the input's parameters and other levers, no extends."""
    levers: dict[str, Any] = {}
    decided = {d.lever for d in ev.decs}
    later = bool(sc.levers) and start > ev.input_start  # decisions start after the input's own levers
    for name, fn in sc.levers.items():  # the input's other settings (external conditions, events, held levers)
        if name not in decided:
            levers[name] = fn.to_yaml()
    for name, (_, v) in _package_levers(ev, x).items():
        if v is None:  # held: the input's own setting (none: the model's value)
            if name in sc.levers:
                levers[name] = sc.levers[name].to_yaml()
            continue
        if isinstance(v, tuple):
            levers[name] = {"ramp": {"from": start, "to": gy, "start": v[0], "end": v[1]}}
        elif later:  # a step at the start year from the input's (constant) value meanwhile
            before = po.held_before(ev.cm, sc, name, start, gy)
            if before is None:
                raise InputError(f"the input's lever {name} changes between its policy start ({ev.input_start}) and "
                                 f"{start}, so a package acting from {start} cannot be written as one scenario; use "
                                 f"--start {ev.input_start}", sc.file, f"levers.{name}")
            step: dict[str, Any] = {"at": start, "to": v}
            if name in sc.levers:
                step["from"] = before
            levers[name] = {"step": step}
        else:
            levers[name] = v
    goals = ", ".join(targeted) if targeted else "none"
    data: dict[str, Any] = {
        "name": f"{sc.name}_optimized"[:64],
        "title": {"en": f"Least-cost package from '{sc.name}' (P >= {p:g} in {gy})",
                  "zh": f"最低成本政策组合（{gy}年达标概率 ≥ {p:g}）"},
        "description": (f"Found by `simulate.py optimize {sc.file}` (probability {p:g}, {ens.drawn} samples, "
                        f"seed {ens.seed}; {ens.note}). Policy levers act from {start}; goals targeted: {goals}"
                        + (f"; out of reach inside the policy ranges: {', '.join(out_of_reach)}" if out_of_reach
                           else "") + "."),
        "end": sc.end,
        "dt": f"1/{round(1 / sc.dt)}",
        "method": sc.method,
        "policy_start": ev.input_start if later else start,
        "levers": levers,
    }
    if sc.parameters:
        data["parameters"] = dict(sc.parameters)
    if sc.tables:
        data["tables"] = {k: {"y": list(v)} for k, v in sc.tables.items()}
    text = ("# Written by simulate.py optimize: a self-contained scenario (no extends), runnable from any folder.\n"
            + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110))
    path.write_text(text, encoding="utf-8")


def _pareto_figure(by_k: list, by_p: list, p: float, n_goals: int, title: str, n: int, goals: list[str],
                   cost: float, lang: str = "en") -> Any:
    """The two Pareto curves (cost by goals met, cost by probability): a new Figure outside pyplot, built
    under the language's fonts (call through :func:`sdsim.plots.styled`)."""
    from .. import plots

    fig = plots.new_figure((12, 4.6))
    a1, a2 = fig.subplots(1, 2)
    if by_k:
        k = [r[0] for r in by_k]
        c = [r[1] for r in by_k]
        a1.step(k, c, where="post", color="#1f77b4")
        a1.plot(k, c, "o", color="#1f77b4")
        seen: set[int] = set()
        for kk, cc, _, met in by_k:  # name the goals each step adds
            new = [goals[g] for g in met if g not in seen]
            seen.update(met)
            if new and kk == 0:
                a1.annotate(t("opt.fig.free", lang) + "\n" + "\n".join(new), (kk, cc), textcoords="offset points",
                            xytext=(6, 10), ha="left", fontsize=7, color="#333333")
            elif new:
                a1.annotate("+ " + "\n+ ".join(new), (kk, cc), textcoords="offset points", xytext=(-6, 6),
                            ha="right", fontsize=7, color="#333333")
        a1.set_xticks(range(0, n_goals + 1))
        a1.set_ylim(bottom=min(0.0, min(c)) - 0.04 * (max(c) or 1.0), top=1.2 * max(c) if max(c) > 0 else 1.0)
    a1.set_xlabel(t("opt.fig.goals_met", lang, p=f"{p:g}", n=n_goals))
    a1.set_ylabel(t("opt.fig.cost", lang))
    a1.set_title(t("opt.fig.by_k", lang))
    a1.grid(alpha=0.3)
    qs = [r[0] for r in by_p if np.isfinite(r[1])]
    cs = [r[1] for r in by_p if np.isfinite(r[1])]
    a2.plot(qs, cs, "o-", color="#d62728", label=t("opt.fig.cheapest", lang))
    a2.plot([p], [cost], "*", ms=13, color="black", label=t("opt.fig.found", lang, p=f"{p:g}"))
    a2.axvline(p, color="grey", ls=":", lw=1)
    a2.legend(fontsize=8, loc="upper left")
    a2.set_xlabel(t("opt.fig.p", lang))
    a2.set_ylabel(t("opt.fig.cost", lang))
    a2.set_title(t("opt.fig.by_p", lang))
    a2.grid(alpha=0.3)
    fig.suptitle(t("opt.fig.title", lang, title=title, n=n), fontsize=10)
    return fig


def _goal_rows(model: Any, final: Any, fresh: Any, targeted: list[str], p: float, tol: float,
               holds: dict[str, bool], lang: str = "en") -> list[list[str]]:
    rows = []
    for i, g in enumerate(model.goals):
        goal = model.goals[g]
        seed_scope = f"{final.prob_seed[0, i]:.2f}" if goal.reported is not None else "-"
        check = (t("opt.ok", lang) if holds[g] else t("opt.below", lang, p=f"{p - tol:.2f}")) if g in targeted else "-"
        rows.append([g, t("common.yes" if g in targeted else "common.no", lang), _scope(model, g, lang),
                     f"{final.prob[0, i]:.3f}", f"{fresh.prob[0, i]:.3f}", check, seed_scope])
    return rows


def _header(part: str, keys: tuple[str, ...], lang: str = "en") -> list[str]:
    return [t(f"opt.{part}.{k}", lang) for k in keys]


GOAL_KEYS = ("goal", "targeted", "scope", "p_sample", "p_fresh", "check", "p_seed")
LEVER_KEYS = ("lever", "input", "package", "range", "cost")
REACH_KEYS = ("goal", "p_input", "p_best", "binds")
GOAL_HEADER = _header("goal", GOAL_KEYS)
LEVER_HEADER = _header("lever", LEVER_KEYS)
REACH_HEADER = _header("reach", REACH_KEYS)


def _lever_rows(model: Any, ev: po.Evaluator, final: Any, levels: dict, lang: str = "en") -> list[list[str]]:
    rows = []
    for lv, (lo, v) in levels.items():
        pr = model.levers[lv].policy_range
        c = final.cost_by_lever[0, ev.levers.index(lv)]
        rows.append([lv, f"{lo:g}", _fmt_level(v, lang), f"{pr[0]:g}-{pr[1]:g} {model.levers[lv].units}", f"{c:.3f}"])
    other = [i for i, lv in enumerate(ev.levers) if lv not in levels]
    for i in other:  # levers held at the input whose cost still moves (they price model variables)
        c = final.cost_by_lever[0, i]
        if abs(c) > 5e-4:
            rows.append([ev.levers[i], t("opt.held", lang), t("opt.held", lang), "", f"{c:.3f}"])
    return rows


def _reach_rows(reach: list[po.Reach], out: list[str], lang: str = "en") -> list[list[str]]:
    return [[r.goal, f"{r.p_input:.3f}", f"{r.p_best:.3f}", r.binding or t("opt.no_lever", lang)]
            for r in reach if r.goal in out]


def _report(model: Any, sc: Any, ev: po.Evaluator, ens: po.Ensemble, fresh_ens: po.Ensemble, final: Any, fresh: Any,
            reach: list[po.Reach], targeted: list[str], out: list[str], levels: dict, p: float, tol: float,
            holds: dict[str, bool], start: int, gy: int, notes: list[str], files: list[str],
            prices: tuple[float, float], lang: str = "en") -> Report:
    rep = Report(t("opt.title", lang, title=sc.label(lang)), lang)
    rep.text(t("opt.report_lead", lang, heading=heading(sc, lang), p=f"{p:g}", gy=gy, start=start,
               cost=f"{final.cost[0]:.3f}", low=f"{prices[0]:.3f}", high=f"{prices[1]:.3f}", ok=ens.n, n=ens.drawn,
               year=model.calibration.end, note=localize(ens.note, lang, "opt.form.")))
    for n in notes:
        rep.text(t("senscli.note", lang, note=localize(n, lang, "opt.form.")))
    rep.heading(t("opt.package_heading", lang))
    rep.table(_header("lever", LEVER_KEYS, lang), _lever_rows(model, ev, final, levels, lang))
    rep.heading(t("opt.goals_heading", lang))
    rep.text(t("opt.fresh_note", lang, ok=fresh_ens.n, n=fresh_ens.drawn, seed=fresh_ens.seed, tol=f"{p - tol:.3f}"))
    rep.table(_header("goal", GOAL_KEYS, lang), _goal_rows(model, final, fresh, targeted, p, tol, holds, lang))
    if out:
        rep.heading(t("opt.reach_heading", lang))
        rep.table(_header("reach", REACH_KEYS, lang), _reach_rows(reach, out, lang))
    for f in files:
        if f.endswith(".png"):
            rep.image(f, t("opt.pareto_caption", lang))
    return rep


def _summary(model: Any, sc: Any, ev: po.Evaluator, ens: po.Ensemble, fresh_ens: po.Ensemble, final: Any,
             fresh: Any, reach: list[po.Reach], targeted: list[str], out: list[str], levels: dict, p: float,
             tol: float, holds: dict[str, bool], start: int, gy: int, notes: list[str], timings: dict[str, float],
             target: Path, gens: int, prices: tuple[float, float], lang: str = "en") -> None:
    print(heading(sc, lang))
    for w in sc.warnings:
        print(warning_line(w, lang))
    print(t("opt.lead", lang, p=f"{p:g}", gy=gy, start=start, ok=ens.n, n=ens.drawn, seed=ens.seed,
            note=localize(ens.note, lang, "opt.form.")))
    for n in notes:
        print(t("common.note_line", lang, note=localize(n, lang, "opt.form.")))
    if out:
        print("\n" + t("opt.reach_lead", lang))
        print(render(_header("reach", REACH_KEYS, lang), _reach_rows(reach, out, lang), [False, True, True, False]))
    print("\n" + t("opt.package_lead", lang, start=start, gy=gy, cost=num(final.cost[0]), low=num(prices[0]),
                   high=num(prices[1])))
    print(render(_header("lever", LEVER_KEYS, lang), _lever_rows(model, ev, final, levels, lang),
                 [False, True, True, True, True]))
    print("\n" + t("opt.goals_lead", lang, ok=fresh_ens.n, n=fresh_ens.drawn, seed=fresh_ens.seed,
                   tol=f"{p - tol:.3f}"))
    print(render(_header("goal", GOAL_KEYS, lang), _goal_rows(model, final, fresh, targeted, p, tol, holds, lang),
                 [False, False, False, True, True, False, True]))
    stages = ", ".join(t("opt.stage", lang, stage=localize(k[:-2], lang, "opt.stage."), secs=f"{v:.1f}")
                       for k, v in timings.items() if k != "total_s")
    print("\n" + t("opt.time", lang, secs=f"{timings.get('total_s', 0):.1f}", stages=stages, gens=gens,
                   batches=ev.batches, runs=f"{ev.runs:,}"))
    print(t("opt.written", lang, target=target))
