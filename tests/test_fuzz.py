"""Hypothesis fuzz of scenario files and `--set` (issue 10): whatever the input, the CLI either runs (exit 0, a
result folder with its manifest) or prints exactly one line and exits 2 with nothing written and no temporary
folder left. Bounded: a fixed number of examples (SDSIM_FUZZ_EXAMPLES, default 30) and derandomized, so CI time
stays bounded and repeatable; set SDSIM_FUZZ_RANDOM=1 to explore with fresh random examples."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdsim.cli import main
from sdsim.model import load_model
from sdsim.scenario import KEYS, SET_KEYS
from tests.conftest import MODEL_DIR, ROOT

BASELINE = str(ROOT / "scenarios" / "baseline.yaml")
MODEL = load_model(MODEL_DIR)
LEVERS = sorted(MODEL.levers)
PARAMS = sorted(MODEL.constants)
EXAMPLES = int(os.environ.get("SDSIM_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=os.environ.get("SDSIM_FUZZ_RANDOM") is None, database=None)

numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2021, 2022, 2026, 2030, 2035, 2036, 1e-300, 1e300, 10**400, -1, 0.5, 1 / 32]),
)
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=12),
                    st.sampled_from(["1/16", "1/3", "euler", "rk4", "lots", "$x^", "--", "\ufb01ll_time"]))
years = st.one_of(st.integers(2015, 2040), numbers)
time_functions = st.one_of(
    numbers,
    st.fixed_dictionaries({"step": st.fixed_dictionaries({"at": years, "to": numbers})}),
    st.fixed_dictionaries({"ramp": st.fixed_dictionaries(
        {"from": years, "to": years, "start": numbers, "end": numbers})}),
    st.fixed_dictionaries({"pulse": st.fixed_dictionaries({"at": years, "size": numbers})}),
    st.fixed_dictionaries({"table": st.dictionaries(years, numbers, max_size=4)}),
    st.dictionaries(st.sampled_from(["step", "ramp", "pulse", "table", "bogus"]), scalars, max_size=2),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
lever_maps = st.dictionaries(st.one_of(st.sampled_from(LEVERS), st.text(max_size=8)), time_functions, max_size=3)
param_maps = st.dictionaries(st.one_of(st.sampled_from(PARAMS + LEVERS), st.text(max_size=8)), numbers, max_size=3)
scenarios = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.just("fz"), scalars), "title": st.one_of(scalars, st.fixed_dictionaries({"en": scalars})),
    "description": scalars, "start": years, "end": years,
    "dt": st.one_of(st.sampled_from([0.25, 1 / 16, 1 / 32, "1/64", 0.1]), scalars), "method": scalars,
    "recalibrate": scalars, "levers": st.one_of(lever_maps, values), "parameters": st.one_of(param_maps, values),
    "extends": st.sampled_from(["baseline", BASELINE, "nope", "fz", "/dev/zero"]),
}).flatmap(lambda d: st.dictionaries(st.sampled_from([*KEYS, "levres", "x"]), values, max_size=1).map(
    lambda extra: {**d, **extra}))
plausible = st.fixed_dictionaries({"name": st.just("fz")}, optional={
    "end": st.integers(2026, 2035), "method": st.sampled_from(["euler", "rk4"]),
    "dt": st.sampled_from(["1/8", "1/16", "1/32"]),
    "levers": st.dictionaries(st.sampled_from(LEVERS), st.one_of(
        st.floats(0, 2), st.fixed_dictionaries({"step": st.fixed_dictionaries({"at": st.integers(2022, 2030),
                                                                              "to": st.floats(0, 2)})}),
        st.fixed_dictionaries({"table": st.dictionaries(st.integers(2022, 2030), st.floats(0, 2), min_size=1,
                                                        max_size=3)})), max_size=3),
    "parameters": st.dictionaries(st.sampled_from(PARAMS), st.floats(0, 1), max_size=2),
})
set_values = st.one_of(
    numbers.map(repr), scalars.map(str), values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
    time_functions.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()), st.text(max_size=20),
)


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def check_outcome(code: int, err: str, out: Path) -> None:
    """Exit 0 with one result folder and its manifest, or exit 2 with one line and nothing written."""
    assert code in (0, 2), (code, err)
    leftovers = [p.name for p in out.parent.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
        assert not out.exists()
    else:
        folders = list(out.iterdir())
        assert len(folders) == 1 and (folders[0] / "manifest.json").is_file()


def run_file(text: str) -> None:
    d = Path(tempfile.mkdtemp(prefix="sdsim-fuzz-"))
    try:
        shutil.copy(BASELINE, d / "baseline.yaml")
        f = d / "fz.yaml"
        f.write_text(text, encoding="utf-8")
        code, err = run_cli(["run", str(f), "--out", str(d / "out"), "--no-plots"])
        check_outcome(code, err, d / "out")
    finally:
        shutil.rmtree(d)


@FUZZ
@given(data=scenarios)
def test_any_scenario_file_runs_or_gives_one_line(data):
    run_file(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_as_a_scenario_runs_or_gives_one_line(text):
    run_file(text)


@FUZZ
@given(data=plausible)
def test_plausible_scenarios_run_or_give_one_line(data):
    """Values near the model's ranges reach calibration and integration (exit 0, or one line such as 'unstable')."""
    run_file(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(name=st.one_of(st.sampled_from([*LEVERS, *PARAMS, *SET_KEYS]), st.text(max_size=10)), value=set_values,
       sep=st.sampled_from(["=", "==", " = ", ""]))
def test_any_set_runs_or_gives_one_line(name, value, sep):
    d = Path(tempfile.mkdtemp(prefix="sdsim-fuzz-"))
    try:
        code, err = run_cli(["run", BASELINE, "--set", f"{name}{sep}{value}", "--out", str(d / "out"), "--no-plots"])
        check_outcome(code, err, d / "out")
    finally:
        shutil.rmtree(d)
