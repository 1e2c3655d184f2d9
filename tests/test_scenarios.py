"""Scenario files: inheritance, validation messages, warnings, --set, and the ten shipped scenarios."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

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
levers:
  tech_cultivation: 1.5
  st_funding: {step: {at: 2023, to: 0.5}}
parameters:
  tech_attrition: 0.1
  rd_growth: 0.08
""")
    child = write(tmp_path, "child", """
extends: parent
end: 2028
levers:
  tech_cultivation: 1.2
  rd_subsidy: 0.05
parameters:
  rd_growth: 0.05
""")
    sc = load_scenario(child, model)
    assert sc.end == 2028 and sc.method == "rk4"  # overridden / inherited
    assert sc.levers["tech_cultivation"] == TimeFunction("constant", value=1.2)
    assert sc.levers["st_funding"] == TimeFunction("step", at=2023, to=0.5)  # inherited untouched
    assert sc.levers["rd_subsidy"] == TimeFunction("constant", value=0.05)
    assert sc.parameters == {"tech_attrition": 0.1, "rd_growth": 0.05}
    # name, title and description describe the file itself: not inherited
    assert sc.name == "child" and sc.title == {} and sc.description == ""
    assert sc.chain == [str(child), str(tmp_path / "parent.yaml")]


def test_grandparent_chain_applies_from_the_root_down(tmp_path, model):
    write(tmp_path, "grand", "end: 2035\nlevers: {tech_cultivation: 2, attraction: 2}\nparameters: {rd_growth: 0.1}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "parent", "extends: ../grand.yaml\nlevers: {attraction: 1.5, hte_cultivation: 1.4}\n")
    child = write(sub, "child", "extends: parent\nlevers: {tech_cultivation: 1.1}\n")
    sc = load_scenario(child, model)
    assert sc.end == 2035
    assert {k: v.value for k, v in sc.levers.items()} == {"tech_cultivation": 1.1, "attraction": 1.5,
                                                          "hte_cultivation": 1.4}
    assert sc.parameters == {"rd_growth": 0.1}
    assert [Path(p).name for p in sc.chain] == ["child.yaml", "parent.yaml", "grand.yaml"]


def test_errors_name_the_file_that_set_the_value(tmp_path, model):
    write(tmp_path, "parent", "end: 2040\n")
    child = write(tmp_path, "child", "extends: parent\nlevers: {tech_cultivation: 1.2}\n")
    with pytest.raises(InputError) as exc:
        load_scenario(child, model)
    assert exc.value.file == str(tmp_path / "parent.yaml") and exc.value.key == "end"
    assert "got 2040" in str(exc.value)


def test_a_child_can_bring_an_out_of_range_parent_value_back_without_a_warning(tmp_path, model):
    write(tmp_path, "parent", "parameters: {tech_attrition: 0.3}\n")
    child = write(tmp_path, "child", "extends: parent\nparameters: {tech_attrition: 0.1}\n")
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
  ht_investment: {ramp: {from: 2023, to: 2025, start: 0, end: 120}}   # 亿元 of new output per year
  listing_support: {step: {at: 2023, to: 4}}
parameters:                  # overrides of assumptions (must stay within their stated range or warn)
  other_growth: 0.02
""")
    sc = load_scenario(f, model)
    assert sc.name == "ht-industry-push" and sc.label("zh") == "高技术制造业攻坚"
    assert sc.levers["ht_investment"].points == ((2023, 0), (2025, 120)) and sc.warnings == []


# ------------------------------------------------------------------------------------- warnings


def test_events_after_the_end_are_warned_and_lever_limits_hold_for_pulses(tmp_path, model):
    sc = load_scenario(write(tmp_path, "late", "end: 2030\nlevers: {registry_review: {pulse: {at: 2033, size: 0.2}}}\n"),
                       model)
    assert sc.warnings == [f"{tmp_path / 'late.yaml'}: levers.registry_review.pulse.at = 2033 is after the scenario's "
                           "end (2030); it has no effect"]
    with pytest.raises(InputError, match=r"levers.gdp_growth.pulse.size: the lever would reach 0.335, outside its "
                                         r"limits \[-0.2, 0.3\]"):
        load_scenario(write(tmp_path, "big", "levers: {gdp_growth: {pulse: {at: 2024, size: 0.28}}}\n"), model)


def test_out_of_range_parameter_is_allowed_and_warned_in_output_and_manifest(tmp_path, capsys):
    f = write(tmp_path, "wide", "name: wide\nparameters: {tech_attrition: 0.3}\nlevers: {listing_support: 8}\n")
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    param = f"{f}: parameters.tech_attrition = 0.3 is outside its documented range [0.04, 0.15]"
    lever = f"{f}: levers.listing_support = 8 is outside the lever's policy range [1, 5]"
    assert f"warning: {param}" in printed and f"warning: {lever}" in printed
    man = json.loads((out / "wide" / "manifest.json").read_text(encoding="utf-8"))
    for w in (param, lever):
        assert any(m.startswith(w) for m in man["scenario"]["warnings"]), w
    assert man["parameters"]["tech_attrition"] == 0.3


def test_shipped_scenarios_stay_inside_documented_ranges(model):
    for f in SHIPPED:
        assert load_scenario(f, model).warnings == [], f.name


# ------------------------------------------------------------------------------------------ --set


def test_set_overrides_levers_parameters_and_run_settings(model):
    sc = load_scenario(SCENARIOS / "baseline.yaml", model)
    apply_set(sc, "tech_cultivation={step: {at: 2024, to: 1.4}}", model)
    apply_set(sc, "rd_growth=0.07", model)
    apply_set(sc, "end=2035", model)
    assert sc.levers["tech_cultivation"] == TimeFunction("step", at=2024, to=1.4)
    assert sc.parameters["rd_growth"] == 0.07 and sc.end == 2035
    assert sc.overrides == ["tech_cultivation={step: {at: 2024, to: 1.4}}", "rd_growth=0.07", "end=2035"]
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
    "unknown_parameter.yaml": ("parameters.tech_atrition", "did you mean 'tech_attrition'"),
    "lever_as_parameter.yaml": ("parameters.rd_subsidy", "is a lever"),
    "lever_wrong_type.yaml": ("levers.ht_investment", "got 'lots'"),
    "ramp_value_wrong_type.yaml": ("levers.ht_investment.ramp.end", "got 'lots'"),
    "lever_negative.yaml": ("levers.st_funding", ">= 0, got -1"),
    "parameter_negative.yaml": ("parameters.tech_attrition", ">= 0, got -0.05"),
    "ramp_backwards.yaml": ("levers.ht_investment.ramp.to", "'to' is 2023, 'from' is 2025"),
    "table_empty.yaml": ("levers.st_funding.table", "non-empty"),
    "table_year_not_integer.yaml": ("levers.st_funding.table.2022.5", "integer"),
    "two_time_functions.yaml": ("levers.tech_cultivation", "exactly one of"),
    "step_unknown_key.yaml": ("levers.tech_cultivation.step.too", "did you mean 'to'"),
    "step_before_2022.yaml": ("levers.tech_cultivation.step.at", "levers act from 2022"),
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


def test_constant_lever_changes_2026_and_leaves_2021_exactly_as_observed(tmp_path, model, cm):
    push = load_scenario(write(tmp_path, "push", "levers: {tech_cultivation: 1.5}\n"), model)
    base = load_scenario(SCENARIOS / "baseline.yaml", model)
    rb, rp = run_scenarios(cm, [base, push])
    for name in rb.run.names:
        assert np.array_equal(rb.run.get(name)[:2], rp.run.get(name)[:2], equal_nan=True), name  # 2020, 2021 untouched
    assert rp.run.at("tech_enterprises", 2021)[0] == pytest.approx(model.facts["tech_enterprises_2021"].value, rel=1e-9)
    gross = sum(rp.run.at(f, 2021)[0] for f in model.stocks["tech_enterprises"].inflows)
    assert gross == pytest.approx(model.facts["new_tech_enterprises_2021"].value, rel=1e-9)
    assert rp.run.at("tech_enterprises", 2026)[0] > 1.05 * rb.run.at("tech_enterprises", 2026)[0]


# ------------------------------------------------------------------------------ shipped scenarios


def test_ten_scenarios_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert names == {"baseline", "incubation_chain", "enterprise_growth", "rd_push", "ht_manufacturing",
                     "listing_cultivation", "rd_institutions", "goals_2026", "headwinds", "registry_rescreening"}


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


def test_headwinds_are_levers_from_2023_not_parameter_overrides(model, shipped_runs):
    sc = shipped_runs["headwinds"].scenario
    assert sc.parameters == {}
    assert {"gdp_growth", "attrition_shock", "renewal_shock"} <= set(sc.levers)
    for k in ("gdp_growth", "attrition_shock", "renewal_shock"):
        assert sc.levers[k].kind == "step" and sc.levers[k].at == 2023
    base = shipped_runs["baseline"].run
    head = shipped_runs["headwinds"].run
    assert np.array_equal(base.get("tech_enterprises")[:3], head.get("tech_enterprises")[:3])  # to 2022
    assert head.at("tech_enterprises", 2026)[0] < base.at("tech_enterprises", 2026)[0]
    assert head.at("gdp", 2026)[0] < base.at("gdp", 2026)[0]


def test_registry_rescreening_lands_near_2203_with_the_share_a_baseline_run_implies(model, cm, shipped_runs):
    reported_2023 = 2203  # district publication (MODEL_SPEC §1)
    r = shipped_runs["registry_rescreening"]
    fn = r.scenario.levers["registry_review"]
    assert fn.kind == "pulse" and fn.at == 2023
    assert abs(r.run.at("tech_enterprises", 2023)[0] - reported_2023) < 0.02 * reported_2023
    base = load_scenario(SCENARIOS / "baseline.yaml", model)

    def landing(share: float) -> float:
        base.levers = {"registry_review": TimeFunction("pulse", at=2023, size=share)}
        return run_scenarios(cm, [base])[0].run.at("tech_enterprises", 2023)[0] - reported_2023

    root = brentq(landing, 0.5, 0.95, xtol=1e-6)
    assert fn.size == round(root, 2)  # the file's share is the solved one, rounded as its comment says
    # only non-HTE firms are removed: HTE at end 2022 are untouched by a 2023 re-screening
    assert r.run.at("high_tech_enterprises", 2022)[0] == shipped_runs["baseline"].run.at("high_tech_enterprises", 2022)[0]


def test_numbers_in_scientific_notation_are_numbers(tmp_path, model):
    sc = load_scenario(write(tmp_path, "sci", "levers: {ht_investment: 1.2e2}\nparameters: {listing_propensity: 1e-4}\n"),
                       model)
    assert sc.parameters["listing_propensity"] == 1e-4
    assert sc.levers["ht_investment"].value == 120.0
    import yaml

    assert yaml.safe_load("a: 1e3") == {"a": "1e3"}  # PyYAML's own SafeLoader is left as it was
