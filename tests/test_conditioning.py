"""Conditioning an ensemble on history, on a toy model whose true parameter is known.

The toy (tests/fixtures/history_toy) is one stock growing at an uncertain rate g in [0, 0.2], every
sample re-calibrated to its 2021 value. The tests run it at a "true" rate, write observations
generated from that run into the model's history.yaml, and check what conditioning does with them.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from sdsim import cli
from sdsim import conditioning as cd
from sdsim import sensitivity as sa
from sdsim.compiler import compile_model
from sdsim.errors import InputError, ModelError
from sdsim.history import value_at
from sdsim.model import load_model
from sdsim.scenario import load_scenario

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "history_toy"
TRUE_G = 0.08
N = 600


def make_model(tmp_path: Path, rows: dict, discrepancy: float = 0.02, name: str = "model") -> Path:
    """A copy of the toy with ``rows`` as its history (values filled from the true run when None)."""
    d = tmp_path / name
    shutil.copytree(FIXTURE, d)
    truth = true_run(d)
    m = load_model(d)
    for rid, r in rows.items():
        if r.get("value") is None:
            from sdsim.history import HistoryRow
            hr = HistoryRow(rid, r["variable"], 0.0, "observation", "seed", t=r.get("t"),
                            period=(r["from"], r["to"]) if "from" in r else None)
            r["value"] = float(value_at(truth, hr)[0][0])
        r.setdefault("kind", "observation")
        r.setdefault("scope", "seed")
        r.setdefault("provenance", "derived")
    doc = {"discrepancy": {v: {"value": discrepancy, "provenance": "assumption"}
                           for v in ("firms", "entry") if v in m.stocks or v in m.flows},
           "rows": rows}
    (d / "history.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return d


def true_run(d: Path):
    m = load_model(d)
    cm = compile_model(m)
    sc = load_scenario(d / "scenario.yaml", m)
    problem = sa.define_problem(m, sc)
    design = sa.Design("mc", np.array([[0.5]]), np.array([[TRUE_G]]))
    return sa.run_experiments(cm, problem, sc, design).run


def ensemble(d: Path, n: int = N, seed: int = 1, scenario: str = "scenario.yaml"):
    m = load_model(d)
    cm = compile_model(m)
    sc = load_scenario(d / scenario, m)
    problem = sa.define_problem(m, sc)
    design = sa.sample_mc(problem, n, seed)
    exp = sa.run_experiments(cm, problem, sc, design)
    return m, cm, sc, problem, design, exp


def conditioned(d: Path, mode: str = "match", n: int = N, threshold: float = 3.0):
    m, cm, sc, problem, design, exp = ensemble(d, n)
    c = cd.condition(m, exp.run, mode, threshold)
    return c, problem, exp


def growth_quantiles(exp, weights) -> np.ndarray:
    return cd.weighted_percentiles(exp.design.x[exp.ok, 0], weights, (5, 50, 95))


GOOD = {
    "stock_mid": {"variable": "firms", "t": 2022.5, "tolerance": 0.02, "group": "report_a"},
    "inflow_half": {"variable": "entry", "from": 2022, "to": 2022.5, "tolerance": 0.05, "group": "report_a"},
}


def rows(*names: str, **extra: dict) -> dict:
    out = {k: dict(GOOD[k]) for k in names}
    out.update({k: dict(v) for k, v in extra.items()})
    return out


# ------------------------------------------------------------------------------- the toy's truth


@pytest.mark.parametrize("mode", ["match", "weights"])
def test_conditioning_moves_the_median_toward_the_truth_and_narrows_the_band(tmp_path, mode):
    d = make_model(tmp_path, rows("stock_mid", "inflow_half"))
    c, problem, exp = conditioned(d, mode)
    prior = growth_quantiles(exp, None)
    post = growth_quantiles(exp, c.weights)
    assert abs(post[1] - TRUE_G) < 0.25 * abs(prior[1] - TRUE_G)  # prior median ~0.10, truth 0.08
    assert post[2] - post[0] < 0.5 * (prior[2] - prior[0])
    assert post[0] < TRUE_G < post[2]
    assert not c.conflicts
    les = cd.lessons(problem, exp.design.x[exp.ok], c)
    assert les[0].name == "growth_rate" and les[0].shift < 0 and les[0].narrowing > 0.5
    assert les[0].driver in {"stock_mid", "inflow_half"} and abs(les[0].rho) > 0.9


def test_a_huge_tolerance_changes_nothing(tmp_path):
    d = make_model(tmp_path, {"loose": {"variable": "firms", "t": 2022.5, "tolerance": 0.99}})
    c, _, exp = conditioned(d, "match")
    assert c.kept.all() and not c.conflicts and c.used
    np.testing.assert_array_equal(growth_quantiles(exp, c.weights), growth_quantiles(exp, None))
    w, _, _ = conditioned(d, "weights")
    assert w.temperature == 1.0 and w.ess > 0.95 * w.n


def test_an_observation_far_outside_the_prior_band_is_a_conflict_and_not_used(tmp_path):
    far = {"far": {"variable": "firms", "t": 2022, "value": 1000.0, "tolerance": 0.02}}
    d = make_model(tmp_path, rows("stock_mid", **far))
    c, _, exp = conditioned(d, "match")
    assert [r.obs.row.id for r in c.conflicts] == ["far"]
    assert [r.obs.row.id for r in c.used] == ["stock_mid"]
    d2 = make_model(tmp_path, rows("stock_mid"), name="without")
    c2, _, exp2 = conditioned(d2, "match")
    np.testing.assert_array_equal(c.weights, c2.weights)  # the conflict did not condition anything
    only = make_model(tmp_path, dict(far), name="only_far")
    c3, _, _ = conditioned(only, "weights")
    assert c3.kept.all() and np.allclose(c3.weights, 1 / c3.n)  # not reweighted onto the prior's tail


def test_the_conflict_band_includes_the_observation_error(tmp_path):
    """An observation whose tolerance is wider than the ensemble's spread is not a conflict."""
    truth = true_run(FIXTURE)
    v = float(truth.at("firms", 2022)[0])
    d = make_model(tmp_path, {"wide": {"variable": "firms", "t": 2022, "value": v * 1.15, "tolerance": 0.3}})
    c, _, _ = conditioned(d, "match")
    r = c.rows[0]
    assert not r.prior[0] <= r.obs.row.value <= r.prior[-1]  # outside the band of the bare model values
    assert not r.conflict and 0.01 < r.predictive_cdf < 0.99


