"""The opt-in Numba backend (sdsim.kernel) gives the records of the numpy engine.

Equality: bit-identical where the kernel and numpy evaluate the same IEEE operations (+ - * /, comparisons,
min/max, graphical functions); exp/log/pow over per-run arrays use numpy's SIMD implementations, which may
differ from the C library's by one unit in the last place, so batches whose transcendental inputs vary per run
agree to :data:`RTOL` (observed on an AVX-512 machine: at most 1.7e-14; assert 1e-11 relative, with the NaN pattern
identical).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from sdsim import calibrate as cal  # noqa: E402
from sdsim import engine as eng  # noqa: E402
from sdsim import kernel  # noqa: E402
from sdsim import sensitivity as sa  # noqa: E402
from sdsim.compiler import compile_model  # noqa: E402
from sdsim.engine import TimeGrid, lever_schedules, simulate  # noqa: E402
from sdsim.errors import ModelError  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.runner import lever_baseline, parameter_batch  # noqa: E402
from sdsim.scenario import load_scenario  # noqa: E402
from tests.conftest import design_params  # noqa: E402

pytestmark = pytest.mark.xdist_group("numba_kernel")  # one worker compiles each model once

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
RTOL = 1e-11  # relative agreement of records whose transcendental inputs vary per run (see the docstring)


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Kernels compiled into a temporary folder of this session (never the user's cache), shared by the xdist
    workers: each model is compiled once, the other worker waits for it (sdsim.kernel locks) and loads it."""
    old = os.environ.get("SDSIM_CACHE")
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sdsim-kernels"
    path.mkdir(exist_ok=True)
    os.environ["SDSIM_CACHE"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("SDSIM_CACHE", None)
        else:
            os.environ["SDSIM_CACHE"] = old


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    old = eng.BACKEND
    eng.BACKEND = name
    try:
        yield
    finally:
        eng.BACKEND = old


def both(fn):  # type: ignore[no-untyped-def]
    """fn() under the numpy and the numba backend."""
    with backend("numpy"), np.errstate(all="ignore"):
        a = fn()
    with backend("numba"), np.errstate(all="ignore"):
        b = fn()
    return a, b


def assert_same_run(a: eng.Run, b: eng.Run, exact: bool) -> None:
    """Every record of two runs equal (``exact``: bit for bit, else to RTOL), NaN where NaN."""
    pairs = [("stocks", a.stocks, b.stocks), ("rates", a.rates, b.rates), ("aux", a.aux, b.aux)]
    pairs += [(f"annual {k}", a.annual[k], b.annual[k]) for k in a.annual]
    assert set(a.annual) == set(b.annual)
    for what, x, y in pairs:
        assert x.shape == y.shape, what
        assert np.array_equal(np.isnan(x), np.isnan(y)), what
        if exact:
            assert np.array_equal(x, y, equal_nan=True), what
        else:
            np.testing.assert_allclose(y, x, rtol=RTOL, atol=0, equal_nan=True, err_msg=what)


def test_interp_is_numpy_interp() -> None:
    mod = kernel.load(kernel.kernel_source(compile_model(load_model(FIX / "bass"))))
    rng = np.random.default_rng(7)
    tables = [(np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 0.5, 0.7, 1.0])),
              (np.array([0.0, 1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, 0.0])),  # a jump: duplicate x
              (np.array([0.0, 1.0, 2.0]), np.array([np.inf, 1.0, 1.0])),  # numpy's NaN fallback applies
              (np.array([3.0]), np.array([2.0]))]
    xs = np.concatenate([rng.uniform(-1, 5, 400), [np.nan, -np.inf, np.inf, 0.0, 1.0, 2.0, 4.0, 3.0]])
    for xp, fp in tables:
        want = np.interp(xs, xp, fp)
        got = np.array([mod._interp_exact(x, xp, fp) for x in xs])
        assert np.array_equal(got, want, equal_nan=True)
        if kernel._plain(xp, fp):
            assert np.array_equal(np.array([mod._interp_plain(x, xp, fp) for x in xs]), want, equal_nan=True)
    assert kernel._plain(*tables[0]) and not kernel._plain(*tables[1]) and not kernel._plain(*tables[2])


def _experiments(cm, scenario: str, n: int, levers: bool = False):  # type: ignore[no-untyped-def]
    sc = load_scenario(ROOT / "scenarios" / scenario, cm.model)
    problem = sa.define_problem(cm.model, sc, levers=levers)
    design = sa.sample_mc(problem, n, 11)
    return both(lambda: sa.run_experiments(cm, problem, sc, design, workers=1))


@pytest.mark.parametrize(("scenario", "levers"), [("baseline.yaml", False), ("goals_2026.yaml", False),
                                                   ("goals_2026.yaml", True)],
                         ids=["monte_carlo", "scenario_levers", "per_run_lever_settings"])
def test_yubei_calibrated_ensembles_agree(cm, scenario: str, levers: bool) -> None:
    a, b = _experiments(cm, scenario, 120, levers)
    assert np.array_equal(a.ok, b.ok) and a.ok.sum() > 60
    assert_same_run(a.run, b.run, exact=False)


def test_yubei_one_run_is_bit_identical(cm) -> None:
    """n == 1 (the numpy engine integrates it over Python floats, the numba backend with the kernel)."""
    from tests.conftest import run_model

    a, b = both(lambda: run_model(cm, end=2030, dt=1 / 32)[0])
    assert b.n == 1
    assert_same_run(a, b, exact=True)


