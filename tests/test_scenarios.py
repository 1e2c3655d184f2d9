"""Scenario files: inheritance, validation messages, warnings, --set, and the ten shipped scenarios."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdsim.cli import main
from sdsim.errors import InputError
from sdsim.runner import run_scenarios
from sdsim.scenario import apply_set, load_scenario
from sdsim.timefuncs import TimeFunction
from tests.conftest import ROOT

SCENARIOS = ROOT / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.yaml"))
BAD = ROOT / "tests" / "data" / "scenarios_bad"
# the source document, when a copy of shared/ sits beside the repository (as on the developers' machines and CI)
SEED = next((p for p in (ROOT.parent / "shared" / "seeds" / "000_5a6a2d37121605c1.txt",
                         Path("/work/shared/seeds/000_5a6a2d37121605c1.txt")) if p.is_file()),
            ROOT.parent / "shared" / "seeds" / "000_5a6a2d37121605c1.txt")


def write(d: Path, name: str, text: str) -> Path:
    p = d / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


# ----------------------------------------------------------------------------------- inheritance


def test_child_overrides_its_parent_key_by_key(tmp_path, model):
    write(tmp_path, "parent", """
name: parent
title: {en: Parent}
description: the parent
end: 2030
method: rk4
policy_start: 2023
levers:
  tech_cultivation: 1.5
  st_funding: {step: {at: 2023, to: 0.5}}
parameters:
  qualifying_exit_rate: 0.1
  depreciation: 0.2
""")
    child = write(tmp_path, "child", """
extends: parent
end: 2028
levers:
  tech_cultivation: 1.2
  rd_subsidy: 0.05
parameters:
  depreciation: 0.12
""")
    sc = load_scenario(child, model)
    assert sc.end == 2028 and sc.method == "rk4" and sc.policy_start == 2023  # overridden / inherited
    assert sc.levers["tech_cultivation"] == TimeFunction("constant", value=1.2)
    assert sc.levers["st_funding"] == TimeFunction("step", at=2023, to=0.5)  # inherited untouched
    assert sc.levers["rd_subsidy"] == TimeFunction("constant", value=0.05)
    assert sc.parameters == {"qualifying_exit_rate": 0.1, "depreciation": 0.12}
    # name, title and description describe the file itself: not inherited
    assert sc.name == "child" and sc.title == {} and sc.description == ""
    assert sc.chain == [str(child), str(tmp_path / "parent.yaml")]


def test_grandparent_chain_applies_from_the_root_down(tmp_path, model):
    write(tmp_path, "grand", "end: 2035\nlevers: {tech_cultivation: 2, attraction: 2}\nparameters: {depreciation: 0.2}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "parent", "extends: ../grand.yaml\nlevers: {attraction: 1.5, hte_cultivation: 1.4}\n")
    child = write(sub, "child", "extends: parent\nlevers: {tech_cultivation: 1.1}\n")
    sc = load_scenario(child, model)
    assert sc.end == 2035
    assert {k: v.value for k, v in sc.levers.items()} == {"tech_cultivation": 1.1, "attraction": 1.5,
                                                          "hte_cultivation": 1.4}
    assert sc.parameters == {"depreciation": 0.2}
    assert [Path(p).name for p in sc.chain] == ["child.yaml", "parent.yaml", "grand.yaml"]


def test_errors_name_the_file_that_set_the_value(tmp_path, model):
    write(tmp_path, "parent", "end: 2040\n")
    child = write(tmp_path, "child", "extends: parent\nlevers: {tech_cultivation: 1.2}\n")
    with pytest.raises(InputError) as exc:
        load_scenario(child, model)
    assert exc.value.file == str(tmp_path / "parent.yaml") and exc.value.key == "end"
    assert "got 2040" in str(exc.value)


def test_a_child_can_bring_an_out_of_range_parent_value_back_without_a_warning(tmp_path, model):
    write(tmp_path, "parent", "parameters: {qualifying_exit_rate: 0.3}\n")
    child = write(tmp_path, "child", "extends: parent\nparameters: {qualifying_exit_rate: 0.1}\n")
    assert load_scenario(tmp_path / "parent.yaml", model).warnings
    assert load_scenario(child, model).warnings == []


def test_dt_may_be_written_as_a_fraction(tmp_path, model):
    assert load_scenario(write(tmp_path, "a", "dt: 1/32\n"), model).dt == 1 / 32
    with pytest.raises(InputError, match="dt: expected a power of two"):
        load_scenario(write(tmp_path, "b", "dt: 1/10\n"), model)


def test_the_design_documents_example_loads(tmp_path, model):
    (tmp_path / "baseline.yaml").write_text((SCENARIOS / "baseline.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    f = write(tmp_path, "ht", """
