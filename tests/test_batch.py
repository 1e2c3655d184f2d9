"""The batch pipeline (sdsim/batch.py): ParamBatch properties and the pipeline against analytic values.

The toy (tests/fixtures/history_toy) is one stock ``firms`` with inflow ``firms * g * b`` (g the growth
rate, b the lever ``entry_boost``, 1 at baseline), calibrated so that firms(2021) = 110. With Euler and
dt = 1/16, firms_t0 = 110 / (1 + g/16)^16, and with b = L from the end of 2021,
firms(Y) = 110 (1 + g L/16)^(16 (Y - 2021)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdsim import calibrate as cal_mod
from sdsim.batch import LeverPlan, ParamBatch, run_batch, schedules
from sdsim.calibrate import calibrate
from sdsim.compiler import Compiled, compile_model
from sdsim.engine import TimeGrid, lever_schedules, simulate
from sdsim.errors import InputError
from sdsim.model import load_model
from sdsim.timefuncs import TimeFunction

TOY = Path(__file__).resolve().parent / "fixtures" / "history_toy"
TARGET = 110.0  # firms in 2021, observed.yaml
DT = 1 / 16


@pytest.fixture(scope="module")
def toy() -> Compiled:
    return compile_model(load_model(TOY))


def _same(a: ParamBatch, b: ParamBatch) -> bool:
    """Equal runs and equal values (shared or not), exactly."""
    return a.n == b.n and set(a) == set(b) and all(np.array_equal(a.column(k), b.column(k)) for k in a)


# ---------------------------------------------------------------------------------- ParamBatch


def test_from_overrides_makes_arrays_only_where_overridden(toy):
    b = ParamBatch.from_overrides(toy, [{"growth_rate": 0.05}, {}, {"growth_rate": 0.2}])
    assert b.n == 3 and sorted(b) == sorted(toy.model.base_values())
    assert np.array_equal(b["growth_rate"], [0.05, 0.1, 0.2])  # the baseline 0.1 where not overridden
    assert b.shared("firms_t0") and b["firms_t0"] == 100.0 and b.shared("entry_boost")
    assert not b.uniform
    assert ParamBatch.from_overrides(toy, [{}, {}]).uniform


def test_take_row_concat_round_trips(toy):
    g = np.linspace(0.0, 0.2, 7)
    b = ParamBatch.from_overrides(toy, [{"growth_rate": v, "firms_t0": 90 + i} for i, v in enumerate(g)])
    assert _same(ParamBatch.concat([b.row(j) for j in range(b.n)]), b)
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    assert _same(b.take(perm).take(np.argsort(perm)), b)
    assert _same(ParamBatch.concat([b.take([0, 1, 2]), b.take([3, 4, 5, 6])]), b)
    mask = g > 0.1
    assert np.array_equal(b.take(mask)["growth_rate"], g[mask])
    assert b.row(4).row_values(0) == b.row_values(4) == {k: b.value(k, 4) for k in b}
    repeated = b.take([2, 2, 2])
    assert repeated.n == 3 and np.all(repeated["growth_rate"] == g[2])


def test_shared_values_broadcast_and_stay_shared(toy):
    b = ParamBatch.from_overrides(toy, [{"growth_rate": 0.05}, {"growth_rate": 0.15}])
    assert b.take([1, 0, 1]).shared("firms_t0")
    assert ParamBatch.concat([b, b]).shared("entry_boost")
    assert np.array_equal(b.column("firms_t0"), [100.0, 100.0])
    # a one-element array in a batch of several runs is one shared value; a number is shared too
    c = b.with_values({"firms_t0": np.array([95.0]), "entry_boost": 2})
    assert c.shared("firms_t0") and c["firms_t0"] == 95.0 and c["entry_boost"] == 2.0
    # concat of batches whose shared values differ gives per-run values
    d = ParamBatch.concat([b, b.replace(firms_t0=80.0)])
    assert np.array_equal(d["firms_t0"], [100.0, 100.0, 80.0, 80.0])
    one = ParamBatch.from_overrides(toy, [{"growth_rate": 0.05}])
    assert np.array_equal(one.repeat(3).column("growth_rate"), [0.05] * 3) and one.repeat(3).shared("growth_rate")
    # the engine's dict: numbers and (n,) arrays, arrays not copied
    e = b.as_dict()
    assert e["growth_rate"] is b["growth_rate"] and e["firms_t0"] == 100.0


def test_with_run_values_changes_one_run_only(toy):
    b = ParamBatch.from_overrides(toy, [{}, {}, {}])
    c = b.with_run_values(1, {"growth_rate": 0.2})
    assert np.array_equal(c["growth_rate"], [0.1, 0.2, 0.1]) and b.shared("growth_rate")


def test_from_design_fills_nan_with_the_scenario_value(toy):
    b = ParamBatch.from_design(toy, {"growth_rate": 0.07}, {"growth_rate": [0.01, np.nan, 0.03]})
    assert b.n == 3 and np.array_equal(b["growth_rate"], [0.01, 0.07, 0.03]) and b.shared("firms_t0")


@pytest.mark.parametrize("make", [
    lambda cm: ParamBatch(3, {"a": np.ones(2)}),
    lambda cm: ParamBatch(2, {"a": np.ones((2, 2))}),
    lambda cm: ParamBatch(2, {"a": "x"}),  # type: ignore[dict-item]
    lambda cm: ParamBatch(0, {}),
    lambda cm: ParamBatch.from_overrides(cm, [{}, {}]).with_values({"growth_rate": np.ones(3)}),
    lambda cm: ParamBatch.from_overrides(cm, []),
    lambda cm: ParamBatch.concat([ParamBatch(1, {"a": 1.0}), ParamBatch(1, {"b": 1.0})]),
    lambda cm: ParamBatch.from_overrides(cm, [{}, {}]).take(np.ones(3, bool)),
    lambda cm: ParamBatch.from_overrides(cm, [{}, {}]).repeat(3),
    lambda cm: ParamBatch.from_design(cm, {}, {"growth_rate": np.ones(2), "entry_boost": np.ones(3)}),
], ids=["length", "2d", "text", "empty", "with_values", "no_runs", "concat_names", "mask", "repeat", "design"])
def test_mismatched_lengths_are_errors(toy, make):
    with pytest.raises(ValueError):
        make(toy)


def test_take_out_of_range_is_an_error(toy):
    with pytest.raises(IndexError):
        ParamBatch.from_overrides(toy, [{}, {}]).take([2])


def test_one_plan_per_run_needs_one_per_run(toy):
    b = ParamBatch.from_overrides(toy, [{}, {}])
    with pytest.raises(ValueError, match="2 runs"):
        schedules(toy, TimeGrid(2020, 2023, DT), b, [LeverPlan()])


# ----------------------------------------------------------------------------------- pipeline


def test_pipeline_reproduces_the_analytic_solution(toy):
    g = np.array([0.05, 0.1, 0.2])
    boost = np.array([1.0, 2.0, np.nan])  # NaN: the scenario's own setting (here its function, 3)
    b = ParamBatch.from_overrides(toy, [{"growth_rate": v} for v in g])
    plan = LeverPlan({"entry_boost": TimeFunction("constant", value=3.0)}, 2022, {"entry_boost": boost})
    res = run_batch(toy, b, TimeGrid(2020, 2026, DT), "euler", plan, strict=True)
    assert res.ok.all() and res.n == 3
    t0 = TARGET / (1 + g * DT) ** 16
    assert np.allclose(res.params["firms_t0"], t0, rtol=1e-9, atol=0)
    lever = np.array([1.0, 2.0, 3.0])
    for year in range(2021, 2027):
        expect = TARGET * (1 + g * lever * DT) ** (16 * (year - 2021))
        assert np.allclose(res.run.at("firms", year), expect, rtol=1e-9, atol=0), year
    assert np.array_equal(res.run.at("firms", 2020), res.params["firms_t0"])  # the stock starts at the solved value
    assert res.calibration is not None and res.calibration.max_residual < 1e-9
    one = res.calibration_row(2)
    assert one is not None and one.ok.shape == (1,) and one.params["firms_t0"][0] == res.params["firms_t0"][2]


def test_pipeline_equals_the_composition_of_its_steps(toy):
    """calibrate -> lever schedules -> simulate written out with the engine's own functions, bit for bit."""
    g = [0.02, 0.08, 0.15, 0.2]
    over = [{"growth_rate": v} for v in g]
    grid = TimeGrid(2020, 2027, DT)
    fn = {"entry_boost": TimeFunction("constant", value=2.5)}
    res = run_batch(toy, ParamBatch.from_overrides(toy, over), grid, "rk4", LeverPlan(fn, 2023))

    base = toy.model.base_values()
    params = dict(base, growth_rate=np.array(g))
    solved = calibrate(toy, params, {"entry_boost": base["entry_boost"]}, DT, "rk4").params
    levers = lever_schedules(toy, grid, {"entry_boost": base["entry_boost"]}, fn, active_from=2022)
    run = simulate(toy, solved, levers, grid, "rk4", n=len(g))
    assert np.array_equal(res.params["firms_t0"], solved["firms_t0"])
    assert np.array_equal(res.levers["entry_boost"], levers["entry_boost"])
    for block in ("stocks", "rates", "aux"):
        assert np.array_equal(getattr(res.run, block), getattr(run, block), equal_nan=True)  # year 0 of rates: NaN


