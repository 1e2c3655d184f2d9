"""``simulate.py compare scenarios/*.yaml`` end to end (target <= 6 s wall) and where the time goes.

Run by hand: ``python benchmarks/bench_compare.py [--repeat N] [--lang en|zh]``. Prints figures;
asserts nothing. The end-to-end figure is a fresh ``python simulate.py compare`` process each time
(interpreter start, imports, model load, one batch, figures, files), as a user runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
TARGET_S = 6.0

from timing import machine, measure  # noqa: E402


def end_to_end(files: list[str], repeat: int, lang: str):
    """Wall and CPU times of ``repeat`` fresh compare processes (a :class:`timing.Timing`)."""
    with tempfile.TemporaryDirectory() as d:
        return measure(lambda: subprocess.run([sys.executable, str(ROOT / "simulate.py"), "compare", *files, "--out",
                                               f"{d}/cmp", "--lang", lang], check=True, cwd=ROOT,
                                              stdout=subprocess.DEVNULL), repeat)


def stages(files: list[str], lang: str) -> dict[str, float]:
    """Seconds per stage inside one process (imports first, then each stage once warm)."""
    out: dict[str, float] = {}
    t = time.perf_counter()
    from sdsim import plots
    from sdsim.commands.compare import main as compare_main
    from sdsim.compiler import compile_model
    from sdsim.goals import evaluate
    from sdsim.model import load_model
    from sdsim.runner import run_scenarios
    from sdsim.scenario import load_scenario

    out["imports (numpy, scipy, matplotlib, sdsim)"] = time.perf_counter() - t
    t = time.perf_counter()
    model = load_model(ROOT / "model")
    cm = compile_model(model)
    out["load + compile model"] = time.perf_counter() - t
    t = time.perf_counter()
    scs = [load_scenario(f, model) for f in files]
    out[f"load + validate {len(files)} scenarios"] = time.perf_counter() - t
    t = time.perf_counter()
    runs = run_scenarios(cm, scs)
    out["calibrate + integrate (one batch)"] = time.perf_counter() - t
    t = time.perf_counter()
    status = [evaluate(model, r.run) for r in runs]
    out["evaluate goals"] = time.perf_counter() - t
    lang = plots.setup_language(lang, warn=False)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        fig = plots.overlay_figure(model, [(r.scenario.label(lang), r.run) for r in runs], lang, "overlay")
        plots.save(fig, Path(d) / "overlay")
        out["overlay figure (draw + PNG)"] = time.perf_counter() - t
        t = time.perf_counter()
        fig = plots.goal_matrix(model, [(r.scenario.label(lang), s) for r, s in zip(runs, status, strict=True)],
                                lang, "matrix")
        plots.save(fig, Path(d) / "matrix")
        out["matrix figure (draw + PNG)"] = time.perf_counter() - t
        ns = argparse.Namespace(scenarios=files, out=f"{d}/cmp", set=[], lang=lang, svg=False, model=None)
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            compare_main(ns)
        out["whole command in a warm process"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--lang", choices=("en", "zh"), default="en")
    a = ap.parse_args()
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").glob("*.yaml"))
    print(machine())
    tm = end_to_end(files, a.repeat, a.lang)
    print(f"python simulate.py compare scenarios/*.yaml ({len(files)} scenarios, --lang {a.lang}), "
          f"{a.repeat} fresh processes:")
    print(f"  {tm.text()}, worst {max(tm.wall):.2f} s "
          f"(target <= {TARGET_S:g} s: {'met' if tm.median <= TARGET_S else 'NOT met'})")
    print("\nWhere the time goes (one process):")
    for k, v in stages(files, a.lang).items():
        print(f"  {k:<45} {v:6.3f} s")


if __name__ == "__main__":
    main()
