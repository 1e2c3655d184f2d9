"""The integrator against analytic solutions: exponential decay and logistic growth.

Euler must match its own discrete solution exactly and converge with order 1; RK4 with order 4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import simulate_toy, write_model

K = 0.5  # decay rate, 1/year


@pytest.fixture()
def decay(tmp_path):
    return write_model(
        tmp_path / "decay",
        stocks={"x": {"units": "dmnl", "initial": "x0", "outflows": ["loss"]}},
        flows={"loss": {"equation": "k * x", "units": "dmnl/year"}},
        parameters={"x0": 1.0, "k": K},
    )


@pytest.fixture()
def logistic(tmp_path):
    return write_model(
        tmp_path / "logistic",
        stocks={"p": {"units": "dmnl", "initial": "p0", "inflows": ["growth"]}},
        flows={"growth": {"equation": "r * p * (1 - p / cap)", "units": "dmnl/year"}},
        parameters={"p0": 10.0, "r": 0.8, "cap": 1000.0},
    )


def logistic_exact(t: np.ndarray) -> np.ndarray:
    return 1000.0 / (1 + (1000.0 / 10.0 - 1) * np.exp(-0.8 * t))


@pytest.mark.parametrize("dt", [1 / 4, 1 / 16, 1 / 64])
def test_euler_equals_its_discrete_solution(decay, dt):
    run = simulate_toy(decay, 2000, 2010, dt)
    steps = (run.years - 2000) / dt
    np.testing.assert_allclose(run.get("x")[:, 0], (1 - K * dt) ** steps, rtol=1e-12)


@pytest.mark.parametrize("dt", [1 / 4, 1 / 16])
def test_rk4_equals_its_discrete_solution(decay, dt):
    h = K * dt
    growth = 1 - h + h**2 / 2 - h**3 / 6 + h**4 / 24
    run = simulate_toy(decay, 2000, 2010, dt, "rk4")
    np.testing.assert_allclose(run.get("x")[:, 0], growth ** ((run.years - 2000) / dt), rtol=1e-12)


def _errors(model_dir, method, exact, var, dts):
    out = []
    for dt in dts:
        run = simulate_toy(model_dir, 2000, 2010, dt, method)
        out.append(abs(run.get(var)[-1, 0] - exact))
    return out


def test_euler_is_first_order_on_decay(decay):
    e = _errors(decay, "euler", math.exp(-K * 10), "x", [1 / 8, 1 / 16, 1 / 32])
    for a, b in zip(e, e[1:], strict=False):
        assert 1.8 < a / b < 2.2


def test_rk4_is_fourth_order_on_decay(decay):
    e = _errors(decay, "rk4", math.exp(-K * 10), "x", [1 / 4, 1 / 8, 1 / 16])
    for a, b in zip(e, e[1:], strict=False):
        assert 14 < a / b < 18


def test_euler_and_rk4_converge_on_logistic(logistic):
    exact = logistic_exact(np.array([10.0]))[0]
    eu = _errors(logistic, "euler", exact, "p", [1 / 16, 1 / 32, 1 / 64])
    rk = _errors(logistic, "rk4", exact, "p", [1 / 4, 1 / 8])
    assert 1.7 < eu[0] / eu[1] < 2.3 and 1.7 < eu[1] / eu[2] < 2.3
    assert 12 < rk[0] / rk[1] < 20
    run = simulate_toy(logistic, 2000, 2010, 1 / 16, "rk4")
    np.testing.assert_allclose(run.get("p")[:, 0], logistic_exact(run.years - 2000.0), rtol=1e-5)


def test_flows_are_recorded_as_annual_integrals(decay):
    for method in ("euler", "rk4"):
        run = simulate_toy(decay, 2000, 2005, 1 / 16, method)
        x, loss = run.get("x")[:, 0], run.get("loss")[:, 0]
        assert math.isnan(loss[0])
        np.testing.assert_allclose(x[:-1] - x[1:], loss[1:], rtol=1e-12)


def test_batch_of_parameters_equals_separate_runs(decay):
    ks = np.array([0.1, 0.5, 1.3])
    batch = simulate_toy(decay, 2000, 2004, 1 / 16, params={"k": ks})
    for i, k in enumerate(ks):
        one = simulate_toy(decay, 2000, 2004, 1 / 16, params={"k": float(k)})
        np.testing.assert_array_equal(batch.get("x")[:, i], one.get("x")[:, 0])


def test_chunked_batch_equals_unchunked(decay, monkeypatch):
    import sdsim.engine as engine

    ks = np.linspace(0.1, 1.0, 37)
    whole = simulate_toy(decay, 2000, 2003, 1 / 8, params={"k": ks})
    monkeypatch.setattr(engine, "CHUNK", 5)
    chunked = simulate_toy(decay, 2000, 2003, 1 / 8, params={"k": ks})
    np.testing.assert_array_equal(whole.get("x"), chunked.get("x"))
    np.testing.assert_array_equal(whole.get("loss")[1:], chunked.get("loss")[1:])


def test_single_run_float_path_equals_numpy_batch(tmp_path):
    """A single run is integrated over Python floats; it must match the numpy batch path."""
    d = write_model(
        tmp_path / "all",
        stocks={"s": {"units": "dmnl", "initial": "a", "inflows": ["f"], "outflows": ["g"]}},
        flows={"f": {"equation": "if_then_else(s > b, a * gf, clip(s, a, b)) + step(a, c) + ramp(a, c, c + b)"
                                 " + pulse(c, a) + exp(-s) + log(s + a) + sqrt(s) + abs(b - s) + s ** 0.5",
                     "units": "dmnl/year"},
               "g": {"equation": "max(s, a) * min(a, b, c) / (b + s)", "units": "dmnl/year"}},
        aux={"gf": {"equation": "s", "units": "dmnl", "table": {"x": [0, 2, 4], "y": [1, 3, 0.5]}}},
        parameters={"a": 1.0, "b": 2.0, "c": 2003.0},
    )
    for method in ("euler", "rk4"):
        one = simulate_toy(d, 2000, 2008, 1 / 8, method)
        two = simulate_toy(d, 2000, 2008, 1 / 8, method, params={"a": np.array([1.0, 1.0])})
        for name in ("s", "f", "g", "gf"):
            np.testing.assert_allclose(one.get(name)[:, 0], two.get(name)[:, 0], rtol=1e-13, equal_nan=True)


def test_single_run_falls_back_to_numpy_on_division_by_zero(tmp_path):
    d = write_model(
        tmp_path / "div0",
        stocks={"s": {"units": "dmnl", "initial": "a", "inflows": ["f"]}},
        flows={"f": {"equation": "a / (s - s)", "units": "dmnl/year"}},
        parameters={"a": 1.0},
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        one = simulate_toy(d, 2000, 2002, 1 / 4)
        two = simulate_toy(d, 2000, 2002, 1 / 4, params={"a": np.array([1.0, 1.0])})
    assert not np.isfinite(one.get("s")[1, 0])  # numpy semantics (inf, then nan), not a ZeroDivisionError
    np.testing.assert_array_equal(one.get("s")[:, 0], two.get("s")[:, 0])


@pytest.fixture()
def time_rate(tmp_path):
    """x' = a (time - t0) x, x(t0) = 1: x = exp(a (t - t0)^2 / 2), a rate that depends on time."""
    return write_model(
        tmp_path / "time_rate",
        stocks={"x": {"units": "dmnl", "initial": "1", "inflows": ["grow"]}},
        flows={"grow": {"equation": "a * (time - t0) * x", "units": "dmnl/year"}},
        parameters={"a": 0.05, "t0": 2000.0},
    )


