"""`simulate.py check`: each deliberately broken model fails exactly its check; the Yubei model's table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sdsim import validity
from sdsim.checkspec import load_checks
from sdsim.cli import main
from sdsim.compiler import compile_model
from sdsim.engine import TimeGrid, lever_schedules, simulate
from sdsim.model import load_model
from sdsim.runner import calibrated_params, lever_baseline, parameter_batch

FIXTURES = Path(__file__).parent / "fixtures" / "broken_models"

# fixture folder -> the rows of the check table that must fail (tests/fixtures/broken_models/README.md)
BROKEN = {
    "healthy": set(),
    "dimensional": {"dimensional consistency"},
    "literals": {"numbers in equations"},
    "provenance": {"provenance"},
    "loops": {"declared feedback loops"},
    "mass_balance": {"mass balance"},
    "dt_convergence": {"dt convergence (dt/4, re-calibrated)", "euler vs rk4 (dt 1/16)"},
    "method_agreement": {"euler vs rk4 (dt 1/16)"},
    "reality": {"reality: no_entry"},
    "calibration": {"calibration 2021 (1 target)"},
    "behaviour": {"change of firms 2021"},
}


def rows_of(directory: Path) -> list[validity.Row]:
    m = load_model(directory)
    return validity.run_checks(m, compile_model(m))


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_model_fails_exactly_its_check(name):
    rows = rows_of(FIXTURES / name)
    failed = {r.name for r in rows if r.passed is False}
    assert failed == BROKEN[name]
    assert all(r.details for r in rows if r.passed is False)  # a failure says why


def test_every_check_has_a_broken_fixture():
    names = {r.name for r in rows_of(FIXTURES / "healthy") if r.passed is not None}
    covered = set().union(*BROKEN.values())
    # every judged row of the table except the reality checks that only the healthy model declares
    assert names - covered <= {"reality: no_openings", "reality: levers_x10"}


def test_exit_code_is_0_only_when_all_pass(capsys):
    assert main(["check", "--model", str(FIXTURES / "healthy")]) == 0
    out = capsys.readouterr().out
    assert "12 of 12 checks passed" in out
    assert main(["check", "--model", str(FIXTURES / "mass_balance")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "Failures:" in out and "registered" in out


def test_bad_checks_file_is_one_line_and_exit_code_2(tmp_path, capsys):
    d = tmp_path / "m"
    shutil.copytree(FIXTURES / "healthy", d)
    text = (d / "checks.yaml").read_text().replace("test: decreasing, variables: [carriers]",
                                                   "test: decreasing, variables: [carrier]")
    (d / "checks.yaml").write_text(text)
    assert main(["check", "--model", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checks.yaml" in err and "reality_checks.no_openings.expect.0.variables" in err and "'carrier'" in err


def test_forcing_a_flow_to_zero_leaves_pure_euler_decay():
    """no_entry forces firm_entry = 0 from 2021: firms then decay by (1 - exit_rate*dt) per step exactly."""
    m = load_model(FIXTURES / "healthy")
    forced = compile_model(validity.forced_model(m, ["firm_entry"]))
    params = parameter_batch(forced, [{"xforce_on_firm_entry": 1.0, "xforce_from_firm_entry": 2021.0,
                                       "xforce_value_firm_entry": 0.0}])
    solved, _ = calibrated_params(forced, params, 1 / 16, "euler")
    grid = TimeGrid(2020, 2026, 1 / 16)
    run = simulate(forced, solved, lever_schedules(forced, grid, lever_baseline(forced, solved)), grid, "euler")
    ratio = run.at("firms", 2026)[0] / run.at("firms", 2021)[0]
    assert ratio == pytest.approx((1 - 0.3 / 16) ** (5 * 16), rel=1e-12)
    assert run.at("firms", 2021)[0] == pytest.approx(110, rel=1e-9)  # the calibration window is untouched


def test_each_lever_expands_to_one_run_per_lever_within_limits(model):
    spec = load_checks(model)
    cases = validity.cases(model, spec)
    x10 = [c for c in cases if c.check.name == "levers_x10"]
    assert len(x10) == len(model.levers)
    for c, (name, p) in zip(x10, model.levers.items(), strict=True):
        v = c.levers[name]
        assert p.limits[0] <= v <= p.limits[1]
        expected = 10 * p.value if p.value else 10 * p.policy_range[1]
        assert v == pytest.approx(min(max(expected, p.limits[0]), p.limits[1]))


# ----------------------------------------------------------------------------- the Yubei model

# Rows the Yubei model is known to fail (strict xfail turns into a failure when the row starts passing).
# Empty: the four findings of the first check run (units of two equations, occupancy above a shrinking
# capacity, R&D intensity under a GDP collapse, Euler at dt 1/16) were fixed in the model files.
KNOWN_FINDINGS: dict[str, str] = {}


@pytest.fixture(scope="module")
def yubei_rows():
    m = load_model(Path(__file__).parent.parent / "model")
    return {r.name: r for r in validity.run_checks(m, compile_model(m))}


def yubei_row_names() -> list[str]:
    m = load_model(Path(__file__).parent.parent / "model")
    spec = load_checks(m)
    cal = m.calibration
    names = ["dimensional consistency", "numbers in equations", "provenance", "declared feedback loops",
             "mass balance", "dt convergence (dt/4, re-calibrated)", f"euler vs rk4 (dt 1/{round(1 / m.dt)})"]
    names += [f"reality: {rc.name}" for rc in spec.reality]
    names += [f"calibration {cal.end} ({len(cal.targets)} targets)"]
    names += [f.en for f in spec.behaviour]
    return names


@pytest.mark.xdist_group("yubei_check")  # shares the module fixture yubei_rows (built once)
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FINDINGS[n])) if n in KNOWN_FINDINGS else n
    for n in yubei_row_names()
])
def test_yubei_model_passes_check(yubei_rows, name):
    row = yubei_rows[name]
    assert row.passed, f"{row.measured}: {row.details}"


def _hindcast_model_value(model, run, row) -> float:
    """The model's value of a history row, computed here from the yearly run (docs/history.md, history.yaml):
    stocks interpolated linearly between year ends (before t0: extrapolated back with the first year's net
    change), a flow over (from, to] as its share of the year's total."""
    years = list(run.years)
    if row.period is not None:
        lo, hi = row.period
        year = int(np.ceil(hi - 1e-9))
        return float(run.at(row.variable, year)[0]) * (hi - lo)
    v = run.get(row.variable)[:, 0]
    t = row.t
    if t < years[0]:  # back-cast: the parabola through the first three year ends (Lagrange form)
        u = t - years[0]
        return float((u - 1) * (u - 2) / 2 * v[0] - u * (u - 2) * v[1] + u * (u - 1) / 2 * v[2])
    i = years.index(int(np.floor(t)))
    return float(v[i] + (t - years[i]) * (v[i + 1] - v[i])) if t > years[i] else float(v[i])


