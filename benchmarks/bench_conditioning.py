"""Conditioning speed: 10,000 Monte Carlo samples, each re-calibrated to 2021, then conditioned on history.

Stages timed: sampling, per-sample calibration (one vectorised call), one batch integration,
conditioning (model values at every observation, implausibilities, history matching), prior and
conditioned goal probabilities and quantiles of every output, and the whole command without figures
(``simulate.py sensitivity --method mc --no-plots`` in-process, writing every CSV to a temporary
folder). Target (issue 13): <= 3 s without figures on a quiet 2-core machine.

Run by hand: ``python benchmarks/bench_conditioning.py [--samples N] [--repeat K] [--history MODE]``.
Prints the best and median wall time of each stage, and best / median wall and median CPU time of the
library path and of the command over at least 5 repeats (benchmarks/timing.py); asserts nothing.
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
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import REPEAT, baseline_problem, machine, measure  # noqa: E402

from sdsim import cli  # noqa: E402
from sdsim import conditioning as cd  # noqa: E402
from sdsim import sensitivity as sa  # noqa: E402
from sdsim.results import output_names  # noqa: E402

SCENARIO = ROOT / "scenarios" / "baseline.yaml"
SEED = 1


def library_path(cm, problem, sc, n: int, mode: str) -> dict[str, float]:
    """Wall time of each stage (seconds), without writing files."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    design = sa.sample_mc(problem, n, SEED)
    out["sample"] = time.perf_counter() - t0
    exp = sa.run_experiments(cm, problem, sc, design, end=sc.end)
    out["calibrate"] = exp.timings["calibrate_s"]
    out["simulate"] = exp.timings["simulate_s"]
    t = time.perf_counter()
    run, _ = cd.history_experiments(cm, problem, sc, design, exp)
    cond = cd.condition(cm.model, run, mode)
    out["condition"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = cd.goal_rows(exp, sa.goal_probability(cm.model, exp), cond)
    names = output_names(cm.model, exp.run)
    sa.quantiles(exp.run, names)
    if cond.active:
        cd.conditioned_quantiles(exp.run, names, cond, sa.QUANTILES)
        cd.lessons(problem, design.x[exp.ok], cond)
    out["probabilities+quantiles"] = time.perf_counter() - t
    out["library total"] = time.perf_counter() - t0
    assert rows
    return out


def command(n: int, mode: str) -> float:
    """Wall time of the whole command without figures (seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["sensitivity", str(SCENARIO), "--method", "mc", "--samples", str(n), "--seed", str(SEED),
                "--history", mode, "--no-plots", "--out", os.path.join(tmp, "out")]
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
        dt = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"command failed with exit code {code}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"repeats (at least {REPEAT})")
    ap.add_argument("--history", choices=cd.MODES, default="match")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(machine())
    model, cm, sc, problem = baseline_problem(ROOT)
    library_path(cm, problem, sc, 200, args.history)  # warm-up (imports, caches)
    runs: list[dict[str, float]] = []
    lib = measure(lambda: runs.append(library_path(cm, problem, sc, args.samples, args.history)), args.repeat)
    cmd = measure(lambda: command(args.samples, args.history), args.repeat)
    print(f"Conditioning benchmark: {args.samples:,} samples, --history {args.history}, {len(runs)} repeats, "
          f"{os.cpu_count()} CPUs, {problem.d} uncertainties")
    print(f"{'stage':<26} {'best s':>8} {'median s':>9}")
    for key in runs[0]:
        vals = [r[key] for r in runs]
        print(f"{key:<26} {min(vals):>8.3f} {statistics.median(vals):>9.3f}")
    print(f"library path: {lib.text()}")
    print(f"command, no figures: {cmd.text()}   (target <= 3 s)")


if __name__ == "__main__":
    main()