def test_only_ok_runs_the_calibrated_rows(toy):
    # growth_rate -16 empties the stock in the first Euler step (1 - 16/16 = 0): no firms_t0 reaches 110 in 2021
    b = ParamBatch.from_overrides(toy, [{"growth_rate": 0.1}, {"growth_rate": -16.0}, {"growth_rate": 0.0}])
    res = run_batch(toy, b, TimeGrid(2020, 2024, DT), "euler", LeverPlan(), only_ok=True)
    assert res.ok.tolist() == [True, False, True] and res.simulated.tolist() == [0, 2]
    assert res.run.n == 2 and res.reason[1] != ""
    assert np.allclose(res.run.at("firms", 2024)[1], TARGET, rtol=1e-12)  # growth 0: flat at 110
    with pytest.raises(InputError, match="calibration has no solution"):
        run_batch(toy, b, TimeGrid(2020, 2024, DT), "euler", strict=True)


def test_fixed_values_apply_after_calibration(toy):
    b = ParamBatch.from_overrides(toy, [{}, {}])
    res = run_batch(toy, b, TimeGrid(2020, 2022, DT), "euler", fixed={"firms_t0": 50.0})
    assert np.array_equal(res.params["firms_t0"], [50.0, 50.0])
    assert np.allclose(res.run.at("firms", 2021), 50 * (1 + 0.1 * DT) ** 16, rtol=1e-12)


