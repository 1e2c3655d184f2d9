"""Bundled model and scenarios: bare scenario names work from any folder, `init` copies them for editing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sdsim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def goals(folder: Path) -> dict[str, str]:
    with (folder / "goals.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    col = next(k for k in rows[0] if k.startswith("value_"))
    return {r["goal"]: r[col] for r in rows}


def test_a_bare_name_runs_the_bundled_scenario_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./model and no ./scenarios here
    assert main(["run", "baseline", "--no-plots", "--out", "a"]) == 0
    assert main(["run", str(ROOT / "scenarios" / "baseline.yaml"), "--no-plots", "--out", "b"]) == 0
    assert goals(tmp_path / "a" / "baseline") == goals(tmp_path / "b" / "baseline")


def test_a_local_scenario_of_the_same_name_comes_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "baseline.yaml").write_text(
        f"name: mine\nextends: {ROOT / 'scenarios' / 'baseline.yaml'}\nlevers: {{ht_investment: 50}}\n", encoding="utf-8")
    assert main(["run", "baseline", "--no-plots", "--out", "o"]) == 0
    assert (tmp_path / "o" / "mine").is_dir()


def test_an_unknown_name_is_one_line_listing_the_known_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "baselin", "--no-plots", "--out", "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'baselin'" in err[0] and "baseline" in err[0] and "goals_2026" in err[0]
    assert not (tmp_path / "o").exists()


def test_init_copies_model_and_scenarios_and_never_overwrites(tmp_path, capsys):
    dest = tmp_path / "mine"
    assert main(["init", str(dest)]) == 0
    assert sorted(p.name for p in (dest / "model").glob("*.yaml")) == sorted(p.name for p in (ROOT / "model").glob("*.yaml"))
    assert sorted(p.name for p in (dest / "scenarios").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "scenarios").glob("*.yaml"))
    (dest / "model" / "goals.yaml").write_text("edited", encoding="utf-8")
    assert main(["init", str(dest)]) == 2  # an existing, non-empty folder is refused
    assert (dest / "model" / "goals.yaml").read_text(encoding="utf-8") == "edited"
    assert "not an empty folder" in capsys.readouterr().err


def test_the_copied_model_runs_with_model_dir(tmp_path):
    dest = tmp_path / "copy"
    assert main(["init", str(dest)]) == 0
    assert main(["run", str(dest / "scenarios" / "goals_2026.yaml"), "--model", str(dest / "model"), "--no-plots",
                 "--out", str(tmp_path / "r1")]) == 0
    assert main(["run", str(ROOT / "scenarios" / "goals_2026.yaml"), "--no-plots", "--out", str(tmp_path / "r2")]) == 0
    assert goals(tmp_path / "r1" / "goals_2026") == goals(tmp_path / "r2" / "goals_2026")


@pytest.mark.parametrize("sub", ["model", "scenarios"])
def test_the_wheel_declares_the_bundled_folders(sub):
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"sdsim.bundled.{sub}" = "{sub}"' in text and f'"sdsim.bundled.{sub}" = ["*.yaml"]' in text
