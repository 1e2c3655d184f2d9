"""`simulate.py describe`: the model described with sources, the loops found, the docs it writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdsim import loops, validity
from sdsim.checkspec import load_checks
from sdsim.cli import main
from sdsim.compiler import compile_model
from sdsim.model import load_model

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "broken_models"


def found(directory: Path) -> list[loops.Loop]:
    m = load_model(directory)
    cm = compile_model(m)
    return validity.loop_samples(cm, validity.baseline_scenario(m), load_checks(m))[0]


def test_loops_of_the_small_model_are_its_five_cycles_with_their_polarity():
    got = {tuple(lo.nodes): lo.polarity for lo in found(FIXTURES / "healthy")}
    assert got == {
        ("carriers", "closure"): "B",
        ("firms", "firm_exit"): "B",
        ("knowledge", "knowledge_loss"): "B",
        ("members", "joining"): "R",
        ("firms", "rd", "knowledge", "capability", "firm_entry"): "R",
    }


def test_every_loop_is_an_elementary_cycle_through_a_stock(model, cm):
    g = loops.graph(cm)
    cycles = loops.cycles(cm)
    assert len(set(map(tuple, cycles))) == len(cycles)
    delay_states = {n for n, v in model.aux.items() if v.fixed_delay is not None}  # delay_fixed outputs: states
    assert delay_states  # the HTE conveyor
    for c in cycles:
        if set(c) & set(model.stocks):
            assert c[0] in model.stocks  # rotated to start at a stock
        else:
            # no stock: the cycle runs through a fixed delay's state (the conveyor: expiry -> renewal ->
            # certificates issued -> the delay); a cycle of plain auxiliaries would be an algebraic loop
            assert set(c) & delay_states, c
        assert len(set(c)) == len(c)
        for a, b in zip(c, c[1:] + c[:1], strict=True):
            assert g.has_edge(a, b)


def test_yubei_named_loops_have_the_polarity_of_model_spec(model, cm):
    by_name = {lo.name: lo for lo in found(ROOT / "model") if lo.name}
    assert {k: v.polarity for k, v in by_name.items()} == {
        "R1": "R", "R2": "R", "B1a": "B", "B1b": "B", "B2": "B", "B3": "B"}
    g = loops.graph(cm)
    for declared in load_checks(model).loops:
        nodes = by_name[declared.name].nodes
        for a, b in zip(nodes, nodes[1:] + nodes[:1], strict=True):  # a closed path of the equation graph
            assert g.has_edge(a, b), (declared.name, a, b)
        listed = declared.through or declared.cycle
        k = nodes.index(listed[0])
        it = iter(nodes[k:] + nodes[:k])
        assert all(n in it for n in listed), declared.name  # the declared nodes, in their (cyclic) order
    # MODEL_SPEC §4 / §4b: R1 HTE -> R&D -> knowledge -> HTE certification (through the HTE share, never HTE / GDP)
    r1 = by_name["R1"].nodes
    assert r1[0] == "high_tech_enterprises" and r1[-1] == "hte_certification"
    assert {"hte_share", "rd_spend", "knowledge", "capability_index", "capability_effect_hte"} <= set(r1)
    # R2: knowledge -> attraction -> qualifying firms -> HTE (the register feeds no loop back into the system)
    r2 = set(by_name["R2"].nodes)
    assert {"knowledge", "ecosystem_effect", "attraction_entry", "qualifying_non_hte", "hte_certification",
            "high_tech_enterprises"} <= r2 and "tech_enterprises" not in r2


def test_a_link_inactive_at_baseline_takes_its_sign_from_the_policy_run():
    """registry_review is 0 at baseline, so registry removals do not respond to the stock there."""
    all_loops = found(ROOT / "model")
    reg = [lo for lo in all_loops if "registry_removal" in lo.nodes]
    assert len(reg) == 1 and reg[0].polarity == "B"
    assert reg[0].nodes == ["tech_enterprises", "lapsed_registrations", "registry_removal"]
    assert reg[0].signs == [1, 1, -1]  # tech -> lapsed registrations -> removals -| tech


def test_link_signs_are_signs_of_partial_derivatives():
    """min(demand, free/fill + exits): teams lower entry (-) while capacity binds; exits raise it (+)."""
    lo = {tuple(x.nodes): x for x in found(ROOT / "model")}
    assert lo[("startup_teams", "team_entry")].signs == [-1, 1]
    assert lo[("startup_teams", "team_exit", "team_entry")].signs == [1, 1, 1]
    assert lo[("startup_teams", "team_exit")].signs == [1, -1]


def test_text_description_lists_every_name_with_sources(capsys, model):
    assert main(["describe"]) == 0
    out = capsys.readouterr().out
    for name in [*model.stocks, *model.flows, *model.aux, *model.params, *model.goals]:
        assert name in out, name
    assert "组织实施区科技专项62项，资金支持1530.5万元" in out  # the seed's words for st_funding
    assert "力争科技型企业达到5000家" in out  # a goal's quote
    assert "到2023年，智能网联汽车产业聚集效应显现" in out  # an out-of-scope milestone
    for name in ("R1", "R2", "B1a", "B1b", "B2", "B3"):
        assert f"\n{name} " in out
    assert "policy range" in out and "[0, 3]" in out


@pytest.mark.parametrize("lang, md, png", [("en", "model.md", "stock_flow.png"),
                                           ("zh", "model.zh.md", "stock_flow.zh.png")])
def test_markdown_goes_to_docs_beside_the_model(tmp_path, capsys, lang, md, png):
    d = tmp_path / "model"
    shutil.copytree(ROOT / "model", d)
    assert main(["describe", "--format", "md", "--lang", lang, "--model", str(d)]) == 0
    text = (tmp_path / "docs" / md).read_text(encoding="utf-8")
    assert "do not edit by hand" in text or "请勿手工编辑" in text
    assert "![" in text and f"]({png})" in text
    assert "| R1 | R |" in text
    head = (tmp_path / "docs" / png).read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == sorted([md, png])  # no temporary leftovers
    if lang == "zh":
        assert "存量" in text and "反馈回路" in text
