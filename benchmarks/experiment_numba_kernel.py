"""Feasibility experiment (not used by the product): the model's generated scalar equations as one Numba kernel.

Turns the scalar code the compiler generates for single runs (``build_scalar``: the same equations over Python
floats) into a Numba function that loops over runs and steps, integrates a batch of baseline runs 2020-2030 at
dt 1/32 with it and with the numpy engine, and prints both speeds and their largest difference in the final
stocks. Text substitution on the generated source, written for the Yubei model (one fixed delay, one table
shape, Euler, no records): evidence for a compiled backend, not one. Needs ``pip install numba``; prints a note
and exits when it is missing. Run by hand: ``python benchmarks/experiment_numba_kernel.py [--n N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdsim.compiler import compile_model  # noqa: E402
from sdsim.engine import TimeGrid, lever_schedules, series_values, simulate  # noqa: E402
from sdsim.model import load_model  # noqa: E402
from sdsim.runner import calibrated_params, lever_baseline, parameter_batch  # noqa: E402

HEADER = '''import math
import numpy as np
from numba import njit


@njit(inline="always")
def _interp(x, xs, ys):
    if x <= xs[0]:
        return ys[0]
    m = xs.shape[0]
    if x >= xs[m - 1]:
        return ys[m - 1]
    j = 0
    while xs[j + 1] <= x:
        j += 1
    return (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]) * (x - xs[j]) + ys[j]


@njit(inline="always")
def _step_s(t, h, s):
    return h if t >= s else 0.0


@njit
def kernel(PA, LA, SRA, FZA, S0, TX, TY, n_steps, dt, start, M, B0, out):
    n = PA.shape[1]
    F = np.empty(256)
    D = np.empty(S0.shape[0])
    S = np.empty(S0.shape[0])
    buf = np.empty(M)
    for i in range(n):
'''


def kernel_source(source: str) -> tuple[str, dict[str, list[str]]]:
    """The kernel's source and the names it reads (params, levers, series, frozen values), in order."""
    a = source.index("def build_scalar(")
    b = source.index("    def rates(", a)
    c = source.index("    def rates_rec(", b)
    names: dict[str, list[str]] = {"P": [], "LV": [], "SR": [], "FZ": []}
    lines = [HEADER.rstrip("\n")]
    pad = " " * 8
    for ln in source[a:b].splitlines()[1:]:
        s = ln.strip()
        m = re.match(r"(\w+) = (P|LV|SR|FZ)\['(\w+)'\]$", s)
        if m:
            kind = m.group(2)
            if kind in ("P", "FZ"):
                arr = "PA" if kind == "P" else "FZA"
                lines.append(f"{pad}{m.group(1)} = {arr}[{len(names[kind])}, i]")
            names[kind].append(m.group(3))
        elif s and not s.startswith(("M_", "B_", "H_")):
            lines.append(pad + s.replace("_m.", "math."))
    lines += [f"{pad}S[:] = S0[:, i]", f"{pad}buf[:] = B0[i]", f"{pad}H0 = B0[i]", f"{pad}for k in range(n_steps):",
              f"{pad}    time = start + k * dt", f"{pad}    tk = time"]
    lev = {f"L_{k}": j for j, k in enumerate(names["LV"])}
    ser = {f"R_{k}": j for j, k in enumerate(names["SR"])}
    for ln in source[b:c].splitlines()[1:]:
        s = ln.strip()
        if not s or s in ("if tk is None:", "tk = time", "if first:"):
            continue
        if s.startswith("H_") and "= B_" in s:
            s = "H0 = buf[k % M]"
        elif s.startswith("B_"):
            s = "buf[k % M] = " + s.split("=", 1)[1].strip().removeprefix("float(").removesuffix(")")
        s = re.sub(r"H_\w+\[0\]", "H0", s).replace("_m.", "math.").replace("_interp_s(", "_interp(")
        s = re.sub(r"(L_\w+)\[k\]", lambda m: f"LA[{lev[m.group(1)]}, k]", s)
        s = re.sub(r"(R_\w+)\[k\]", lambda m: f"SRA[{ser[m.group(1)]}, k]", s)
        s = re.sub(r"_TX_\w+", "TX", re.sub(r"_TY_\w+", "TY", s))
        lines.append(f"{pad}    {s}")
    lines += [f"{pad}    for j in range(S.shape[0]):", f"{pad}        S[j] += dt * D[j]", f"{pad}out[:, i] = S"]
    return "\n".join(lines) + "\n", names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="runs (default 100,000)")
    a = ap.parse_args()
    if importlib.util.find_spec("numba") is None:
        print("numba is not installed (pip install numba): nothing measured")
        return
    cm = compile_model(load_model(ROOT / "model"))
    src, names = kernel_source(cm.source)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "yubei_kernel.py"
        path.write_text(src, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("yubei_kernel", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    grid = TimeGrid(2020, 2030, 1 / 32)
    base, _ = calibrated_params(cm, parameter_batch(cm, [{}]), grid.dt, "euler")
    levers = lever_schedules(cm, grid, lever_baseline(cm, base))
    sr, _ = series_values(cm, grid, levers)
    s0, frozen = cm.init({k: np.float64(v) for k, v in base.items()}, levers, sr, float(grid.start))
    n = a.n

    def column(v: object) -> np.ndarray:
        return np.full(n, float(np.asarray(v).reshape(-1)[0]))

    args = (np.array([column(base[p]) for p in names["P"]]), np.array([levers[k][:, 0] for k in names["LV"]]),
            np.array([sr[k] for k in names["SR"]]).reshape(len(names["SR"]), -1),
            np.array([column(frozen[k]) for k in names["FZ"]]).reshape(len(names["FZ"]), n),
            np.array([column(s0[s]) for s in cm.stocks]), np.array(cm.model.tables["saturation"].x, float),
            np.array(cm.model.tables["saturation"].y, float), grid.n_steps, grid.dt, float(grid.start),
            round(3 / grid.dt), column(frozen["hte_expiry__delay_fixed"]))
    out = np.empty((len(cm.stocks), n))
    t = time.perf_counter()
    mod.kernel(*[x[..., :2] if isinstance(x, np.ndarray) and x.shape[-1] == n else x for x in args], out[:, :2])
    print(f"numba compile: {time.perf_counter() - t:.2f} s")
    tk = min(_timed(lambda: mod.kernel(*args, out))[0] for _ in range(3))
    runs = [_timed(lambda: simulate(cm, base, levers, grid, "euler", n=n, workers=1)) for _ in range(3)]
    tn = min(t for t, _ in runs)
    ref = runs[0][1].stocks[-1]
    rel = np.abs(out - ref) / np.maximum(np.abs(ref), 1e-300)
    steps = n * grid.n_steps
    print(f"{n:,} baseline runs 2020-2030, dt 1/32, one core, best of 3: numba kernel {tk:.3f} s "
          f"({steps / tk / 1e6:.2f} M run-steps/s), numpy engine {tn:.3f} s ({steps / tn / 1e6:.2f} M run-steps/s); "
          f"largest relative difference in the 2030 stocks {rel.max():.1e}")

def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


if __name__ == "__main__":
    main()
