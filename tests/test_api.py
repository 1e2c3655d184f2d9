"""The Python API gives the CLI's numbers as DataFrames and validates like scenario files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import sdsim
from sdsim.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim():
    return sdsim.load(ROOT / "model")


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_run_equals_the_cli_run_with_the_same_lever(sim, tmp_path):
    res = sim.run(sim.scenario("baseline", levers={"ht_investment": 100}))
    assert main(["run", str(ROOT / "scenarios" / "baseline.yaml"), "--set", "ht_investment=100", "--no-plots",
                 "--out", str(tmp_path)]) == 0
    folder = next(tmp_path.iterdir())
    goals = {r["goal"]: r for r in _csv(folder / "goals.csv")}
    year = next(k for k in next(iter(goals.values())) if k.startswith("value_"))
    assert set(res.goals.index) == set(goals)
    for g, row in goals.items():
        assert res.goals.loc[g, "value"] == pytest.approx(float(row[year]), rel=1e-9)
        assert bool(res.goals.loc[g, "met"]) == (row["met"] == "true")
    ts = {int(r["year"]): r for r in _csv(folder / "timeseries.csv")}
    assert list(res.timeseries.index) == sorted(ts)
    for col in ("tech_enterprises", "ht_output_share", "reported_tech_enterprises"):
        np.testing.assert_allclose(res.timeseries[col].to_numpy(), [float(ts[y][col]) for y in sorted(ts)], rtol=1e-9)


def test_the_lever_moves_the_output_share_and_only_from_the_policy_start(sim):
    base, push = sim.run([sim.scenario("baseline"), sim.scenario("baseline", levers={"ht_investment": 100})])
    start = sim.model.calibration.lever_start
    before = base.timeseries.index < start
    np.testing.assert_array_equal(base.timeseries["ht_output_share"][before], push.timeseries["ht_output_share"][before])
    assert push.goals.loc["ht_output_share", "value"] > base.goals.loc["ht_output_share", "value"]


def test_scenarios_built_in_code_are_validated_like_files(sim):
    with pytest.raises(ValueError, match=r"levers\.ht_investment: expected a number >= 0, got -5"):
        sim.scenario("baseline", levers={"ht_investment": -5})
    with pytest.raises(sdsim.InputError, match="unknown lever"):
        sim.scenario("baseline", levers={"ht_invest": 1})
    with pytest.raises(sdsim.InputError, match="unknown scenario 'nope'"):
        sim.scenario("nope")
    with pytest.raises(sdsim.InputError, match="expected a year from 2024"):
        sim.scenario("baseline", levers={"ht_investment": {"step": {"at": 2023, "to": 10}}})


def test_results_write_their_tables(sim, tmp_path):
    res = sim.run(sim.scenario(None))
    paths = res.to_csv(tmp_path / "out")
    assert [p.name for p in paths] == ["timeseries.csv", "goals.csv"]
    rows = _csv(paths[1])
    assert {r["goal"] for r in rows} == set(sim.model.goals)


def test_sensitivity_probabilities_equal_the_cli_table(sim, tmp_path):
    ens = sim.sensitivity("baseline", method="mc", samples=200, seed=3)
    assert main(["sensitivity", str(ROOT / "scenarios" / "baseline.yaml"), "--method", "mc", "--samples", "200",
                 "--seed", "3", "--no-plots", "--out", str(tmp_path / "s")]) == 0
    rows = {r["goal"]: r for r in _csv(tmp_path / "s" / "goal_probability.csv")}
    for g, row in rows.items():
        assert ens.probabilities.loc[g, "p_prior"] == pytest.approx(float(row["p_prior"]), rel=1e-9)
        assert ens.probabilities.loc[g, "p_conditioned"] == pytest.approx(float(row["p_conditioned"]), rel=1e-9)
    assert ens.samples == 200 and 0 < ens.calibrated <= 200 and ens.kept is not None and ens.kept <= ens.calibrated


def test_result_figures_are_new_figures_that_leave_matplotlib_untouched(sim, tmp_path):
    import warnings

    import matplotlib
    from matplotlib.figure import Figure

    before = dict(matplotlib.rcParams)
    res = sim.run("baseline")
    assert res.figure_names[0] == "goals" and set(res.figure_names) == {"goals", *sim.model.figures.figures}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph or a layout warning fails the test
        for lang in ("en", "zh"):
            fig = res.figure("goals", lang)
            assert isinstance(fig, Figure) and fig.canvas.manager is None  # not registered with pyplot
            fig.savefig(tmp_path / f"goals_{lang}.png", dpi=60)
            assert (tmp_path / f"goals_{lang}.png").stat().st_size > 10_000
    assert dict(matplotlib.rcParams) == before
    title = res.figure("goals", "en")._suptitle.get_text()
    assert sim.model.goals["tech_enterprises"].year == 2026 and "2026" in title


def test_result_figure_refuses_unknown_names_and_languages(sim):
    res = sim.run("baseline")
    with pytest.raises(sdsim.InputError, match="unknown figure 'nope'"):
        res.figure("nope")
    with pytest.raises(sdsim.InputError, match="unknown language"):
        res.figure("goals", "fr")


def test_sensitivity_is_identical_with_one_and_two_workers(sim, monkeypatch):
    from sdsim import calibrate, engine

    monkeypatch.setattr(calibrate, "CHUNK", 256)  # several chunks from a small design, so both workers get some
    monkeypatch.setattr(engine, "CHUNK", 256)
    one = sim.sensitivity("baseline", method="mc", samples=1200, seed=5, workers=1)
    two = sim.sensitivity("baseline", method="mc", samples=1200, seed=5, workers=2)
    assert one.calibrated == two.calibrated and one.kept == two.kept
    assert one.probabilities.equals(two.probabilities)
    assert one.indices.equals(two.indices)


def test_figures_yaml_headroom_and_legend_columns_shape_the_panel(sim):
    spec = sim.model.figures.figures["incubation_chain"]
    panel = next(p for p in spec.panels if p.headroom != 1.0)
    fig = sim.run("baseline").figure("incubation_chain")
    ax = fig.axes[spec.panels.index(panel)]
    data_top = max(float(np.nanmax(line.get_ydata())) for line in ax.get_lines())
    assert ax.get_ylim()[1] >= panel.headroom * data_top * 0.999  # room above the data for the legend
    assert ax.get_legend()._ncols == panel.legend_columns
