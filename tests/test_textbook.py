"""The textbook model of issue 11 (tests/fixtures/textbook): no calibration, starts in 1990.

It runs through every command with ``--model DIR``, matches the analytic solutions, its RK4 is
fourth order on the exp(time) stock, and its XMILE export runs in PySD with the same trajectories.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pysd
import pytest
import yaml

from sdsim.cli import main
from sdsim.compiler import compile_model
from sdsim.engine import TimeGrid, lever_schedules, simulate
from sdsim.errors import InputError
from sdsim.model import load_model
from sdsim.runner import run_scenarios
from sdsim.scenario import load_scenario
from sdsim.sensitivity import define_problem
from sdsim.xmile import export_scenario

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "textbook"
K, TAU, T_REF, PIPE = 2.0, 2.0, 1990.0, 3.0  # the fixture's parameter values (parameters.yaml)
TABLE_X, TABLE_Y = [0, 1, 2, 4], [0.5, 1, 1.4, 1.6]


@pytest.fixture()
def textbook(tmp_path) -> Path:
    """A copy of the fixture (commands write docs/ beside the model folder)."""
    d = tmp_path / "textbook"
    shutil.copytree(FIXTURE, d)
    return d


def _run(model_dir: Path, dt: float, method: str, end: int = 2000, params: dict | None = None):
    m = load_model(model_dir)
    cm = compile_model(m)
    p = m.base_values()
    p.update(params or {})
    grid = TimeGrid(int(T_REF), end, dt)
    return simulate(cm, p, lever_schedules(cm, grid, {k: p[k] for k in m.levers}), grid, method)


def reservoir_exact(t: np.ndarray) -> np.ndarray:
    """Integral of k exp((t - t_ref) / tau) from t_ref."""
    return K * TAU * (np.exp((t - T_REF) / TAU) - 1)


def first_order(s: np.ndarray) -> np.ndarray:
    """SMOOTH / DELAY1 of a unit step, s years after it: 1 - exp(-s/T)."""
    return np.where(s > 0, 1 - np.exp(-np.maximum(s, 0) / TAU), 0.0)


def third_order(s: np.ndarray) -> np.ndarray:
    """SMOOTH3 / DELAY3 of a unit step: 1 - exp(-3s/T) (1 + 3s/T + (3s/T)^2 / 2)."""
    x = 3 * np.maximum(s, 0) / TAU
    return np.where(s > 0, 1 - np.exp(-x) * (1 + x + x**2 / 2), 0.0)


def test_matches_the_analytic_solutions_with_rk4_at_dt_1_32():
    run = _run(FIXTURE, 1 / 32, "rk4")
    t = run.years.astype(float)
    s = t - (T_REF + 1)
    errors = {
        "reservoir": np.abs(run.get("reservoir")[:, 0] / reservoir_exact(t).clip(1e-300) - 1)[1:].max(),
        "smoothed": np.abs(run.get("smoothed")[:, 0] - first_order(s)).max(),
        "delayed1": np.abs(run.get("delayed1")[:, 0] - first_order(s)).max(),
        "smoothed3": np.abs(run.get("smoothed3")[:, 0] - third_order(s)).max(),
        "delayed3": np.abs(run.get("delayed3")[:, 0] - third_order(s)).max(),
        "effect": np.abs(run.get("effect")[:, 0] - np.interp((t - T_REF) / TAU, TABLE_X, TABLE_Y)).max(),
        "piped": np.abs(run.get("piped")[:, 0] - (t >= T_REF + 1 + PIPE)).max(),
    }
    for name, err in errors.items():
        assert err < 1e-4, (name, err)
    assert errors["piped"] == 0.0 and errors["effect"] < 1e-15


def test_rk4_error_ratio_on_the_exp_stock_between_dt_1_4_and_1_8():
    exact = reservoir_exact(np.array([2000.0]))[0]
    e = [abs(_run(FIXTURE, dt, "rk4").get("reservoir")[-1, 0] - exact) for dt in (1 / 4, 1 / 8)]
    assert e[0] / e[1] >= 10  # fourth order: about 16
    assert 14 < e[0] / e[1] < 18


def test_any_start_year_and_no_calibration():
    m = load_model(FIXTURE)
    assert not (FIXTURE / "calibration.yaml").exists()
    assert (m.calibration.start, m.calibration.end, m.calibration.targets) == (1990, 1990, [])
    sc = load_scenario(FIXTURE / "scenarios" / "baseline.yaml", m)
    assert (sc.start, sc.end) == (1990, 2000)
    res = run_scenarios(compile_model(m), [sc])[0]
    assert res.run.years[0] == 1990 and res.run.years[-1] == 2000
    np.testing.assert_allclose(res.run.get("reservoir")[:, 0], reservoir_exact(res.run.years.astype(float)),
                               rtol=1e-6, atol=1e-9)


def test_a_model_without_start_or_calibration_is_a_clear_error(textbook):
    s = (textbook / "structure.yaml").read_text().replace("start: 1990\n", "")
    (textbook / "structure.yaml").write_text(s)
    with pytest.raises(InputError, match=r"structure\.yaml: a model without calibration\.yaml needs its start year"):
        load_model(textbook)


@pytest.mark.parametrize("argv", [
    ["run", "{d}/scenarios/baseline.yaml", "{d}/scenarios/boost.yaml", "--out", "{out}/runs"],
    ["run", "{d}/scenarios/baseline.yaml", "--out", "{out}/runs_np", "--no-plots", "--lang", "zh"],
    ["compare", "{d}/scenarios/baseline.yaml", "{d}/scenarios/boost.yaml", "--out", "{out}/cmp"],
    ["sensitivity", "{d}/scenarios/baseline.yaml", "--method", "oat", "--out", "{out}/oat"],
    ["sensitivity", "{d}/scenarios/boost.yaml", "--method", "mc", "--samples", "64", "--out", "{out}/mc",
     "--no-plots"],
    ["sensitivity", "{d}/scenarios/baseline.yaml", "--method", "sobol", "--samples", "32", "--out", "{out}/sobol",
     "--no-plots"],
    ["sensitivity", "{d}/scenarios/baseline.yaml", "--levers", "--out", "{out}/levers", "--no-plots"],
    ["check"],
    ["check", "{d}/scenarios/boost.yaml"],
    ["calibrate"],
    ["describe"],
    ["describe", "--format", "md"],
    ["export", "--out", "{out}/model.xmile"],
    ["export", "{d}/scenarios/boost.yaml", "--out", "{out}/boost.xmile"],
])
def test_every_command_runs_with_model_dir(textbook, tmp_path, capsys, argv):
    args = [a.format(d=textbook, out=tmp_path / "out") for a in argv] + ["--model", str(textbook)]
    assert main(args) == 0
    out = capsys.readouterr().out
    if argv[0] == "run":
        assert ("储量目标" if "zh" in argv else "Reservoir by 1996") in out  # the console follows --lang
        folder = Path(args[args.index("--out") + 1])
        assert (folder / "baseline" / "timeseries.csv").is_file()
        pngs = {p.name for p in (folder / "baseline").glob("*.png")}
        assert pngs == (set() if "--no-plots" in argv else {"goals.png"})  # no figures.yaml: the goal panels only
    if argv[0] == "check":
        assert "7 of 7 checks passed" in out and "mass balance" in out
    if argv[0] == "describe" and len(argv) == 1:
        for name in ("smoothed__smooth", "smoothed3__smooth3_s3", "delayed3__delay3_out", "piped__delay_fixed",
                     "effect_of_age", "Graphical functions", "Hidden structure"):
            assert name in out, name
    if argv[0] == "calibrate":
        assert "no calibration targets" in out


def test_scenario_table_override_and_y_scale(textbook):
    m = load_model(textbook)
    cm = compile_model(m)
    base, boost = (load_scenario(textbook / "scenarios" / f"{n}.yaml", m) for n in ("baseline", "boost"))
    assert boost.tables == {"effect_of_age": [0.5, 1.0, 1.8, 2.2]}
    r_base, r_boost = run_scenarios(cm, [base, boost])
    t = r_base.run.years.astype(float)
    x = (t - T_REF) / TAU
    np.testing.assert_allclose(r_base.run.get("effect")[:, 0], np.interp(x, TABLE_X, TABLE_Y), rtol=1e-15)
    np.testing.assert_allclose(r_boost.run.get("effect")[:, 0],  # boost.yaml also sets the scale s = 1.2
                               1 + 1.2 * (np.interp(x, TABLE_X, [0.5, 1, 1.8, 2.2]) - 1), rtol=1e-15)
    # the y-scale: y' = 1 + s (y - 1), s a parameter sampled by sensitivity in y_scale_range
    problem = define_problem(m)
    q = next(q for q in problem.uncertainties if q.name == "effect_of_age_y_scale")
    assert (q.low, q.high, q.baseline) == (0.5, 1.5, 1.0)
    run = _run(textbook, 1 / 8, "euler", params={"effect_of_age_y_scale": np.array([0.5, 1.0, 1.5])})
    want = np.interp(x, TABLE_X, TABLE_Y)[:, None]
    np.testing.assert_allclose(run.get("effect"), 1 + np.array([0.5, 1.0, 1.5]) * (want - 1), rtol=1e-14)
    one = _run(textbook, 1 / 8, "euler", params={"effect_of_age_y_scale": 1.5})  # float path, same value
    np.testing.assert_allclose(one.get("effect")[:, 0], run.get("effect")[:, 2], rtol=1e-15)


@pytest.mark.parametrize(("text", "message"), [
    ("tables: {effect_of_ag: {y: [1, 1, 1, 1]}}", "unknown table 'effect_of_ag' (did you mean 'effect_of_age'?)"),
    ("tables: {effect_of_age: {y: [1, 2]}}", "tables.effect_of_age.y: expected a list of 4 numbers"),
    ("tables: {effect_of_age: {x: [1, 2], y: [1, 2, 3, 4]}}", "unknown key 'x'"),
    ("tables: {effect_of_age: {y: [1, a, 2, 3]}}", "tables.effect_of_age.y.1"),
])
def test_bad_scenario_tables_are_one_line_errors(textbook, text, message):
    f = textbook / "scenarios" / "bad.yaml"
    f.write_text(f"extends: baseline\n{text}\n")
    with pytest.raises(InputError) as err:
        load_scenario(f, load_model(textbook))
    assert message in str(err.value) and "bad.yaml" in str(err.value) and "\n" not in str(err.value)


def _pysd_run(path: Path, years: list[int]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysd.read_xmile(str(path)).run(return_timestamps=years)


@pytest.mark.parametrize("scenario", ["baseline", "boost"])
def test_xmile_export_runs_in_pysd_with_the_same_trajectories(textbook, tmp_path, scenario):
    m = load_model(textbook)
    cm = compile_model(m)
    sc = load_scenario(textbook / "scenarios" / f"{scenario}.yaml", m)
    sc.method = "euler"  # PySD integrates with Euler
    exp = export_scenario(cm, sc)
    path = tmp_path / f"{scenario}.xmile"
    path.write_text(exp.text, encoding="utf-8")
    assert "<gf name=\"effect_of_age\"" in exp.text and "DELAY(signal, pipe_time, 0)" in exp.text
    run = run_scenarios(cm, [sc])[0].run
    out = _pysd_run(path, exp.years)
    cols = {c.lower(): c for c in out.columns}
    compared, worst = [], 0.0
    for name in [*m.stocks, "effect", "piped", "smoothed", "smoothed3", "delayed1", "delayed3"]:
        mine = run.get(name)[:, 0]
        theirs = out[cols[name.lower()]].to_numpy(dtype=float)
        scale = np.maximum(np.abs(mine), 1e-12)
        rel = np.where(mine == theirs, 0.0, np.abs(mine - theirs) / scale)
        worst = max(worst, float(rel.max()))
        compared.append(name)
    assert len(compared) == len(m.stocks) + 6 and len(m.stocks) == 9  # 1 stock + 8 hidden ones
    assert worst <= 1e-9, worst
    if scenario == "boost":  # the scenario's table values and scale were written, and used
        np.testing.assert_allclose(out[cols["effect"]].to_numpy(dtype=float)[-1], 1 + 1.2 * 1.2, rtol=1e-15)
    assert math.isfinite(worst)


def test_textbook_fixture_is_what_the_issue_describes():
    s = yaml.safe_load((FIXTURE / "structure.yaml").read_text())
    assert s["flows"]["feed"]["equation"] == "boost * k * exp((time - t_ref) / tau)"
    assert s["tables"]["effect_of_age"]["x"] == TABLE_X and s["tables"]["effect_of_age"]["y"] == TABLE_Y
    p = yaml.safe_load((FIXTURE / "parameters.yaml").read_text())["parameters"]
    assert (p["k"]["value"], p["tau"]["value"], p["t_ref"]["value"], p["pipe_time"]["value"]) == (K, TAU, T_REF, PIPE)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("lookup(effect_of_age,", "lookup(effect_of_ages,", "unknown table 'effect_of_ages' (did you mean 'effect_of_age'?)"),
    ("x: [0, 1, 2, 4]", "x: [0, 2, 1, 4]", "tables.effect_of_age.x: x values must be strictly increasing"),
    ("smooth(signal, tau)", "smooth(signal)", "smooth() takes 2+ arguments, got 1"),
    ("delay_fixed(signal, pipe_time, 0)", "delay_fixed(signal, tau * signal, 0)", "must be a constant expression"),
])
def test_model_errors_exit_2_with_one_line(textbook, capsys, old, new, message):
    f = textbook / "structure.yaml"
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new))
    assert main(["run", str(textbook / "scenarios" / "baseline.yaml"), "--model", str(textbook), "--no-plots",
                 "--out", str(textbook / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err and "structure.yaml" in err


def test_a_model_without_goals_runs_and_goal_commands_say_why_not(textbook, tmp_path, capsys):
    (textbook / "goals.yaml").unlink()
    sc = str(textbook / "scenarios" / "baseline.yaml")
    for argv in (["run", sc, "--out", str(tmp_path / "r")], ["check"], ["describe"], ["calibrate"],
                 ["export", "--out", str(tmp_path / "m.xmile")]):
        assert main([*argv, "--model", str(textbook)]) == 0, argv
    assert (tmp_path / "r" / "baseline" / "timeseries.csv").is_file()
    capsys.readouterr()
    for argv in (["compare", sc, "--out", str(tmp_path / "c")], ["sensitivity", sc, "--out", str(tmp_path / "s")]):
        assert main([*argv, "--model", str(textbook)]) == 2
        err = capsys.readouterr().err.strip()
        assert "judges the model's goals, and the model declares none" in err and "\n" not in err