name: ht-industry-push
title: {en: High-tech manufacturing push, zh: 高技术制造业攻坚}
extends: baseline            # inherit, then override
end: 2030
levers:
  ht_investment: {ramp: {from: 2024, to: 2026, start: 0, end: 120}}   # 亿元 of new output per year
  listing_support: {step: {at: 2025, to: 4}}
parameters:                  # overrides of assumptions (must stay within their stated range or warn)
  ht_growth_premium: 0.02
""")
    sc = load_scenario(f, model)
    assert sc.name == "ht-industry-push" and sc.label("zh") == "高技术制造业攻坚"
    assert sc.levers["ht_investment"].points == ((2024, 0), (2026, 120)) and sc.warnings == []
    assert sc.parameters == {"ht_growth_premium": 0.02}


# ------------------------------------------------------------------------------------- warnings


def test_events_after_the_end_are_warned_and_lever_limits_hold_for_pulses(tmp_path, model):
    sc = load_scenario(write(tmp_path, "late", "end: 2030\nlevers: {registry_review: {pulse: {at: 2033, size: 0.2}}}\n"),
                       model)
    assert sc.warnings == [f"{tmp_path / 'late.yaml'}: levers.registry_review.pulse.at = 2033 is after the scenario's "
                           "end (2030); it has no effect"]
    with pytest.raises(InputError, match=r"levers.gdp_growth.pulse.size: the lever would reach 0.335, outside its "
                                         r"limits \[-0.2, 0.3\]"):
        load_scenario(write(tmp_path, "big", "levers: {gdp_growth: {pulse: {at: 2024, size: 0.28}}}\n"), model)


def test_out_of_range_parameter_is_allowed_and_warned_in_output_and_manifest(tmp_path, capsys, model):
    f = write(tmp_path, "wide", "name: wide\nparameters: {qualifying_exit_rate: 0.3}\nlevers: {listing_support: 8}\n")
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    lo, hi = (f"{v:g}" for v in model.params["qualifying_exit_rate"].range)
    param = f"{f}: parameters.qualifying_exit_rate = 0.3 is outside its documented range [{lo}, {hi}]"
    lever = f"{f}: levers.listing_support = 8 is outside the lever's policy range [1, 5]"
    assert f"warning: {param}" in printed and f"warning: {lever}" in printed
    man = json.loads((out / "wide" / "manifest.json").read_text(encoding="utf-8"))
    for w in (param, lever):
        assert any(m.startswith(w) for m in man["scenario"]["warnings"]), w
    assert man["parameters"]["qualifying_exit_rate"] == 0.3


def test_shipped_scenarios_stay_inside_documented_ranges(model):
    for f in SHIPPED:
        assert load_scenario(f, model).warnings == [], f.name


# ------------------------------------------------------------------------------------------ --set


def test_set_overrides_levers_parameters_and_run_settings(model):
    sc = load_scenario(SCENARIOS / "baseline.yaml", model)
    apply_set(sc, "tech_cultivation={step: {at: 2024, to: 1.4}}", model)
    apply_set(sc, "depreciation=0.2", model)
    apply_set(sc, "end=2035", model)
    assert sc.levers["tech_cultivation"] == TimeFunction("step", at=2024, to=1.4)
    assert sc.parameters["depreciation"] == 0.2 and sc.end == 2035
    assert sc.overrides == ["tech_cultivation={step: {at: 2024, to: 1.4}}", "depreciation=0.2", "end=2035"]
    assert sc.origins["levers.tech_cultivation"] == "--set"


@pytest.mark.parametrize("assignment, fragment", [
    ("tech_cultivaton=1.5", "did you mean 'tech_cultivation'"),
    ("tech_cultivation=-1", "levers.tech_cultivation: expected a number >= 0, got -1"),
    ("tech_cultivation", "expected NAME=VALUE"),
    ("ht_investment={ramp: {from: 2025, to: 2023, start: 0, end: 9}}", "levers.ht_investment.ramp.to"),
    ("end=2040", "end: expected a year from 2026"),
    ("tech_enterprises_2021=5000", "recalibrate: false"),
])
def test_set_is_validated_like_yaml(model, assignment, fragment):
    sc = load_scenario(SCENARIOS / "baseline.yaml", model)
    with pytest.raises(InputError) as exc:
        apply_set(sc, assignment, model)
    assert "--set" in str(exc.value) and fragment in str(exc.value)


# ------------------------------------------------------------------------------ malformed files

# file -> key path the message must name (and a fragment of what is allowed or found)
MALFORMED = {
    "unknown_top_key.yaml": ("lever", "did you mean 'levers'"),
    "unknown_lever.yaml": ("levers.tech_cultivaton", "did you mean 'tech_cultivation'"),
    "unknown_parameter.yaml": ("parameters.qualifying_exit_rat", "did you mean 'qualifying_exit_rate'"),
    "lever_as_parameter.yaml": ("parameters.rd_subsidy", "is a lever"),
    "lever_wrong_type.yaml": ("levers.ht_investment", "got 'lots'"),
    "ramp_value_wrong_type.yaml": ("levers.ht_investment.ramp.end", "got 'lots'"),
    "lever_negative.yaml": ("levers.st_funding", ">= 0, got -1"),
    "parameter_negative.yaml": ("parameters.qualifying_exit_rate", ">= 0, got -0.05"),
    "ramp_backwards.yaml": ("levers.ht_investment.ramp.to", "'to' is 2023, 'from' is 2025"),
    "table_empty.yaml": ("levers.st_funding.table", "non-empty"),
    "table_year_not_integer.yaml": ("levers.st_funding.table.2022.5", "integer"),
    "two_time_functions.yaml": ("levers.tech_cultivation", "exactly one of"),
    "step_unknown_key.yaml": ("levers.tech_cultivation.step.too", "did you mean 'to'"),
    "step_before_policy_start.yaml": ("levers.tech_cultivation.step.at", "levers act from 2024"),
    "step_before_2022.yaml": ("levers.tech_cultivation.step.at", "levers act from 2022"),
    "policy_start_in_calibration_year.yaml": ("policy_start", "expected a year from 2022 (2021 is the calibration year)"),
    "pulse_over_limit.yaml": ("levers.registry_review.pulse.size", "[0, 0.99], got 1.2"),
    "extends_missing.yaml": ("extends", "'no_such_parent' not found"),
    "extends_cycle_a.yaml": ("extends", "forms a cycle"),
    "extends_cycle_b.yaml": ("extends", "extends_cycle_b.yaml -> extends_cycle_a.yaml -> extends_cycle_b.yaml"),
    "extends_self.yaml": ("extends", "extends_self.yaml -> extends_self.yaml"),
    "dt_not_power_of_two.yaml": ("dt", "power of two"),
    "dt_too_large.yaml": ("dt", "got 0.5"),
    "start_not_2020.yaml": ("start", "expected 2020"),
    "end_before_goal_year.yaml": ("end", "got 2025"),
    "end_after_2035.yaml": ("end", "got 2040"),
    "duplicate_key.yaml": ("levers.tech_cultivation", "duplicate key (lines 4 and 6)"),
    "method_unknown.yaml": ("method", "got 'rk5'"),
    "recalibrate_not_bool.yaml": ("recalibrate", "got 'maybe'"),
    "fact_needs_recalibrate_false.yaml": ("parameters.tech_enterprises_2021", "recalibrate: false"),
    "name_unsafe.yaml": ("name", "'../../escape'"),
    "levers_not_mapping.yaml": ("levers", "got a list"),
    "duration_zero.yaml": ("parameters.incubation_period", "duration > 0"),
    "empty_file.yaml": (None, "the file is empty"),
}


def test_every_malformed_fixture_has_an_expectation():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(MALFORMED)
    assert len(MALFORMED) >= 15


@pytest.mark.parametrize("fname", sorted(MALFORMED))
@pytest.mark.parametrize("command", ["run", "compare"])
def test_malformed_scenario_exits_2_naming_file_and_key_with_no_result_folder(tmp_path, capsys, fname, command):
    key, fragment = MALFORMED[fname]
    out = tmp_path / "out"
    code = main([command, str(SCENARIOS / "baseline.yaml"), str(BAD / fname), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert str(BAD) in err  # the file (for cycles: the file whose 'extends' closes the loop)
    if key is not None:
        assert f": {key}: " in err
    assert fragment in err
    assert not out.exists()


def test_malformed_scenario_through_the_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "simulate.py"), "compare", str(BAD / "ramp_backwards.yaml"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"error: {BAD / 'ramp_backwards.yaml'}: levers.ht_investment.ramp.to: "
                                   "the ramp must end after it starts: 'to' is 2023, 'from' is 2025")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ lever timing


def _integrated(run):
    """Stocks at year ends, flows and annual outputs over years (auxiliaries are instantaneous year-end values)."""
    return [n for n, (block, _) in run.names.items() if block in ("stocks", "rates")] + list(run.annual)


@pytest.mark.parametrize("policy_start", [None, 2022])
def test_constant_lever_acts_from_the_policy_start_and_leaves_2021_exactly_as_observed(tmp_path, model, cm,
                                                                                       policy_start):
    """A constant lever acts from the model's policy_start (2024, after the years of history) or from the
    scenario's own policy_start (here 2022, the earliest): identical to the baseline before, different then."""
    text = "end: 2030\nlevers: {attraction: 2}\n" + (f"policy_start: {policy_start}\n" if policy_start else "")
    push = load_scenario(write(tmp_path, "push", text), model)
    base = load_scenario(SCENARIOS / "baseline.yaml", model)
    first = policy_start or model.calibration.policy_start
    assert first == (policy_start or 2024)
    rb, rp = run_scenarios(cm, [base, push])
    before = rb.run.years < first
    for name in _integrated(rb.run):
        assert np.array_equal(rb.run.get(name)[before], rp.run.get(name)[before], equal_nan=True), name
        if name == "attraction_entry":
            assert not np.array_equal(rb.run.at(name, first), rp.run.at(name, first))
    assert rp.run.at("tech_enterprises", 2021)[0] == pytest.approx(model.facts["tech_enterprises_2021"].value, rel=1e-9)
    gross = sum(rp.run.at(f, 2021)[0] for f in model.stocks["tech_enterprises"].inflows)
    assert gross == pytest.approx(model.facts["new_tech_enterprises_2021"].value, rel=1e-9)
    # twice the attraction: about twice the attracted firms in the first policy year (only the ecosystem effect
    # moves, slowly), and more firms on the register from then on
    ratio = rp.run.at("attraction_entry", first)[0] / rb.run.at("attraction_entry", first)[0]
    assert ratio == pytest.approx(2.0, rel=0.02)
    later = rb.run.years >= first
    assert np.all(rp.run.get("tech_enterprises")[later] > rb.run.get("tech_enterprises")[later])