@pytest.mark.xdist_group("yubei_check")  # shares the module fixture yubei_rows (built once)
def test_yubei_table_has_every_row_and_the_history_is_reported_not_judged(yubei_rows, model, cm):
    """Every observation of history.yaml is a hindcast row: shown with the model's value, never a pass/fail."""
    from tests.conftest import run_model

    assert set(yubei_row_names()) <= set(yubei_rows)
    shown = {r.about.split(" ")[0]: r for r in yubei_rows.values() if r.passed is None}
    observations = [h for h in model.history.rows if h.kind == "observation"]
    assert observations and set(shown) == {h.id for h in observations}
    assert all(r.group == "hindcast" for r in shown.values())
    run, _ = run_model(cm, dt=model.dt)  # check runs the baseline at the model's dt
    for h in observations:
        r = shown[h.id]
        model_v = float(r.measured.split("model ")[1].split(" vs")[0].replace(",", ""))
        seen_v = float(r.measured.split(" vs ")[1].split(" ")[0].replace(",", ""))
        assert seen_v == pytest.approx(h.value, rel=1e-3), h.id
        assert model_v == pytest.approx(_hindcast_model_value(model, run, h), rel=2e-3), h.id
        lo, hi = h.bounds
        assert ("inside" in r.measured) == (lo <= model_v <= hi), h.id
    # the back-cast of end September 2020 lies before t0 = 2020 and is extrapolated along a parabola
    assert min(h.time for h in observations) < model.calibration.start


def test_yubei_mass_balance_and_calibration_figures(model, cm):
    sc = validity.baseline_scenario(model)
    b = validity.run_batch(cm, sc, [{}], [{}], 1 / 16, "euler")
    row = validity.mass_balance(cm, [("base", b.run)], 1e-9)
    assert row.passed
    # the 2021 increase of HTE is 796 - 690 and the gross inflow of tech enterprises is 1556
    hte = b.run.get("high_tech_enterprises")[:, 0]
    assert hte[1] - hte[0] == pytest.approx(106, rel=1e-6)
    inflow = sum(b.run.at(f, 2021)[0] for f in model.stocks["tech_enterprises"].inflows)
    assert inflow == pytest.approx(1556, rel=1e-6)
    assert np.isfinite(b.run.stocks).all()


@pytest.mark.parametrize("scenario", sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_scenario_passes_check(scenario, capsys):
    assert main(["check", str(scenario)]) == 0, capsys.readouterr().out
