"""Bad input through the command line: one stderr line naming file, key and value, exit code 2, nothing written,
no temporary folder left (issue 10: hangs and resource exhaustion, tracebacks, silent wrong results)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sdsim import yamlio
from sdsim.cli import main
from tests.conftest import ROOT

BASELINE = ROOT / "scenarios" / "baseline.yaml"


def fails_cleanly(capsys, argv: list[str], tmp_path: Path, *fragments: str) -> str:
    """Run the CLI; assert exit 2, one stderr line holding every fragment, nothing written under tmp_path/out."""
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([*argv, "--out", str(out)] if "--out" not in argv else argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return lines[0]


def scenario(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------ hangs and resource exhaustion


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_and_names_the_cap(tmp_path, capsys):
    text = "name: x\ndescription: bomb\nlevers:\n" + "".join("  " + line + "\n" for line in alias_bomb().splitlines())
    assert len(text.encode()) < 2048
    p = scenario(tmp_path, text)
    fails_cleanly(capsys, ["run", str(p)], tmp_path, str(p), f"{yamlio.MAX_YAML_NODES:,}")


def test_aliases_are_checked_once_each():
    """Shared anchors below the cap load as shared objects (an aliased node is built and checked once)."""
    text = alias_bomb(levels=5, width=9)  # 9**5 = 59,049 expanded values, 45 distinct ones
    data = yamlio.load_text(text, "t.yaml")
    assert len(data["a4"]) == 9 and data["a4"][0] is data["a4"][1]


@pytest.mark.parametrize("text, fragment", [
    ("name: x\nlevers: &a {x: *a}\n", "refers to a mapping or list that contains it"),
    ("name: x\ndescription: " + "[" * 3000 + "]" * 3000 + "\n", f"more than {yamlio.MAX_YAML_DEPTH} levels"),
])
def test_self_references_and_deep_nesting_are_refused(tmp_path, capsys, text, fragment):
    p = scenario(tmp_path, text)
    fails_cleanly(capsys, ["run", str(p)], tmp_path, str(p), fragment)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_or_a_device_is_refused_without_reading(tmp_path, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    fails_cleanly(capsys, ["run", str(fifo)], tmp_path, str(fifo), "not a regular file")
    fails_cleanly(capsys, ["run", "/dev/zero"], tmp_path, "/dev/zero", "not a regular file")


def test_a_huge_file_is_refused_by_its_size(tmp_path, capsys):
    p = tmp_path / "big.yaml"
    with p.open("wb") as fh:
        fh.truncate(yamlio.MAX_YAML_BYTES + 1)  # sparse: no disk space used
    fails_cleanly(capsys, ["run", str(p)], tmp_path, str(p), "MiB")


@pytest.mark.parametrize("samples, method, fragment", [
    (10**8, "mc", "at most 10,000,000"),
    (2**23, "sobol", "GiB"),
])
def test_samples_are_capped_with_a_reason(tmp_path, capsys, samples, method, fragment):
    fails_cleanly(capsys, ["sensitivity", str(BASELINE), "--method", method, "--samples", str(samples)], tmp_path,
                  "--samples", f"{samples:,}", fragment)


def test_the_memory_estimate_refuses_what_the_machine_cannot_hold(model, monkeypatch):
    from sdsim import sensitivity as sa
    from sdsim.errors import InputError

    per_run = sa.bytes_per_run(model, 11)
    monkeypatch.setattr(sa, "machine_memory", lambda: 1000 * per_run)
    assert sa.check_samples(model, "mc", 1000, 3, 11) == 1000
    with pytest.raises(InputError, match="use at most about 1,000"):
        sa.check_samples(model, "mc", 1001, 3, 11)
    assert sa.MAX_SAMPLES >= 10**7


def test_a_large_parameter_file_loads_in_linear_time(tmp_path):
    """Key checks use sets: 20,000 entries are checked without comparing each with every other."""
    import yaml

    entries = {f"p{i}": {"value": i, "units": "dmnl"} for i in range(20_000)}
    text = yaml.safe_dump({"parameters": entries})
    data = yamlio.load_text(text, "big.yaml")
    seen = yamlio.check_keys(data["parameters"], list(entries), "big.yaml", "parameters")
    assert len(seen) == 20_000


def test_the_caps_are_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for cap in (f"{yamlio.MAX_YAML_BYTES // 2**20} MiB", f"{yamlio.MAX_YAML_NODES:,}", str(yamlio.MAX_YAML_DEPTH),
                "10,000,000"):
        assert cap in readme, cap


# ------------------------------------------------------------------------- one line, not a traceback


@pytest.mark.parametrize("text, key, value", [
    ("end: .nan\n", "end", "nan"),
    ("end: .inf\n", "end", "inf"),
    ("end: 2027.5\n", "end", "2027.5"),
    ("end: " + "9" * 400 + "\n", "end", "400 digits"),
    ("end: " + "9" * 5000 + "\n", "", "too many digits"),
    ("? [a, b]\n: 1\n", "", "plain name"),
    ("{[a]: 1}\n", "", "plain name"),
    ("name: x\nlevers: {? {a: 1} : 2}\n", "levers", "plain name"),
])
def test_bad_numbers_and_keys_give_one_line(tmp_path, capsys, text, key, value):
    p = scenario(tmp_path, text)
    fails_cleanly(capsys, ["run", str(p)], tmp_path, str(p), key, value)


def test_set_with_bad_numbers_gives_one_line(tmp_path, capsys):
    for assignment, value in (("end=.nan", "nan"), ("end=1e999", "inf"), ("dt=" + "1" * 500, "digits")):
        fails_cleanly(capsys, ["run", str(BASELINE), "--set", assignment], tmp_path, "--set", value)


def test_extends_to_an_arbitrary_file_does_not_echo_it(tmp_path, capsys):
    secret = tmp_path / "notes.txt"
    secret.write_text("my password is hunter2 and this is a long private note " * 5)
    p = scenario(tmp_path, f"name: x\nextends: {secret.name.replace('.txt', '.yaml')}\n")
    shutil.copy(secret, tmp_path / "notes.yaml")
    line = fails_cleanly(capsys, ["run", str(p)], tmp_path, "notes.yaml")
    assert "hunter2" not in line and len(line) < 400