def test_too_few_survivors_is_refused_naming_the_observation_that_rules_out_most(tmp_path):
    tight = {"tight": {"variable": "firms", "t": 2022.5, "tolerance": 0.001},
             "loose": {"variable": "firms", "t": 2022, "tolerance": 0.5}}
    d = make_model(tmp_path, tight, discrepancy=0.001)
    with pytest.raises(InputError, match="'tight'") as e:
        conditioned(d, "match", n=200)
    assert "fewer than 30" in str(e.value)


def test_rows_of_one_group_count_once(tmp_path):
    one = {"a": {"variable": "firms", "t": 2022.5, "tolerance": 0.05}}
    same = {"a": {**one["a"], "group": "g"}, "b": {**one["a"], "group": "g"}}
    apart = {"a": {**one["a"], "group": "g1"}, "b": {**one["a"], "group": "g2"}}
    w = {k: conditioned(make_model(tmp_path, r, name=k), "weights")[0] for k, r in
         (("one", one), ("same", same), ("apart", apart))}
    np.testing.assert_allclose(w["same"].weights, w["one"].weights)
    assert not np.allclose(w["apart"].weights, w["one"].weights)  # counted twice: a sharper likelihood
    assert w["apart"].ess < w["one"].ess


def test_a_group_takes_the_largest_implausibility_of_its_rows(tmp_path):
    d = make_model(tmp_path, rows("stock_mid", "inflow_half"))
    c, _, _ = conditioned(d, "weights")
    imp = np.maximum(c.rows[0].implausibility, c.rows[1].implausibility)
    expected = np.exp(-0.5 * imp**2 / c.temperature)
    np.testing.assert_allclose(c.weights, expected / expected.sum(), rtol=1e-9, atol=1e-300)


def test_tempering_keeps_the_effective_sample_size_at_its_floor(tmp_path):
    tight = {"tight": {"variable": "firms", "t": 2022.5, "tolerance": 0.001}}
    c, _, _ = conditioned(make_model(tmp_path, tight, discrepancy=0.001), "weights")
    assert c.temperature > 1
    assert c.ess == pytest.approx(max(cd.MIN_KEPT, cd.ESS_SHARE * c.n), rel=1e-3)


