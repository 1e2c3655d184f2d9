"""Honest sensitivity output: an output that does not move with the analysed inputs (spread at round-off level) is
"unaffected by these inputs" in tables, figures and summaries, never ranked (issue 10)."""

from __future__ import annotations

import csv
import io
from contextlib import redirect_stdout

import numpy as np
import pytest

from sdsim import sensitivity as sa
from sdsim.cli import main
from tests.conftest import ROOT

BASELINE = str(ROOT / "scenarios" / "baseline.yaml")


def toy_problem(d: int = 3) -> sa.Problem:
    return sa.Problem([sa.Uncertainty(f"x{j}", 0.0, 1.0) for j in range(d)])


def outcomes(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Column 0: 1000 plus round-off noise of relative size 1e-11; column 1: x0 + 2 x1 (a real effect)."""
    noise = 1000.0 * (1.0 + 1e-11 * rng.standard_normal(x.shape[0]))
    return np.stack([noise, x[:, 0] + 2 * x[:, 1]], axis=1)


def test_round_off_noise_is_unaffected_and_a_real_effect_is_not():
    assert not sa.is_unaffected(np.array([1.0, 1.0 + 1e-6]))
    assert sa.is_unaffected(np.array([5.0, 5.0 * (1 + 1e-12)]))
    assert sa.is_unaffected(np.zeros(4))
    assert sa.UNAFFECTED_RTOL == pytest.approx(1e-9)


@pytest.mark.parametrize("method", ["sobol", "mc", "morris", "oat"])
def test_every_method_marks_noise_as_unaffected_and_ranks_nothing(method):
    rng = np.random.default_rng(1)
    p = toy_problem()
    if method == "sobol":
        design = sa.sample_sobol(p, 256, 3)
    elif method == "mc":
        design = sa.sample_mc(p, 500, 3)
    elif method == "morris":
        design = sa.sample_morris(p, 40, 3)
    else:
        design = sa.sample_oat(sa.Problem([sa.Uncertainty(f"x{j}", 0.0, 1.0, baseline=0.5) for j in range(3)]))
    y = outcomes(np.nan_to_num(design.x, nan=0.5), rng)
    ok = np.ones(y.shape[0], bool)
    names = ["flat", "moved"]
    if method == "sobol":
        idx, _ = sa.analyze_sobol(p, y, ok, names, 3)
    elif method == "mc":
        idx = sa.analyze_mc(p, design.x, y, ok, names)
    elif method == "morris":
        idx, _ = sa.analyze_morris(p, design, y, ok, names, 3)
    else:
        exp = sa.Experiments(design, names, ok, np.full(ok.size, ""), y, y, None, {}, 0.0)  # type: ignore[arg-type]
        idx = sa.analyze_oat(p, exp)
    flat = sa.unaffected_outputs(idx)
    assert list(flat) == ["flat"] and flat["flat"] < sa.UNAFFECTED_RTOL
    key = sa.RANKING[method]
    assert all(i.value == 0 for i in idx if i.output == "flat" and i.index == key)
    moved = {i.parameter: i.value for i in idx if i.output == "moved" and i.index == key}
    assert moved["x1"] > moved["x2"] and moved["x0"] > moved["x2"]  # x1 and x0 matter, x2 does not


def read_csv(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("method, samples", [("mc", "64"), ("sobol", "32")])
def test_the_cli_marks_exactly_the_outputs_whose_samples_do_not_move(tmp_path, model, method, samples):
    """For any model: an output is marked unaffected iff its sampled values spread by at most the tolerance."""
    first = sa.define_problem(model).names[0]
    out = tmp_path / "s"
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["sensitivity", BASELINE, "--method", method, "--samples", samples, "--params", first,
                     "--out", str(out)]) == 0
    printed = buf.getvalue()
    data = np.load(out / "samples.npz")
    ok = data["ok"]
    rows = read_csv(out / "indices.csv")
    marked = {r["output"] for r in rows if r["index"] == "relative_spread" and r["note"]}
    for g, name in enumerate(data["outcome_names"]):
        flat = sa.relative_spread(data["outcomes"][ok, g]) <= sa.UNAFFECTED_RTOL
        assert (str(name) in marked) == flat
        line = next(ln for ln in printed.splitlines() if ln.startswith(str(name) + " "))
        assert ("unaffected by these inputs" in line) == flat
        fig = out / f"{method}_{name}.png"
        assert method == "mc" or fig.is_file()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert all(("unaffected by these inputs" in report) for _ in marked)


def _oat_indices(problem: sa.Problem, swings: dict[str, float], output: str = "g") -> list[sa.Index]:
    out = [sa.Index("oat", "(baseline)", output, "value", 2.5)]
    for q in problem.uncertainties:
        s = swings.get(q.name, 0.0)
        out += [sa.Index("oat", q.name, output, "low_value", 2.5 - s / 2),
                sa.Index("oat", q.name, output, "high_value", 2.5 + s / 2),
                sa.Index("oat", q.name, output, "swing", s), sa.Index("oat", q.name, output, "abs_swing", abs(s))]
    return out


def test_a_tornado_moved_by_few_inputs_says_in_words_which(model):
    from sdsim import plots_sensitivity as ps

    goal = next(iter(model.goals))
    p = sa.Problem([sa.Uncertainty(f"x{j}", 0.0, 1.0, baseline=0.5, en=f"Input {j}") for j in range(47)])
    fig = ps.tornado(model, p, _oat_indices(p, {"x3": 7.5}, goal), goal, "en", "toy")
    title = fig.axes[0].get_title().replace("\n", " ")
    assert "Only 1 of 47 inputs moves this output: Input 3" in title and "other 46 leave it unchanged" in title
    assert "not shown" not in title
    assert len(fig.axes[0].patches) == 2  # one bar pair: low and high end of Input 3
    fig = ps.tornado(model, p, _oat_indices(p, {f"x{j}": j + 1.0 for j in range(20)}, goal), goal, "en", "toy")
    title = fig.axes[0].get_title().replace("\n", " ")
    assert f"{20 - ps.TOP} more inputs with smaller swing not shown; 27 inputs do not move it" in title


def test_morris_labels_of_nearby_points_do_not_coincide(model):
    from sdsim import plots_sensitivity as ps

    goal = next(iter(model.goals))
    p = toy_problem(8)
    idx = []
    for j, q in enumerate(p.uncertainties):  # two pairs of nearly coincident points
        ms = [10.0, 10.1, 5.0, 5.05, 3, 2, 1, 0.5][j]
        idx += [sa.Index("morris", q.name, goal, "mu_star", ms, ms - 0.1, ms + 0.1),
                sa.Index("morris", q.name, goal, "mu", ms), sa.Index("morris", q.name, goal, "sigma", ms / 2)]
    fig = ps.morris_figure(model, p, idx, goal, "en", "toy", 20)
    offsets = [tuple(a.xyann) for a in fig.axes[0].texts if a.get_text().isdigit()]
    assert len(offsets) == 8
    by_rank = dict(zip(range(1, 9), offsets, strict=True))
    assert by_rank[1] != by_rank[2] and by_rank[3] != by_rank[4]  # neighbours get different label positions
