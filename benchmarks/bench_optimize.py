"""Policy-search speed: one generation (one batch) and the whole ``optimize`` command of issue 16.

1. One generation: ``--popsize`` candidates x (1 central + the calibrated samples of 500) runs to the
   goal year in one batch (:meth:`sdsim.optimize.Evaluator.evaluate`), median and best of ``--repeat``.
2. The done-when command, in-process: ``optimize scenarios/baseline.yaml --probability 0.8
   --samples 500 --seed 1`` writing to a temporary folder (target: <= 3 minutes on a 2-core machine),
   median and best wall time of ``--repeat-command`` runs, with the process CPU time beside it (the
   wall time depends on what else the machine runs; the load average is printed).

Run by hand: ``python benchmarks/bench_optimize.py [--repeat K] [--repeat-command K]``. Prints figures;
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdsim import cli  # noqa: E402
from sdsim import optimize as po  # noqa: E402
from sdsim.compiler import compile_model  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.scenario import load_scenario, policy_start  # noqa: E402

SCENARIO = ROOT / "scenarios" / "baseline.yaml"


def fmt(times: list[float]) -> str:
    return f"median {statistics.median(times):7.2f} s, best {min(times):7.2f} s ({len(times)} runs)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="repeats of the one-generation batch")
    ap.add_argument("--repeat-command", type=int, default=1, help="repeats of the whole command")
    ap.add_argument("--popsize", type=int, default=po.DEFAULT_POPSIZE)
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min)")
    model = load_model(ROOT / "model")
    cm = compile_model(model)
    sc = load_scenario(SCENARIO, model)
    start = policy_start(sc, model)
    decs, _ = po.decisions(cm, sc, start, 2026, "constant")
    t = time.perf_counter()
    ens = po.build_ensemble(cm, sc, 500, seed=1)
    print(f"ensemble: 500 samples drawn, {ens.n} calibrated, with the central set: {time.perf_counter() - t:.2f} s")
    ev = po.Evaluator(cm, sc, ens, decs, start, list(model.goals))
    rng = np.random.default_rng(0)
    x = ev.lower() + rng.random((a.popsize, len(decs))) * (ev.upper() - ev.lower())
    wall, cpu = [], []
    for _ in range(a.repeat):
        t, c = time.perf_counter(), time.process_time()
        ev.evaluate(x)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    runs = a.popsize * ens.m
    print(f"one generation ({a.popsize} candidates x {ens.m} runs = {runs:,} runs): wall {fmt(wall)}; "
          f"cpu median {statistics.median(cpu):.2f} s; {runs / statistics.median(wall):,.0f} runs/s")
    wall, cpu = [], []
    for _ in range(a.repeat_command):
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["optimize", str(SCENARIO), "--probability", "0.8", "--samples", "500", "--seed", "1",
                    "--out", str(Path(tmp) / "opt")]
            t, c = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = cli.main(argv)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            if code:
                raise SystemExit(f"optimize failed with exit code {code}")
    print(f"optimize baseline --probability 0.8 --samples 500 --seed 1: wall {fmt(wall)}; "
          f"cpu median {statistics.median(cpu):.1f} s (target: <= 180 s wall on 2 cores)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
