"""``simulate.py compare``: one batch, the printed table, compare.csv, figures, manifest, --set, --out."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sdsim import plots
from sdsim.cli import main
from sdsim.goals import evaluate
from sdsim.runner import run_scenarios
from sdsim.scenario import load_scenario
from tests.conftest import ROOT

SC = ROOT / "scenarios"
# a scenario whose HTE goal is met, lost and met again: no certificate renewed during 2024 (the conveyor's
# expiring cohort all returns to the qualifying SMEs), renewals back to normal in 2025
FREEZE = """name: renewal_freeze
title: {en: No HTE renewals in 2024}
description: every HTE certificate expiring in 2024 fails renewal
end: 2030
levers:
  renewal_shock: {table: {2024: 0, 2025: 0, 2026: 1}}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    f = tmp_path_factory.mktemp("freeze") / "renewal_freeze.yaml"
    f.write_text(FREEZE, encoding="utf-8")
    return [SC / "baseline.yaml", SC / "rd_institutions.yaml", SC / "register_requalification.yaml", f]


NAMES = ["baseline", "rd_institutions", "register_requalification", "renewal_freeze"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory, files):
    out = tmp_path_factory.mktemp("cmp") / "compare"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["compare", *map(str, files), "--out", str(out)])
    return code, out, buf.getvalue()


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.xdist_group("compare_batch")  # shares the module fixture compared (built once)
def test_compare_writes_its_files(compared):
    code, out, _ = compared
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "manifest.json", "matrix.png", "overlay.png",
                                                     "report.html", "report.md"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "![" in md and "(matrix.png)" in md and "(overlay.png)" in md
    assert "| registry_review 0.9 |" in md and "| renewal_shock table 2024: 0, 2025: 0, 2026: 1 |" in md  # what each sets
    assert not list(out.parent.glob(".compare.tmp-*"))


@pytest.mark.xdist_group("compare_batch")  # shares the module fixture compared (built once)
def test_csv_has_one_row_per_scenario_and_goal_matching_an_independent_evaluation(compared, files, model, cm):
    _, out, _ = compared
    rows = read_csv(out / "compare.csv")
    assert len(rows) == len(files) * len(model.goals)
    alone = {}
    for f in files:  # each scenario run on its own, not in the compare batch
        r = run_scenarios(cm, [load_scenario(f, model)])[0]
        alone[r.scenario.name] = evaluate(model, r.run)
    for row in rows:
        st = alone[row["scenario"]][row["goal"]]
        assert float(row["value"]) == pytest.approx(float(st.value[0]), rel=1e-9)
        assert row["met"] == ("true" if st.met[0] else "false")
        assert row["first_year_met"] == (str(int(st.first_year[0])) if st.first_year[0] else "")
        assert float(row["threshold"]) == model.goals[row["goal"]].threshold
        assert row["year"] == str(model.goals[row["goal"]].year)


@pytest.mark.xdist_group("compare_batch")  # shares the module fixture compared (built once)
def test_a_goal_met_lost_and_met_again_is_flagged_with_a_dip(compared, model, cm, files):
    _, out, printed = compared
    rows = {(r["scenario"], r["goal"]): r for r in read_csv(out / "compare.csv")}
    run = run_scenarios(cm, [load_scenario(files[3], model)])[0].run
    hte = {int(y): v for y, v in zip(run.years, run.get("high_tech_enterprises")[:, 0], strict=True)}
    threshold = model.goals["high_tech_enterprises"].threshold
    first = rows[("baseline", "high_tech_enterprises")]["first_year_met"]
    # the freeze really makes a dip: met before 2024, lost in 2024, met again by 2026
    assert hte[int(first)] >= threshold > hte[2024] and hte[2026] >= threshold and int(first) < 2024
    freeze = rows[("renewal_freeze", "high_tech_enterprises")]
    assert freeze["met"] == "true" and freeze["first_year_met"] == first
    assert freeze["met_every_year_since_first"] == "false"
    assert rows[("baseline", "high_tech_enterprises")]["met_every_year_since_first"] == "true"
    assert f"{first}*" in printed
    # the register's re-qualification lowers the register; whether the goal held every year is read from its run
    req = rows[("register_requalification", "tech_enterprises")]
    assert float(req["value"]) < float(rows[("baseline", "tech_enterprises")]["value"])
    rr = run_scenarios(cm, [load_scenario(files[2], model)])[0].run
    y0 = int(req["first_year_met"])
    held = all(v >= model.goals["tech_enterprises"].threshold
               for y, v in zip(rr.years, rr.get("tech_enterprises")[:, 0], strict=True) if y0 <= y <= 2026)
    assert req["met_every_year_since_first"] == ("true" if held else "false")


@pytest.mark.xdist_group("compare_batch")  # shares the module fixture compared (built once)
def test_printed_table_has_a_row_per_scenario_and_a_column_per_goal(compared, model):
    _, _, printed = compared
    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    for i in range(len(model.goals)):
        assert f"G{i + 1} " in header
    for name in NAMES:
        row = next(line for line in lines if line.startswith(name + " "))
        assert len(row.split()) >= 3 * len(model.goals)
    assert "Tech enterprises >= 5,000" in printed


@pytest.mark.xdist_group("compare_batch")  # shares the module fixture compared (built once)
def test_manifest_records_scenarios_parameters_and_calibration(compared, model):
    _, out, _ = compared
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert man["command"] == "compare"
    assert [s["name"] for s in man["scenarios"]] == NAMES
    req = load_scenario(SC / "register_requalification.yaml", model)
    assert man["scenarios"][2]["levers"] == {"registry_review": req.levers["registry_review"].value}
    assert man["scenarios"][3]["levers"] == {"renewal_shock": {"table": {"2024": 0.0, "2025": 0.0, "2026": 1.0}}}
    assert set(man["parameters"]) == set(NAMES)
    assert all(c["max_abs_relative_residual"] < 1e-6 for c in man["calibration"].values())
    assert set(man["model_files_sha256"]) == set(model.file_hashes)
    assert man["files"] == ["compare.csv", "overlay.png", "matrix.png", "report.md", "report.html", "manifest.json"]