# ------------------------------------------------------------------------------ shipped scenarios


def test_ten_scenarios_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert names == {"baseline", "incubation_chain", "enterprise_growth", "rd_push", "ht_manufacturing",
                     "listing_cultivation", "rd_institutions", "goals_2026", "headwinds", "register_requalification"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_tells_its_story_and_quotes_the_seed(path, model):
    sc = load_scenario(path, model)
    assert sc.name == path.stem
    assert sc.title.get("en") and sc.title.get("zh")
    quotes = re.findall(r"「([^」]+)」", sc.description)
    assert quotes and len(sc.description) > 200
    if SEED.is_file():
        seed = "".join(SEED.read_text(encoding="utf-8").split())
        for q in quotes:
            assert "".join(q.split()) in seed, q


@pytest.fixture(scope="module")
def shipped_runs(model, cm):
    scs = [load_scenario(p, model) for p in SHIPPED]
    return {r.scenario.name: r for r in run_scenarios(cm, scs)}


def test_every_shipped_scenario_runs_and_reproduces_2021(model, shipped_runs):
    values = model.base_values()
    assert len(shipped_runs) == len(SHIPPED)
    for name, r in shipped_runs.items():
        assert r.scenario.recalibrate
        assert r.calibration is not None and np.abs(r.calibration.residuals).max() < 1e-6, name
        for tgt in model.calibration.targets:  # the observed 2021 facts and the assumed 2021 levels
            if tgt.variable:
                got = r.run.at(tgt.variable, tgt.year)[0]
            else:
                got = sum(r.run.at(f, tgt.year)[0] for f in model.stocks[tgt.inflows_of].inflows)
            assert got == pytest.approx(values[tgt.value_name], rel=1e-6), (name, tgt.name)
        assert r.run.at("tech_enterprises", 2021)[0] == pytest.approx(model.facts["tech_enterprises_2021"].value, rel=1e-6)
        assert r.run.at("high_tech_enterprises", 2021)[0] == pytest.approx(model.facts["hte_2021"].value, rel=1e-6)
        assert np.all(np.isfinite(r.run.stocks)), name


def test_batch_of_scenarios_equals_each_scenario_run_alone(model, cm, shipped_runs):
    for name in ("headwinds", "goals_2026"):
        alone = run_scenarios(cm, [load_scenario(SCENARIOS / f"{name}.yaml", model)])[0]
        for var in ("tech_enterprises", "ht_output_share", "rd_intensity", "star_listings"):
            # a lone run is integrated over Python floats, a batch with numpy: equal up to rounding
            np.testing.assert_allclose(alone.run.get(var), shipped_runs[name].run.get(var), rtol=1e-12,
                                       equal_nan=True, err_msg=f"{name} {var}")


def test_headwinds_are_levers_from_the_policy_start_not_parameter_overrides(model, shipped_runs):
    sc = shipped_runs["headwinds"].scenario
    first = model.calibration.policy_start
    assert sc.parameters == {} and sc.policy_start is None
    assert {"gdp_growth", "attrition_shock", "renewal_shock"} <= set(sc.levers)
    for k in ("gdp_growth", "attrition_shock", "renewal_shock"):
        assert sc.levers[k].kind == "step" and sc.levers[k].at == first
    base = shipped_runs["baseline"].run
    head = shipped_runs["headwinds"].run
    before = base.years < first
    for name in _integrated(base):  # the years of history ran under baseline policies
        assert np.array_equal(base.get(name)[before], head.get(name)[before], equal_nan=True), name
    assert head.at("qualifying_firms", 2026)[0] < base.at("qualifying_firms", 2026)[0]  # more exits
    assert head.at("high_tech_enterprises", 2026)[0] < base.at("high_tech_enterprises", 2026)[0]  # fewer renewals
    assert head.at("gdp", 2026)[0] < base.at("gdp", 2026)[0]
    assert head.at("rd_spend", 2026)[0] < base.at("rd_spend", 2026)[0]  # R&D follows the economy


def test_register_requalification_removes_only_lapsed_registrations(model, shipped_runs):
    """registry_review as a constant: every year from the policy start a share of the lapsed registrations is removed.

    Firms that still qualify are never removed: the qualifying population, the registered firms that still
    qualify, the HTE and everything they drive are identical to the baseline; only the register (and its
    lapsed part) ends lower, and it never falls below the registered firms that still qualify.
    """
    r = shipped_runs["register_requalification"]
    base = shipped_runs["baseline"].run
    run = r.run
    fn = r.scenario.levers["registry_review"]
    lo, hi = model.levers["registry_review"].policy_range
    assert fn.kind == "constant" and lo < fn.value <= hi and r.scenario.parameters == {}
    first = model.calibration.policy_start
    for name in ("qualifying_firms", "registered_qualifying", "high_tech_enterprises", "eligible_backlog",
                 "rd_spend", "star_listings", "ht_output_share"):
        np.testing.assert_array_equal(run.get(name), base.get(name), err_msg=name)
    tech, tech_b = run.get("tech_enterprises")[:, 0], base.get("tech_enterprises")[:, 0]
    before, after = base.years < first, base.years >= first
    np.testing.assert_array_equal(tech[before], tech_b[before])
    assert np.all(tech[after] < tech_b[after])
    assert tech[-1] < tech_b[-1]  # the register ends lower
    removed = run.get("registry_removal")[:, 0]
    assert np.all(removed[1:][before[1:]] == 0) and np.all(removed[after] > 0)
    assert np.all(tech >= run.get("registered_qualifying")[:, 0] - 1e-9)
    lapsed, lapsed_b = run.get("lapsed_registrations")[:, 0], base.get("lapsed_registrations")[:, 0]
    assert np.all(lapsed[after] < lapsed_b[after])
    # the register's distance to the qualifying firms on it is what lapsed: tech = registered_qualifying + lapsed
    np.testing.assert_allclose(tech, run.get("registered_qualifying")[:, 0] + lapsed, rtol=1e-9)


def test_numbers_in_scientific_notation_are_numbers(tmp_path, model):
    sc = load_scenario(write(tmp_path, "sci", "levers: {ht_investment: 1.2e2}\nparameters: {listing_propensity: 1e-4}\n"),
                       model)
    assert sc.parameters["listing_propensity"] == 1e-4
    assert sc.levers["ht_investment"].value == 120.0
    import yaml

    assert yaml.safe_load("a: 1e3") == {"a": "1e3"}  # PyYAML's own SafeLoader is left as it was
