"""Policy-search speed: one generation (one batch) and the whole ``optimize`` command of issue 16.

1. The ensemble: ``--samples`` uncertainty samples and the central set, calibrated.
2. One generation: ``--popsize`` candidates x (1 central + the calibrated samples) runs to the goal
   year in one batch (:meth:`sdsim.optimize.Evaluator.evaluate`).
3. The done-when command, in-process: ``optimize scenarios/baseline.yaml --probability 0.8
   --samples 500 --seed 1`` writing to a temporary folder (target: <= 3 minutes on a 2-core machine).

Every figure is best / median wall time and median CPU time (this process and its workers) over at
least 5 repeats, with the load average (benchmarks/timing.py). ``--workers N`` sets the processes.
Run by hand: ``python benchmarks/bench_optimize.py [--repeat K] [--samples N] [--maxiter G] [--workers N]``;
small options
(``--samples 60 --maxiter 2 --popsize 4``; history matching needs 30 samples kept) run it quickly.
Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import REPEAT, machine, measure  # noqa: E402

from sdsim import cli  # noqa: E402
from sdsim import optimize as po  # noqa: E402
from sdsim.compiler import compile_model  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.scenario import load_scenario, policy_start  # noqa: E402

SCENARIO = ROOT / "scenarios" / "baseline.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"repeats of every figure (at least {REPEAT})")
    ap.add_argument("--popsize", type=int, default=po.DEFAULT_POPSIZE)
    ap.add_argument("--samples", type=int, default=500, help="uncertainty samples (default 500)")
    ap.add_argument("--maxiter", type=int, default=po.DEFAULT_MAXITER, help="generations of the command")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: every available core)")
    a = ap.parse_args()
    print(machine())
    model = load_model(ROOT / "model")
    cm = compile_model(model)
    sc = load_scenario(SCENARIO, model)
    start = policy_start(sc, model)
    decs, _ = po.decisions(cm, sc, start, 2026, "constant")
    tm = measure(lambda: po.build_ensemble(cm, sc, a.samples, seed=1, workers=a.workers), a.repeat)
    ens = tm.result
    print(f"ensemble: {a.samples} samples drawn, {ens.n} calibrated, with the central set: {tm.text()}")
    ev = po.Evaluator(cm, sc, ens, decs, start, list(model.goals), workers=a.workers)
    rng = np.random.default_rng(0)
    x = ev.lower() + rng.random((a.popsize, len(decs))) * (ev.upper() - ev.lower())
    tm = measure(lambda: ev.evaluate(x), a.repeat)
    runs = a.popsize * ens.m
    print(f"one generation ({a.popsize} candidates x {ens.m} runs = {runs:,} runs): {tm.text()}; {tm.rate(runs)}")

    def command() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["optimize", str(SCENARIO), "--probability", "0.8", "--samples", str(a.samples), "--seed", "1",
                    "--maxiter", str(a.maxiter), "--out", str(Path(tmp) / "opt")]
            if a.workers:
                argv += ["--workers", str(a.workers)]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = cli.main(argv)
            if code:
                raise SystemExit(f"optimize failed with exit code {code}")

    tm = measure(command, a.repeat)
    print(f"optimize baseline --probability 0.8 --samples {a.samples} --seed 1 --maxiter {a.maxiter}: {tm.text()} "
          "(target: <= 180 s wall on 2 cores at the defaults)")


if __name__ == "__main__":
    main()
