"""Streamed ensembles (issue 15 item 2): the statistics kept chunk by chunk against the exact ones of a full
ensemble computed here, independence from the number of workers, and memory that does not grow with the
number of runs."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from sdsim import calibrate, cli
from sdsim import conditioning as cd
from sdsim import sensitivity as sa
from sdsim import sketch as sk
from sdsim.compiler import compile_model
from sdsim.model import load_model
from sdsim.results import output_names
from sdsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scenarios" / "baseline.yaml"
TOY = Path(__file__).resolve().parent / "test_conditioning.py"


def within(estimate: np.ndarray, exact: np.ndarray, bound: np.ndarray) -> None:
    """Every estimate within its stated bound of the exact value (NaN exactly where the exact value is NaN)."""
    np.testing.assert_array_equal(np.isnan(estimate), np.isnan(exact))
    f = np.isfinite(exact)
    assert np.all(np.abs(estimate[f] - exact[f]) <= bound[f] * (1 + 1e-9) + 1e-12 * np.abs(exact[f]))


# ------------------------------------------------------------------------------------- sketches


def test_binned_percentiles_lie_within_their_bound_and_do_not_depend_on_chunk_order():
    rng = np.random.default_rng(4)
    s, n = 12, 30_000
    v = np.exp(rng.normal(size=(s, n))) * np.arange(1, s + 1)[:, None]
    v[2] = 5.0  # a constant stream
    v[3, 17] = np.nan  # a stream with a non-finite value gives NaN, as numpy does after the all-finite check
    qs = (5, 25, 50, 75, 95)
    parts = [slice(a, min(n, a + 4096)) for a in range(0, n, 4096)]
    a, b = sk.Quantiles(s, n, False, slots=3), sk.Quantiles(s, n, False, slots=1)
    for q in (a, b):
        q.set_range(v[:, parts[0]])
    for i, p in enumerate(parts):
        a.add(v[:, p], np.arange(p.start, p.stop), slot=i % 3)
    for p in reversed(parts):
        b.add(v[:, p], np.arange(p.start, p.stop))
    ra, rb = a.result(qs), b.result(qs)
    np.testing.assert_array_equal(ra.values, rb.values)
    exact = np.full((s, len(qs)), np.nan)
    good = np.isfinite(v).all(axis=1)
    exact[good] = np.percentile(v[good], qs, axis=1).T
    within(ra.values, exact, ra.bound)
    assert np.all(np.isnan(ra.values[3]))
    spread = exact[:, 4] - exact[:, 0]
    assert np.nanmax(ra.bound[good & (spread > 0)] / spread[good & (spread > 0), None]) < 0.02
    # weighted (the Hazen rule of conditioning.weighted_percentiles), with zero weights left out
    w = rng.random(n) ** 3
    w[rng.random(n) < 0.4] = 0.0
    c = sk.Quantiles(s, n, False)
    c.set_range(v[:, parts[0]])
    iw = sk.quantise(w, w.max())
    for p in parts:
        c.add(v[:, p], np.arange(p.start, p.stop), iw[p])
    rc = c.result(qs, weighted=True)
    within(rc.values, cd.weighted_percentiles(v, w, qs), rc.bound)


def test_exact_mode_is_numpy():
    rng = np.random.default_rng(5)
    v = rng.normal(size=(4, 999))
    q = sk.Quantiles(4, 999, sk.is_exact(4, 999))
    q.add(v[:, 500:], np.arange(500, 999))
    q.add(v[:, :500], np.arange(500))
    np.testing.assert_array_equal(q.result((5, 50, 95)).values, np.percentile(v, (5, 50, 95), axis=1).T)
    w = rng.random(999)
    np.testing.assert_array_equal(q.result((5, 50), True, w).values, cd.weighted_percentiles(v, w, (5, 50)))


def test_the_lean_latin_hypercube_is_scipys_design(model):
    problem = sa.define_problem(model)
    for n in (1, 5, 1200):
        full, lean = sa.sample_mc(problem, n, 9), sa.sample_mc(problem, n, 9, lean=True)
        assert lean.x is None
        np.testing.assert_array_equal(full.u, lean.u)
        np.testing.assert_array_equal(full.x, lean.values())
        np.testing.assert_array_equal(full.x[n // 3:n // 2 + 1], lean.rows(slice(n // 3, n // 2 + 1)))
        for j in range(problem.d):
            np.testing.assert_array_equal(full.x[:, j], lean.column(j))


# ------------------------------------------------------------------------------ the Yubei model


@pytest.fixture(scope="module")
def yubei(model, cm):
    """A full ensemble of 300 samples (every record held) and its design, calibrated in chunks of 64."""
    sc = load_scenario(BASELINE, model)
    problem = sa.define_problem(model, sc)
    design = sa.sample_mc(problem, 300, 11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(calibrate, "CHUNK", 64)
        full = sa.run_experiments(cm, problem, sc, design, workers=1)
    return sc, problem, design, full


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("exact", [True, False])
def test_streamed_results_equal_the_full_ensemble(cm, yubei, monkeypatch, workers, exact):
    sc, problem, design, full = yubei
    monkeypatch.setattr(calibrate, "CHUNK", 64)
    lean = sa.sample_mc(problem, 300, 11, lean=True)
    exp = sa.stream_experiments(cm, problem, sc, lean, workers=workers, quantiles=True, history=True,
                                exact_bytes=None if exact else 0)
    assert exp.run is None and exp.stream.prior.exact is exact
    for a, b in ((full.ok, exp.ok), (full.outcomes, exp.outcomes), (full.probability, exp.probability)):
        np.testing.assert_array_equal(a, b)
    assert list(full.reason) == list(exp.reason) and full.max_residual == exp.max_residual
    for f in full.free:
        np.testing.assert_array_equal(full.free[f], exp.free[f])
    names = output_names(cm.model, full.run)
    assert exp.stream.names == names
    exact_q = sa.quantiles(full.run, names)
    res = exp.stream.prior.result(sa.QUANTILES)
    got, bound = exp.stream.table(res.values), exp.stream.table(res.bound)
    for name in names:
        if exact:
            np.testing.assert_array_equal(got[name], exact_q[name])
        else:
            within(got[name], exact_q[name], bound[name])
    for k, o in enumerate(exp.stream.obs):  # the history quantities kept per row
        v, note = cd.value_at(full.run, o.row)
        np.testing.assert_array_equal(exp.stream.obs_values[exp.ok, k], v)
        assert exp.stream.obs_notes[k] == note
    # analysis column by column (lean design) equals the matrix form on the full design
    a = sa.analyze_mc(problem, design.x, full.outcomes, full.ok, full.outcome_names)
    b = sa.analyze_mc(problem, lean, exp.outcomes, exp.ok, exp.outcome_names)
    np.testing.assert_allclose([i.value for i in a], [i.value for i in b], rtol=1e-13, atol=1e-15)


def test_binned_results_do_not_depend_on_the_number_of_workers(cm, yubei, monkeypatch):
    sc, problem, design, _ = yubei
    monkeypatch.setattr(calibrate, "CHUNK", 64)
    res = []
    for workers in (1, 2):
        exp = sa.stream_experiments(cm, problem, sc, design, workers=workers, quantiles=True, exact_bytes=0)
        w = np.where(exp.ok, np.linspace(0.0, 1.0, exp.ok.size), 0.0)
        post, _ = sa.stream_weighted(exp, w, sa.QUANTILES, None)
        res.append((exp.stream.prior.result(sa.QUANTILES).values, post.values))
    for a, b in zip(*res, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- history (the toy)


def toy(tmp_path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("toy_conditioning", TOY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod, mod.make_model(tmp_path, mod.rows("stock_mid", "inflow_half"))


@pytest.mark.parametrize("scenario", ["scenario.yaml", "scenario_early.yaml"])
@pytest.mark.parametrize("mode", ["match", "weights"])
@pytest.mark.parametrize("exact", [True, False])
def test_streamed_conditioning_equals_conditioning_the_full_ensemble(tmp_path, monkeypatch, scenario, mode, exact):
    mod, d = toy(tmp_path)
    monkeypatch.setattr(calibrate, "CHUNK", 128)
    m = load_model(d)
    cm = compile_model(m)
    sc = load_scenario(d / scenario, m)
    problem = sa.define_problem(m, sc)
    design = sa.sample_mc(problem, 500, 2)
    full = sa.run_experiments(cm, problem, sc, design)
    ref = cd.condition_experiments(cm, problem, sc, design, full, mode)
    exp = sa.stream_experiments(cm, problem, sc, design, quantiles=True, history=True, workers=2,
                                exact_bytes=None if exact else 0)
    got = cd.condition_streamed(cm, problem, sc, exp, mode, qs=sa.QUANTILES)
    assert got.source == ref.source and got.active
    np.testing.assert_array_equal(got.weights, ref.weights)
    assert got.ess == ref.ess and got.temperature == ref.temperature
    for a, b in zip(ref.rows, got.rows, strict=True):
        np.testing.assert_array_equal(a.prior, b.prior)
        np.testing.assert_array_equal(a.cond, b.cond)
        assert a.conflict == b.conflict and a.ruled_out == b.ruled_out
    # the hindcast bands and the conditioned fan chart against the held runs
    years = ref.run.years
    sel = years <= int(np.ceil(max(r.obs.row.time for r in ref.rows) - 1e-9)) + 1
    np.testing.assert_array_equal(years[sel], exp.stream.hist_years)
    bounds = got.cache["quantiles"]
    for var in exp.stream.hist_names:
        v = ref.run.get(var)[sel]
        prior, post = got.band(var, None, sel)
        tol = 0.0 if exact else 0.03 * (np.nanmax(v) - np.nanmin(v))  # the bands' bounds are in the manifest
        np.testing.assert_allclose(prior, cd.weighted_percentiles(v, None, (5, 50, 95)), rtol=0, atol=tol)
        np.testing.assert_allclose(post, cd.weighted_percentiles(v, ref.weights, (5, 50, 95)), rtol=0, atol=tol)
    exact_cq = cd.conditioned_quantiles(full.run, exp.stream.names, ref, sa.QUANTILES)
    got_cq, got_b = exp.stream.table(bounds.values), exp.stream.table(bounds.bound)
    for name in exp.stream.names:
        if exact:
            np.testing.assert_array_equal(got_cq[name], exact_cq[name])
        else:
            within(got_cq[name], exact_cq[name], got_b[name])
    les_ref = cd.lessons(problem, design.x[full.ok], ref)
    les = cd.lessons(problem, lambda j: design.column(j, exp.ok), got)
    assert [le.name for le in les] == [le.name for le in les_ref]
    np.testing.assert_allclose([le.rho for le in les], [le.rho for le in les_ref], rtol=1e-12)


def test_the_command_gives_the_same_files_with_1_and_2_workers_and_exact_quantiles(tmp_path, monkeypatch):
    mod, d = toy(tmp_path)
    monkeypatch.setattr(calibrate, "CHUNK", 128)
    outs = []
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        assert cli.main(["sensitivity", str(d / "scenario.yaml"), "--model", str(d), "--method", "mc", "--samples",
                         "600", "--seed", "3", "--out", str(out), "--no-plots", "--workers", str(w)]) == 0
        outs.append(out)
    for f in ("indices.csv", "goal_probability.csv", "quantiles.csv", "history.csv", "history_taught.csv",
              "report.md", "samples.npz"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    # quantiles.csv holds numpy's percentiles of the full ensemble (computed here, every record held)
    m = load_model(d)
    cm = compile_model(m)
    sc = load_scenario(d / "scenario.yaml", m)
    problem = sa.define_problem(m, sc)
    design = sa.sample_mc(problem, 600, 3)
    full = sa.run_experiments(cm, problem, sc, design)
    q = sa.quantiles(full.run, output_names(m, full.run))
    rows = [line.split(",") for line in (outs[0] / "quantiles.csv").read_text().splitlines()[1:]]
    from sdsim.results import fmt

    for r in rows:
        i = int(r[1]) - int(full.run.years[0])
        assert r[2:7] == [fmt(float(x)) for x in q[r[0]][i]], r[:2]


# ------------------------------------------------------------------------------------- memory


def _peak(cm, problem, sc, design, **kw) -> int:
    """tracemalloc peak (bytes) of streaming ``design`` with one worker."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        sa.stream_experiments(cm, problem, sc, design, workers=1, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_of_a_streamed_ensemble_does_not_grow_with_the_number_of_runs(tmp_path, monkeypatch):
    mod, d = toy(tmp_path)
    monkeypatch.setattr(calibrate, "CHUNK", 256)
    m = load_model(d)
    cm = compile_model(m)
    sc = load_scenario(d / "scenario.yaml", m)
    problem = sa.define_problem(m, sc)
    small, large = (sa.sample_mc(problem, n, 1, lean=True) for n in (2_000, 8_000))
    peaks = [_peak(cm, problem, sc, des, quantiles=True, history=True, exact_bytes=0) for des in (small, large)]
    assert peaks[1] / peaks[0] < 1.6, peaks  # 4 x the runs: the chunk and the sketches dominate

    def held(des: sa.Design) -> int:  # the same ensemble holding every record grows with the runs
        tracemalloc.start()
        tracemalloc.reset_peak()
        try:
            sa.run_experiments(cm, problem, sc, des, workers=1)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    full = [held(des) for des in (small, large)]
    assert full[1] / full[0] > 2.5, full


