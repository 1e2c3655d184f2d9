"""Sensitivity speed: each method at its default size on the baseline scenario, all uncertainties.

For every method: sampling, calibration of every sample to 2021 (one vectorised call), one batch
integration, analysis (SALib's bootstrap included for Morris and Sobol), then the whole command
(``simulate.py sensitivity`` in-process, writing CSVs, samples.npz and figures to a temporary
folder). Targets (issue 6): Monte Carlo of 10,000 calibrated samples <= 5 s; Sobol' N = 1024 over
all uncertainties <= 10 s without the SALib analysis and <= 20 s in all.

Run by hand: ``python benchmarks/bench_sensitivity.py [--repeat K]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdsim import cli  # noqa: E402
from sdsim import sensitivity as sa  # noqa: E402
from sdsim.compiler import compile_model  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.results import output_names  # noqa: E402
from sdsim.scenario import load_scenario  # noqa: E402

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
    """Wall time of the whole command, in-process (model load, files, figures)."""
    with tempfile.TemporaryDirectory() as d:
        argv = ["sensitivity", str(SCENARIO), "--method", method, "--out", os.path.join(d, "r")]
        if not plots:
            argv.append("--no-plots")
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(argv)
        wall = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"{method}: exit code {code}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="repeat each measurement, keep the fastest")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    model = load_model(ROOT / "model")
    cm = compile_model(model)
    sc = load_scenario(SCENARIO, model)
    problem = sa.define_problem(model, sc)
    print(f"baseline scenario, {problem.d} uncertainties, seed {SEED}, {os.cpu_count()} CPUs\n")
    header = f"{'method':<7} {'size':>12} {'rows':>7} {'sample':>7} {'calib.':>7} {'simul.':>7} " \
             f"{'analyse':>8} {'w/o anal.':>9} {'total':>7} {'command':>8} {'+figures':>9}"
    print(header)
    print("-" * len(header))
    for method in sa.METHODS:
        runs = [library_path(cm, problem, sc, method) for _ in range(args.repeat)]
        r = min(runs, key=lambda x: x["sample"] + x["calibrate"] + x["simulate"] + x["analyse"])
        core = r["sample"] + r["calibrate"] + r["simulate"]
        cmd = min(command(method, False) for _ in range(args.repeat))
        fig = min(command(method, True) for _ in range(args.repeat))
        size = {"oat": "2 per input", "morris": "20 traj.", "sobol": "N = 1024", "mc": "10,000"}[method]
        print(f"{method:<7} {size:>12} {int(r['rows']):>7,} {r['sample']:>6.2f}s {r['calibrate']:>6.2f}s "
              f"{r['simulate']:>6.2f}s {r['analyse']:>7.2f}s {core:>8.2f}s {core + r['analyse']:>6.2f}s "
              f"{cmd:>7.2f}s {fig:>8.2f}s")
        if r["failed"]:
            print(f"        ({int(r['failed'])} samples without calibration solution)")
    print("\ncolumns: rows = experiments (each calibrated to 2021); w/o anal. = sample + calibrate + simulate;")
    print("total = w/o anal. + analyse (SALib bootstrap, quantiles, probabilities); command = the CLI without")
    print("figures (load, compile, CSV, npz, manifest); +figures = the CLI with its PNG figures.")
    print("targets: mc total <= 5 s; sobol w/o anal. <= 10 s and total <= 20 s.")


if __name__ == "__main__":
    main()
