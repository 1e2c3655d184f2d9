"""The dimensional checker: unit strings, the units rules of each operator, and whole models."""

from __future__ import annotations

import ast
from fractions import Fraction
from pathlib import Path

import pytest

from sdsim import units
from sdsim.model import load_model
from sdsim.units import UnitsError, expression_units, format_units, parse_units

FIXTURES = Path(__file__).parent / "fixtures" / "broken_models"

F = Fraction
NAMES = {
    "firms": parse_units("firm"),
    "rate": parse_units("1/year"),
    "money": parse_units("CNY100M/year"),
    "share": parse_units("dmnl"),
    "start": parse_units("year"),
    "area": parse_units("firm^2"),
}


def u(text: str) -> units.U:
    return expression_units(ast.parse(text, mode="eval").body, NAMES)


def test_unit_strings_divide_everything_to_their_right_in_turn():
    assert parse_units("CNY100M/firm/year") == (("CNY100M", F(1)), ("firm", F(-1)), ("year", F(-1)))
    assert parse_units("1/year") == (("year", F(-1)),)
    assert parse_units("dmnl") == () and parse_units("1") == ()
    assert parse_units("firm/carrier*year") == (("carrier", F(-1)), ("firm", F(1)), ("year", F(1)))
    assert parse_units("(firm/year)^2") == (("firm", F(2)), ("year", F(-2)))
    assert parse_units("year**-1") == parse_units("1/year")
    assert parse_units("CNY100M/year/year") == parse_units("CNY100M/year^2")


@pytest.mark.parametrize("bad", ["", "  ", "firm//year", "firm^x", "firm year", "(firm", "firm/"])
def test_unreadable_unit_strings_are_errors(bad):
    with pytest.raises(UnitsError):
        parse_units(bad)


def test_format_units_reads_back():
    for text in ("CNY100M/firm/year", "1/year", "firm^2/year", "dmnl"):
        assert parse_units(format_units(parse_units(text))) == parse_units(text)


def test_products_and_quotients_combine_exponents():
    assert u("firms * rate") == parse_units("firm/year")
    assert u("money / rate") == parse_units("CNY100M")
    assert u("firms / firms") == ()


def test_sums_comparisons_min_max_and_branches_need_equal_units():
    for text in ("firms + rate", "firms - money", "firms < rate", "min(firms, rate)", "max(firms, firms, money)",
                 "if_then_else(share > 0, firms, rate)", "clip(firms, 0, rate)"):
        with pytest.raises(UnitsError):
            u(text)
    assert u("min(firms, firms * share)") == parse_units("firm")
    assert u("firms > firms") == ()


def test_zero_fits_any_units_but_other_literals_are_dimensionless():
    assert u("max(firms - firms, 0)") == parse_units("firm")
    assert u("firms + 0") == parse_units("firm")
    with pytest.raises(UnitsError):
        u("firms + 1")
    with pytest.raises(UnitsError):
        u("1 + rate")


def test_exp_log_need_dimensionless_arguments():
    assert u("exp(share)") == () and u("log(firms / firms)") == ()
    with pytest.raises(UnitsError):
        u("exp(rate)")
    with pytest.raises(UnitsError):
        u("log(firms)")


def test_time_is_in_years_and_so_are_time_function_arguments():
    assert u("rate * (time - start)") == ()
    assert u("step(firms, start)") == parse_units("firm")
    assert u("ramp(rate, start, start)") == ()
    assert u("pulse(start, start)") == ()
    with pytest.raises(UnitsError):
        u("step(firms, share)")
    with pytest.raises(UnitsError):
        u("exp(time)")


def test_powers():
    assert u("firms ** 2") == parse_units("firm^2")
    assert u("sqrt(area)") == parse_units("firm")
    assert u("(firms / firms) ** share") == ()
    with pytest.raises(UnitsError):
        u("firms ** share")  # a dimensioned base needs a constant exponent
    with pytest.raises(UnitsError):
        u("share ** rate")  # exponents are dimensionless


def test_healthy_fixture_is_consistent_and_counts_its_equations():
    rep = units.check_model(load_model(FIXTURES / "healthy"))
    assert rep.issues == []
    assert rep.equations == 5 + 8 + 2  # stock initial values, flows, auxiliaries


def test_a_flow_not_in_its_stocks_units_per_year_is_reported_with_file_and_key():
    rep = units.check_model(load_model(FIXTURES / "dimensional"))
    paths = sorted(i.path for i in rep.issues)
    assert paths == ["flows.closure.equation", "flows.closure.units"]
    assert all(i.file.endswith("structure.yaml") for i in rep.issues)
    assert "carrier/year" in str(rep.issues[0]) or "carrier/year" in str(rep.issues[1])


def test_numbers_other_than_0_and_1_are_flagged():
    assert units.literals(load_model(FIXTURES / "healthy")) == []
    issues = units.literals(load_model(FIXTURES / "literals"))
    assert [i.path for i in issues] == ["flows.closure.equation"]
    assert "2" in issues[0].message


def test_yubei_flows_all_have_their_stocks_units_per_year(model):
    """The stock/flow part of the check holds for the Yubei model (equation findings are reported separately)."""
    rep = units.check_model(model)
    assert not [i for i in rep.issues if i.path.endswith(".units")]
    assert units.literals(model) == []
