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
