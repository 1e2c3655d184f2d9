"""Workers: forked processes over the same chunks give bit-identical results, whatever their number."""

from __future__ import annotations

import numpy as np
import pytest

from sdsim import calibrate as calibrate_mod
from sdsim import engine, parallel
from sdsim import sensitivity as sa
from sdsim.cli import main
from sdsim.scenario import load_scenario
from tests.conftest import ROOT


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 97 runs, so that a few hundred runs make several chunks (an odd size: unequal shares)."""
    monkeypatch.setattr(engine, "CHUNK", 97)
    monkeypatch.setattr(calibrate_mod, "CHUNK", 97)


def test_run_chunks_keeps_order_and_raises_worker_errors():
    assert parallel.run_chunks(lambda i: i * i, 7, workers=2) == [i * i for i in range(7)]

    def bad(i: int) -> int:
        if i == 3:
            raise ValueError("chunk 3 failed")
        return i

    with pytest.raises(ValueError, match="chunk 3 failed"):
        parallel.run_chunks(bad, 6, workers=2)


def test_shared_memory_is_written_by_workers():
    out = parallel.shared_empty((5, 4))

    def fill(i: int) -> None:
        out[i] = i

    parallel.run_chunks(fill, 5, workers=2)
    assert (out == np.arange(5)[:, None]).all()


def test_experiments_are_bit_identical_with_one_and_two_workers(cm, small_chunks):
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    problem = sa.define_problem(cm.model, sc)
    design = sa.sample_mc(problem, 600, 7)
    one = sa.run_experiments(cm, problem, sc, design, workers=1)
    two = sa.run_experiments(cm, problem, sc, design, workers=2)
    assert one.n_failed > 0  # failing samples are part of the comparison
    assert np.array_equal(one.ok, two.ok) and list(one.reason) == list(two.reason)
    assert np.array_equal(one.outcomes, two.outcomes, equal_nan=True)
    assert np.array_equal(one.probability, two.probability, equal_nan=True)
    for k in one.free:
        assert np.array_equal(one.free[k], two.free[k], equal_nan=True)
    for block in ("stocks", "rates", "aux"):
        assert np.array_equal(getattr(one.run, block), getattr(two.run, block), equal_nan=True)


def test_a_seed_gives_the_same_files_whatever_the_workers(tmp_path, small_chunks):
    outs = []
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        assert main(["sensitivity", str(ROOT / "scenarios/baseline.yaml"), "--method", "mc", "--samples", "400",
                     "--seed", "5", "--history", "off", "--no-plots", "--workers", str(w), "--out", str(out)]) == 0
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir() if p.suffix in (".csv", ".npz"))
    assert "quantiles.csv" in files
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_workers_must_be_positive(capsys):
    assert main(["compare", str(ROOT / "scenarios/baseline.yaml"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_no_samples_leaves_out_samples_npz_only(tmp_path, small_chunks):
    out = tmp_path / "n"
    assert main(["sensitivity", str(ROOT / "scenarios/baseline.yaml"), "--method", "mc", "--samples", "200",
                 "--seed", "5", "--history", "off", "--no-plots", "--no-samples", "--workers", "2",
                 "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert "samples.npz" not in names and {"quantiles.csv", "goal_probability.csv", "manifest.json"} <= names


def test_figures_drawn_by_workers_are_the_same_files(tmp_path):
    outs = []
    for w in (1, 2):
        out = tmp_path / f"f{w}"
        assert main(["sensitivity", str(ROOT / "scenarios/baseline.yaml"), "--method", "mc", "--samples", "200",
                     "--seed", "3", "--history", "off", "--workers", str(w), "--out", str(out)]) == 0
        outs.append(out)
    pngs = sorted(p.name for p in outs[0].glob("*.png"))
    assert len(pngs) >= 2
    for name in pngs + ["report.md"]:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_optimize_gives_the_same_package_whatever_the_workers(tmp_path, small_chunks):
    """The toy policy search with 1 and 2 workers (chunks of 97 runs: every batch spans several chunks)."""
    toy = ROOT / "tests" / "fixtures" / "optimize_toy"
    outs = []
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        assert main(["optimize", str(toy / "scenario.yaml"), "--model", str(toy), "--samples", "150", "--seed", "3",
                     "--popsize", "6", "--maxiter", "4", "--no-plots", "--workers", str(w), "--out", str(out)]) == 0
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir() if p.suffix in (".csv", ".yaml"))
    assert {"package.yaml", "targets.csv", "pareto.csv", "reach.csv"} <= set(files)
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_optimize_api_is_bit_identical_with_one_and_two_workers(small_chunks):
    from sdsim import optimize as po
    from sdsim.compiler import compile_model
    from sdsim.model import load_model

    toy = ROOT / "tests" / "fixtures" / "optimize_toy"
    model = load_model(toy)
    cm = compile_model(model)
    sc = load_scenario(toy / "scenario.yaml", model)
    decs, _ = po.decisions(cm, sc, 2021, 2026, "constant")
    x = np.linspace(0.0, 10.0, 5)[:, None]  # effort levels (the toy lever ranges 0-10)
    evals = []
    for w in (1, 2):
        ens = po.build_ensemble(cm, sc, 300, seed=4, workers=w)
        ev = po.Evaluator(cm, sc, ens, decs, 2021, list(model.goals), workers=w)
        evals.append(ev.evaluate(x))
    a, b = evals
    for field in ("cost", "cost_by_lever", "prob", "prob_seed", "central"):
        assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
    assert 0 < a.prob[:, 0].max() and a.prob[:, 0].min() < 1  # candidates that differ: a real comparison


def test_column_analyses_by_the_workers_write_the_same_files(tmp_path, monkeypatch):
    """Spearman ranks of every input (analysis) and what history taught (conditioning) go column by column to the
    workers for large ensembles (sdsim.sensitivity.PARALLEL_ROWS): forced here for 400 samples, the files are
    byte-identical to the serial ones, history matching on."""
    outs = []
    for rows in (10**12, 0):  # serial, then every column analysis by the workers
        monkeypatch.setattr(sa, "PARALLEL_ROWS", rows)
        out = tmp_path / f"rows{rows}"
        assert main(["sensitivity", str(ROOT / "scenarios/baseline.yaml"), "--method", "mc", "--samples", "400",
                     "--seed", "5", "--no-plots", "--no-samples", "--workers", "2", "--out", str(out)]) == 0
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir() if p.suffix == ".csv")
    assert {"indices.csv", "history_taught.csv"} <= set(files)
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