def test_set_applies_to_every_scenario_and_is_recorded(tmp_path, capsys, model):
    out = tmp_path / "c"
    assert main(["compare", str(SC / "baseline.yaml"), str(SC / "headwinds.yaml"), "--out", str(out),
                 "--set", "depreciation=0.5"]) == 0
    printed = capsys.readouterr().out
    assert model.params["depreciation"].range[1] < 0.5
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert man["set"] == ["depreciation=0.5"]
    for s in man["scenarios"]:
        assert s["parameters"] == {"depreciation": 0.5} and s["command_line_overrides"] == ["depreciation=0.5"]
        assert any("parameters.depreciation = 0.5 is outside its documented range" in w for w in s["warnings"])
    assert printed.count("warning: --set: parameters.depreciation = 0.5") == 1  # same warning printed once
    for p in man["parameters"].values():
        assert p["depreciation"] == 0.5


def test_failed_compare_leaves_an_earlier_result_untouched(tmp_path, capsys):
    out = tmp_path / "c"
    out.mkdir()
    (out / "keep.txt").write_text("earlier result", encoding="utf-8")
    code = main(["compare", str(SC / "baseline.yaml"), "--out", str(out), "--set", "tech_cultivation=lots"])
    assert code == 2
    assert "--set: levers.tech_cultivation: expected a number or a mapping" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_two_scenarios_with_the_same_name_are_refused(tmp_path, capsys):
    f = tmp_path / "other.yaml"
    f.write_text("name: baseline\n", encoding="utf-8")
    assert main(["compare", str(SC / "baseline.yaml"), str(f), "--out", str(tmp_path / "c")]) == 2
    assert "share the name 'baseline'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_matrix_colours_follow_goal_attainment(model, cm, files):
    runs = run_scenarios(cm, [load_scenario(f, model) for f in files])
    status = [evaluate(model, r.run) for r in runs]
    fig = plots.goal_matrix(model, [(r.scenario.name, s) for r, s in zip(runs, status, strict=True)], "en", "t")
    shown = np.asarray(fig.axes[0].images[0].get_array())
    # met / not met; a Poisson count goal (rare events) by its probability of reaching the threshold
    want = np.array([[float(s[g].probability[0]) if model.goals[g].poisson else float(bool(s[g].met[0]))
                      for g in model.goals] for s in status], dtype=float)
    assert np.array_equal(shown, want)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert not any("with a dip" in t for t in texts)  # no `interrupted` given: no dip notes


def test_overlay_draws_one_line_per_scenario_and_the_goal_lines(model, cm, files):
    runs = run_scenarios(cm, [load_scenario(f, model) for f in files])
    fig = plots.overlay_figure(model, [(r.scenario.name, r.run) for r in runs], "en", "t", reference=0)
    for ax, g in zip(fig.axes, model.goals.values(), strict=False):
        labels = [line.get_label() for line in ax.get_lines()]
        assert all(labels.count(r.scenario.name) == 1 for r in runs)
        base = next(line for line in ax.get_lines() if line.get_label() == "baseline")
        assert base.get_linestyle() == "--" and base.get_color() == "black"
        assert any(np.allclose(line.get_ydata(), g.threshold) for line in ax.get_lines())


def test_steady_and_interrupted_tell_kept_lost_and_regained_goals_apart(tmp_path, model, cm, files):
    from sdsim.commands.compare import interrupted, steady

    # lost: from 2026 on no new certificate and almost no renewal, so the HTE met since 2023 fall below 1000 in 2026
    # (a few renewals keep the stock off 0 in the later years of the batch)
    late = tmp_path / "late.yaml"
    late.write_text("end: 2026\nlevers: {renewal_shock: {step: {at: 2026, to: 0.05}}, "
                    "hte_cultivation: {step: {at: 2026, to: 0}}}\n", encoding="utf-8")
    runs = run_scenarios(cm, [load_scenario(f, model) for f in (SC / "baseline.yaml", files[3], late)])
    g = model.goals["high_tech_enterprises"]
    kept, regained, lost = (evaluate(model, r.run)["high_tech_enterprises"] for r in runs)
    assert kept.met[0] and regained.met[0] and not lost.met[0]
    assert lost.first_year[0] == kept.first_year[0] < g.year  # lost: met before, not in the goal year
    assert [steady(g, r.run, int(s.first_year[0])) for r, s in zip(runs, (kept, regained, lost), strict=True)] == \
        [True, False, False]
    assert [interrupted(g, r.run, int(s.first_year[0])) for r, s in zip(runs, (kept, regained, lost), strict=True)] == \
        [False, True, False]
    assert steady(g, runs[0].run, 0) is None


def test_an_overlay_of_many_scenarios_keeps_every_line_visible(model, baseline):
    """Ten runs with the same values: each still shows, by its own marker shape placed on its own years."""
    runs = [(f"s{i}", baseline) for i in range(10)]
    fig = plots.overlay_figure(model, runs, "en", "t", reference=0)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label() in {r[0] for r in runs}}
    others = [lines[f"s{i}"] for i in range(1, 10)]
    markers = [(ln.get_marker(), str(ln.get_markevery())) for ln in others]
    assert len(set(markers)) == len(markers)
    assert all(ln.get_marker() not in (None, "", "None", "none") for ln in others)
