"""Equation parsing, checking and compilation: whitelist, names, cycles, builtins."""

from __future__ import annotations

import numpy as np
import pytest

from sdsim import expressions as ex
from sdsim.errors import ModelError
from sdsim.model import load_model
from tests.conftest import simulate_toy, write_model


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("__import__('os').system('true')", "function"),
        ("x.real", "Attribute"),
        ("lambda: 1", "Lambda"),
        ("x[0]", "Subscript"),
        ("'text'", "not a number"),
        ("a < b < c", "single comparisons"),
        ("sin(x)", "unknown function 'sin'"),
        ("min(x)", "takes 2+ arguments"),
        ("max(a=1, b=2)", "keyword"),
        ("x and y", "BoolOp"),
        ("a // b", "FloorDiv"),
        ("1 + initial(x)", "whole equation"),
        ("", "empty equation"),
        ("x +", "cannot parse"),
    ],
)
def test_forbidden_constructs_are_rejected(text, fragment):
    with pytest.raises(ModelError) as err:
        ex.parse(text, "flows.f.equation", "structure.yaml")
    assert fragment in str(err.value)
    assert "flows.f.equation" in str(err.value)


def test_names_and_literals_are_collected():
    e = ex.parse("min(a * 2, b) + if_then_else(time > c, 1, 0)")
    assert e.names == {"a", "b", "c", "time"}
    assert e.functions == {"min", "if_then_else"}
    assert sorted(e.literals) == [0.0, 1.0, 2.0]


def _toy(tmp_path, aux, flows=None, params=None, stocks=None):
    return write_model(
        tmp_path / "toy",
        stocks=stocks or {"s": {"units": "dmnl", "initial": "0", "inflows": ["f"]}},
        flows=flows or {"f": {"equation": "a", "units": "dmnl/year"}},
        parameters=params or {"a": 1.0, "b": 2.0, "c": 2003.0},
        aux=aux,
    )


def test_unknown_variable_is_named_with_a_suggestion(tmp_path):
    d = _toy(tmp_path, {"y": {"equation": "bb * 2", "units": "dmnl"}})
    with pytest.raises(ModelError) as err:
        load_model(d)
    assert "unknown variable 'bb'" in str(err.value) and "did you mean 'b'" in str(err.value)
    assert "auxiliaries.y.equation" in str(err.value)


def test_cycle_among_auxiliaries_is_an_error(tmp_path):
    from sdsim.compiler import compile_model

    d = _toy(tmp_path, {"y": {"equation": "z + 1", "units": "dmnl"}, "z": {"equation": "y * b", "units": "dmnl"}})
    with pytest.raises(ModelError) as err:
        compile_model(load_model(d))
    assert "cycle" in str(err.value) and "y" in str(err.value) and "z" in str(err.value)


def test_time_functions_lookup_and_initial(tmp_path):
    aux = {
        "st": {"equation": "step(b, c)", "units": "dmnl"},
        "rp": {"equation": "ramp(b, c, c + 2)", "units": "dmnl"},
        "pu": {"equation": "pulse(c, 1)", "units": "dmnl"},
        "gf": {"equation": "s", "units": "dmnl", "table": {"x": [0, 2, 4], "y": [0, 10, 0]}},
        "s0": {"equation": "initial(s + a)", "units": "dmnl"},
        "cond": {"equation": "if_then_else(s >= b, a, 0)", "units": "dmnl"},
        "mm": {"equation": "clip(s, a, b) + max(s, a, b) - min(s, c)", "units": "dmnl"},
    }
    run = simulate_toy(_toy(tmp_path, aux), 2000, 2008, 1 / 4)
    years = run.years.astype(float)
    s = years - 2000  # the stock grows by a = 1 per year
    np.testing.assert_allclose(run.get("s")[:, 0], s, rtol=1e-12)
    np.testing.assert_array_equal(run.get("st")[:, 0], np.where(years >= 2003, 2.0, 0.0))
    np.testing.assert_allclose(run.get("rp")[:, 0], 2 * np.clip(years - 2003, 0, 2))
    np.testing.assert_array_equal(run.get("pu")[:, 0], np.where(years == 2003, 1.0, 0.0))
    np.testing.assert_allclose(run.get("gf")[:, 0], np.interp(s, [0, 2, 4], [0, 10, 0]))
    np.testing.assert_array_equal(run.get("s0")[:, 0], np.full(years.size, 1.0))
    np.testing.assert_array_equal(run.get("cond")[:, 0], np.where(s >= 2, 1.0, 0.0))
    np.testing.assert_allclose(run.get("mm")[:, 0], np.clip(s, 1, 2) + np.maximum(s, 2) - np.minimum(s, 2003))


def test_flow_that_belongs_to_no_stock_is_an_error(tmp_path):
    d = _toy(tmp_path, {}, flows={"f": {"equation": "a", "units": "dmnl/year"},
                                   "g": {"equation": "b", "units": "dmnl/year"}})
    with pytest.raises(ModelError) as err:
        load_model(d)
    assert "flows.g" in str(err.value)


def test_generated_code_never_contains_user_text_verbatim(tmp_path):
    from sdsim.compiler import compile_model

    c = compile_model(load_model(_toy(tmp_path, {"y": {"equation": "a   *b", "units": "dmnl"}})))
    assert "a   *b" not in c.source
    assert "(v_a * v_b)" in c.source


def test_constant_subtrees_are_hoisted_once_and_time_functions_are_not():
    table: dict = {}
    e1 = ex.hoist(ex.parse("x * (1 - a) + log(1 + b * c) * time"), {"a", "b", "c"}, table)
    e2 = ex.hoist(ex.parse("y / (1 - a) + step(a, c)"), {"a", "b", "c"}, table)
    hoisted = {ast_text: name for ast_text, (name, _) in ((ex.subtree(n).text, (k, n)) for k, n in table.values())}
    assert set(hoisted) == {"1 - a", "log(1 + b * c)"}  # (1 - a) appears twice, computed once
    assert e1.names == {"x", "time", hoisted["1 - a"], hoisted["log(1 + b * c)"]}
    assert "step" in ex.to_source(e2, {n: n for n in e2.names} | {"time": "time"})
    assert e2.names == {"y", "a", "c", hoisted["1 - a"]}


def test_model_names_may_not_start_with_an_underscore(tmp_path):
    d = _toy(tmp_path, {"_y": {"equation": "a", "units": "dmnl"}})
    with pytest.raises(ModelError) as err:
        load_model(d)
    assert "'_y' is not a usable name" in str(err.value)