def test_rk4_is_fourth_order_when_the_rate_depends_on_time(time_rate):
    """RK4 stages see time at t, t + dt/2, t + dt/2, t + dt (docs/time.md)."""
    exact = math.exp(0.05 * 10**2 / 2)
    e = _errors(time_rate, "rk4", exact, "x", [1 / 4, 1 / 8, 1 / 16])
    for a, b in zip(e, e[1:], strict=False):
        assert 14 < a / b < 18
    eu = _errors(time_rate, "euler", exact, "x", [1 / 16, 1 / 32])
    assert 1.7 < eu[0] / eu[1] < 2.3


@pytest.mark.parametrize("n", [1, 2])
def test_rk4_stage_times_integrate_time_and_ramp_exactly_while_step_and_levers_are_held(tmp_path, n):
    """A cubic in time and a ramp are integrated exactly by RK4 (Simpson); step() and levers are held on the
    step (their breaks lie on the grid), so a step is integrated exactly too."""
    d = write_model(
        tmp_path / "quad",
        stocks={"q": {"units": "dmnl", "initial": "0", "inflows": ["f"]},
                "r": {"units": "dmnl", "initial": "0", "inflows": ["g"]},
                "s": {"units": "dmnl", "initial": "0", "inflows": ["h"]}},
        flows={"f": {"equation": "(time - t0) ** 3", "units": "dmnl/year"},
               "g": {"equation": "ramp(a, t0 + 1, t0 + 3)", "units": "dmnl/year"},
               "h": {"equation": "step(a, t0 + 2) + lev", "units": "dmnl/year"}},
        parameters={"t0": 2000.0, "a": 2.0},
        levers={"lev": 0.5},
    )
    params = {"a": np.full(n, 2.0)} if n > 1 else None
    run = simulate_toy(d, 2000, 2005, 1 / 4, "rk4", params=params)
    t = run.years - 2000.0
    np.testing.assert_allclose(run.get("q")[:, 0], t**4 / 4, rtol=1e-12, atol=1e-12)
    ramp_integral = np.where(t < 1, 0, np.where(t < 3, (np.clip(t, 1, 3) - 1) ** 2, 4 + 4 * (t - 3)))
    np.testing.assert_allclose(run.get("r")[:, 0], ramp_integral, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run.get("s")[:, 0], 2 * np.maximum(t - 2, 0) + 0.5 * t, rtol=1e-12, atol=1e-12)
