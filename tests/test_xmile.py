"""XMILE export: the exported model, run in PySD (an independent engine), reproduces this engine.

PySD integrates with Euler and samples time functions at the step start, like this engine, so
every stock must agree at every year end to 1e-9 relative, and every lever and series value at
every step. The scenarios below are written here (not taken from scenarios/) so the test does not
depend on anyone's policy choices; together they use every lever time function.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pysd
import pytest
import yaml

from sdsim.cli import main
from sdsim.compiler import compile_model
from sdsim.engine import TimeGrid, series_values
from sdsim.errors import ModelError
from sdsim.expressions import parse
from sdsim.model import load_model
from sdsim.runner import run_scenarios, scenario_levers
from sdsim.scenario import load_scenario, policy_start
from sdsim.xmile import XMILE_NS, _Emitter, build_xmile, export_scenario, write_text
from tests.conftest import simulate_toy, write_model

RTOL = 1e-9
NS = {"x": XMILE_NS}

SCENARIOS = {
    "baseline": {"end": 2030, "levers": {}},
    # steps (one with an explicit 'from' value before the step), constants, a re-calibrated override; policies
    # from 2022 (the earliest policy_start), so the levers also act in the years of history; dt = 1/16
    "steps": {
        "end": 2030,
        "dt": 0.0625,
        "policy_start": 2022,
        "levers": {
            "listing_support": {"step": {"at": 2023, "to": 4}},
            "tech_cultivation": {"step": {"at": 2024, "from": 1.2, "to": 1.5}},
            "renewal_shock": {"step": {"at": 2022, "to": 0.9}},
            "attrition_shock": 1.3,
            "rd_subsidy": 0.1,
        },
        "parameters": {"ecosystem_slope": 0.45, "qualifying_exit_rate": 0.1},
    },
    # ramps and tables (graphical functions of TIME), a GDP growth path, run to 2035 with dt = 1/8
    "ramps_tables": {
        "end": 2035,
        "dt": 0.125,
        "policy_start": 2022,
        "levers": {
            "ht_investment": {"ramp": {"from": 2023, "to": 2026, "start": 0, "end": 120}},
            "st_funding": {"table": {2022: 0.2, 2024: 0.6, 2027: 0.4}},
            "teams_per_space": {"table": {2022: 30, 2025: 50}},
            "gdp_growth": {"table": {2023: 0.05, 2026: 0.07}},
        },
    },
    # pulses (a registry re-screening and a one-year burst of institutions), with dt = 1/16, from the model's
    # default policy start (2024). The time steps differ between the scenarios (the baseline runs at the model's
    # dt, 1/32): PySD evaluates graphical functions slowly, so the coarser ones keep this test quick.
    "pulses": {
        "end": 2028,
        "dt": 0.0625,
        "levers": {
            "registry_review": {"pulse": {"at": 2024, "size": 0.3}},
            "national_rd_institution_rate": {"pulse": {"at": 2025, "size": 2}},
            "maker_space_openings": {"step": {"at": 2025, "to": 3}},
        },
    },
}


def cm_stocks(res) -> list[str]:
    return [n for n, (block, _) in res.run.names.items() if block == "stocks"]


def pysd_model(path: Path):
    """Translate an XMILE file with PySD (its .py lands beside the file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysd.read_xmile(str(path))


def pysd_run(model, columns: list[str], times) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = model.run(return_columns=columns, return_timestamps=[float(t) for t in times], progress=False,
                       cache_output=False)
    assert np.allclose(df.index.values, times, rtol=0, atol=1e-9)
    return {c: df[c].to_numpy(dtype=float) for c in columns}


# The Yubei model v2 uses lookup(), delay_fixed() and smooth(): their XMILE form is being built in another branch.


@pytest.fixture(scope="module")
def scenario_runs(tmp_path_factory, model, cm):
    """name -> (scenario, ScenarioRun), run by this engine."""
    d = tmp_path_factory.mktemp("xmile")
    out = {}
    for name, data in SCENARIOS.items():
        f = d / f"{name}.yaml"
        f.write_text(yaml.safe_dump({"name": name, **data}), encoding="utf-8")
        sc = load_scenario(f, model)
        out[name] = (sc, run_scenarios(cm, [sc])[0])
    return out, d


@pytest.fixture(scope="module")
def exported(scenario_runs, cm):
    """name -> (scenario, ScenarioRun, XmileExport, path of the written file)."""
    runs, d = scenario_runs
    out = {}
    for name, (sc, res) in runs.items():
        exp = export_scenario(cm, sc)
        out[name] = (sc, res, exp, write_text(d / f"{name}.xmile", exp.text))
    return out


@pytest.fixture(scope="module")
def pysd_runs(exported, cm):
    """``get(name)`` -> (PySD values at every step start and at t = end, the step times, the lever and series
    names), the export translated and run by PySD on first use.

    One PySD run per scenario serves both cross-checks below (stocks at year ends, inputs at every step); the
    tests of one scenario share an xdist group, so each scenario is translated by one worker."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            sc, _, exp, path = exported[name]
            pm = pysd_model(path)
            grid = TimeGrid(cm.model.calibration.start, sc.end, sc.dt)
            inputs = [n for n in sc.levers if n in exp.aux] + list(cm.model.series)
            cache[name] = (pysd_run(pm, list(dict.fromkeys([*exp.stocks, *inputs])), grid.times), grid.times, inputs)
        return cache[name]

    return get


def at_times(values: np.ndarray, times: np.ndarray, wanted) -> np.ndarray:
    """``values`` (one per entry of ``times``) at the times ``wanted`` (each one of ``times``)."""
    idx = np.searchsorted(times, np.asarray(wanted, dtype=float))
    assert np.allclose(times[idx], wanted, rtol=0, atol=1e-9)
    return values[idx]


BY_SCENARIO = [pytest.param(n, marks=pytest.mark.xdist_group(f"xmile_{n}")) for n in SCENARIOS]


@pytest.mark.parametrize("name", BY_SCENARIO)
def test_pysd_reproduces_every_stock_at_every_year_end(exported, pysd_runs, name):
    sc, res, exp, _ = exported[name]
    years = res.run.years
    values, times, _ = pysd_runs(name)
    got = {s: at_times(values[s], times, years) for s in exp.stocks}
    assert set(exp.stocks) == set(cm_stocks(res))
    worst = 0.0
    for s in exp.stocks:
        ours = res.run.get(s)[:, 0]
        np.testing.assert_allclose(got[s], ours, rtol=RTOL, atol=0, err_msg=f"{name}: stock {s}")
        nz = ours != 0
        worst = max(worst, float(np.max(np.abs(got[s][nz] - ours[nz]) / np.abs(ours[nz]), initial=0.0)))
    print(f"\n{name}: largest relative stock difference engine vs PySD = {worst:.2e}")


@pytest.mark.parametrize("name", BY_SCENARIO)
def test_levers_and_series_match_at_every_step(exported, pysd_runs, cm, name):
    """The lever time functions and the GDP series take the engine's value at every step start."""
    sc, res, exp, _ = exported[name]
    grid = TimeGrid(cm.model.calibration.start, sc.end, sc.dt)
    levers = scenario_levers(cm, grid, res.params, sc.levers, first_year=policy_start(sc, cm.model))
    per_step, _ = series_values(cm, grid, levers)
    names = [n for n in sc.levers if n in exp.aux] + list(per_step)
    values, times, inputs = pysd_runs(name)
    assert names == inputs and np.array_equal(times, grid.times)
    # the last step's value at t = end is never used by an Euler step; check the steps that are
    for n in names:
        ours = (levers[n] if n in levers else per_step[n])[:-1, 0]
        np.testing.assert_allclose(values[n][:-1], ours, rtol=1e-12, atol=0, err_msg=f"{name}: {n}")


def test_scenarios_really_move_the_levers(scenario_runs, model):
    """Guard against a vacuous cross-check: each lever scenario differs from the baseline, from its policy start."""
    runs, _ = scenario_runs
    base = runs["baseline"][1].run
    assert runs["steps"][0].policy_start == runs["ramps_tables"][0].policy_start == 2022
    assert runs["pulses"][0].policy_start is None and model.calibration.policy_start == 2024
    for name in ("steps", "ramps_tables", "pulses"):
        run = runs[name][1].run
        diff = abs(run.at("tech_enterprises", 2026)[0] / base.at("tech_enterprises", 2026)[0] - 1)
        diff += abs(run.at("ht_output", 2026)[0] / base.at("ht_output", 2026)[0] - 1)
        diff += abs(run.at("national_rd_institutions_added", 2026)[0]
                    / base.at("national_rd_institutions_added", 2026)[0] - 1)
        assert diff > 1e-3, name


def test_file_holds_calibrated_values_units_and_sim_specs(exported, model):
    sc, res, exp, _ = exported["pulses"]
    root = ET.fromstring(exp.text)
    specs = root.find("x:sim_specs", NS)
    assert specs.get("method") == "Euler" and specs.get("time_units") == "year"
    assert float(specs.find("x:start", NS).text) == 2020
    assert float(specs.find("x:stop", NS).text) == sc.end
    assert float(specs.find("x:dt", NS).text) == sc.dt
    variables = root.find("x:model/x:variables", NS)
    by_name = {v.get("name"): v for v in variables}
    for f in model.calibration.free:  # solved values, written so they read back exactly
        assert float(by_name[f.name].find("x:eqn", NS).text) == res.params[f.name]
    for name, var in model.stocks.items():
        assert by_name[name].find("x:units", NS).text == var.units
        assert by_name[name].find("x:non_negative", NS).text == "false"
    # one source and one sink per flow, as XMILE requires; a flow with two sinks (new qualifying firms join the
    # qualifying population and the backlog) is written once plus a copy whose equation is the flow
    sources: dict[str, int] = {}
    sinks: dict[str, int] = {}
    for st in variables.findall("x:stock", NS):
        for e in st.findall("x:outflow", NS):
            sources[e.text] = sources.get(e.text, 0) + 1
        for e in st.findall("x:inflow", NS):
            sinks[e.text] = sinks.get(e.text, 0) + 1
    assert max(sources.values()) == 1 and max(sinks.values()) == 1
    copies = [n for n, v in by_name.items() if n.startswith("new_qualifying_firms_") and v.find("x:eqn", NS) is not None
              and v.find("x:eqn", NS).text == "new_qualifying_firms"]
    assert len(copies) == 1
    assert by_name["knowledge_intensity_t0"].find("x:eqn", NS).text == "INIT(knowledge_intensity)"
    assert "rd_intensity" not in by_name and any("rd_intensity" in n for n in exp.notes)


@pytest.mark.parametrize(("text", "xmile"), [
    ("a - (b - c)", "a - (b - c)"),
    ("a - b - c", "a - b - c"),
    ("a / (b * c)", "a / (b * c)"),
    ("-a ** 2", "(-(a ^ 2))"),
    ("(-a) ** 2", "(-a) ^ 2"),
    ("a ** b ** c", "a ^ (b ^ c)"),
    ("min(a, b, c)", "MIN(MIN(a, b), c)"),
    ("clip(a, 0, 1)", "MIN(MAX(a, 0), 1)"),
    ("if_then_else(a >= b, log(a), exp(b))", "(IF a >= b THEN LN(a) ELSE EXP(b))"),
    ("a != b", "a <> b"),
    ("a == b", "a = b"),
    ("step(a, 2021)", "STEP(a, 2021)"),
    ("step(a, 2021.1)", "(IF TIME >= 2021.1 THEN a ELSE 0)"),
    ("pulse(2022, 0.5)", "(IF TIME >= 2022 AND TIME < 2022 + 0.5 THEN 1 ELSE 0)"),
    ("ramp(a + b, 2022, 2025)", "((a + b) * (MIN(MAX(TIME, 2022), 2025) - 2022))"),
    ("time * 0.5", "TIME * 0.5"),
    ("initial(a)", "INIT(a)"),
])
def test_equation_text(text, xmile):
    assert _Emitter({}, TimeGrid(2020, 2030, 1 / 16)).text(parse(text)) == xmile


def test_toy_model_with_every_function_runs_identically_in_pysd(tmp_path):
    """Every equation function, a graphical function, off-grid steps and a flow linking two pairs of stocks."""
    d = write_model(
        tmp_path / "toy",
        stocks={
            "a": {"units": "u", "initial": "k0", "inflows": ["grow"], "outflows": ["move"]},
            "b": {"units": "u", "initial": "2 * k0", "inflows": ["move"], "outflows": ["leak"]},
            "c": {"units": "u", "initial": "k0 / 2", "inflows": ["move", "leak"], "outflows": []},
            "d": {"units": "u", "initial": "0", "inflows": ["pulsed", "ramped"], "outflows": ["move"]},
        },
        flows={
            "grow": {"equation": "a * rate * effect", "units": "u/year"},
            "move": {"equation": "clip(a - b, 0, cap) / tau + abs(sqrt(b) - 1) * small", "units": "u/year"},
            "leak": {"equation": "if_then_else(b > a, b * rate, min(a, b, c) * rate / 2)", "units": "u/year"},
            "pulsed": {"equation": "pulse(start, width) * 10 + step(3, 2021.3) + step(2, start)", "units": "u/year"},
            "ramped": {"equation": "ramp(slope, start, start + 2) - (-log(1 + rate)) ** 2", "units": "u/year"},
        },
        aux={
            "a0": {"equation": "initial(a)", "units": "u"},
            "effect": {"equation": "max(exp(rate * (time - 2020)) - 1, 0) ** 0.5 + a / a0",
                       "units": "dmnl", "table": {"x": [1, 1.5, 3], "y": [1, 0.8, 0.3]}},
        },
        parameters={"k0": 100, "rate": 0.07, "cap": 40, "tau": 2, "small": 0.01, "start": 2022,
                    "width": 0.75, "slope": 1.5},
    )
    m = load_model(d)
    c = compile_model(m)
    grid = TimeGrid(2020, 2026, 1 / 8)
    ours = simulate_toy(d, 2020, 2026, 1 / 8)
    exp = build_xmile(c, m.base_values(), grid, name="toy")
    assert "move_c" in exp.flows and "move_b" not in exp.flows  # move: a -> b, plus copies d -> ..., -> c
    got = pysd_run(pysd_model(write_text(tmp_path / "toy.xmile", exp.text)), [*m.stocks, "effect"], ours.years)
    for s in [*m.stocks, "effect"]:
        np.testing.assert_allclose(got[s], ours.get(s)[:, 0], rtol=RTOL, atol=0, err_msg=s)
    assert ours.at("d", 2026)[0] > 10 and ours.at("c", 2026)[0] > ours.at("c", 2020)[0]


def test_reserved_and_case_clashing_names_are_refused(tmp_path):
    for params in ({"dt": 1.0}, {"k": 1.0, "K": 2.0}):
        d = write_model(tmp_path / str(len(params)), stocks={"s": {"units": "u", "initial": "1", "inflows": ["f"]}},
                        flows={"f": {"equation": " + ".join(params), "units": "u/year"}}, parameters=params)
        m = load_model(d)
        with pytest.raises(ModelError, match="XMILE"):
            build_xmile(compile_model(m), m.base_values(), TimeGrid(2020, 2022, 1 / 4))


def test_export_command(tmp_path, capsys):
    out = tmp_path / "sub" / "base.xmile"
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump({"name": "s", **SCENARIOS["steps"]}), encoding="utf-8")
    assert main(["export", str(scen), "--format", "xmile", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text
    root = ET.parse(out).getroot()
    assert root.tag == f"{{{XMILE_NS}}}xmile" and root.get("version") == "1.0"
    assert [p.name for p in out.parent.iterdir()] == ["base.xmile"]  # no temporary file left
    # the model's own values when no scenario is given; bad input is one line and exit code 2
    assert main(["export", "--out", str(tmp_path / "m.xmile")]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x.xmile")]) == 2
    assert main(["export", str(scen), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "missing.yaml" in err[0] and str(tmp_path) in err[1]
    assert not (tmp_path / "x.xmile").exists()
