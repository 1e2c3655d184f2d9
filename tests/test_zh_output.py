"""``--lang zh`` output is Chinese: no English word outside identifiers, unit symbols and the usual abbreviations.

Each command runs on the Yubei model with ``--lang zh`` (small samples where it samples); its printed
lines and the report files meant for people (report.md, report.html) are read, and what is not
language is removed first:

- the model's own names: variables, parameters, levers, goals, facts, tables, series, calibration
  targets, history rows, reality checks, loops, and every scenario name; any snake_case word
  (an identifier by its form, e.g. a flow XMILE splits per stock);
- the model's unit symbols (``firm/year``, ``CNY100M`` ...), file names, paths and key paths
  (``parameters.leverage``), command-line
  options (``--set``), command lines (``simulate run ...``), Markdown code spans, HTML tags and
  entities, numbers.

What remains may not contain a word of three or more Latin letters, except the short, explained
:data:`ALLOWED` list. The checker itself is tested on an English sentence, so the test fails when a
single one is left.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdsim import cli
from sdsim.expressions import FUNCTIONS, STOCK_FUNCTIONS
from sdsim.model import Model

ROOT = Path(__file__).resolve().parent.parent

#: Words that stay in Latin letters in Chinese text, and why.
ALLOWED = {
    # abbreviations used as such in Chinese policy and statistics texts
    "gdp", "hte", "star", "cny",
    # method and product names
    "sobol", "morris", "oat", "euler", "rk4", "newton", "broyden", "vensim", "stella", "pysd", "xmile",
    "spearman", "wilson", "poisson", "saltelli",
    # file formats and the command itself
    "csv", "png", "svg", "html", "yaml", "json", "npz",
    # the infinite end of a range ([0, inf])
    "inf",
}


def identifiers(model: Model, scenario_names: list[str]) -> set[str]:
    """Every name the model files define (they are printed as they are, in any language)."""
    names: set[str] = set(scenario_names)
    for group in (model.stocks, model.flows, model.aux, model.annual, model.params, model.levers, model.goals,
                  model.facts, model.tables, model.series):
        names.update(group)
    names.update(t.name for t in model.calibration.targets)
    if model.history is not None:
        names.update(r.id for r in model.history.rows)
    from sdsim.checkspec import load_checks

    spec = load_checks(model)
    names.update(rc.name for rc in spec.reality)
    names.update(lo.name for lo in spec.loops)
    names.update(f.name for f in [*spec.behaviour, *spec.comparisons])
    names.update(FUNCTIONS)  # function names inside printed equations
    names.update(STOCK_FUNCTIONS)
    names.add("time")  # the time variable of equations
    return names


def unit_words(model: Model) -> set[str]:
    """The pieces of every unit string of the model (firm, carrier, year, CNY100M, dmnl ...)."""
    units = {v.units for group in (model.stocks, model.flows, model.aux, model.annual, model.params, model.levers)
             for v in group.values()}
    units |= {g.units for g in model.goals.values()} | {f.units for f in model.facts.values()}
    return {w for u in units for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", u)}


def english_words(text: str, names: set[str], units: set[str]) -> list[str]:
    """Latin-letter words of three or more letters left in ``text`` after removing what is not language."""
    text = re.sub(r"<!--.*?-->|<style>.*?</style>", " ", text, flags=re.S)  # HTML comments, the page style
    text = re.sub(r"`[^`]*`", " ", text)  # code spans (commands, file names)
    text = re.sub(r"<[!/]?[A-Za-z][^>]*>|&\w+;", " ", text)  # HTML tags and entities
    text = re.sub(r"(?:python )?simulate(?:\.py)? [a-z]+", " ", text)  # command lines (simulate run ...)
    text = re.sub(r"(?<!\w)--[\w-]+", " ", text)  # command-line options
    text = re.sub(r"\S*/\S*", " ", text)  # paths and unit ratios
    text = re.sub(r"[\w.+-]+\.(?:csv|png|svg|html|md|json|npz|yaml|xmile)\b", " ", text)  # file names
    text = re.sub(r"\b[a-z]+(?:\.\w+)+", " ", text)  # key paths of the files (levers.rd_subsidy, parameters.x)
    text = re.sub(r"\b\w*_\w*\b", " ", text)  # snake_case identifiers
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", text)
    return [w for w in words if len(re.sub(r"\d", "", w)) >= 3 and w not in names and w not in units
            and w.lower() not in ALLOWED]


def test_the_checker_finds_an_english_sentence(model: Model) -> None:
    names, units = identifiers(model, ["baseline"]), unit_words(model)
    assert english_words("科技型企业 9,130 firm tech_enterprises baseline", names, units) == []
    assert english_words("目标按其制定时的统计口径判断。The published values are:", names, units) == \
        ["The", "published", "values", "are"]
    assert english_words("<p>note: 存量</p>", names, units) == ["note"]


SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1), f"{argv}: exit {code}: {err}"
    return out


def _reports(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.rglob("report.*")))


COMMANDS = {
    "run": lambda d: ["run", *[str(ROOT / "scenarios" / f"{s}.yaml") for s in SCENARIOS], "--no-plots", "--out",
                      str(d)],
    "compare": lambda d: ["compare", *[str(ROOT / "scenarios" / f"{s}.yaml") for s in ("baseline", "goals_2026",
                                                                                          "headwinds")],
                          "--out", str(d)],  # every scenario's description: in `run`
    "run_warnings": lambda d: ["run", str(ROOT / "scenarios" / "baseline.yaml"), "--set", "ht_growth_premium=0.15",
                               "--set", "maker_space_openings=5", "--no-plots", "--out", str(d)],
    "check": lambda d: ["check"],
    "calibrate": lambda d: ["calibrate"],
    "describe": lambda d: ["describe"],
    "export": lambda d: ["export", str(ROOT / "scenarios" / "goals_2026.yaml"), "--out", str(d / "x.xmile")],
    "init": lambda d: ["init", str(d / "mine")],
    "sensitivity_mc": lambda d: ["sensitivity", str(ROOT / "scenarios" / "baseline.yaml"), "--method", "mc",
                                 "--samples", "100", "--no-plots", "--out", str(d / "mc")],
    "sensitivity_oat": lambda d: ["sensitivity", str(ROOT / "scenarios" / "goals_2026.yaml"), "--method", "oat",
                                  "--no-plots", "--out", str(d / "oat")],
    "optimize": lambda d: ["optimize", str(ROOT / "scenarios" / "baseline.yaml"), "--samples", "60", "--popsize", "5",
                           "--maxiter", "1", "--out", str(d / "opt")],
    "sensitivity_member": lambda d: ["sensitivity", str(ROOT / "scenarios" / "baseline.yaml"), "--method", "mc",
                                     "--samples", "8", "--levers", "--member", "3", "--out", str(d / "m.yaml")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_chinese_output_has_no_english_words(command: str, model: Model, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = _run([*COMMANDS[command](tmp_path), "--lang", "zh"], capsys)
    text = out + "\n" + _reports(tmp_path)
    left = english_words(text, identifiers(model, SCENARIOS), unit_words(model))
    assert not left, f"{command}: English words in the Chinese output: {sorted(set(left))[:40]}"


def test_chinese_model_page_has_no_english_words(model: Model) -> None:
    """docs/model.zh.md (written by describe --format md --lang zh) is Chinese."""
    text = (ROOT / "docs" / "model.zh.md").read_text(encoding="utf-8")
    left = english_words(text, identifiers(model, SCENARIOS), unit_words(model))
    assert not left, f"English words in docs/model.zh.md: {sorted(set(left))[:40]}"


def test_html_pages_declare_their_language(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for lang in ("en", "zh"):
        _run(["run", str(ROOT / "scenarios" / "baseline.yaml"), "--no-plots", "--out", str(tmp_path / lang),
              "--lang", lang], capsys)
        page = (tmp_path / lang / "baseline" / "report.html").read_text(encoding="utf-8")
        assert f'<html lang="{lang}">' in page


@pytest.mark.parametrize("value, problem", [
    ({"en": "x", "fr": "y"}, "fr"),
    ({"zh": "只有中文"}, "en"),
    (3, "expected a text or a mapping"),
    ({"en": "x", "zh": ["a"]}, "description.zh"),
])
def test_a_bad_description_is_refused_naming_the_key(value: object, problem: str, model: Model,
                                                     tmp_path: Path) -> None:
    import yaml

    from sdsim.errors import InputError
    from sdsim.scenario import load_scenario

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"name": "s", "description": value}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(f, model)
    assert "description" in str(err.value) and problem in str(err.value)


def test_description_in_both_languages(model: Model, tmp_path: Path) -> None:
    from sdsim.scenario import load_scenario

    f = tmp_path / "s.yaml"
    f.write_text("name: s\ndescription: {en: Why, zh: 为何}\n", encoding="utf-8")
    sc = load_scenario(f, model)
    assert (sc.text("en"), sc.text("zh")) == ("Why", "为何")
    f.write_text("name: s\ndescription: Only English\n", encoding="utf-8")
    sc = load_scenario(f, model)
    assert (sc.text("en"), sc.text("zh")) == ("Only English", "Only English")


@pytest.mark.parametrize("lang, attribute", [("en", b'<html lang="en">'), ("zh", b'<html lang="zh-CN">')])
def test_the_page_declares_the_serve_language(lang: str, attribute: bytes) -> None:
    pytest.importorskip("plotly")
    import threading
    import urllib.request

    from sdsim.web.server import App
    from sdsim.web.service import Service

    app = App(("127.0.0.1", 0), Service(ROOT / "model", [ROOT / "scenarios"], samples=10, lang=lang))
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(app.url, timeout=30) as r:
            page = r.read()
    finally:
        app.shutdown()
        app.server_close()
    assert attribute in page


def test_figure_captions_of_sensitivity_reports(model: Model) -> None:
    from sdsim.commands.sensitivity import _caption

    names, units = identifiers(model, SCENARIOS), unit_words(model)
    files = ["tornado_rd_intensity.png", "morris_star_listings.png", "sobol_ht_output_share.png", "fan_chart.png",
             "goal_probability.png", "history.png", "history_taught.png"]
    assert [_caption(f, "en") for f in files[:2]] == ["tornado rd intensity", "morris star listings"]  # as before
    for f in files:
        assert not english_words(_caption(f, "zh"), names, units), f