def test_uniform_batch_is_calibrated_once_and_shared(toy):
    res = run_batch(toy, ParamBatch.from_overrides(toy, [{}, {}, {}]), TimeGrid(2020, 2023, DT), "euler",
                    [LeverPlan(), LeverPlan({"entry_boost": TimeFunction("constant", value=2.0)}), LeverPlan()])
    assert res.calibration is not None and res.calibration.ok.size == 1 and res.ok.shape == (3,)
    assert res.params.shared("firms_t0")
    f = res.run.at("firms", 2023)
    assert f[0] == f[2] and f[1] > f[0]
    assert res.calibration_row(2).ok.shape == (1,)  # type: ignore[union-attr]


def test_one_and_two_workers_are_identical(toy, monkeypatch):
    # more rows than one chunk of the calibration and of the engine, so the chunks go to the workers
    monkeypatch.setattr(cal_mod, "CHUNK", 512)
    import sdsim.engine as engine

    monkeypatch.setattr(engine, "CHUNK", 512)
    rng = np.random.default_rng(4)
    n = 1500
    b = ParamBatch.from_design(toy, {}, {"growth_rate": rng.uniform(0.0, 0.2, n)})
    plan = LeverPlan({}, 2022, {"entry_boost": rng.uniform(0.0, 3.0, n)})
    grid = TimeGrid(2020, 2026, DT)
    one = run_batch(toy, b, grid, "euler", plan, workers=1)
    two = run_batch(toy, b, grid, "euler", plan, workers=2)
    assert np.array_equal(one.params["firms_t0"], two.params["firms_t0"])
    assert np.array_equal(one.run.stocks, two.run.stocks) and np.array_equal(one.run.rates, two.run.rates, equal_nan=True)
    # and the chunks change nothing: the same rows run alone give the same values
    part = run_batch(toy, b.take(np.arange(700, 760)), grid, "euler",
                     LeverPlan({}, 2022, {"entry_boost": plan.settings["entry_boost"][700:760]}))
    assert np.array_equal(part.run.stocks, one.run.stocks[:, :, 700:760])