def test_the_memory_estimate_counts_a_few_numbers_per_streamed_run(model):
    per_row = (sa.ensemble_bytes(model, "mc", 2_000_000, 60, 11, samples=False)
               - sa.ensemble_bytes(model, "mc", 1_000_000, 60, 11, samples=False)) / 1_000_000
    assert 8 * 60 <= per_row < 2 * sa.bytes_per_run(model, 11) / sa.RUN_BYTES_FACTOR


@pytest.mark.parametrize(("d", "n", "second_order", "seed"), [(3, 8, False, 0), (5, 32, True, 7), (60, 64, False, 12345)])
def test_the_saltelli_design_is_salibs(d, n, second_order, seed):
    import warnings

    from SALib.sample import sobol

    problem = {"num_vars": d, "names": [f"x{i}" for i in range(d)], "bounds": [[0.0, 1.0]] * d}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sobol.sample(problem, n, calc_second_order=second_order, scramble=True, seed=seed)
    np.testing.assert_array_equal(sa.saltelli(d, n, seed, second_order), ref)


def test_sobol_indices_do_not_depend_on_the_number_of_workers():
    problem = sa.Problem([sa.Uncertainty(f"x{i}", -np.pi, np.pi) for i in range(3)])
    design = sa.sample_sobol(problem, 256, 4)
    x = design.x
    y = np.stack([np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0]), x[:, 1] ** 2,
                  np.sin(x[:, 2])], axis=1)
    ok = np.ones(x.shape[0], bool)
    one, _ = sa.analyze_sobol(problem, y, ok, ["a", "b", "c"], 3, workers=1)
    two, _ = sa.analyze_sobol(problem, y, ok, ["a", "b", "c"], 3, workers=2)
    assert [(i.parameter, i.output, i.index, i.value, i.ci_low) for i in one] == \
        [(i.parameter, i.output, i.index, i.value, i.ci_low) for i in two]


