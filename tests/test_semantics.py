"""Consistent semantics (issue 10): ensemble members reproduce through `run`; lever baselines are assumptions from
t0 (re-calibrated), lever settings act from the first lever year; XMILE levers take an override from that year;
a rare-event goal says what "met" means and is coloured by probability."""

from __future__ import annotations

import csv
import io
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import yaml

from sdsim import sensitivity as sa
from sdsim.cli import main
from tests.conftest import ROOT

BASELINE = str(ROOT / "scenarios" / "baseline.yaml")


def quiet(argv: list[str]) -> int:
    with redirect_stdout(io.StringIO()):
        return main(argv)


def goal_values(folder: Path) -> dict[str, float]:
    with (folder / "goals.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    col = next(k for k in rows[0] if k.startswith("value_"))
    return {r["goal"]: float(r[col]) for r in rows}


def check_member(tmp_path: Path, options: list[str], k: int) -> dict:
    ens = tmp_path / "ens"
    assert quiet(["sensitivity", BASELINE, *options, "--out", str(ens), "--no-plots"]) == 0
    member = tmp_path / f"m{k}.yaml"
    assert quiet(["sensitivity", BASELINE, *options, "--member", str(k), "--out", str(member)]) == 0
    data = yaml.safe_load(member.read_text(encoding="utf-8"))
    assert quiet(["run", str(member), "--out", str(tmp_path / "runs"), "--no-plots"]) == 0
    got = goal_values(tmp_path / "runs" / data["name"])
    npz = np.load(ens / "samples.npz")
    assert npz["ok"][k]
    for g, name in enumerate(npz["outcome_names"]):
        # goals.csv keeps 10 significant digits; the batch and the single run calibrate to 1e-10
        assert got[str(name)] == pytest.approx(float(npz["outcomes"][k, g]), rel=1e-8, abs=1e-12)
    return data


def test_a_member_with_sampled_lever_baselines_is_reproduced_by_run(tmp_path, model):
    names = sa.define_problem(model).names
    lever_baselines = [n for n in names if n in model.levers]
    others = [n for n in names if n not in model.levers]
    chosen = lever_baselines[:2] + others[:2]
    # eight samples are too few for history matching (at least 30 must survive): the prior is enough here
    data = check_member(tmp_path, ["--method", "mc", "--samples", "8", "--history", "off", "--params", ",".join(chosen)], 5)
    # sampled lever baselines are assumptions about today's level: parameters, from t0, re-calibrated
    assert set(chosen) <= set(data["parameters"])


def test_a_member_of_a_lever_ensemble_is_reproduced_by_run(tmp_path):
    data = check_member(tmp_path, ["--method", "mc", "--samples", "6", "--levers"], 4)
    assert data["levers"] and all(isinstance(v, float) for v in data["levers"].values())  # constants from 2022


def test_member_out_of_range_and_foreign_files_are_refused(tmp_path, capsys):
    assert main(["sensitivity", BASELINE, "--method", "mc", "--samples", "4", "--member", "4",
                 "--out", str(tmp_path / "m.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--member" in err[0] and "got 4" in err[0] and "0 to 3" in err[0]
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n")
    assert main(["sensitivity", BASELINE, "--method", "mc", "--samples", "4", "--member", "1",
                 "--out", str(mine)]) == 2
    assert mine.read_text() == "name: mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


def test_a_lever_without_an_uncertain_baseline_is_not_a_parameter(tmp_path, model, capsys):
    fixed = next((n for n, p in model.levers.items() if p.range is None), None)
    if fixed is None:
        pytest.skip("every lever has an uncertain baseline")
    f = tmp_path / "s.yaml"
    f.write_text(f"name: s\nparameters: {{{fixed}: {model.levers[fixed].value}}}\n")
    assert main(["run", str(f), "--out", str(tmp_path / "o")]) == 2
    assert f"parameters.{fixed}" in capsys.readouterr().err


def test_poisson_goals_say_what_met_means_and_give_the_probability(model, baseline):
    from sdsim.commands.common import goal_rows
    from sdsim.goals import evaluate

    status = evaluate(model, baseline)
    rows = {st.goal.name: row for st, row in zip(status.values(), goal_rows(status), strict=True)}
    for name, st in status.items():
        met = rows[name][3]
        if st.goal.poisson:
            assert met.startswith("exp. ") and f"P={float(st.probability[0]):.2f}" in met
        else:
            assert met in ("yes", "no")


def test_an_xmile_lever_override_acts_from_the_first_lever_year(tmp_path, model, cm):
    import pysd

    from sdsim.runner import run_scenarios
    from sdsim.scenario import load_scenario
    from sdsim.xmile import export_scenario, write_text

    used = set().union(*(v.expr.names for v in [*model.flows.values(), *model.aux.values()]))
    lever = next(n for n, p in model.levers.items() if n in used and p.policy_range and p.role == "policy")
    value = float(model.levers[lever].policy_range[1])
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\nend: 2026\ndt: 1/8\n")  # a coarse step: PySD is slow, and any dt will do
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"name: policy\nend: 2026\ndt: 1/8\nlevers: {{{lever}: {value!r}}}\n")
    sc = load_scenario(plain, model)
    path = write_text(tmp_path / "plain.xmile", export_scenario(cm, sc).text)
    text = path.read_text(encoding="utf-8")
    assert f"{lever}_policy" in text and "override" in text
    ours = run_scenarios(cm, [load_scenario(policy, model)])[0].run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pysd.read_xmile(str(path))
        stocks = list(model.stocks)
        df = pm.run(params={f"{lever}_policy": value}, return_columns=stocks,
                    return_timestamps=[float(y) for y in ours.years], progress=False)
    for s in stocks:
        np.testing.assert_allclose(df[s].to_numpy(float), ours.get(s)[:, 0], rtol=1e-6, atol=1e-9, err_msg=s)


def test_run_prints_and_reports_what_met_means_for_a_rare_event_goal(tmp_path, model, capsys):
    poisson = [g for g in model.goals.values() if g.poisson]
    if not poisson:
        pytest.skip("no Poisson goal in this model")
    assert main(["run", BASELINE, "--out", str(tmp_path), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    for g in poisson:
        line = next(ln for ln in printed.splitlines() if ln.startswith(g.label("en")))
        assert "exp. " in line and "P=" in line
    report = (tmp_path / "baseline" / "report.md").read_text(encoding="utf-8")
    assert "count of rare events" in report and "expected count" in report
