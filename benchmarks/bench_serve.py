"""The interactive page's API (``simulate.py serve``) without a browser: where a slider move's time goes.

Run by hand: ``python benchmarks/bench_serve.py [--repeat N] [--samples N]``. Prints figures; asserts
nothing. Measures the service in-process (no HTTP): the first calibration of the ensemble of a parameter
set, then lever moves (the central run with its cached calibration, and the ensemble re-integrated).
The browser's figures (request, JSON, drawing) come from ``tests/test_serve_browser.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from sdsim.web.service import Service

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    t = time.perf_counter()
    svc = Service(ROOT / "model", [ROOT / "scenarios"], samples=args.samples)
    print(f"load and compile the model: {1000 * (time.perf_counter() - t):.0f} ms")
    t = time.perf_counter()
    svc.run({"scenario": "baseline", "ensemble": False})
    print(f"first central run (calibration + baseline): {1000 * (time.perf_counter() - t):.0f} ms")
    t = time.perf_counter()
    out = svc.run({"scenario": "baseline"})
    print(f"first ensemble ({args.samples} samples calibrated once, {out['ensemble']['n_ok']} reproduce "
          f"the calibration year): {1000 * (time.perf_counter() - t):.0f} ms")
    central, ensemble = [], []
    for i in range(args.repeat):
        body = {"scenario": "baseline", "levers": {"ht_investment": 5 * i, "gdp_growth": 0.03 + 0.002 * i}}
        t = time.perf_counter()
        svc.run({**body, "ensemble": False})
        central.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        svc.run(body)
        ensemble.append(1000 * (time.perf_counter() - t))
    for name, v in (("lever move, central run", central), ("lever move, central run + ensemble", ensemble)):
        print(f"{name}: median {statistics.median(v):.1f} ms, max {max(v):.1f} ms ({args.repeat} moves)")


if __name__ == "__main__":
    main()
