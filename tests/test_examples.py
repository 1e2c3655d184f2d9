"""The notebook-style API example (examples/api_example.py) runs as documented and says what it claims."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "api_example.py"


@pytest.fixture(scope="module")
def example() -> dict:
    return runpy.run_path(str(EXAMPLE), run_name="__main__")


def test_example_lever_raises_the_output_share_over_baseline(example: dict) -> None:
    sim, res = example["sim"], example["res"]
    base = sim.run("baseline")
    assert res.goals.loc["ht_output_share", "value"] > base.goals.loc["ht_output_share", "value"]
    # the lever acts only from the policy start: history years are identical
    ts = res.timeseries.loc[: sim.model.calibration.start + 1, "ht_output_share"]
    assert (ts == base.timeseries.loc[ts.index, "ht_output_share"]).all()


def test_example_misspelt_lever_is_refused_with_a_suggestion(example: dict) -> None:
    import sdsim

    with pytest.raises(sdsim.InputError, match="did you mean 'ht_investment'"):
        example["sim"].scenario("baseline", levers={"ht_invest": 100})


def test_example_probabilities_are_probabilities(example: dict) -> None:
    p = example["ens"].probabilities
    assert ((p["p_prior"] >= 0) & (p["p_prior"] <= 1)).all()
    assert set(p.index) == set(example["sim"].model.goals)
