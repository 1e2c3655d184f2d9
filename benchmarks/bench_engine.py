"""Engine speed: one run with calibration, runs per second at large n, batch calibration.

Run by hand: ``python benchmarks/bench_engine.py``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdsim.compiler import compile_model  # noqa: E402
from sdsim.engine import TimeGrid, lever_schedules, simulate  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.runner import calibrated_params, lever_baseline, parameter_batch, run_scenarios  # noqa: E402
from sdsim.scenario import load_scenario  # noqa: E402


def best(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def sampled_sets(model, n: int, seed: int = 0) -> list[dict[str, float]]:
    """n parameter sets drawn uniformly from the documented ranges of the assumptions."""
    rng = np.random.default_rng(seed)
    names = [k for k, p in model.params.items() if p.uncertain and not p.is_lever]
    lo = np.array([model.params[k].range[0] for k in names])
    hi = np.array([model.params[k].range[1] for k in names])
    x = rng.uniform(lo, hi, size=(n, len(names)))
    return names, x


def main() -> None:
    model = load_model(ROOT / "model")
    t = time.perf_counter()
    cm = compile_model(model)
    print(f"compile model:                          {1000 * (time.perf_counter() - t):8.1f} ms")
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", model)
    sc.end = 2026
    for dt in sorted({1 / 16, model.dt}, reverse=True):
        sc.dt = dt
        one = best(lambda: run_scenarios(cm, [sc]), 20)
        print(f"one run incl. calibration (n=1, dt 1/{round(1 / dt)}): {1000 * one:6.1f} ms   (target <= 25 ms)")

    grid = TimeGrid(2020, 2026, 1 / 16)
    base, _ = calibrated_params(cm, parameter_batch(cm, [{}]), grid.dt, "euler")
    for n in (1_000, 10_000, 100_000):
        params = {k: (np.full(n, v) if k == "tech_attrition" else v) for k, v in base.items()}
        levers = lever_schedules(cm, grid, lever_baseline(cm, params))
        sec = best(lambda p=params, lv=levers, n=n: simulate(cm, p, lv, grid, "euler", n=n), 3)
        print(f"model-runs/s at n={n:>7,} (2020-2026):  {n / sec:12,.0f}   ({sec:.3f} s)"
              + ("   (target >= 100,000)" if n == 100_000 else ""))

    names, x = sampled_sets(model, 10_000)
    params = dict(parameter_batch(cm, [{}]))
    for j, k in enumerate(names):
        params[k] = x[:, j]
    res = None

    def cal(dt: float) -> None:
        nonlocal res
        res = calibrated_params(cm, params, dt, "euler", strict=False)[1]

    for dt in sorted({1 / 16, model.dt}, reverse=True):
        sec = best(lambda dt=dt: cal(dt), 3)
        print(f"calibrate 10,000 sampled sets (dt 1/{round(1 / dt)}): {sec:6.2f} s    (target <= 2 s; "
              f"{res.n_failed} without solution, {res.iterations} iterations)")
    grid = TimeGrid(2020, 2026, model.dt)
    params = {k: (np.full(100_000, v) if k == "tech_attrition" else v) for k, v in base.items()}
    levers = lever_schedules(cm, grid, lever_baseline(cm, params))
    sec = best(lambda: simulate(cm, params, levers, grid, "euler", n=100_000), 3)
    print(f"model-runs/s at n=100,000 at the model's dt 1/{round(1 / model.dt)}: {100_000 / sec:10,.0f}")

    t = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "simulate.py"), "run", "scenarios/baseline.yaml", "--out",
                    str(ROOT / "results")], cwd=ROOT, check=True, capture_output=True)
    print(f"simulate.py run scenarios/baseline.yaml: {time.perf_counter() - t:8.2f} s    (target <= 4 s wall)")


if __name__ == "__main__":
    main()
