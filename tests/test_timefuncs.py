"""Lever time functions: values at and around their boundaries, exact pulse integrals, parsing.

Lever time (docs/time.md): a year Y is calendar year Y = t in (Y-1, Y]; levers are sampled at step
starts t_k and held through the step, so the steps of year Y have t_k in [Y-1, Y).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdsim.engine import TimeGrid, lever_schedules, simulate
from sdsim.errors import InputError
from sdsim.timefuncs import TimeFunction, parse_time_function
from tests.conftest import write_model

DT = 1 / 16
GRID = TimeGrid(2020, 2030, DT)
T = GRID.times
BASE = 0.7


def values(fn: TimeFunction, base: float = BASE) -> np.ndarray:
    return fn.values(T, base)[:, 0]


def parse(data, lo=0.0, hi=None) -> TimeFunction:
    return parse_time_function(data, "s.yaml", "levers.x", lo, hi)


# ---------------------------------------------------------------------------------------- step


@pytest.mark.parametrize("dt", [1 / 4, 1 / 16, 1 / 64])
def test_step_at_2023_is_off_before_2022_and_on_from_2022(dt):
    t = TimeGrid(2020, 2026, dt).times
    v = TimeFunction("step", at=2023, to=2.0).values(t, BASE)[:, 0]
    assert np.all(v[t < 2022] == BASE)
    assert np.all(v[t >= 2022] == 2.0)
    k = int(np.flatnonzero(t == 2022)[0])  # the first step of calendar year 2023
    assert v[k - 1] == BASE and v[k] == 2.0


def test_step_with_from_uses_that_value_before():
    v = values(TimeFunction("step", at=2024, to=3.0, from_value=1.0))
    assert np.all(v[T < 2023] == 1.0) and np.all(v[T >= 2023] == 3.0)


def test_constant_is_the_same_at_every_step_and_for_every_run():
    v = TimeFunction("constant", value=1.5).values(T, np.array([0.1, 0.2, 0.3]))
    assert v.shape == (T.size, 3) and np.all(v == 1.5)


# --------------------------------------------------------------------------------------- pulse


@pytest.mark.parametrize("size", [10.0, 0.85, 1 / 3])
def test_pulse_adds_exactly_its_size_within_its_year_and_nothing_outside(size):
    v = values(TimeFunction("pulse", at=2024, size=size))
    inside = (T >= 2023) & (T < 2024)
    assert inside.sum() == round(1 / DT)
    assert np.all(v[~inside] == BASE)
    # held through each step: the integral over calendar year 2024 is the sum over its steps
    assert np.sum((v[inside] - BASE) * DT) == pytest.approx(size, rel=1e-15)


def test_pulse_integrated_by_the_engine_adds_its_size_to_the_years_flow(tmp_path):
    from sdsim.compiler import compile_model
    from sdsim.model import load_model

    d = write_model(tmp_path / "m", stocks={"s": {"initial": "0", "inflows": ["inflow"], "units": "dmnl"}},
                    flows={"inflow": {"equation": "lever", "units": "dmnl"}}, parameters={}, levers={"lever": 0.5})
    m = load_model(d)
    cm = compile_model(m)
    grid = TimeGrid(2020, 2026, DT)
    lv = lever_schedules(cm, grid, {"lever": 0.5}, {"lever": TimeFunction("pulse", at=2024, size=10.0)},
                         active_from=2021)
    run = simulate(cm, {"lever": 0.5}, lv, grid, "euler", n=1)
    flows = dict(zip(run.years[1:], run.get("inflow")[1:, 0], strict=True))
    assert flows[2024] == 10.5  # 0.5 baseline + the pulse, exactly (dt is a power of two)
    assert all(flows[y] == 0.5 for y in flows if y != 2024)


# --------------------------------------------------------------------------------- table, ramp


def test_table_points_sit_at_mid_year_linear_between_flat_outside():
    fn = TimeFunction("table", points=((2022, 1.0), (2024, 3.0), (2026, 3.0)))
    t = np.array([2019.0, 2021.5, 2022.5, 2023.5, 2024.0, 2025.5, 2029.0])
    v = fn.values(t, BASE)[:, 0]
    assert v[0] == 1.0  # flat before the first point
    assert v[1] == 1.0  # point 2022 at t = 2021.5
    assert v[2] == 2.0  # halfway between 2021.5 and 2023.5
    assert v[3] == 3.0  # point 2024 at t = 2023.5
    assert v[4] == 3.0 and v[5] == 3.0 and v[6] == 3.0  # flat after the last point


def test_single_point_table_is_a_constant():
    assert np.all(values(TimeFunction("table", points=((2025, 4.0),))) == 4.0)


@given(y1=st.integers(2015, 2030), span=st.integers(1, 8), a=st.floats(0, 100), b=st.floats(0, 100))
def test_ramp_is_the_two_point_table(y1, span, a, b):
    ramp = parse({"ramp": {"from": y1, "to": y1 + span, "start": a, "end": b}})
    table = parse({"table": {y1: a, y1 + span: b}})
    assert np.array_equal(values(ramp), values(table))
    v = values(ramp)
    assert np.all(v >= min(a, b) - 1e-12) and np.all(v <= max(a, b) + 1e-12)
    assert np.all(v[T <= y1 - 0.5] == a) and np.all(v[T >= y1 + span - 0.5] == b)


# ---------------------------------------------------------------------------------- engine use


def test_engine_holds_levers_at_baseline_through_the_calibration_year(model, cm):
    grid = TimeGrid(2020, 2026, DT)
    base = {k: p.value for k, p in model.levers.items()}
    fn = {"tech_cultivation": TimeFunction("table", points=((2020, 5.0), (2021, 5.0)))}
    v = lever_schedules(cm, grid, base, fn, active_from=model.calibration.end)["tech_cultivation"][:, 0]
    t = grid.times
    assert np.all(v[t < 2021] == base["tech_cultivation"]) and np.all(v[t >= 2021] == 5.0)


# ------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("data", [
    1.5,
    {"step": {"at": 2023, "to": 2}},
    {"step": {"at": 2023, "to": 2, "from": 1}},
    {"ramp": {"from": 2022, "to": 2025, "start": 0.15, "end": 0.5}},
    {"pulse": {"at": 2024, "size": 10}},
    {"table": {2022: 1, 2024: 3, 2026: 3}},
])
def test_scenario_form_round_trips(data):
    fn = parse(data)
    assert parse(fn.to_yaml()) == fn


@pytest.mark.parametrize("data, key, fragment", [
    ("lots", "levers.x", "expected a number or a mapping"),
    (True, "levers.x", "expected a number"),
    ([1, 2], "levers.x", "got a list"),
    (-1, "levers.x", ">= 0"),
    ({"stepp": {"at": 2023, "to": 1}}, "levers.x.stepp", "did you mean 'step'"),
    ({}, "levers.x", "exactly one"),
    ({"step": {"at": 2023, "to": 1}, "pulse": {"at": 2023, "size": 1}}, "levers.x", "exactly one"),
    ({"step": {"at": 2023}}, "levers.x.step", "missing required key 'to'"),
    ({"step": {"at": 2023.5, "to": 1}}, "levers.x.step.at", "integer"),
    ({"ramp": {"from": 2025, "to": 2023, "start": 0, "end": 1}}, "levers.x.ramp.to", "must end after it starts"),
    ({"ramp": {"from": 2023, "to": 2023, "start": 0, "end": 1}}, "levers.x.ramp.to", "must end after it starts"),
    ({"ramp": {"from": 2023, "to": 2025, "start": 0, "end": "lots"}}, "levers.x.ramp.end", "got 'lots'"),
    ({"pulse": {"at": 2023, "size": -1}}, "levers.x.pulse.size", ">= 0"),
    ({"table": {}}, "levers.x.table", "non-empty"),
    ({"table": [1, 2]}, "levers.x.table", "non-empty mapping"),
    ({"table": {"2023": 1}}, "levers.x.table.2023", "integer"),
    ({"table": {2023: -4}}, "levers.x.table.2023", ">= 0"),
])
def test_bad_time_functions_name_the_key_and_value(data, key, fragment):
    with pytest.raises(InputError) as exc:
        parse(data)
    assert exc.value.file == "s.yaml" and exc.value.key == key
    assert fragment in str(exc.value)


def test_values_are_checked_against_the_levers_limits():
    with pytest.raises(InputError, match=r"levers.x.step.to: expected a number in \[0, 0.99\], got 1.2"):
        parse({"step": {"at": 2023, "to": 1.2}}, 0, 0.99)
    assert parse(-0.01, -0.5, 0.5).value == -0.01  # a lever with negative limits (gdp_growth)


def test_levels_and_event_years_describe_every_value_and_date():
    assert parse({"step": {"at": 2023, "to": 2, "from": 1}}).levels(0.5) == [("step.to", 2), ("step.from", 1)]
    assert parse({"pulse": {"at": 2024, "size": 0.3}}).levels(0.5) == [("pulse.size", 0.8)]
    assert parse({"table": {2022: 1, 2024: 3}}).levels(0) == [("table.2022", 1), ("table.2024", 3)]
    assert parse({"pulse": {"at": 2024, "size": 0.3}}).event_years() == [("pulse.at", 2024)]
    assert parse({"ramp": {"from": 2022, "to": 2024, "start": 0, "end": 1}}).event_years() == []
