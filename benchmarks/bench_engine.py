"""Engine speed: one run with calibration, runs/s of the integrator, batch calibration, the realistic
workload (every uncertainty varying, every run calibrated) and the command line.

Every figure is best / median wall time and median CPU time over at least 5 repeats, with the load
average (see benchmarks/timing.py). Run by hand: ``python benchmarks/bench_engine.py [--repeat K]
[--n N] [--workers 1,2]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import REPEAT, machine, measure  # noqa: E402

from sdsim import sensitivity as sa  # noqa: E402
from sdsim.compiler import compile_model  # noqa: E402
from sdsim.engine import TimeGrid, lever_schedules, simulate  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.runner import calibrated_params, lever_baseline, parameter_batch, run_scenarios  # noqa: E402
from sdsim.scenario import load_scenario  # noqa: E402


def _kw(fn, workers):
    """``workers=`` for functions that take it (None: the function's default)."""
    return {"workers": workers} if workers is not None and "workers" in inspect.signature(fn).parameters else {}


def realistic(cm, sc, n: int, repeat: int, workers: int | None) -> None:
    """Every uncertainty varying (Latin hypercube over their distributions), every run calibrated, then run to
    the scenario's end: what Monte Carlo and Sobol do. runs/s counts every sample (failed calibrations too).
    Measured twice: holding every run's records (:func:`sdsim.sensitivity.run_experiments`, the Python
    pipeline) and streamed (:func:`sdsim.sensitivity.stream_experiments`, the ``sensitivity`` command)."""
    problem = sa.define_problem(cm.model, sc)
    design = sa.sample_mc(problem, n, 1)
    kw = _kw(sa.run_experiments, workers)
    tm = measure(lambda: sa.run_experiments(cm, problem, sc, design, **kw), repeat)
    exp = tm.result
    who = f"workers={workers}" if kw else "default workers"
    print(f"realistic workload, n = {n:,}, {problem.d} uncertainties, calibrated, {sc.start if hasattr(sc, 'start') else 2020}"
          f"-{sc.end}, dt 1/{round(1 / sc.dt)} ({who}; {exp.n_failed:,} without 2021 solution):")
    print(f"    end to end {tm.text()}")
    print(f"    calibrated runs/s: {tm.rate(n)}")
    print(f"    last repeat: calibrate {exp.timings['calibrate_s']:.2f} s, simulate {exp.timings['simulate_s']:.2f} s")
    tm = measure(lambda: sa.stream_experiments(cm, problem, sc, design, **kw), repeat)
    print(f"    streamed as the sensitivity command does it (goal outcomes kept, records dropped chunk by chunk): "
          f"{tm.text()}")
    print(f"    streamed calibrated runs/s: {tm.rate(n)}")
    steps = round((sc.end - cm.model.calibration.start) * round(1 / sc.dt))
    ok = int(exp.ok.sum())
    print(f"    simulate: {ok:,} runs x {steps} steps = {ok * steps / exp.timings['simulate_s'] / 1e6:.2f} M run-steps/s "
          f"(wall, {who})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"repeats per figure (at least {REPEAT})")
    ap.add_argument("--n", type=int, default=100_000, help="runs of the realistic workload (default 100,000)")
    ap.add_argument("--workers", default="", help="comma-separated worker counts for the realistic workload, "
                    "e.g. 1,2 (default: the library's default only)")
    ap.add_argument("--plain", action="store_true", help="calibration from the model's starting values instead of the "
                    "baseline reference's prediction (sdsim.calibrate.WARM_START = False; it misses many solutions)")
    ap.add_argument("--legacy", action="store_true", help="the calibration before issue 15 (sdsim.calibrate._LEGACY), "
                    "for before/after figures in the same conditions")
    ap.add_argument("--engine", choices=("numpy", "numba"), default=None, help="integrator backend "
                    "(sdsim.engine.BACKEND; default: SDSIM_ENGINE or numpy); numba needs pip install numba")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: one,integrator,calibrate,"
                    "realistic,cli")
    a = ap.parse_args()
    skip = set(a.skip.split(",")) - {""}
    from sdsim import engine

    if a.engine:
        engine.BACKEND = a.engine
        os.environ["SDSIM_ENGINE"] = a.engine  # the command-line section's subprocesses too
    print(f"integrator backend: {engine.BACKEND}")
    from sdsim import calibrate

    calibrate.WARM_START = not a.plain
    calibrate._LEGACY = a.legacy
    warnings.simplefilter("ignore")
    print(machine())
    solver = "before issue 15 (_LEGACY)" if a.legacy else "plain (WARM_START = False)" if a.plain else "default (warm-started)"
    print(f"calibration: {solver} solver")
    model = load_model(ROOT / "model")
    tm = measure(lambda: compile_model(model), a.repeat)
    cm = tm.result
    print(f"compile model: {tm.text('ms')}")
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", model)
    dts = sorted({1 / 16, model.dt}, reverse=True)

    if "one" not in skip:
        one = load_scenario(ROOT / "scenarios/baseline.yaml", model)
        one.end = 2026
        for dt in dts:
            one.dt = dt
            tm = measure(lambda: run_scenarios(cm, [one]), max(a.repeat, 20))
            print(f"one run incl. calibration (n=1, 2020-2026, dt 1/{round(1 / dt)}), baseline reference cached: "
                  f"{tm.text('ms')}")

            def fresh() -> None:  # what a new process pays: the baseline reference solved too
                cm.__dict__.pop("_calibration_reference", None)
                run_scenarios(cm, [one])

            tm = measure(fresh, max(a.repeat, 20))
            print(f"one run incl. calibration (n=1, 2020-2026, dt 1/{round(1 / dt)}), reference solved too: "
                  f"{tm.text('ms')}")

    if "integrator" not in skip:
        for dt in dts:
            grid = TimeGrid(2020, 2026, dt)
            base, _ = calibrated_params(cm, parameter_batch(cm, [{}]), grid.dt, "euler")
            for n in (10_000, 100_000):
                params = {k: (np.full(n, v) if k == "tech_attrition" else v) for k, v in base.items()}
                levers = lever_schedules(cm, grid, lever_baseline(cm, params))
                kw = _kw(simulate, 1)
                tm = measure(lambda p=params, lv=levers, n=n, g=grid, kw=kw: simulate(cm, p, lv, g, "euler", n=n, **kw),
                             a.repeat)
                print(f"integrator only, one parameter varying, one worker, n={n:>7,} 2020-2026 dt 1/{round(1 / dt)}: "
                      f"{tm.rate(n)}")

    if "calibrate" not in skip:
        problem = sa.define_problem(model, sc)
        design = sa.sample_mc(problem, 10_000, 0)
        params = dict(parameter_batch(cm, [{}]))
        for j, q in enumerate(problem.uncertainties):
            params[q.name] = design.x[:, j]
        for dt in dts:
            kw = _kw(calibrated_params, 1)
            tm = measure(lambda dt=dt, kw=kw: calibrated_params(cm, params, dt, "euler", strict=False, **kw)[1],
                         a.repeat)
            res = tm.result
            steps = round((model.calibration.end - model.calibration.start) / dt)
            per_set = res.window_runs / res.ok.size
            print(f"calibrate 10,000 sets, all {problem.d} uncertainties varying (dt 1/{round(1 / dt)}, one worker): "
                  f"{tm.text()}; {res.n_failed} without solution, {res.iterations} iterations, "
                  f"{per_set:.2f} calibration-window runs per set ({per_set * steps:.0f} run-steps)")

    if "realistic" not in skip:
        counts = [int(w) for w in a.workers.split(",") if w] or [None]
        for w in counts:
            realistic(cm, sc, a.n, a.repeat, w)

    if "cli" not in skip:
        with tempfile.TemporaryDirectory() as d:
            for extra in ([], ["--no-plots"]):
                cmd = [sys.executable, str(ROOT / "simulate.py"), "run", "scenarios/baseline.yaml", "--out", d, *extra]
                tm = measure(lambda cmd=cmd: subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True), a.repeat)
                print(f"simulate.py run scenarios/baseline.yaml {' '.join(extra)}: {tm.text()}")
            for cmd in (["--help"], ["describe"]):
                full = [sys.executable, str(ROOT / "simulate.py"), *cmd]
                tm = measure(lambda full=full: subprocess.run(full, cwd=ROOT, check=True, capture_output=True),
                             a.repeat)
                print(f"simulate.py {' '.join(cmd)}: {tm.text()}")


if __name__ == "__main__":
    main()
