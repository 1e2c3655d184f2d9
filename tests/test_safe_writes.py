"""Nothing lost: result folders are recognised by a marker only this program writes, exports never overwrite a
user's file, ``--set`` variants get their own folder, concurrent runs are serialised by a lock, and temporary
folders of killed runs are cleaned (issue 10, data loss)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdsim.cli import main
from sdsim.results import TOOL, Staging, clean_stale
from tests.conftest import ROOT

BASELINE = str(ROOT / "scenarios" / "baseline.yaml")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders or files left anywhere below ``folder``."""
    return [str(p) for p in folder.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_compare_refuses_a_folder_with_someone_elses_manifest(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "manifest.json").write_text('{"name": "my package", "version": "1.0"}')
    (user / "thesis.tex").write_text("years of work")
    before = snapshot(user)
    assert main(["compare", BASELINE, "--out", str(user)]) == 2
    line = one_error_line(capsys)
    assert str(user) in line and "--out" in line and "not a result folder" in line
    assert snapshot(user) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("manifest", ['{"tool": "sdsim"}', '{"tool_version": "0.1.0"}', "[1, 2]", "not json",
                                      '{"tool": "other", "tool_version": "1"}'])
def test_weaker_markers_do_not_make_a_result_folder(tmp_path, capsys, manifest):
    out = tmp_path / "r"
    (out / "baseline").mkdir(parents=True)
    (out / "baseline" / "manifest.json").write_text(manifest)
    (out / "baseline" / "notes.txt").write_text("keep me")
    before = snapshot(out)
    assert main(["run", BASELINE, "--out", str(out), "--no-plots"]) == 2
    assert "not a result folder" in one_error_line(capsys)
    assert snapshot(out) == before


def test_a_result_folder_of_this_program_is_replaced_and_its_manifest_carries_the_marker(tmp_path):
    out = tmp_path / "r"
    assert main(["run", BASELINE, "--out", str(out), "--no-plots"]) == 0
    man = json.loads((out / "baseline" / "manifest.json").read_text(encoding="utf-8"))
    assert man["tool"] == TOOL and isinstance(man["tool_version"], str)
    (out / "baseline" / "extra.txt").write_text("old")
    assert main(["run", BASELINE, "--out", str(out), "--no-plots"]) == 0
    assert not (out / "baseline" / "extra.txt").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content", ["name: baseline\nlevers: {}\n", "<?xml version='1.0'?><xmile/>\n", ""])
def test_export_never_overwrites_a_users_file(tmp_path, capsys, content):
    target = tmp_path / "mine.yaml"
    target.write_text(content)
    assert main(["export", BASELINE, "--out", str(target)]) == 2
    line = one_error_line(capsys)
    assert str(target) in line and "--out" in line
    assert target.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


@pytest.mark.parametrize("argv", [
    # a model whose equations all have an XMILE form, so the test is about the write, not the translation
    ["--model", str(Path(__file__).parent / "fixtures" / "broken_models" / "healthy")],
    pytest.param([BASELINE], id="yubei"),
], ids=["toy", "yubei"])
def test_export_replaces_its_own_earlier_export(tmp_path, argv):
    target = tmp_path / "m.xmile"
    assert main(["export", *argv, "--out", str(target)]) == 0
    first = target.read_text(encoding="utf-8")
    assert "<vendor>sdsim</vendor>" in first
    target.write_text(first + "<!-- edited -->\n", encoding="utf-8")
    assert main(["export", *argv, "--out", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.xmile"]


def test_a_set_variant_gets_its_own_folder_and_shows_its_overrides(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", BASELINE, "--out", str(out)]) == 0
    plain = snapshot(out / "baseline")
    capsys.readouterr()
    assert main(["run", BASELINE, "--out", str(out), "--no-plots", "--set", "end=2030"]) == 0
    printed = capsys.readouterr().out
    assert snapshot(out / "baseline") == plain  # figures of the plain run kept, every byte
    variants = [p for p in out.iterdir() if p.name != "baseline"]
    assert [p.name for p in variants] == ["baseline+end=2030"]
    assert "--set end=2030" in printed
    man = json.loads((variants[0] / "manifest.json").read_text(encoding="utf-8"))
    assert man["scenario"]["command_line_overrides"] == ["end=2030"]
    assert "end=2030" in (variants[0] / "report.md").read_text(encoding="utf-8")


def test_compare_with_set_keeps_the_full_comparison(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", BASELINE]) == 0
    full = snapshot(tmp_path / "results" / "compare")
    assert main(["compare", BASELINE, "--set", "end=2030"]) == 0
    assert snapshot(tmp_path / "results" / "compare") == full
    variant = tmp_path / "results" / "compare+end=2030"
    assert "--set end=2030" in (variant / "report.md").read_text(encoding="utf-8")


def test_variant_names_are_safe_and_distinct():
    from sdsim.commands.common import variant_suffix

    a = variant_suffix(["x={step: {at: 2023, to: 2}}"])
    b = variant_suffix(["x=[step, at, 2023, to, 2]"])
    assert a != b and "/" not in a + b and " " not in a + b
    assert len(variant_suffix([f"p{i}=1" for i in range(100)])) < 100


def _spawn_run(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "simulate.py"), "run", BASELINE, "--out", str(out),
                             "--no-plots"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_concurrent_runs_on_the_same_out_all_succeed_and_leave_nothing_behind(tmp_path):
    out = tmp_path / "r"
    procs = [_spawn_run(out) for _ in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert sorted(p.name for p in out.iterdir()) == ["baseline"]
    man = json.loads((out / "baseline" / "manifest.json").read_text(encoding="utf-8"))
    assert set(man["files"]) == {p.name for p in (out / "baseline").iterdir()}


def test_temporary_folders_of_killed_runs_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID that no longer exists
    stale = out / f".baseline.tmp-{dead.pid}-abc123"
    stale.mkdir()
    (stale / "timeseries.csv").write_text("half")
    alive = out / f".baseline.tmp-{os.getpid()}-zzz"  # a live process's folder is left alone
    alive.mkdir()
    user = out / ".baseline.tmp-notes"  # not our pattern
    user.mkdir()
    assert main(["run", BASELINE, "--out", str(out), "--no-plots"]) == 0
    assert not stale.exists() and alive.exists() and user.exists()
    alive.rmdir()


def test_a_killed_run_leaves_nothing_that_the_next_run_does_not_clean(tmp_path):
    out = tmp_path / "r"
    p = _spawn_run(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert main(["run", BASELINE, "--out", str(out), "--no-plots"]) == 0
    assert leftovers(tmp_path) == []
    assert sorted(x.name for x in out.iterdir()) == ["baseline"]


def test_staging_aborts_cleanly_on_error(tmp_path):
    with pytest.raises(RuntimeError), Staging() as st:
        d = st.add(tmp_path / "a")
        (d / "x").write_text("1")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    assert clean_stale(tmp_path) == []


def test_a_temporary_file_of_a_killed_export_is_removed_by_the_next_export(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.xmile.tmp-{dead.pid}-q1w2e3"
    stale.write_text("<?xml half")
    assert main(["export", BASELINE, "--out", str(tmp_path / "m.xmile")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.xmile"]
