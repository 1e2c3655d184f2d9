"""The interactive page's API (``simulate.py serve``) without a browser: where a slider move's time goes.

Run by hand: ``python benchmarks/bench_serve.py [--repeat N] [--samples N]``. Prints figures; asserts
nothing. Measures the service in-process (no HTTP): the first calibration of the ensemble of a parameter
set (a fresh service each repeat), then lever moves (the central run with its cached calibration, and the
ensemble re-integrated). Every figure is best / median wall time and median CPU time over at least 5
repeats, with the load average (benchmarks/timing.py). The browser's figures (request, JSON, drawing)
come from ``tests/test_serve_browser.py``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import REPEAT, machine, measure  # noqa: E402


def main() -> None:
    from sdsim.web.service import Service

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help=f"lever moves (at least {REPEAT})")
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    print(machine())
    tm = measure(lambda: Service(ROOT / "model", [ROOT / "scenarios"], samples=args.samples))
    print(f"load and compile the model: {tm.text('ms')}")

    def fresh(ensemble: bool) -> dict:  # what is timed: the first request of a fresh service
        svc = Service(ROOT / "model", [ROOT / "scenarios"], samples=args.samples)
        if ensemble:
            svc.run({"scenario": "baseline", "ensemble": False})
        return svc

    def timed_first(ensemble: bool) -> None:
        svc = fresh(ensemble)
        t = time.perf_counter()
        svc.run({"scenario": "baseline", "ensemble": ensemble})
        spent.append(time.perf_counter() - t)

    for ensemble, what in ((False, "first central run (calibration + baseline)"),
                           (True, f"first ensemble ({args.samples} samples calibrated once)")):
        spent: list[float] = []
        tm = measure(lambda e=ensemble: timed_first(e))
        spent.sort()
        print(f"{what}: best {1e3 * spent[0]:.1f} ms, median {1e3 * spent[len(spent) // 2]:.1f} ms "
              f"(request only; with the service's set-up: {tm.text('ms')})")
    svc = Service(ROOT / "model", [ROOT / "scenarios"], samples=args.samples)
    out = svc.run({"scenario": "baseline"})
    print(f"ensemble: {out['ensemble']['n_ok']} of {args.samples} samples reproduce the calibration year")
    moves = itertools.count()

    def body() -> dict:
        i = next(moves)
        return {"scenario": "baseline", "levers": {"ht_investment": 5 * (i % 20), "gdp_growth": 0.03 + 0.002 * (i % 20)}}

    tm = measure(lambda: svc.run({**body(), "ensemble": False}), args.repeat)
    print(f"lever move, central run: {tm.text('ms')}")
    tm = measure(lambda: svc.run(body()), args.repeat)
    print(f"lever move, central run + ensemble: {tm.text('ms')}")


if __name__ == "__main__":
    main()
