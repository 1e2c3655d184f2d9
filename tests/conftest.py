"""Shared fixtures: the Yubei model, its compiled form, a baseline run, and toy-model builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sdsim.batch import LeverPlan, ParamBatch, run_batch
from sdsim.compiler import Compiled, compile_model
from sdsim.engine import Run, TimeGrid, lever_schedules, simulate
from sdsim.loader import load_compiled
from sdsim.model import Model, load_model

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "model"


@pytest.fixture(scope="session")
def model() -> Model:
    """The Yubei model, loaded once per session: the same object the CLI's cached loading gives (tests never
    modify it)."""
    return load_compiled(MODEL_DIR)[0]


@pytest.fixture(scope="session")
def cm(model: Model) -> Compiled:
    return load_compiled(MODEL_DIR)[1]


def run_model(
    cm: Compiled,
    overrides: list[dict[str, float]] | None = None,
    end: int = 2026,
    dt: float = 1 / 16,
    method: str = "euler",
    levers: dict[str, Any] | None = None,
    first_year: int | None = None,
) -> tuple[Run, dict[str, Any]]:
    """Calibrate and run a batch (one run per overrides dict).

    ``levers`` are time functions acting from calendar year ``first_year`` (default: the model's
    policy start, calibration.yaml ``policy_start``), exactly as a scenario's levers do.
    """
    batch = ParamBatch.from_overrides(cm, overrides or [{}])
    grid = TimeGrid(cm.model.calibration.start, end, dt)
    res = run_batch(cm, batch, grid, method, LeverPlan(levers or {}, first_year), strict=True)
    return res.run, res.params.as_dict()


@pytest.fixture(scope="session")
def baseline(cm: Compiled) -> Run:
    return run_model(cm)[0]


def write_model(
    directory: Path,
    stocks: dict,
    flows: dict,
    parameters: dict,
    aux: dict | None = None,
    levers: dict | None = None,
    annual: dict | None = None,
    goals: dict | None = None,
    tables: dict | None = None,
    units: dict[str, str] | None = None,
) -> Path:
    """Write a small model folder (no calibration, no facts) and return it.

    Parameters are dimensionless unless ``units`` names their units.
    """
    directory.mkdir(parents=True, exist_ok=True)
    structure = {"stocks": stocks, "flows": flows, "auxiliaries": aux or {}}
    if annual:
        structure["annual"] = annual
    if tables:
        structure["tables"] = tables
    params = {"parameters": {k: {"value": v, "units": (units or {}).get(k, "dmnl"), "provenance": "assumption",
                                 "fixed": True} for k, v in parameters.items()}}
    if levers:
        params["levers"] = {k: {"value": v, "units": "dmnl", "provenance": "assumption", "policy_range": [0, 10]}
                            for k, v in levers.items()}
    files = {
        "structure": structure,
        "parameters": params,
        "observed": {"facts": {}},
        "goals": {"year": 2026, "goals": goals or {}},
        "calibration": {"window": {"start": 2020, "end": 2021}, "free": {}, "targets": {}},
    }
    for name, data in files.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return directory


def simulate_toy(directory: Path, start: int, end: int, dt: float, method: str = "euler",
                 params: dict[str, Any] | None = None) -> Run:
    """Compile and run a toy model with its parameter values (optionally overridden)."""
    m = load_model(directory)
    c = compile_model(m)
    p = m.base_values()
    p.update(params or {})
    n = max([np.size(v) for v in p.values()] + [1])
    grid = TimeGrid(start, end, dt)
    return simulate(c, p, lever_schedules(c, grid, {k: p[k] for k in m.levers}), grid, method, n=n)


def design_params(cm: Compiled, n: int, seed: int) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Baseline values with every uncertainty of the baseline scenario drawn for ``n`` sets (Latin hypercube,
    ``seed``): the parameters, the lever baselines and the scenario."""
    from sdsim import sensitivity as sa
    from sdsim.runner import parameter_batch
    from sdsim.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    problem = sa.define_problem(cm.model, sc)
    design = sa.sample_mc(problem, n, seed)
    params = dict(parameter_batch(cm, [{}]))
    for j, q in enumerate(problem.uncertainties):
        params[q.name] = design.x[:, j]
    return params, {k: params[k] for k in cm.model.levers}, sc
