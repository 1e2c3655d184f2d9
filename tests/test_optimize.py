"""Policy search (`optimize`): lever costs as data, the least-cost package on a toy model with a known answer,
the outputs, and bad input.

The toy model (tests/fixtures/optimize_toy): output' = effort x efficiency, efficiency ~ U[0.5, 1.5], the
lever acts for L = 6 years (2021-2026), so P(output(2026) >= 30) = (1.5 - 30 / (6 effort)) and the cheapest
effort meeting it with probability p is 30 / (6 (1.5 - p)).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from sdsim import optimize as po
from sdsim.cli import main
from sdsim.compiler import compile_model
from sdsim.errors import ModelError
from sdsim.model import Goal, load_model
from sdsim.scenario import load_scenario
from sdsim.units import check_model

TOY = Path(__file__).parent / "fixtures" / "optimize_toy"
YEARS_ACTING = 6  # 2021..2026
PRICE = 0.5  # effort_price, 亿元 per unit


def effort_star(p: float, threshold: float = 30.0, lo: float = 0.5, hi: float = 1.5) -> float:
    """The analytic least effort with P(effort x efficiency x L >= threshold) = p."""
    return threshold / (YEARS_ACTING * (hi - p * (hi - lo)))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def toy():
    model = load_model(TOY)
    cm = compile_model(model)
    sc = load_scenario(TOY / "scenario.yaml", model)
    return model, cm, sc


@pytest.mark.parametrize("p", [0.8, 0.5])
def test_toy_least_cost_package_is_the_analytic_one_to_one_percent(toy, p):
    model, cm, sc = toy
    start = 2021
    decs, _ = po.decisions(cm, sc, start, 2026, "constant")
    ens = po.build_ensemble(cm, sc, 400, seed=7)
    ev = po.Evaluator(cm, sc, ens, decs, start, list(model.goals))
    reach, reach_ev = po.reach(ev, p)
    targeted = [r.goal for r in reach if r.feasible]
    assert targeted == ["output_30"]
    x, _, _, _ = po.optimize(ev, p, targeted, seed=7, popsize=10, maxiter=60,
                             free=po.relevant(ev, reach_ev, targeted))
    want = effort_star(p)
    assert x[0] == pytest.approx(want, rel=0.01)
    final = ev.evaluate(x[None, :])
    # undiscounted (discount_rate 0): cost above the input (effort 0) = price x effort x years
    assert final.cost[0] == pytest.approx(PRICE * want * YEARS_ACTING, rel=0.01)
    assert final.prob[0, 0] >= p


def test_toy_out_of_reach_goal_is_reported_with_its_best_probability_and_binding_lever(toy):
    model, cm, sc = toy
    decs, _ = po.decisions(cm, sc, 2021, 2026, "constant")
    ev = po.Evaluator(cm, sc, po.build_ensemble(cm, sc, 600, seed=1), decs, 2021, list(model.goals))
    reach = {r.goal: r for r in po.reach(ev, 0.8)[0]}
    r80 = reach["output_80"]
    assert not r80.feasible and r80.binding == "effort"
    # at the top effort 10: P(60 x efficiency >= 80) = 1.5 - 4/3 = 1/6 (Latin hypercube: within 1/n)
    assert r80.p_best == pytest.approx(1 / 6, abs=2 / 600)
    assert reach["output_30"].feasible and reach["output_30"].p_input == 0.0


def test_costs_are_discounted_from_the_start_year(tmp_path):
    d = tmp_path / "toy"
    shutil.copytree(TOY, d)
    text = (d / "parameters.yaml").read_text(encoding="utf-8").replace(
        "  discount_rate:\n    value: 0\n", "  discount_rate:\n    value: 0.1\n")
    (d / "parameters.yaml").write_text(text, encoding="utf-8")
    model = load_model(d)
    cm = compile_model(model)
    sc = load_scenario(d / "scenario.yaml", model)
    decs, _ = po.decisions(cm, sc, 2021, 2026, "constant")
    ev = po.Evaluator(cm, sc, po.build_ensemble(cm, sc, 10, seed=1), decs, 2021, list(model.goals))
    e = ev.evaluate(np.array([[4.0]]))
    factor = sum(1.1 ** -k for k in range(YEARS_ACTING))
    assert e.cost[0] == pytest.approx(PRICE * 4.0 * factor, rel=1e-9)


def test_cli_writes_package_targets_pareto_and_the_package_runs(tmp_path, capsys):
    out = tmp_path / "opt"
    code = main(["optimize", str(TOY / "scenario.yaml"), "--model", str(TOY), "--samples", "300", "--seed", "2",
                 "--popsize", "8", "--maxiter", "40", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"package.yaml", "targets.csv", "pareto.csv", "pareto.png", "reach.csv", "package.csv", "report.md",
            "manifest.json"} <= names
    with (out / "targets.csv").open(encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == ["goal", "targeted", "scope", "p_in_sample", "p_fresh"]
    rows = {r["goal"]: r for r in read_csv(out / "targets.csv")}
    assert rows["output_30"]["targeted"] == "yes" and rows["output_80"]["targeted"] == "no"
    # the fresh ensemble (2 x 300 samples, another seed) meets the claim within max(0.05, 2 SE)
    assert float(rows["output_30"]["p_fresh"]) >= 0.8 - 0.05
    data = yaml.safe_load((out / "package.yaml").read_text(encoding="utf-8"))
    assert "extends" not in data and data["policy_start"] == 2021
    assert data["levers"]["effort"] == pytest.approx(effort_star(0.8), rel=0.01)
    # the package is a scenario: copied elsewhere (no extends), it runs and is judged like any other
    pkg = tmp_path / "elsewhere" / "package.yaml"
    pkg.parent.mkdir()
    shutil.copy(out / "package.yaml", pkg)
    assert main(["run", str(pkg), "--model", str(TOY), "--out", str(tmp_path / "runs"), "--no-plots"]) == 0
    goals = {r["goal"]: r for r in read_csv(tmp_path / "runs" / data["name"] / "goals.csv")}
    # central run: efficiency 1, output = effort x 6 >= 30 once effort >= 5
    assert float(goals["output_30"]["value_2026"]) == pytest.approx(data["levers"]["effort"] * YEARS_ACTING)
    pareto = read_csv(out / "pareto.csv")
    by_k = [r for r in pareto if r["curve"] == "goals_met"]
    assert [int(r["goals_met"]) for r in by_k] == [0, 1]
    assert float(by_k[0]["cost"]) == 0.0 and float(by_k[1]["cost"]) > 0.0
    by_p = [r for r in pareto if r["curve"] == "all_goals_at_p" and r["cost"]]
    costs = [float(r["cost"]) for r in by_p]
    assert costs == sorted(costs)  # a higher probability never costs less


def test_seed_scope_is_shown_but_the_scope_in_force_is_judged():
    goal = Goal("g", "v", ">=", 1000.0, "firm", 2026, reported="reported_v", threshold_scale="a")

    class Status:  # seed scope meets the goal; the published value is short of threshold x scope factor
        value = np.array([1200.0, 1200.0])
        probability = np.array([1.0, 1.0])
        value_reported = np.array([400.0, 600.0])
        threshold_reported = np.array([500.0, 500.0])

    p, seed = po.scope_probability(goal, Status())
    assert p.tolist() == [0.0, 1.0] and seed.tolist() == [1.0, 1.0]


def test_tolerance_is_two_standard_errors_or_five_points():
    assert po.tolerance(0.8, 100) == pytest.approx(2 * np.sqrt(0.8 * 0.2 / 100))
    assert po.tolerance(0.8, 10_000) == 0.05


def _toy_copy(tmp_path: Path, old: str, new: str) -> Path:
    d = tmp_path / "toy"
    shutil.copytree(TOY, d)
    text = (d / "parameters.yaml").read_text(encoding="utf-8")
    assert old in text
    (d / "parameters.yaml").write_text(text.replace(old, new), encoding="utf-8")
    return d


def test_a_cost_equation_with_wrong_units_is_a_units_error_naming_the_lever(tmp_path):
    d = _toy_copy(tmp_path, "cost: effort * effort_price", "cost: effort_price")
    report = check_model(load_model(d))
    assert any(i.path == "levers.effort.cost" and i.file.endswith("parameters.yaml") for i in report.issues)


def test_a_cost_equation_with_an_unknown_name_is_a_model_error(tmp_path):
    d = _toy_copy(tmp_path, "cost: effort * effort_price", "cost: effort * effort_prize")
    with pytest.raises(ModelError, match="effort_prize"):
        load_model(d)


def test_only_policy_levers_have_a_cost(tmp_path):
    d = _toy_copy(tmp_path, "    fixed: true\n    provenance: assumption\n    cost:",
                  "    role: external\n    fixed: true\n    provenance: assumption\n    cost:")
    with pytest.raises(ModelError, match="no cost"):
        load_model(d)


def _bad(capsys, argv: list[str], tmp_path: Path, model: Path = TOY) -> str:
    out = tmp_path / "never"
    code = main(["optimize", str(TOY / "scenario.yaml"), "--model", str(model), "--out", str(out), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and not out.exists()
    return err[0]


@pytest.mark.parametrize("argv, words", [
    (["--goals", "output_3O"], ["--goals", "output_3O", "output_30"]),
    (["--probability", "1"], ["--probability", "1"]),
    (["--probability", "0"], ["--probability", "0"]),
    (["--probability", "-0.2"], ["--probability", "-0.2"]),
    (["--samples", "0"], ["--samples", "0"]),
    (["--samples", "-5"], ["--samples", "-5"]),
])
def test_bad_options_give_one_line_and_exit_2(capsys, tmp_path, argv, words):
    line = _bad(capsys, argv, tmp_path)
    for w in words:
        assert w in line


def test_a_model_without_policy_levers_gives_one_line_and_exit_2(capsys, tmp_path):
    d = _toy_copy(tmp_path, "    cost: effort * effort_price\n", "    role: external\n")
    line = _bad(capsys, ["--samples", "10"], tmp_path, d)
    assert "no policy levers" in line


def test_ramp_packages_run_as_the_search_evaluated_them(tmp_path, capsys):
    out = tmp_path / "ramp"
    code = main(["optimize", str(TOY / "scenario.yaml"), "--model", str(TOY), "--samples", "200", "--seed", "4",
                 "--shape", "ramp", "--popsize", "10", "--maxiter", "30", "--out", str(out), "--no-plots"])
    assert code == 0, capsys.readouterr().err
    data = yaml.safe_load((out / "package.yaml").read_text(encoding="utf-8"))
    ramp = data["levers"]["effort"]["ramp"]
    assert (ramp["from"], ramp["to"]) == (2021, 2026)
    # the scenario file's ramp gives the central run the search evaluated (vectorised ramp == TimeFunction ramp)
    model = load_model(TOY)
    cm = compile_model(model)
    sc = load_scenario(TOY / "scenario.yaml", model)
    decs, _ = po.decisions(cm, sc, 2021, 2026, "ramp")
    ev = po.Evaluator(cm, sc, po.build_ensemble(cm, sc, 5, seed=1), decs, 2021, list(model.goals), "ramp")
    central = ev.evaluate(np.array([[ramp["start"], ramp["end"]]])).central[0, 0]
    assert main(["run", str(out / "package.yaml"), "--model", str(TOY), "--out", str(tmp_path / "runs"),
                 "--no-plots"]) == 0
    goals = {r["goal"]: r for r in read_csv(tmp_path / "runs" / data["name"] / "goals.csv")}
    assert float(goals["output_30"]["value_2026"]) == pytest.approx(central, rel=1e-9)
    # undiscounted, linear cost: a ramp needs the same effort-years as the constant, so about the same cost
    manifest = yaml.safe_load((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["cost"] == pytest.approx(PRICE * effort_star(0.8) * YEARS_ACTING, rel=0.02)


def test_a_later_start_steps_from_the_input_and_runs_as_evaluated(tmp_path, capsys):
    sc = tmp_path / "input.yaml"
    sc.write_text("name: toy_input\nlevers:\n  effort: 2\n", encoding="utf-8")  # effort 2 from 2021 on
    out = tmp_path / "later"
    code = main(["optimize", str(sc), "--model", str(TOY), "--samples", "400", "--seed", "5", "--start", "2023",
                 "--popsize", "10", "--maxiter", "60", "--out", str(out), "--no-plots"])
    assert code == 0, capsys.readouterr().err
    data = yaml.safe_load((out / "package.yaml").read_text(encoding="utf-8"))
    step = data["levers"]["effort"]["step"]
    assert data["policy_start"] == 2021 and step["at"] == 2023 and step["from"] == 2
    # output(2026) = efficiency (2 x 2 years + v x 4 years) >= 30 with P 0.8: v = (30 / 0.7 - 4) / 4
    v = (30 / 0.7 - 4) / 4
    assert step["to"] == pytest.approx(v, rel=0.01)
    manifest = yaml.safe_load((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["cost"] == pytest.approx(PRICE * (v - 2) * 4, rel=0.01)
    assert main(["run", str(out / "package.yaml"), "--model", str(TOY), "--out", str(tmp_path / "runs"),
                 "--no-plots"]) == 0
    goals = {r["goal"]: r for r in read_csv(tmp_path / "runs" / data["name"] / "goals.csv")}
    assert float(goals["output_30"]["value_2026"]) == pytest.approx(2 * 2 + step["to"] * 4, rel=1e-9)


def test_a_start_before_the_input_levers_act_is_refused(capsys, tmp_path):
    sc = tmp_path / "input.yaml"
    sc.write_text("name: toy_input\npolicy_start: 2023\nlevers:\n  effort: 2\n", encoding="utf-8")
    code = main(["optimize", str(sc), "--model", str(TOY), "--start", "2022", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--start" in err[0] and "2023" in err[0]


def test_a_lever_that_moves_no_targeted_goal_is_held_at_the_input(tmp_path, capsys):
    d = tmp_path / "toy"
    shutil.copytree(TOY, d)
    with (d / "parameters.yaml").open("a", encoding="utf-8") as fh:  # a priced lever that nothing depends on
        fh.write("  paint:\n    value: 1\n    units: unit/year\n    policy_range: [0, 5]\n    fixed: true\n"
                 "    provenance: assumption\n    cost: paint * effort_price\n")
    out = tmp_path / "held"
    code = main(["optimize", str(TOY / "scenario.yaml"), "--model", str(d), "--samples", "300", "--seed", "2",
                 "--popsize", "8", "--maxiter", "30", "--out", str(out), "--no-plots"])
    assert code == 0, capsys.readouterr().err
    rows = {r["lever"]: r for r in read_csv(out / "package.csv")}
    assert rows["paint"]["package"] == "input" and float(rows["paint"]["discounted_cost_above_input"]) == 0.0
    assert float(rows["effort"]["package"]) == pytest.approx(effort_star(0.8), rel=0.01)
    assert "paint" not in yaml.safe_load((out / "package.yaml").read_text(encoding="utf-8"))["levers"]


def test_the_chinese_pareto_figure_has_every_glyph(tmp_path):
    """--lang zh: the Pareto figure is built under the CJK font (a missing glyph warns, and fails here)."""
    import warnings

    from sdsim import plots

    if plots.setup_language("zh", warn=False) != "zh":
        pytest.skip("no CJK font installed")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        code = main(["optimize", str(TOY / "scenario.yaml"), "--model", str(TOY), "--samples", "200", "--seed", "2",
                     "--popsize", "6", "--maxiter", "10", "--lang", "zh", "--out", str(tmp_path / "o")])
    assert code == 0 and (tmp_path / "o" / "pareto.png").stat().st_size > 20_000
