"""Honest timing for the benchmarks: best and median wall time and CPU time over >= 5 repeats.

The machine the figures come from may be shared: wall times are noisy, so every figure is printed
as best / median wall time with the median CPU time (this process and its children, so forked
workers and subprocesses count) and the load average at the time of measurement.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REPEAT = 5  # the least number of repeats of any benchmark figure


@dataclass
class Timing:
    """Wall and CPU seconds of each repeat."""

    wall: list[float]
    cpu: list[float]
    load: float  # 1-minute load average after the last repeat
    result: Any = None  # the last call's return value

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def text(self, unit: str = "s") -> str:
        """'best 1.23 s, median 1.31 s, CPU 1.20 s (load 2.1)'; ``unit`` s or ms."""
        f = 1000.0 if unit == "ms" else 1.0
        d = 1 if unit == "ms" else 3
        return (f"best {self.best * f:.{d}f} {unit}, median {self.median * f:.{d}f} {unit}, "
                f"CPU {self.cpu_median * f:.{d}f} {unit} (load {self.load:.1f})")

    def rate(self, n: int, what: str = "runs/s") -> str:
        """Throughput for ``n`` items per call: from the best and the median wall time, and per CPU second."""
        return (f"best {n / self.best:,.0f}, median {n / self.median:,.0f} {what}; "
                f"{n / self.cpu_median:,.0f} per CPU-second (load {self.load:.1f})")


def cpu_now() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def measure(fn: Callable[[], Any], repeat: int = REPEAT, warmup: bool = False) -> Timing:
    """Call ``fn`` ``repeat`` times (at least :data:`REPEAT`), recording wall and CPU time of each call."""
    repeat = max(repeat, REPEAT)
    if warmup:
        fn()
    wall, cpu = [], []
    result = None
    for _ in range(repeat):
        c, t = cpu_now(), time.perf_counter()
        result = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(cpu_now() - c)
    return Timing(wall, cpu, load_average(), result)


def machine() -> str:
    """One line on the machine: CPU model, cores, load."""
    name = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="ascii", errors="replace"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    la = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{name}, {avail} cores available; load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"


def baseline_problem(root: Any) -> tuple[Any, Any, Any, Any]:
    """(model, compiled model, baseline scenario, uncertainty problem) of the repository at ``root``: the set-up
    every ensemble benchmark shares."""
    from sdsim import sensitivity as sa
    from sdsim.compiler import compile_model
    from sdsim.model import load_model
    from sdsim.scenario import load_scenario

    model = load_model(root / "model")
    cm = compile_model(model)
    sc = load_scenario(root / "scenarios" / "baseline.yaml", model)
    return model, cm, sc, sa.define_problem(model, sc)
