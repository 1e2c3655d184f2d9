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
    add_out = "--out" not in argv and argv[0] in ("run", "compare", "sensitivity")
    code = main([*argv, "--out", str(out)] if add_out else argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err
    for f in fragments:
        assert any(alt in lines[0] for alt in f.split("|")), (f, lines[0])
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
    # our depth cap, or (PyYAML >= 6.0.4) the parser's own nesting limit: either way one line and exit 2
    ("name: x\ndescription: " + "[" * 3000 + "]" * 3000 + "\n", "levels|nesting depth"),
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
    entries = {f"p{i}": {"value": i, "units": "dmnl"} for i in range(20_000)}
    text = "parameters:\n" + "".join(f"  p{i}:\n    value: {i}\n    units: dmnl\n" for i in range(20_000))
    data = yamlio.load_text(text, "big.yaml")
    assert data["parameters"] == entries
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


# --------------------------------------------------------------------------------------- write errors


def test_a_write_error_midway_gives_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    from sdsim import report

    def refuse(self, folder):
        raise PermissionError(13, "Permission denied", str(folder / "report.md"))

    monkeypatch.setattr(report.Report, "write", refuse)
    fails_cleanly(capsys, ["run", str(BASELINE), "--no-plots"], tmp_path, "report.md", "Permission denied")


def test_a_second_scenario_failing_leaves_the_first_ones_earlier_result_untouched(tmp_path, capsys, monkeypatch):
    from sdsim import report

    out = tmp_path / "r"
    assert main(["run", str(BASELINE), "--out", str(out), "--no-plots"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "baseline").iterdir()}
    other = scenario(tmp_path, f"name: other\nextends: {BASELINE}\n", "other.yaml")
    calls = []
    original = report.Report.write

    def second_fails(self, folder):
        calls.append(folder)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(folder / "report.html"))
        return original(self, folder)

    monkeypatch.setattr(report.Report, "write", second_fails)
    capsys.readouterr()
    assert main(["run", str(BASELINE), str(other), "--out", str(out), "--no-plots"]) == 2
    assert "No space left" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "baseline").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["baseline"]


@pytest.mark.parametrize("make, fragment", [
    (lambda t: t / ("x" * 300), "File name too long"),
    (lambda t: (t / "loop").symlink_to(t / "loop") or t / "loop" / "r", "cannot use this path"),
    (lambda t: (t / "file").write_text("x") and t / "file" / "sub", "is a file"),
])
def test_bad_out_paths_give_one_line(tmp_path, capsys, make, fragment):
    target = make(tmp_path)
    before = snapshot_names(tmp_path)
    for argv in (["run", str(BASELINE), "--no-plots"], ["compare", str(BASELINE)], ["export", str(BASELINE)]):
        assert main([*argv, "--out", str(target)]) == 2
        line = one_line(capsys)
        assert fragment in line and "--out" in line
        assert snapshot_names(tmp_path) == before


def snapshot_names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.iterdir())


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_gives_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["run", str(BASELINE), "--out", str(ro), "--no-plots"]) == 2
        assert "not writable" in one_line(capsys)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_a_non_writable_working_directory_gives_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).resolve() == tmp_path.resolve()
                        else real(p, mode, **kw))
    assert main(["run", str(BASELINE), "--no-plots"]) == 2
    assert "not writable" in one_line(capsys)
    assert main(["export", str(BASELINE)]) == 2
    assert "not writable" in one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_docs_being_a_file_gives_one_line(tmp_path, capsys):
    shutil.copytree(ROOT / "model", tmp_path / "model")
    (tmp_path / "docs").write_text("my notes")
    assert main(["describe", "--format", "md", "--model", str(tmp_path / "model")]) == 2
    assert "docs" in one_line(capsys)
    assert (tmp_path / "docs").read_text() == "my notes"


# ------------------------------------------------------------------------ titles and model files


def test_dollar_signs_in_titles_are_text_not_tex(tmp_path, capsys):
    dollar = scenario(tmp_path, f"name: dollar\ntitle: 'Costs $\\frac{{1 and $x^'\nextends: {BASELINE}\n")
    out = tmp_path / "r"
    assert main(["run", str(dollar), "--out", str(out)]) == 0
    assert (out / "dollar" / "goals.png").stat().st_size > 0
    assert main(["compare", str(BASELINE), str(dollar), "--out", str(tmp_path / "c")]) == 0
    assert "$\\frac{1" in (tmp_path / "c" / "report.md").read_text(encoding="utf-8")


def model_copy(tmp_path: Path, file: str, edit) -> Path:
    import yaml

    d = tmp_path / "model"
    shutil.copytree(ROOT / "model", d)
    data = yaml.safe_load((d / file).read_text(encoding="utf-8"))
    edit(data)
    (d / file).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return d


def _first(mapping: dict) -> str:
    return next(iter(mapping))


