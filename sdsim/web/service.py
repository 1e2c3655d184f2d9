"""The interactive page's computations, without HTTP: scenario list, runs, ensembles, scenario YAML.

One :class:`Service` per server holds the model compiled once and two caches:

* the **central calibration** of a parameter set (the scenario's ``parameters`` and ``tables``, its dt
  and method): levers act only after the calibration window, so moving a lever never changes it and a
  slider move costs one integration (n = 1);
* the **ensemble** of a parameter set: a Latin-hypercube sample of the model's uncertainties
  (:func:`sdsim.sensitivity.define_problem` / :func:`~sdsim.sensitivity.sample_mc`, fixed seed), every
  sample calibrated to the calibration year once; a slider move integrates the calibrated samples again
  under the new levers. The same seed is used for every lever setting (common random numbers), so two
  settings differ by their effect, not by sampling noise.

Requests are validated exactly like scenario files and ``--set`` (:func:`sdsim.scenario.apply` and
:func:`~sdsim.scenario.validate`); bad input raises :class:`~sdsim.errors.InputError` with one line.
Page levers are written like scenario levers: a number is a constant from the scenario's policy start.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler import Compiled, compile_model
from ..engine import Run, TimeGrid, simulate
from ..errors import InputError
from ..goals import evaluate
from ..model import Model, load_model
from ..runner import calibrated_params, check_stable, parameter_batch, run_scenarios, scenario_levers, table_key, trim
from ..scenario import Scenario, apply, goal_year, load_scenario, policy_start, validate
from ..yamlio import check_keys, describe_value

REQUEST = "request"  # the "file" named in messages about a request's values
REQUEST_KEYS = ("scenario", "levers", "parameters", "ensemble")
DEFAULT_SAMPLES = 200
DEFAULT_SEED = 12345
CACHE_SIZE = 16  # parameter sets kept (central calibrations and ensembles each)


@dataclass
class _Ensemble:
    """Calibrated samples of one parameter set (only the rows that reproduce the calibration year)."""

    n: int
    n_ok: int
    params: dict[str, Any]  # solved parameters of the ok rows: numbers or (n_ok,) arrays
    failures: dict[str, int]
    calibrate_s: float


def _finite(a: Any) -> list[float | None]:
    """A JSON-safe list (NaN and infinities as null)."""
    return [float(x) if math.isfinite(x) else None for x in np.asarray(a, dtype=float).reshape(-1)]


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _labels(obj: Any) -> dict[str, str]:
    en = getattr(obj, "en", "") or getattr(obj, "name", "")
    return {"en": en, "zh": getattr(obj, "zh", "") or en}


class Service:
    """The model compiled once, the scenario folders, and the caches of calibrations and ensembles."""

    def __init__(self, model_dir: str | Path | None = None, scenario_dirs: list[Path] | None = None,
                 samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED, lang: str = "en") -> None:
        self.lang = lang  # the page's initial language
        self.model: Model = load_model(model_dir)
        self.cm: Compiled = compile_model(self.model)
        self.scenario_dirs = [Path(d) for d in (scenario_dirs or [])]
        self.samples = int(samples)
        self.seed = int(seed)
        self._lock = threading.Lock()  # one computation at a time (the compiled model is shared)
        self._tables: dict[tuple, Compiled] = {}
        self._central: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._ensembles: OrderedDict[tuple, _Ensemble] = OrderedDict()
        self._baselines: OrderedDict[tuple, Run] = OrderedDict()

    # ------------------------------------------------------------------------------ scenarios

    def scenario_files(self) -> dict[str, Path]:
        """Scenario name (file stem) -> file; the first folder wins when two hold the same name."""
        out: dict[str, Path] = {}
        seen: set[Path] = set()
        for d in self.scenario_dirs:
            if not d.is_dir() or d.resolve() in seen:
                continue
            seen.add(d.resolve())
            for f in sorted(d.glob("*.yaml")):
                out.setdefault(f.stem, f)
        return out

    def scenario(self, name: Any) -> Scenario:
        """Load the listed scenario ``name`` (a name from the list, never a path)."""
        files = self.scenario_files()
        if not isinstance(name, str) or name not in files:
            listed = ", ".join(files) or "none"
            raise InputError(f"unknown scenario {describe_value(name)}; the scenarios are: {listed}", REQUEST, "scenario")
        return load_scenario(files[name], self.model)

    def request(self, body: Any) -> tuple[Scenario, bool, dict[str, Any]]:
        """(scenario with the request's levers and parameters applied, ensemble wanted, page levers as given).

        The request is ``{"scenario": name, "levers": {...}, "parameters": {...}, "ensemble": bool}``;
        levers and parameters are checked exactly like a scenario file's.
        """
        check_keys(body, REQUEST_KEYS, REQUEST, "", required=("scenario",))
        sc = self.scenario(body["scenario"])
        levers = body.get("levers") or {}
        parameters = body.get("parameters") or {}
        for key, value in (("levers", levers), ("parameters", parameters)):
            if not isinstance(value, dict):
                raise InputError(f"expected a mapping, got {describe_value(value)}", REQUEST, key)
        levers = {k: _json_table_years(v) for k, v in levers.items()}
        ensemble = body.get("ensemble", True)
        if not isinstance(ensemble, bool):
            raise InputError(f"expected true or false, got {describe_value(ensemble)}", REQUEST, "ensemble")
        apply(sc, {"levers": levers, "parameters": parameters}, self.model, REQUEST, is_leaf=False)
        validate(sc, self.model)
        return sc, ensemble, levers

    # --------------------------------------------------------------------------------- meta

    def meta(self) -> dict[str, Any]:
        """Everything the page needs besides runs: goals (with observed points), levers, scenarios."""
        model = self.model
        cal = model.calibration
        goals = []
        hist = getattr(model, "history", None)
        for name, g in model.goals.items():
            points: list[dict[str, Any]] = []
            if g.observed and g.observed in model.facts:
                f = model.facts[g.observed]
                points.append({"t": f.year, "value": f.value, "kind": "fact", "reported": False})
            targets = []
            for r in (hist.rows if hist is not None else []):
                if r.variable not in (g.variable, g.reported):
                    continue
                if r.kind == "observation" and r.t is not None and r.bounds is not None:
                    lo, hi = r.bounds
                    points.append({"t": r.t, "value": r.value, "lo": lo, "hi": hi, "kind": "observation",
                                   "reported": r.variable == g.reported, "id": r.id})
                elif r.kind == "target":
                    targets.append({"t": r.time, "value": r.value, "id": r.id})
            goals.append({"name": name, "label": _labels(g), "variable": g.variable, "units": g.units,
                          "test": g.test, "threshold": g.threshold, "year": g.year, "poisson": g.poisson,
                          "percent": g.units == "dmnl", "reported": g.reported, "quote": g.quote, "note": g.note,
                          "points": points, "targets": targets})
        levers = []
        for name, p in model.levers.items():
            lo, hi = p.limits
            levers.append({"name": name, "label": _labels(p), "units": p.units, "value": p.value,
                           "policy_range": list(p.policy_range) if p.policy_range else None,
                           "limits": [_num(lo), _num(hi)], "role": p.role, "note": p.note, "quote": p.quote})
        scenarios = []
        for sname, f in self.scenario_files().items():
            entry: dict[str, Any] = {"name": sname, "file": str(f)}
            try:
                sc = load_scenario(f, model)
            except InputError as exc:
                entry["error"] = str(exc)
            else:
                entry.update({"title": {"en": sc.label("en"), "zh": sc.label("zh")}, "description": sc.description,
                              "description_zh": sc.description_zh,
                              "end": sc.end, "policy_start": policy_start(sc, model),
                              "levers": {k: self._lever_state(k, fn) for k, fn in sc.levers.items()},
                              "parameters": sc.parameters, "warnings": sc.warnings})
            scenarios.append(entry)
        return {"model": str(model.directory), "lang": self.lang, "calibration_end": cal.end, "policy_start": cal.lever_start,
                "goal_year": goal_year(model), "goals": goals, "levers": levers, "scenarios": scenarios,
                "ensemble": {"samples": self.samples, "seed": self.seed}}

    def _lever_state(self, name: str, fn: Any) -> dict[str, Any]:
        """A scenario's setting of a lever: its YAML form, a summary and its value in the goal year."""
        base = self.model.levers[name].value
        at_goal = float(fn.values(np.array([goal_year(self.model) - 0.5]), base)[0, 0])
        return {"kind": fn.kind, "summary": fn.summary(), "yaml": fn.to_yaml(), "value": at_goal}

    # ---------------------------------------------------------------------------------- runs

    def run(self, body: Any) -> dict[str, Any]:
        """POST /api/run: the goal table, yearly goal indicators, the baseline, and the ensemble if asked."""
        sc, want_ensemble, _ = self.request(body)
        with self._lock:
            t0 = time.perf_counter()
            run, params = self._central_run(sc)
            t1 = time.perf_counter()
            base = self._baseline(sc)
            t2 = time.perf_counter()
            out = self._result(sc, run, params, base)
            out["timing_ms"] = {"central": 1000 * (t1 - t0), "baseline": 1000 * (t2 - t1)}
            if want_ensemble:
                t3 = time.perf_counter()
                out["ensemble"] = self._ensemble(sc)
                out["timing_ms"]["ensemble"] = 1000 * (time.perf_counter() - t3)
        return out

    def _compiled(self, sc: Scenario) -> Compiled:
        key = table_key(sc)
        if key not in self._tables:
            self._tables[key] = self.cm.with_tables(sc.tables)
        return self._tables[key]

    @staticmethod
    def _param_key(sc: Scenario) -> tuple:
        return (sc.dt, sc.method, table_key(sc), tuple(sorted(sc.parameters.items())))

    def _central_run(self, sc: Scenario) -> tuple[Run, dict[str, float]]:
        """The scenario's run, as :func:`sdsim.runner.run_scenarios` computes it, with its calibration cached."""
        if not sc.recalibrate:
            res = run_scenarios(self.cm, [sc])[0]
            return res.run, res.params
        cm = self._compiled(sc)
        key = self._param_key(sc)
        solved = self._central.get(key)
        if solved is None:
            params = parameter_batch(cm, [sc.parameters])
            with np.errstate(all="ignore"):
                solved, res = calibrated_params(cm, params, sc.dt, sc.method, strict=False)
            if not res.ok.all():
                run_scenarios(self.cm, [sc])  # raises the CLI's message about this failure
                raise InputError("calibration has no solution for this parameter set", REQUEST, "parameters")
            self._central[key] = solved
            while len(self._central) > CACHE_SIZE:
                self._central.popitem(last=False)
        else:
            self._central.move_to_end(key)
        grid = TimeGrid(self.model.calibration.start, sc.end, sc.dt)
        one = {k: (np.asarray(v).reshape(-1)[0] if np.ndim(v) else v) for k, v in solved.items()}
        levers = scenario_levers(cm, grid, one, sc.levers, first_year=policy_start(sc, self.model))
        with np.errstate(all="ignore"):
            run = simulate(cm, solved, levers, grid, sc.method, n=1)
        check_stable(cm, run, 0, sc)
        run = trim(run, sc.end - self.model.calibration.start + 1)
        return run, {k: float(v) for k, v in one.items()}

    def _baseline(self, sc: Scenario) -> Run:
        """The model's own values (no levers, no parameter overrides) over the scenario's years, cached."""
        key = (sc.end, sc.dt, sc.method)
        if key not in self._baselines:
            base = Scenario(name="baseline", file="", start=self.model.calibration.start, end=sc.end, dt=sc.dt,
                            method=sc.method)
            self._baselines[key] = self._central_run(base)[0]
        return self._baselines[key]

    def _result(self, sc: Scenario, run: Run, params: dict[str, float], base: Run) -> dict[str, Any]:
        model = self.model
        status = evaluate(model, run, params=params)
        base_status = evaluate(model, base)
        goals, series, base_series = [], {}, {}
        for name, st in status.items():
            g = st.goal
            row: dict[str, Any] = {
                "name": name, "variable": g.variable, "year": g.year, "test": g.test, "threshold": g.threshold,
                "value": _num(st.value[0]), "met": bool(st.met[0]),
                "first_year": int(st.first_year[0]) or None, "gap": _num(st.gap[0]), "gap_pct": _num(st.gap_pct[0]),
                "probability": _num(st.probability[0]),
                "value_reported": None, "threshold_reported": None, "rebased_target": None, "rebased_target_year": None,
                "baseline_value": _num(base_status[name].value[0]), "baseline_met": bool(base_status[name].met[0]),
            }
            if st.value_reported is not None and st.threshold_reported is not None:
                row.update(value_reported=_num(st.value_reported[0]), threshold_reported=_num(st.threshold_reported[0]),
                           rebased_target=st.rebased_target, rebased_target_year=st.rebased_year)
            goals.append(row)
            series[name] = {"value": _finite(run.get(g.variable)[:, 0]),
                            "reported": _finite(run.get(g.reported)[:, 0]) if g.reported else None}
            base_series[name] = {"value": _finite(base.get(g.variable)[:, 0]),
                                 "reported": _finite(base.get(g.reported)[:, 0]) if g.reported else None}
        return {
            "scenario": {"name": sc.name, "title": {"en": sc.label("en"), "zh": sc.label("zh")}, "file": sc.file,
                         "end": sc.end, "dt": sc.dt, "method": sc.method, "policy_start": policy_start(sc, model),
                         "levers": {k: v.to_yaml() for k, v in sc.levers.items()}, "parameters": dict(sc.parameters)},
            "warnings": list(sc.warnings),
            "years": [int(y) for y in run.years],
            "goals": goals,
            "series": series,
            "baseline": {"years": [int(y) for y in base.years], "series": base_series},
            "ensemble": None,
        }

    # ------------------------------------------------------------------------------ ensemble

    def _ensemble_samples(self, sc: Scenario) -> _Ensemble:
        """The calibrated samples of the scenario's parameter set (cached; levers do not change them)."""
        from ..sensitivity import define_problem, sample_mc

        key = (*self._param_key(sc), self.samples, self.seed)
        ens = self._ensembles.get(key)
        if ens is not None:
            self._ensembles.move_to_end(key)
            return ens
        cm = self._compiled(sc)
        problem = define_problem(self.model, sc)
        design = sample_mc(problem, self.samples, self.seed)
        # as sdsim.sensitivity.run_experiments: every sampled value replaces the parameter, then one calibration
        params = {k: (float(np.asarray(v).reshape(-1)[0]) if np.ndim(v) and np.size(v) == 1 else v)
                  for k, v in parameter_batch(cm, [sc.parameters]).items()}
        for j, q in enumerate(problem.uncertainties):
            col = design.x[:, j].copy()
            col[np.isnan(col)] = params[q.name]
            params[q.name] = col
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            solved, res = calibrated_params(cm, params, sc.dt, sc.method, strict=False)
        n = design.x.shape[0]
        ok = np.broadcast_to(res.ok, (n,))
        idx = np.flatnonzero(ok)
        failures: dict[str, int] = {}
        for r in np.broadcast_to(res.reason, (n,))[~ok]:
            failures[str(r)] = failures.get(str(r), 0) + 1
        sub = {k: (np.asarray(v)[idx] if np.ndim(v) and np.size(v) == n and n > 1 else
                   (float(np.asarray(v).reshape(-1)[0]) if np.ndim(v) and np.size(v) == 1 else v))
               for k, v in solved.items()}
        ens = _Ensemble(n, int(idx.size), sub, failures, time.perf_counter() - t0)
        self._ensembles[key] = ens
        while len(self._ensembles) > CACHE_SIZE:
            self._ensembles.popitem(last=False)
        return ens

    def _ensemble(self, sc: Scenario) -> dict[str, Any]:
        """Goal probabilities and yearly 5-50-95 % bands of the scenario under the ensemble."""
        from scipy import stats

        if not sc.recalibrate:
            return {"error": "the ensemble re-calibrates every sample; this scenario says 'recalibrate: false'"}
        ens = self._ensemble_samples(sc)
        if ens.n_ok == 0:
            return {"n": ens.n, "n_ok": 0, "error": f"no sample reproduces {self.model.calibration.end}"}
        cm = self._compiled(sc)
        grid = TimeGrid(self.model.calibration.start, sc.end, sc.dt)
        with np.errstate(all="ignore"):
            levers = scenario_levers(cm, grid, ens.params, sc.levers, first_year=policy_start(sc, self.model))
            run = simulate(cm, ens.params, levers, grid, sc.method, n=ens.n_ok)
            status = evaluate(self.model, run)
        probability, interval, bands = {}, {}, {}
        for name, st in status.items():
            k = float(np.nansum(st.probability))
            probability[name] = k / ens.n_ok
            ci = stats.binomtest(int(round(k)), ens.n_ok).proportion_ci(confidence_level=0.95, method="wilson")
            interval[name] = [float(ci.low), float(ci.high)]
            v = run.get(st.goal.variable)
            with np.errstate(all="ignore"), _quiet():
                q = np.nanpercentile(v, [5, 50, 95], axis=1)
            bands[name] = {"p5": _finite(q[0]), "p50": _finite(q[1]), "p95": _finite(q[2])}
        return {"n": ens.n, "n_ok": ens.n_ok, "seed": self.seed, "failures": ens.failures,
                "probability": probability, "interval": interval, "bands": bands,
                "years": [int(y) for y in run.years], "calibrate_ms": 1000 * ens.calibrate_s}

    def warm(self, name: str | None = None) -> None:
        """Calibrate the central run and the ensemble of a scenario (default: the first listed) ahead of use."""
        files = self.scenario_files()
        if not files:
            return
        try:
            self.run({"scenario": name if name in files else next(iter(files)), "ensemble": True})
        except InputError:
            pass  # a broken scenario file is reported when the page asks for it

    # ------------------------------------------------------------------------- scenario YAML

    def scenario_yaml(self, body: Any) -> tuple[str, str]:
        """(file name, text) of a self-contained scenario (no ``extends``) with the request's levers.

        ``simulate.py run`` on the file reproduces the page's numbers: every resolved key is written
        (end, dt, method, policy start, every lever and parameter), floats in their shortest exact form.
        """
        import yaml

        sc, _, page_levers = self.request(body)
        start = policy_start(sc, self.model)
        name = f"{sc.name}_page"[:64]
        changed = ", ".join(f"{k} = {sc.levers[k].summary()}" for k in page_levers) or "none"
        data: dict[str, Any] = {
            "name": name,
            "title": {"en": f"{sc.label('en')} (from the interactive page)",
                      "zh": f"{sc.label('zh')}（交互页面）"},
            "description": (f"Saved from the interactive page (simulate.py serve): scenario '{sc.name}' "
                            f"({Path(sc.file).name}) with the levers set on the page, constant from {start}: "
                            f"{changed}. Self-contained (no extends)."),
            "end": sc.end,
            "dt": f"1/{round(1 / sc.dt)}" if (1 / sc.dt).is_integer() else sc.dt,
            "method": sc.method,
            "policy_start": start,
        }
        if not sc.recalibrate:
            data["recalibrate"] = False
        data["levers"] = {k: fn.to_yaml() for k, fn in sc.levers.items()}
        data["parameters"] = dict(sc.parameters)
        if sc.tables:
            data["tables"] = {k: {"y": list(v)} for k, v in sc.tables.items()}
        head = (f"# Scenario saved by the interactive page (simulate.py serve).\n"
                f"# Run it with: python simulate.py run {name}.yaml\n")
        return f"{name}.yaml", head + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def _json_table_years(value: Any) -> Any:
    """JSON object keys are strings: read the years of a ``table`` lever written in JSON as integers."""
    if isinstance(value, dict) and isinstance(value.get("table"), dict):
        table = {}
        for y, v in value["table"].items():
            table[int(y) if isinstance(y, str) and y.strip().isdigit() else y] = v
        return {**value, "table": table}
    return value


class _quiet:
    """Silence numpy's 'All-NaN slice' warnings (a year every run left NaN has no band)."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