def test_binned_percentiles_are_stated_in_the_report_and_manifest(tmp_path, monkeypatch):
    import json

    mod, d = toy(tmp_path)
    monkeypatch.setattr(calibrate, "CHUNK", 128)
    monkeypatch.setattr(sk, "EXACT_BYTES", 0)  # as for an ensemble too large to hold
    out = tmp_path / "binned"
    assert cli.main(["sensitivity", str(d / "scenario.yaml"), "--model", str(d), "--method", "mc", "--samples", "600",
                     "--seed", "3", "--out", str(out), "--no-plots"]) == 0
    used = json.loads((out / "manifest.json").read_text())["used"]["quantiles"]
    assert "fixed-bin" in used["prior"]["method"] and "fixed-bin" in used["conditioned"]["method"]
    rel = used["prior"]["error_bound_relative_to_the_percentiles_span"]
    assert 0 < rel["median"] <= rel["max"]
    report = (out / "report.md").read_text()
    assert "fixed-bin histograms" in report and f"{rel['max']:.2%}" in report
    exact = tmp_path / "exact"
    monkeypatch.setattr(sk, "EXACT_BYTES", 128 * 2**20)
    assert cli.main(["sensitivity", str(d / "scenario.yaml"), "--model", str(d), "--method", "mc", "--samples", "600",
                     "--seed", "3", "--out", str(exact), "--no-plots"]) == 0
    assert "fixed-bin" not in (exact / "report.md").read_text()
    assert json.loads((exact / "manifest.json").read_text())["used"]["quantiles"]["prior"]["max_abs_error"] == 0.0