@pytest.mark.parametrize("file, edit, key", [
    ("goals.yaml", lambda d: d.update(goals=[1, 2]), "goals"),
    ("observed.yaml", lambda d: d.update(facts=[1, 2]), "facts"),
    ("calibration.yaml", lambda d: d.update(targets=["a"]), "targets"),
    ("calibration.yaml", lambda d: d["targets"][_first(d["targets"])].update(value=[1, 2]), ".value"),
    ("goals.yaml", lambda d: d["goals"][_first(d["goals"])].update(observed={"a": 1}), ".observed"),
    ("structure.yaml", lambda d: d.update(flows=["x"]), "flows"),
    ("structure.yaml", lambda d: d.update(sectors=[1]), "sectors"),
    ("parameters.yaml", lambda d: d.update(parameters=-1.5), "parameters"),
])
def test_a_list_where_a_mapping_or_name_goes_in_a_model_file(tmp_path, capsys, file, edit, key):
    d = model_copy(tmp_path, file, edit)
    assert main(["describe", "--model", str(d)]) == 2
    line = one_line(capsys)
    assert file in line and key in line


def _first_observation(data: dict) -> dict:
    return next(e for e in data["rows"].values() if e["kind"] == "observation")


@pytest.mark.parametrize("edit, path, fragment", [
    (lambda d: _first_observation(d).update(sets=["no_such_parameter"]), ".sets.0", "unknown parameter"),
    (lambda d: _first_observation(d).update(interval=["low", 1]) or _first_observation(d).pop("tolerance", None),
     ".interval.0", "low"),
])
def test_bad_entries_in_a_history_row_name_their_list_item(tmp_path, capsys, edit, path, fragment):
    d = model_copy(tmp_path, "history.yaml", edit)
    assert main(["describe", "--model", str(d)]) == 2
    line = one_line(capsys)
    assert "history.yaml" in line and path in line and fragment in line


@pytest.mark.parametrize("equation, fragment", [
    ("k / (2 - 2)", "zero"), ("1 / 0", "divides by zero"), ("k * 10 ** 1000", "overflows"),
    ("k * (1e300 * 1e300)", "not a finite"), ("+".join(["k"] * 3000), "characters"), ("-" * 3000 + "k", "characters"),
    ("(" * 400 + "k" + ")" * 400, "equation"),
])
def test_bad_constant_parts_and_huge_equations_in_a_model(tmp_path, capsys, equation, fragment):
    from tests.conftest import write_model

    d = write_model(tmp_path / "toy", stocks={"s": {"units": "dmnl", "initial": 1, "inflows": ["f"]}},
                    flows={"f": {"equation": "a", "units": "dmnl/year"}}, parameters={"k": 2.0},
                    aux={"a": {"equation": equation, "units": "dmnl"}})
    assert main(["describe", "--model", str(d)]) == 2
    line = one_line(capsys)
    assert "structure.yaml" in line and "auxiliaries.a.equation" in line and fragment in line
    assert len(line) < 600


# ---------------------------------------------------------------------------------- silent wrong results


def test_a_goal_year_before_the_run_is_an_error(tmp_path, capsys):
    d = model_copy(tmp_path, "goals.yaml", lambda g: g.update(year=2019))
    assert main(["run", str(BASELINE), "--model", str(d), "--out", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    assert "goals.yaml" in line and "year" in line and "2019" in line
    assert not (tmp_path / "o").exists()


def test_the_run_refuses_a_year_outside_it(baseline):
    from sdsim.errors import InputError

    with pytest.raises(InputError, match="outside the run"):
        baseline.at("tech_enterprises" if "tech_enterprises" in baseline.names else next(iter(baseline.names)),
                    int(baseline.years[0]) - 1)


def test_names_differing_only_by_unicode_compatibility_forms_are_refused(tmp_path, capsys):
    def add(data):
        entry = {"value": 1.0, "units": "year", "provenance": "assumption", "fixed": True}
        data["parameters"]["fill_time"] = dict(entry)
        data["parameters"]["\ufb01ll_time"] = dict(entry)  # 'ﬁll_time': Python reads it as 'fill_time'

    d = model_copy(tmp_path, "parameters.yaml", add)
    assert main(["describe", "--model", str(d)]) == 2
    line = one_line(capsys)
    assert "\ufb01ll_time" in line and "'fill_time'" in line and "compatibility" in line


def test_a_model_error_is_not_blamed_on_the_scenario(tmp_path, capsys):
    def poison(data):
        for e in data["flows"].values():
            e["equation"] = f"({e['equation']}) + 0 * log(0)"

    d = model_copy(tmp_path, "structure.yaml", poison)
    plain = scenario(tmp_path, f"name: plain\nextends: {BASELINE}\n", "plain.yaml")
    for f in (BASELINE, plain):
        assert main(["run", str(f), "--model", str(d), "--out", str(tmp_path / "o"), "--no-plots"]) == 2
        line = one_line(capsys)
        assert "parameters" not in line and str(d) in line and "model" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("title", ["a -- b", "x---y", "ends with -", "<b>&amp; -->", "--"])
def test_xmile_export_is_well_formed_whatever_the_title(tmp_path, title):
    import xml.etree.ElementTree as ET

    sc = scenario(tmp_path, f"name: t\ntitle: {title!r}\nextends: {BASELINE}\n".replace("'", '"'), "t.yaml")
    out = tmp_path / "t.xmile"
    assert main(["export", str(sc), "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag.endswith("xmile")