def test_what_is_never_evidence(tmp_path):
    extra = {"fact_2021": {"variable": "firms", "t": 2021, "tolerance": 0.01},
             "used_for_prior": {"variable": "firms", "t": 2023, "tolerance": 0.01, "sets": ["growth_rate"]},
             "a_target": {"variable": "firms", "t": 2025, "value": 200.0, "kind": "target"}}
    d = make_model(tmp_path, rows("stock_mid", **extra))
    c, _, _ = conditioned(d)
    assert [r.obs.row.id for r in c.rows] == ["stock_mid"]
    assert {r.id for r, _ in c.excluded} == {"fact_2021", "used_for_prior"}


def test_an_observation_without_a_declared_discrepancy_is_an_error(tmp_path):
    d = make_model(tmp_path, rows("stock_mid"))
    doc = yaml.safe_load((d / "history.yaml").read_text())
    doc["discrepancy"].pop("firms")
    (d / "history.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ModelError, match="discrepancy"):
        conditioned(d)


def test_weighted_percentiles_agree_with_numpy_on_equal_weights_and_follow_the_hazen_rule():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 101))
    w = (rng.random(101) < 0.6).astype(float)
    np.testing.assert_array_equal(cd.weighted_percentiles(v, w, (5, 50, 95)),
                                  np.percentile(v[:, w > 0], (5, 50, 95), axis=1).T)
    # the documented Hazen rule: weights 1 and 3 put the samples at shares 0.125 and 0.625
    assert cd.weighted_percentiles(np.array([0.0, 1.0]), np.array([1.0, 3.0]), (50,))[0] == pytest.approx(0.75)
    x = np.arange(10.0)
    heavier = [cd.weighted_percentiles(x, np.r_[np.ones(9), k], (50,))[0] for k in (1.0, 3.0, 10.0)]
    assert heavier == sorted(heavier) and heavier[0] == 4.5  # more weight on 9 moves the median toward it
    lo, hi = cd.wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


def test_an_early_policy_is_judged_on_the_baseline_history(tmp_path):
    d = make_model(tmp_path, rows("stock_mid", "inflow_half"))
    m, cm, sc, problem, design, exp = ensemble(d, scenario="scenario_early.yaml")
    assert not cd.history_is_shared(m, sc)
    run, source = cd.history_experiments(cm, problem, sc, design, exp)
    assert "re-run" in source
    early = cd.condition(m, run, "match")
    base = cd.condition(m, ensemble(d)[5].run, "match")
    np.testing.assert_array_equal(early.kept, base.kept)
    boosted = cd.condition(m, exp.run, "weights")  # the scenario's own runs would disagree with history
    assert boosted.ess < base.ess


# --------------------------------------------------------------------------------- command line


def sensitivity(d: Path, out: Path, *extra: str, scenario: str = "scenario.yaml") -> int:
    return cli.main(["sensitivity", str(d / scenario), "--model", str(d), "--method", "mc", "--samples", str(N),
                     "--seed", "3", "--out", str(out), "--no-plots", *extra])


