"""The Python API: load a model, build validated scenarios, run them, analyse uncertainty.

Example (a notebook)::

    import sdsim
    sim = sdsim.load()                                    # the model in ./model (else the repository's)
    sc = sim.scenario("baseline", levers={"ht_investment": 100})
    res = sim.run(sc)
    res.goals[["value", "met", "first_year_met"]]         # pandas DataFrame indexed by goal id
    res.timeseries["high_tech_enterprises"]               # pandas DataFrame indexed by year
    ens = sim.sensitivity(sc, method="mc", samples=2000, seed=1)
    ens.probabilities[["p_prior", "p_conditioned"]]

Scenarios built here go through the same validation as scenario files and ``--set``: a bad value
raises :class:`sdsim.InputError` (a ``ValueError``) with the same one-line message the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .scenario import Scenario, apply, load_scenario, validate

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .compiler import Compiled
    from .model import Model
    from .runner import ScenarioRun


def _pandas() -> Any:
    import pandas as pd

    return pd


@dataclass
class Result:
    """One scenario's run: yearly values and the goal table as pandas DataFrames."""

    scenario: Scenario
    timeseries: pd.DataFrame  # index: year; one column per stock, flow (annual total), auxiliary, series
    goals: pd.DataFrame  # index: goal id; the columns of goals.csv
    parameters: dict[str, float]  # every parameter value the run used, calibrated ones included
    _model: Any = field(default=None, repr=False)  # the Model (for figures)
    _run: Any = field(default=None, repr=False)  # the engine's Run of this scenario
    _status: Any = field(default=None, repr=False)  # goal statuses (goals.evaluate)

    @property
    def figure_names(self) -> list[str]:
        """The figures :meth:`figure` can draw: ``goals`` and those the model declares in figures.yaml."""
        from .plots import run_figures

        return run_figures(self._model)

    def figure(self, name: str = "goals", lang: str = "en") -> Figure:
        """A new matplotlib Figure of this run (``goals`` or a figure of figures.yaml), in ``lang`` (en|zh).

        Nothing global is touched: no backend is chosen, pyplot keeps no reference, rcParams are unchanged.
        Save it with ``fig.savefig(path)`` or show it in a notebook.
        """
        from .plots import run_figure, setup_language

        if name not in self.figure_names:
            raise InputError(f"unknown figure {name!r}; choose one of {', '.join(self.figure_names)}", None, "figure")
        if lang not in ("en", "zh"):
            raise InputError(f"unknown language {lang!r}; choose en or zh", None, "lang")
        lang = setup_language(lang)  # registers the CJK font (en when none is installed)
        return run_figure(self._model, name, self._run, lang, self.scenario.label(lang), self._status)

    def to_csv(self, directory: str | Path) -> list[Path]:
        """Write ``timeseries.csv`` and ``goals.csv`` into ``directory`` (created if missing)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = [d / "timeseries.csv", d / "goals.csv"]
        self.timeseries.to_csv(paths[0])
        self.goals.to_csv(paths[1])
        return paths


@dataclass
class SensitivityResult:
    """An uncertainty analysis: goal probabilities and sensitivity indices as DataFrames."""

    method: str
    probabilities: pd.DataFrame  # index: goal id; p_prior, p_prior_low, p_prior_high, p_conditioned, ..., ess
    indices: pd.DataFrame  # one row per (parameter, output, index)
    samples: int  # samples drawn
    calibrated: int  # samples that reproduce the calibration targets
    kept: int | None  # samples kept by history matching (None when not conditioned)


class Simulator:
    """A loaded, compiled model. Build scenarios with :meth:`scenario`, run them with :meth:`run`."""

    def __init__(self, model: Model, cm: Compiled, scenario_dirs: list[Path]) -> None:
        self.model = model
        self.compiled = cm
        self.scenario_dirs = scenario_dirs

    # ------------------------------------------------------------------------------ scenarios

    def scenario(self, base: str | Path | dict[str, Any] | None = None, levers: dict[str, Any] | None = None,
                 parameters: dict[str, float] | None = None, **settings: Any) -> Scenario:
        """A validated scenario: ``base`` is a shipped scenario's name, a file path, a scenario mapping, or None
        (the model's own values); ``levers``, ``parameters`` and settings (``end``, ``dt``, ``method``,
        ``policy_start``) are applied on top, with the rules and messages of scenario files."""
        if isinstance(base, dict):
            sc = Scenario(name=str(base.get("name", "scenario")), file="(python)", start=self.model.calibration.start,
                          dt=self.model.dt, end=self._goal_year())
            apply(sc, base, self.model, "(python)")
        elif base is None:
            sc = Scenario(name="model", file="(python)", start=self.model.calibration.start, dt=self.model.dt,
                          end=self._goal_year())
        else:
            sc = load_scenario(self._find(base), self.model)
        extra: dict[str, Any] = dict(settings)
        if levers:
            extra["levers"] = levers
        if parameters:
            extra["parameters"] = parameters
        if extra:
            apply(sc, extra, self.model, "(python)", is_leaf=False)
        validate(sc, self.model)
        return sc

    def _goal_year(self) -> int:
        years = [g.year for g in self.model.goals.values()]
        return max(years) if years else self.model.calibration.end + 1

    def _find(self, ref: str | Path) -> Path:
        p = Path(ref)
        if p.suffix in (".yaml", ".yml") or p.exists():
            return p
        for d in self.scenario_dirs:
            cand = d / f"{ref}.yaml"
            if cand.is_file():
                return cand
        known = sorted({f.stem for d in self.scenario_dirs if d.is_dir() for f in d.glob("*.yaml")})
        raise InputError(f"unknown scenario {str(ref)!r}; known: {', '.join(known) or '(none)'}", None, "scenario")

    # ------------------------------------------------------------------------------------ run

    def run(self, scenarios: Scenario | str | list[Scenario | str]) -> Result | list[Result]:
        """Run one scenario (a :class:`Result`) or a list (a list of results, in one batch)."""
        from .goals import evaluate
        from .runner import run_scenarios

        single = not isinstance(scenarios, list)
        items: list[Scenario | str] = scenarios if isinstance(scenarios, list) else [scenarios]
        scs = [s if isinstance(s, Scenario) else self.scenario(s) for s in items]
        out = []
        for r in run_scenarios(self.compiled, scs):
            status = evaluate(self.model, r.run, params=r.params)
            out.append(Result(r.scenario, self._timeseries(r), self._goals(status), dict(r.params),
                              self.model, r.run, status))
        return out[0] if single else out

    def _timeseries(self, r: ScenarioRun) -> pd.DataFrame:
        from .results import output_names

        names = output_names(self.model, r.run)
        data = {n: r.run.get(n)[:, 0] for n in names}
        return _pandas().DataFrame(data, index=_pandas().Index([int(y) for y in r.run.years], name="year"))

    @staticmethod
    def _goals(status: dict[str, Any]) -> pd.DataFrame:
        rows = {}
        for name, st in status.items():
            g = st.goal
            rows[name] = {
                "variable": g.variable, "year": g.year, "value": float(st.value[0]), "test": g.test,
                "threshold": g.threshold, "met": bool(st.met[0]), "first_year_met": int(st.first_year[0]) or None,
                "gap": float(st.gap[0]), "gap_pct": float(st.gap_pct[0]), "probability": float(st.probability[0]),
                "value_reported": None if st.value_reported is None else float(st.value_reported[0]),
                "threshold_reported": None if st.threshold_reported is None else float(st.threshold_reported[0]),
                "rebased_target": st.rebased_target, "rebased_target_year": st.rebased_year,
            }
        df = _pandas().DataFrame.from_dict(rows, orient="index")
        df.index.name = "goal"
        return df

    # ---------------------------------------------------------------------------- sensitivity

    def sensitivity(self, scenario: Scenario | str, method: str = "mc", samples: int | None = None, seed: int = 12345,
                    params: list[str] | None = None, levers: bool = False, history: str = "match",
                    implausibility: float = 3.0, workers: int | None = None) -> SensitivityResult:
        """Sample the uncertainties (or, with ``levers``, the levers), re-calibrate every sample, run them in one
        batch and analyse: goal probabilities (prior, and for ``mc`` conditioned on history) and indices.

        ``workers`` processes calibrate and integrate chunks of the samples (default: every available core);
        the results are bit-identical whatever the number. The samples are streamed chunk by chunk as by the
        ``sensitivity`` command (memory bounded by the chunk, whatever ``samples``)."""
        from . import conditioning as cd
        from . import sensitivity as sa

        sc = scenario if isinstance(scenario, Scenario) else self.scenario(scenario)
        if method not in sa.METHODS:
            raise InputError(f"unknown method {method!r}; choose one of {', '.join(sa.METHODS)}", None, "method")
        sa.require_recalibration(sc)
        problem = sa.define_problem(self.model, sc, levers, params)
        n = samples if samples is not None else sa.DEFAULT_SAMPLES[method]
        design = sa.sample(problem, method, None if n is None else int(n), seed)
        goal_year = self._goal_year()
        mc = method == "mc"
        # streamed like the command: memory bounded by the chunk, not by the number of samples
        exp = sa.stream_experiments(self.compiled, problem, sc, design, end=sc.end if mc else goal_year,
                                    workers=workers, history=sa.compares_history(self.model, problem, method))
        cond = cd.condition_streamed(self.compiled, problem, sc, exp, history, implausibility) if mc else None
        indices, probs, _ = sa.analyse(self.model, problem, design, exp, method, seed, workers=workers)
        pd_ = _pandas()
        prob_rows = {}
        for r in cd.goal_rows(exp, probs, cond):
            p = r.prior
            prob_rows[r.goal] = {"p_prior": p.probability, "p_prior_low": p.ci_low, "p_prior_high": p.ci_high,
                                 "p_conditioned": r.p_conditioned, "p_conditioned_low": r.low,
                                 "p_conditioned_high": r.high, "ess": r.ess, "n_samples": p.n}
        probabilities = pd_.DataFrame.from_dict(prob_rows, orient="index")
        probabilities.index.name = "goal"
        idx = pd_.DataFrame([{"method": i.method, "parameter": i.parameter, "output": i.output, "index": i.index,
                              "value": i.value, "ci_low": i.ci_low, "ci_high": i.ci_high, "note": i.note}
                             for i in indices])
        kept = int(np.count_nonzero(cond.kept)) if cond is not None and cond.active else None
        return SensitivityResult(method, probabilities, idx, int(exp.ok.size), int(exp.ok.sum()), kept)


def load(model: str | Path | None = None) -> Simulator:
    """Load and compile a model folder (default: ``./model``, else the repository's Yubei model)."""
    from .compiler import compile_model
    from .model import default_model_dir, load_model

    d = Path(model) if model is not None else default_model_dir()
    m = load_model(d)
    dirs = [Path.cwd() / "scenarios", m.directory.parent / "scenarios"]
    return Simulator(m, compile_model(m), list(dict.fromkeys(dirs)))