def test_from_design_of_lever_settings_alone(toy):
    b = ParamBatch.from_design(toy, {"growth_rate": 0.05}, {}, n=4)
    assert b.n == 4 and b.uniform and b["growth_rate"] == 0.05


def test_stages_are_reported_in_order(toy):
    seen: list[tuple[str, int]] = []
    b = ParamBatch.from_overrides(toy, [{"growth_rate": 0.1}, {"growth_rate": -16.0}, {"growth_rate": 0.0}])
    res = run_batch(toy, b, TimeGrid(2020, 2023, DT), "euler", only_ok=True, on_stage=lambda s, n: seen.append((s, n)))
    assert seen == [("calibrate", 3), ("simulate", 2), ("done", 2)]
    assert set(res.timings) == {"calibrate_s", "simulate_s"} and min(res.timings.values()) >= 0


def _experiments_by_pipeline(cm, problem, scenario, design, end, workers=None):
    """What sensitivity.run_experiments computes, as one call of the pipeline (for switching it over)."""
    from sdsim.scenario import policy_start

    cm = cm.with_tables(scenario.tables)
    x = design.x
    params = {q.name: x[:, j] for j, q in enumerate(problem.uncertainties) if not q.lever}
    settings = {q.name: x[:, j] for j, q in enumerate(problem.uncertainties) if q.lever}
    batch = ParamBatch.from_design(cm, scenario.parameters, params, n=x.shape[0])
    grid = TimeGrid(cm.model.calibration.start, end, scenario.dt)
    plan = LeverPlan(scenario.levers, policy_start(scenario, cm.model), settings)
    return run_batch(cm, batch, grid, scenario.method, plan, only_ok=True, workers=workers)


@pytest.mark.parametrize("levers", [False, True], ids=["uncertainties", "lever_settings"])
def test_run_experiments_is_one_pipeline_call(toy, levers):
    from sdsim import sensitivity as sa
    from sdsim.scenario import load_scenario

    sc = load_scenario(TOY / "scenario_early.yaml", toy.model)
    problem = sa.define_problem(toy.model, sc, levers=levers)
    design = sa.sample_mc(problem, 64, 5)
    if not levers:
        design.x[::7, 0] = -16.0  # rows without a calibration solution
    exp = sa.run_experiments(toy, problem, sc, design, end=sc.end)
    res = _experiments_by_pipeline(toy, problem, sc, design, sc.end)
    assert np.array_equal(exp.ok, res.ok) and (levers or not exp.ok.all())
    assert np.array_equal(exp.free["firms_t0"], np.where(res.ok, res.params.column("firms_t0"), np.nan), equal_nan=True)
    assert np.array_equal(exp.run.stocks, res.run.stocks) and np.array_equal(exp.run.rates, res.run.rates, equal_nan=True)