def read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cli_writes_prior_and_conditioned_columns_and_is_reproducible(tmp_path, capsys):
    far = {"far": {"variable": "firms", "t": 2022, "value": 1000.0, "tolerance": 0.02}}
    d = make_model(tmp_path, rows("stock_mid", "inflow_half", **far))
    assert sensitivity(d, tmp_path / "a") == 0
    text = capsys.readouterr().out
    assert sensitivity(d, tmp_path / "b") == 0
    for f in ("goal_probability.csv", "history.csv", "quantiles.csv", "history_taught.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    goal = read(tmp_path / "a" / "goal_probability.csv")[0]
    for col in ("p_prior", "p_prior_low", "p_prior_high", "p_conditioned", "p_conditioned_low",
                "p_conditioned_high", "ess"):
        assert goal[col] != "", col
    assert "probability" not in goal and "ci_low" not in goal
    # the truth (g = 0.08) meets the goal (150 firms in 2026); the prior gives every g in [0, 0.2] equal weight
    assert float(goal["p_conditioned"]) > 0.95 > float(goal["p_prior"])
    assert float(goal["p_conditioned_low"]) <= float(goal["p_conditioned"]) <= float(goal["p_conditioned_high"])
    hist = read(tmp_path / "a" / "history.csv")
    assert list(hist[0])[:13] == ["id", "variable", "time", "observed", "tolerance", "prior_p5", "prior_median",
                                  "prior_p95", "cond_p5", "cond_median", "cond_p95", "inside", "conflict"]
    by = {h["id"]: h for h in hist}
    assert by["far"]["conflict"] == "yes" and by["stock_mid"]["conflict"] == "no"
    assert by["stock_mid"]["inside"] == "yes"
    kept = int(round(float(goal["ess"])))
    assert f"{kept} kept" in text and "conflict: far" in text and "rejection rate" in text
    assert "History moved growth_rate" in text and "absorbs observation" in text
    npz = np.load(tmp_path / "a" / "samples.npz")
    w = npz["history_weight"][npz["ok"]]
    assert w.sum() == pytest.approx(1.0) and int((w > 0).sum()) == kept
    q = read(tmp_path / "a" / "quantiles.csv")
    assert {"p50", "cond_p50"} <= set(q[0])
    import json
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["history"]["mode"] == "match" and {o["id"] for o in man["history"]["observations"]} == {
        "stock_mid", "inflow_half", "far"}


def test_cli_history_off_and_sobol_leave_the_conditioned_columns_empty(tmp_path, capsys):
    d = make_model(tmp_path, rows("stock_mid"))
    assert sensitivity(d, tmp_path / "off", "--history", "off") == 0
    assert read(tmp_path / "off" / "goal_probability.csv")[0]["p_conditioned"] == ""
    assert cli.main(["sensitivity", str(d / "scenario.yaml"), "--model", str(d), "--method", "sobol", "--samples",
                     "64", "--out", str(tmp_path / "sobol"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "prior-based" in out
    row = read(tmp_path / "sobol" / "goal_probability.csv")[0]
    assert row["p_conditioned"] == "" and row["p_prior"] != ""


def test_cli_refuses_too_few_survivors_and_bad_options_with_exit_2(tmp_path, capsys):
    tight = {"tight": {"variable": "firms", "t": 2022.5, "tolerance": 0.001}}
    d = make_model(tmp_path, tight, discrepancy=0.001)
    assert sensitivity(d, tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert "'tight'" in err and "\n" not in err
    assert sensitivity(d, tmp_path / "y", "--implausibility", "0") == 2
    assert "--implausibility" in capsys.readouterr().err


def test_an_observation_outside_the_run_is_reported_and_not_used(tmp_path):
    later = {"later": {"variable": "firms", "t": 2040, "value": 500.0, "tolerance": 0.1}}
    d = make_model(tmp_path, rows("stock_mid", **later))
    c, _, _ = conditioned(d)
    by = {r.obs.row.id: r for r in c.rows}
    assert by["later"].note == "outside the run" and not by["later"].used and not by["later"].conflict
    assert list(c.groups()) == ["report_a"]


def test_the_conditioned_fan_chart_keeps_its_titles_inside_the_figure(tmp_path, monkeypatch):
    """The Yubei goals have long names: the conditioned fan chart's panel titles are wrapped like the prior fan
    chart's, so none reaches past the figure's edge (the right-most titles used to be cut off)."""
    from sdsim import plots_conditioning as pc

    root = Path(__file__).resolve().parent.parent
    seen = []
    original = pc.add_conditioning

    def spy(fig, *args, **kwargs):
        original(fig, *args, **kwargs)
        seen.append(fig)

    monkeypatch.setattr(pc, "add_conditioning", spy)
    assert cli.main(["sensitivity", str(root / "scenarios" / "baseline.yaml"), "--method", "mc", "--samples", "300",
                     "--seed", "3", "--workers", "1", "--out", str(tmp_path / "mc"), "--no-samples"]) == 0
    assert seen, "the conditioned fan chart was not drawn"
    fig = seen[0]
    fig.canvas.draw()
    width = fig.bbox.width
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    assert len(titles) >= 8
    for title in titles:
        box = title.get_window_extent()
        assert box.x0 >= 0 and box.x1 <= width, title.get_text()