def test_yubei_shared_inputs_chunked_and_forked_are_bit_identical(cm) -> None:
    """Per-run inputs without transcendental functions: bit-identical, over several chunks and two workers."""
    grid = TimeGrid(2020, 2030, 1 / 8)
    n = eng.CHUNK + 300
    params = parameter_batch(cm, [{}])
    params["attracted_firms"] = params["attracted_firms"] * np.linspace(0.5, 1.5, n)
    levers = lever_schedules(cm, grid, lever_baseline(cm, params))
    a, b = both(lambda: simulate(cm, params, levers, grid, "euler", n=n, workers=2))
    assert_same_run(a, b, exact=True)


def _fixture_batch(path: Path, n: int):  # type: ignore[no-untyped-def]
    cm = compile_model(load_model(path))
    params = parameter_batch(cm, [{}])
    rng = np.random.default_rng(3)
    delay_times = {n for v in cm.model.aux.values() if v.fixed_delay is not None for n in v.fixed_delay[0].names}
    for name, p in cm.model.params.items():  # every other non-lever parameter varies by +-20 % per run
        if name not in cm.model.levers and name not in delay_times and float(p.value) != 0:
            params[name] = float(p.value) * rng.uniform(0.8, 1.2, n)
    return cm, params


@pytest.mark.parametrize("name", ["bass", "textbook", "history_toy", "optimize_toy"])
def test_fixture_models_agree(name: str) -> None:
    cm, params = _fixture_batch(FIX / name, 64)
    assert kernel.unsupported(cm, "euler") is None
    start = cm.model.calibration.start
    grid = TimeGrid(start, start + 12, 1 / 16)
    levers = lever_schedules(cm, grid, lever_baseline(cm, params))
    a, b = both(lambda: simulate(cm, params, levers, grid, "euler", n=64, workers=1))
    assert_same_run(a, b, exact=False)
    assert np.isfinite(b.stocks).all()


def test_unsupported_cases_fall_back_to_numpy() -> None:
    cm, params = _fixture_batch(FIX / "textbook", 16)
    start = 2020
    grid = TimeGrid(start, start + 6, 1 / 8)
    levers = lever_schedules(cm, grid, lever_baseline(cm, params))
    assert kernel.spec_for(cm, "rk4") is None and "rk4" in str(kernel.unsupported(cm, "rk4"))
    a, b = both(lambda: simulate(cm, params, levers, grid, "rk4", n=16, workers=1))
    assert_same_run(a, b, exact=True)
    # a delay time that differs between runs: the numpy engine integrates and reports it
    bad = dict(params, pipe_time=np.linspace(1.0, 2.0, 16))
    assert kernel.prepare(cm, "euler", bad, levers, {}, grid.dt) is None
    with backend("numba"), pytest.raises(ModelError, match="differs between runs"):
        simulate(cm, bad, levers, grid, "euler", n=16, workers=1)


def test_min_with_many_arguments_is_unsupported(tmp_path: Path) -> None:
    from tests.conftest import write_model

    d = write_model(tmp_path / "m", stocks={"s": {"units": "dmnl", "initial": 1, "inflows": ["f"]}},
                    flows={"f": {"equation": "min(s, k, 2, 3, 4) / k", "units": "dmnl/year"}}, parameters={"k": 1.0})
    cm = compile_model(load_model(d))
    assert "5 arguments" in str(kernel.unsupported(cm, "euler"))
    grid = TimeGrid(2020, 2022, 1 / 4)
    a, b = both(lambda: simulate(cm, {"k": 1.0}, {}, grid, "euler", n=1))
    assert_same_run(a, b, exact=True)


def test_calibration_agrees(cm) -> None:
    params, lv, sc = design_params(cm, 100, 5)
    a, b = both(lambda: cal.calibrate(cm, params, lv, sc.dt, sc.method, workers=1))
    assert np.array_equal(a.ok, b.ok) and list(a.reason) == list(b.reason) and a.ok.sum() > 50
    for f in cm.model.calibration.free:
        np.testing.assert_allclose(np.broadcast_to(b.params[f.name], a.ok.shape),
                                   np.broadcast_to(a.params[f.name], a.ok.shape), rtol=1e-10, atol=0, equal_nan=True)


def test_kernel_is_cached_on_disk(kernel_cache: Path) -> None:
    """The source is written under its hash and Numba's machine code is cached beside it (another process loads
    it instead of compiling)."""
    cm, params = _fixture_batch(FIX / "bass", 4)
    grid = TimeGrid(cm.model.calibration.start, cm.model.calibration.start + 2, 1 / 4)
    levers = lever_schedules(cm, grid, lever_baseline(cm, params))
    kp = kernel.prepare(cm, "euler", params, levers, {}, grid.dt)
    assert kp is not None
    spec = kp.spec
    assert (kernel_cache / f"k_{spec.key}.py").read_text(encoding="utf-8") == spec.source
    assert list((kernel_cache / "__pycache__").glob(f"k_{spec.key}.kernel-*.nbi"))
    assert kernel.load(spec) is kernel.load(spec)


def test_backend_comes_from_the_environment_and_defaults_to_numpy() -> None:
    import subprocess
    import sys

    code = "import sdsim.engine as e; print(e.BACKEND)"
    env = {k: v for k, v in os.environ.items() if k != "SDSIM_ENGINE"}
    out = [subprocess.run([sys.executable, "-c", code], env=e, cwd=ROOT, capture_output=True, text=True, check=True)
           .stdout.strip() for e in (env, {**env, "SDSIM_ENGINE": " Numba "})]
    assert out == ["numpy", "numba"]
