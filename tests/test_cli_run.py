"""`simulate.py run` end to end, and every kind of bad input through the command line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sdsim.cli import main
from tests.conftest import MODEL_DIR, ROOT


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    assert main(["run", str(ROOT / "scenarios/baseline.yaml"), "--out", str(out)]) == 0
    return out / "baseline"


@pytest.mark.xdist_group("run_dir")  # shares the module fixture run_dir (built once)
def test_run_writes_consistent_files(run_dir, model):
    names = {p.name for p in run_dir.iterdir()}
    assert {"timeseries.csv", "variables.csv", "goals.csv", "manifest.json", "goals.png",
            "incubation_chain.png", "rd.png", "report.md", "report.html"} <= names
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    for g in model.goals.values():
        assert g.en in report
    assert "(goals.png)" in report and '<img src="goals.png"' in (run_dir / "report.html").read_text(encoding="utf-8")
    ts = read_csv(run_dir / "timeseries.csv")
    years = [int(r["year"]) for r in ts]
    assert years[0] == 2020 and years == list(range(2020, years[-1] + 1))
    row = {int(r["year"]): r for r in ts}
    goals = {r["goal"]: r for r in read_csv(run_dir / "goals.csv")}
    assert set(goals) == set(model.goals)
    for gid, g in model.goals.items():
        value = float(goals[gid]["value_2026"])
        assert value == pytest.approx(float(row[2026][g.variable]), rel=1e-9)
        met = value >= g.threshold if g.test == ">=" else value > g.threshold
        assert goals[gid]["met"] == ("true" if met else "false")
        # value and gap are written to 10 significant digits: the gap is exact to the value's rounding
        assert float(goals[gid]["gap"]) == pytest.approx(value - g.threshold, rel=1e-9, abs=1e-9 * abs(value))
    assert float(row[2021]["tech_enterprises"]) == pytest.approx(model.facts["tech_enterprises_2021"].value, rel=1e-9)
    variables = {r["name"]: r for r in read_csv(run_dir / "variables.csv")}
    assert set(variables) == set(ts[0]) - {"year"}
    assert variables["registration"]["recorded_as"] == "annual total"  # a flow: its integral over the year
    assert variables["registration"]["units"] == "firm"
    assert variables["reported_tech_enterprises"]["units"] == "firm"  # the statistics layer is written too
    assert variables["tech_enterprises"]["zh"] == model.stocks["tech_enterprises"].zh


@pytest.mark.xdist_group("run_dir")  # shares the module fixture run_dir (built once)
def test_manifest_allows_reproduction(run_dir, model):
    man = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert man["command"] == "run"
    assert man["scenario"]["name"] == "baseline"
    assert man["model_files_sha256"] == model.file_hashes
    for f in model.calibration.free:  # the solved values, so the run can be reproduced
        assert f.name in man["parameters"], f.name
    assert man["parameters"]["registration_processing_time"] > 0
    assert man["calibration"]["max_abs_relative_residual"] <= 1e-6
    assert "numpy" in man["versions"]
    for png in ("goals.png", "incubation_chain.png", "rd.png"):
        assert (run_dir / png).stat().st_size > 20_000


def test_rerun_replaces_the_folder_atomically(tmp_path):
    out = tmp_path / "o"
    (out / "baseline").mkdir(parents=True)
    # an earlier result folder: its manifest names this program
    (out / "baseline" / "manifest.json").write_text('{"tool": "sdsim", "tool_version": "0.0.1"}')
    (out / "baseline" / "stale.txt").write_text("old")
    assert main(["run", str(ROOT / "scenarios/baseline.yaml"), "--out", str(out), "--no-plots"]) == 0
    assert not (out / "baseline" / "stale.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["baseline"]


BAD_SCENARIOS = {
    "malformed.yaml": ("name: x\nlevers: {tech_cultivation: [1, 2\n", "malformed YAML"),
    "unknown_key.yaml": ("name: x\nlevres: {}\n", "levres"),
    "unknown_lever.yaml": ("name: x\nlevers: {tech_cultivaton: 2}\n", "did you mean 'tech_cultivation'"),
    "wrong_type.yaml": ("name: x\nlevers: {ht_investment: {ramp: {from: 2023, to: 2025, start: 0, end: lots}}}\n",
                        "levers.ht_investment.ramp.end"),
    "negative.yaml": ("name: x\nlevers: {st_funding: -1}\n", "levers.st_funding"),
    "duplicate.yaml": ("name: x\nlevers:\n  attraction: 2\n  attraction: 3\n", "duplicate key"),
    "bad_dt.yaml": ("name: x\ndt: 0.1\n", "dt"),
    "bad_start.yaml": ("name: x\nstart: 2019\n", "start"),
}


@pytest.mark.parametrize("fname", sorted(BAD_SCENARIOS))
def test_bad_scenario_gives_exit_2_and_names_the_problem(tmp_path, capsys, fname):
    text, fragment = BAD_SCENARIOS[fname]
    f = tmp_path / fname
    f.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code = main(["run", str(f), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err and str(f) in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_missing_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_unknown_variable_in_model_equation(tmp_path, capsys):
    d = tmp_path / "model"
    shutil.copytree(MODEL_DIR, d)
    s = (d / "structure.yaml").read_text(encoding="utf-8")
    (d / "structure.yaml").write_text(s.replace("maker_spaces * maker_space_closure_rate",
                                                "maker_spaces * maker_space_closure_rat"), encoding="utf-8")
    code = main(["run", str(ROOT / "scenarios/baseline.yaml"), "--model", str(d), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "flows.maker_space_closure.equation" in err and "maker_space_closure_rat" in err
    assert "did you mean 'maker_space_closure_rate'" in err
    assert not (tmp_path / "o").exists()


def test_bad_option_value(capsys):
    assert main(["run", "scenarios/baseline.yaml", "--lang", "fr"]) == 2
    assert "--lang" in capsys.readouterr().err


def test_entry_point_has_no_traceback_on_bad_input(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("levers: {nonsense: 1}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(ROOT / "simulate.py"), "run", str(f), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "levers.nonsense" in proc.stderr


def test_chinese_labels_fall_back_to_english_once_without_a_font(monkeypatch, capsys):
    from sdsim import plots

    monkeypatch.setattr(plots, "_find_cjk_font", lambda: None)
    monkeypatch.setattr(plots, "_font_state", {})
    assert plots.setup_language("zh") == "en"
    assert plots.setup_language("zh") == "en"
    err = capsys.readouterr().err
    assert err.count("no Chinese (CJK) font found") == 1


def test_chinese_font_is_registered_when_available(monkeypatch):
    from sdsim import plots

    path = plots._find_cjk_font()
    if path is None:
        pytest.skip("no CJK font on this machine (install the zh extra)")
    monkeypatch.setattr(plots, "_font_state", {})
    assert plots.setup_language("zh") == "zh"
    from matplotlib import font_manager

    name = plots.rc("zh")["font.family"][0]  # figures use it while they are built; rcParams stay untouched
    found = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
    assert found == path
    plots.setup_language("en")


@pytest.mark.parametrize("test, threshold", [(">=", 5), (">", 5), (">=", 4.5), (">", 4.5)])
def test_poisson_probability_of_a_count_goal_matches_scipy(test, threshold):
    import numpy as np
    from scipy import stats

    from sdsim.goals import poisson_probability
    from sdsim.model import Goal

    goal = Goal("g", "v", test, threshold, "firm", 2026, poisson=True)
    mu = np.array([0.0, 0.3, 1.96, 4.13, 12.0])
    counts = np.arange(0, 200)
    # P(N passes the test), summed from the probability mass function
    pmf = stats.poisson.pmf(counts[:, None], mu[None, :])
    passes = counts >= threshold if test == ">=" else counts > threshold
    np.testing.assert_allclose(poisson_probability(goal, mu), (pmf * passes[:, None]).sum(axis=0), atol=1e-12)


@pytest.mark.parametrize("kind", ["foreign_folder", "file", "under_a_file", "cwd"])
def test_out_never_replaces_data_that_is_not_a_result_folder(tmp_path, capsys, monkeypatch, kind):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.md").write_text("mine")
    doc = tmp_path / "doc.txt"
    doc.write_text("mine")
    out = {"foreign_folder": keep, "file": doc, "under_a_file": doc / "sub", "cwd": "."}[kind]
    monkeypatch.chdir(keep if kind == "cwd" else tmp_path)
    code = main(["compare", str(ROOT / "scenarios/baseline.yaml"), "--out", str(out)])
    assert code == 2
    assert "--out" in capsys.readouterr().err
    assert (keep / "notes.md").read_text() == "mine" and doc.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.txt", "keep"]
    assert sorted(p.name for p in keep.iterdir()) == ["notes.md"]


def test_an_unstable_run_is_refused_with_its_cause(tmp_path, capsys):
    # qualifying_exit_rate x attrition_shock x dt > 1: Euler overshoots and the qualifying firms go negative
    code = main(["run", str(ROOT / "scenarios/baseline.yaml"), "--set", "attrition_shock=1000", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "numerically unstable" in err and "attrition_shock = 1000" in err
    assert not any(tmp_path.iterdir())


def test_calibration_failure_names_the_scenario_and_the_unusual_value(tmp_path, capsys):
    # full coverage at the end of 2021 needs more firms with an R&D institution at t0 than there are firms
    code = main(["run", str(ROOT / "scenarios/baseline.yaml"), "--set", "rd_coverage_2021=1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "calibration to 2021 has no solution" in err and "rd_coverage_2021 = 1" in err
    assert "firms_with_rd_institution_t0 above its upper bound" in err


def test_chinese_report_without_figures(tmp_path, model):
    assert main(["run", str(ROOT / "scenarios/baseline.yaml"), "--lang", "zh", "--no-plots", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "baseline" / "report.md").read_text(encoding="utf-8")
    year = max(g.year for g in model.goals.values())
    assert f"## {year}年目标" in report
    for g in model.goals.values():
        assert g.zh in report
    assert "| 是 |" in report and "| 否 |" in report
