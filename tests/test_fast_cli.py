"""A fast command line: nothing heavy is imported for --help, run --no-plots or describe's text, and the
outputs are the same whichever way they are produced."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import special

from sdsim.cli import main
from sdsim.goals import poisson_sf
from tests.conftest import ROOT

HEAVY = ("matplotlib", "scipy.stats", "scipy.special", "SALib", "pandas")


def imported_after(argv: list[str], tmp_path) -> set[str]:
    """Heavy modules in sys.modules after running the command line in a fresh interpreter."""
    code = ("import sys, contextlib, io\nfrom sdsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["run", "scenarios/baseline.yaml", "--no-plots", "--out", "{tmp}"],
                                  ["describe"]])
def test_light_commands_import_nothing_heavy(argv, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert imported_after(argv, tmp_path) == set()


def test_poisson_tail_matches_scipy():
    mu = np.concatenate([np.linspace(0, 40, 4001), np.geomspace(1e-9, 1, 200), [np.nan]])
    assert (poisson_sf(-1, mu[:-1]) == 1.0).all()  # a threshold <= 0 always passes (scipy's pdtrc gives NaN)
    for k in range(0, 15):
        ours, ref = poisson_sf(k, mu), special.pdtrc(k, mu)
        assert np.isnan(ours[-1])
        np.testing.assert_allclose(ours[:-1], ref[:-1], rtol=1e-12, atol=1e-300)


def test_run_outputs_are_the_same_with_and_without_figures(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(ROOT / "scenarios/baseline.yaml"), "--out", str(a)]) == 0
    assert main(["run", str(ROOT / "scenarios/baseline.yaml"), "--out", str(b), "--no-plots"]) == 0
    for name in ("timeseries.csv", "variables.csv", "goals.csv"):
        assert (a / "baseline" / name).read_bytes() == (b / "baseline" / name).read_bytes()
