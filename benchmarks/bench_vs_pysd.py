"""This engine against PySD on the same model and the same 200 parameter sets.

The baseline scenario is exported to XMILE (sdsim/xmile.py) and translated once by PySD. 200
parameter sets are drawn from the documented ranges of the uncertain assumptions (levers included
where they enter the equations) and calibrated to 2021 by this engine, so both engines get the
very same complete parameter sets, calibrated free parameters included. Then:

* PySD runs them one by one with ``model.run(params=..., return_columns=<stocks>,
  return_timestamps=<year ends>)``, with ``cache_output`` on and off (the faster counts);
* this engine runs the 200 sets tiled to n = 100,000 as one batch (the per-run figure), the 200 sets
  themselves as one batch, with and without calibrating them (the same job), and one set (one run).

Both record the 16 stocks at every year end; the first 200 runs of the batch are compared with
PySD's to show that the two computed the same thing. Times exclude PySD's one-off translation and
this engine's one-off compile (both printed). Run by hand: ``python benchmarks/bench_vs_pysd.py``.
Prints figures, the three ratios last; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import REPEAT, machine, measure  # noqa: E402

from sdsim.compiler import compile_model  # noqa: E402
from sdsim.engine import TimeGrid, lever_schedules, simulate  # noqa: E402
from sdsim.model import Model, load_model  # noqa: E402
from sdsim.runner import calibrated_params, parameter_batch  # noqa: E402
from sdsim.scenario import load_scenario  # noqa: E402
from sdsim.xmile import export_scenario, write_text  # noqa: E402


def sample(model: Model, names: list[str], n: int, seed: int) -> np.ndarray:
    """(n, len(names)) values drawn from each parameter's range (log-uniform where declared)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, len(names)))
    for j, k in enumerate(names):
        p = model.params[k]
        lo, hi = p.range
        if p.distribution == "loguniform":
            out[:, j] = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        else:
            out[:, j] = rng.uniform(lo, hi, n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=200, help="parameter sets (default 200)")
    ap.add_argument("--n", type=int, default=100_000, help="engine batch size (default 100,000)")
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--pysd-runs", type=int, default=0, metavar="K", help="time PySD on the first K sets only "
                    "(default: all; its time per run is the mean over the sets it ran)")
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"repeats of every sdsim figure (at least {REPEAT}); "
                    "PySD's time per run is the faster mean over all sets of two passes (cache_output off, on)")
    args = ap.parse_args()

    import pysd  # the xmile extra

    print(machine())
    model = load_model(ROOT / "model")
    t = time.perf_counter()
    cm = compile_model(model)
    compile_s = time.perf_counter() - t
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", model)
    exp = export_scenario(cm, sc)
    grid = TimeGrid(model.calibration.start, sc.end, sc.dt)
    stocks = exp.stocks

    # --- the parameter sets: uncertain assumptions and levers that enter the exported equations
    names = [k for k, p in model.params.items() if p.uncertain and (not p.is_lever or k in exp.aux)]
    draws = sample(model, names, 2 * args.sets, args.seed)
    params = parameter_batch(cm, [{}])
    params.update({k: draws[:, j] for j, k in enumerate(names)})
    with np.errstate(all="ignore"):  # sets without a solution are counted, not printed by numpy
        solved, res = calibrated_params(cm, params, grid.dt, sc.method, strict=False)
    ok = np.flatnonzero(res.ok)[: args.sets]
    if ok.size < args.sets:
        raise SystemExit(f"only {ok.size} of {2 * args.sets} sampled sets calibrate; raise the draw")
    varying = [k for k, v in solved.items() if np.ndim(v)]
    # values that only set calibration targets (e.g. assumed 2021 levels) are not in the model's equations
    exported = [k for k in varying if k in exp.aux]
    sets = [{k: float(solved[k][i]) for k in exported} for i in ok]
    print(f"model: {ROOT / 'scenarios/baseline.yaml'} exported to XMILE, {len(stocks)} stocks, "
          f"{grid.start}-{grid.end}, dt 1/{grid.steps_per_year}, Euler")
    print(f"parameter sets: the first {args.sets} that calibrate ({int(res.ok.sum())} of {2 * args.sets} drawn over "
          f"{len(names)} uncertain inputs do); "
          f"{len(exported)} model values per set incl. {len(model.calibration.free)} calibrated free parameters")

    # --- PySD: translate once, then run the sets one by one
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_text(Path(tmp) / "baseline.xmile", exp.text)
        t = time.perf_counter()
        pm = pysd.read_xmile(str(path))
        translate_s = time.perf_counter() - t
        years = [float(y) for y in grid.years]

        timed = sets[: args.pysd_runs] if args.pysd_runs > 0 else sets

        def pysd_all(cache: bool) -> tuple[float, np.ndarray]:
            out = np.empty((len(timed), len(years), len(stocks)))
            t0 = time.perf_counter()
            for i, s in enumerate(timed):
                df = pm.run(params=s, return_columns=stocks, return_timestamps=years, progress=False,
                            cache_output=cache)
                out[i] = df[stocks].to_numpy()
            return (time.perf_counter() - t0) / len(timed), out

        pm.run(params=sets[0], return_columns=stocks, return_timestamps=years)  # warm-up
        timings = {cache: pysd_all(cache) for cache in (False, True)}
    cache = min(timings, key=lambda c: timings[c][0])
    pysd_per_run, pysd_out = timings[cache]
    print(f"PySD {pysd.__version__}: translation {translate_s:.2f} s (once); {len(timed)} sets timed; per run "
          f"{1e3 * timings[False][0]:.2f} ms with cache_output=False, {1e3 * timings[True][0]:.2f} ms with True")

    # --- this engine: the same sets tiled to n runs, one batch (n may be smaller than the number of sets)
    n = args.n
    reps = -(-n // len(sets))
    idx = np.tile(np.arange(len(sets)), reps)[:n]
    shown = min(n, len(sets), pysd_out.shape[0])  # runs compared with PySD

    def batch_of(rows: np.ndarray) -> tuple[dict, dict]:
        b = dict(parameter_batch(cm, [{}]))
        b.update({k: np.array([s[k] for s in sets])[rows] for k in exported})
        return b, lever_schedules(cm, grid, {k: b[k] for k in model.levers})

    batch, levers = batch_of(idx)
    tm = measure(lambda: simulate(cm, batch, levers, grid, sc.method, n=n), args.repeat)
    run = tm.result
    ours = np.stack([run.get(s)[:, :shown].T for s in stocks], axis=2)  # (shown, years, stocks)
    ref = pysd_out[:shown]
    rel = np.abs(ref - ours) / np.maximum(np.abs(ours), 1e-300)
    rel[ours == 0] = np.abs(ref[ours == 0])
    print(f"same results: largest relative difference over {shown} sets x {len(years)} years x "
          f"{len(stocks)} stocks = {rel.max():.1e}")
    print(f"sdsim: compile {1e3 * compile_s:.0f} ms (once)")
    print(f"sdsim batch of n = {n:,}: {tm.text()}")

    # the same job: the sets themselves, calibrated and run (this engine calibrates; PySD got the solved values)
    all_sets = np.arange(len(sets))
    job_b, job_l = batch_of(all_sets)
    job_p = {k: (v[ok] if np.ndim(v) else v) for k, v in params.items()}
    job_run = measure(lambda: simulate(cm, job_b, job_l, grid, sc.method, n=len(sets)), args.repeat)
    job_cal = measure(lambda: (calibrated_params(cm, job_p, grid.dt, sc.method, strict=False),
                               simulate(cm, job_b, job_l, grid, sc.method, n=len(sets))), args.repeat)
    one_b, one_l = batch_of(all_sets[:1])
    one_run = measure(lambda: simulate(cm, one_b, one_l, grid, sc.method, n=1), max(args.repeat, 20))
    pysd_job = pysd_per_run * len(sets)
    print(f"sdsim the same job ({len(sets)} sets, one batch): {job_run.text('ms')}; "
          f"with calibration of every set: {job_cal.text('ms')}")
    print(f"sdsim one run (n = 1): {one_run.text('ms')}")

    print("\nratios PySD time / sdsim time (from sdsim's median wall time; best in brackets):")
    per = tm.median / n
    print(f"  per run at n = {n:,}: PySD {1e3 * pysd_per_run:.3f} ms, sdsim {1e6 * per:.2f} us -> "
          f"{pysd_per_run / per:,.0f}x ({pysd_per_run / (tm.best / n):,.0f}x)")
    print(f"  the same job of {len(sets)} sets: PySD {pysd_job:.2f} s ({len(sets)} x its time per run), "
          f"sdsim {1e3 * job_run.median:.1f} ms -> "
          f"{pysd_job / job_run.median:,.0f}x ({pysd_job / job_run.best:,.0f}x); including sdsim's calibration "
          f"{pysd_job / job_cal.median:,.0f}x ({pysd_job / job_cal.best:,.0f}x)")
    print(f"  one run: PySD {1e3 * pysd_per_run:.2f} ms, sdsim {1e3 * one_run.median:.2f} ms -> "
          f"{pysd_per_run / one_run.median:,.0f}x ({pysd_per_run / one_run.best:,.0f}x)")


if __name__ == "__main__":
    main()
