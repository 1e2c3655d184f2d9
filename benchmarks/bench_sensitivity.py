"""Sensitivity speed: each method at its default size on the baseline scenario, all uncertainties.

For every method: sampling, calibration of every sample to 2021 (one vectorised call), one batch
integration, analysis (SALib's bootstrap included for Morris and Sobol), then the whole command
(``simulate.py sensitivity`` in-process, writing CSVs, samples.npz and figures to a temporary
folder). Targets (issue 6): Monte Carlo of 10,000 calibrated samples <= 5 s; Sobol' N = 1024 over
all uncertainties <= 10 s without the SALib analysis and <= 20 s in all.

Run by hand: ``python benchmarks/bench_sensitivity.py [--repeat K] [--methods sobol,mc]``. Prints figures; asserts nothing.
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
from sdsim import sensitivity as sa  # noqa: E402
from sdsim.results import output_names  # noqa: E402

SCENARIO = ROOT / "scenarios" / "baseline.yaml"
SEED = 12345


def library_path(cm, problem, sc, method: str) -> dict[str, float]:
    """Wall time of each stage of one analysis (seconds), without writing files."""
    n = sa.DEFAULT_SAMPLES[method]
    goal_year = max(g.year for g in cm.model.goals.values())
    out: dict[str, float] = {}
    t = time.perf_counter()
    design = {"oat": lambda: sa.sample_oat(problem), "morris": lambda: sa.sample_morris(problem, n, SEED),
              "sobol": lambda: sa.sample_sobol(problem, n, SEED), "mc": lambda: sa.sample_mc(problem, n, SEED)}[method]()
    out["sample"] = time.perf_counter() - t
    exp = sa.run_experiments(cm, problem, sc, design, end=sc.end if method == "mc" else goal_year)
    out["calibrate"] = exp.timings["calibrate_s"]
    out["simulate"] = exp.timings["simulate_s"]
    t = time.perf_counter()
    names = exp.outcome_names
    if method == "oat":
        sa.analyze_oat(problem, exp)
    elif method == "morris":
        sa.analyze_morris(problem, design, exp.outcomes, exp.ok, names, SEED)
    elif method == "sobol":
        sa.analyze_sobol(problem, exp.outcomes, exp.ok, names, SEED)
        sa.goal_probability(cm.model, exp, sa.sobol_base_rows(problem, exp.ok))
    else:
        sa.analyze_mc(problem, design.x, exp.outcomes, exp.ok, names)
        sa.goal_probability(cm.model, exp)
        sa.quantiles(exp.run, output_names(cm.model, exp.run))
    out["analyse"] = time.perf_counter() - t
    out["rows"] = design.x.shape[0]
    out["failed"] = exp.n_failed
    return out


def command(method: str, plots: bool) -> float:
    """Run the whole command in-process (model load, files, figures); time it with :func:`measure`."""
    with tempfile.TemporaryDirectory() as d:
        argv = ["sensitivity", str(SCENARIO), "--method", method, "--out", os.path.join(d, "r")]
        if not plots:
            argv.append("--no-plots")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(argv)
    if code != 0:
        raise SystemExit(f"{method}: exit code {code}")
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"repeats of each measurement (at least {REPEAT})")
    ap.add_argument("--methods", default=",".join(sa.METHODS), help="comma-separated methods (default: all)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    model, cm, sc, problem = baseline_problem(ROOT)
    print(machine())
    print(f"baseline scenario, {problem.d} uncertainties, seed {SEED}; each figure: best / median wall, median CPU "
          f"over {max(args.repeat, REPEAT)} repeats\n")
    for method in args.methods.split(","):
        size = {"oat": "2 per input", "morris": "20 trajectories", "sobol": "N = 1024", "mc": "10,000"}[method]
        stages: list[dict[str, float]] = []
        lib = measure(lambda m=method, st=stages: st.append(library_path(cm, problem, sc, m)), args.repeat)
        r = stages[-1]
        cmd = measure(lambda m=method: command(m, False), args.repeat)
        fig = measure(lambda m=method: command(m, True), args.repeat)
        print(f"{method} ({size}, {int(r['rows']):,} rows, {int(r['failed']):,} without 2021 solution):")
        med = {k: statistics.median(x[k] for x in stages) for k in ("sample", "calibrate", "simulate", "analyse")}
        print("    library stages (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
        print(f"    library total:          {lib.text()}")
        print(f"    command, no figures:    {cmd.text()}")
        print(f"    command, with figures:  {fig.text()}")


if __name__ == "__main__":
    main()
