"""The interactive page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Skipped, with the reason, where no Chromium is installed; `.ci/run` installs it with apt. Update times
are measured in the page (from the slider's input event to the redrawn panels) and printed as benchmark
figures, never asserted.
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path

import pytest
import yaml

from sdsim.web.headless import Server, browser_missing, make_driver, wait_settled

REASON = browser_missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser test skipped: {REASON}")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    with Server() as srv:
        yield srv


@pytest.fixture
def driver(tmp_path):
    (tmp_path / "downloads").mkdir()
    d = make_driver(tmp_path / "downloads")
    yield d
    d.quit()


def panel_value(d, goal: str) -> float:
    return float(d.find_element("css selector", f'.panel[data-goal="{goal}"]').get_attribute("data-value"))


def lever(d, name: str, part: str):
    return d.find_element("css selector", f'.lever[data-lever="{name}"] {part}')


def type_into(d, name: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = lever(d, name, "input[type=text]")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def test_page_in_headless_chromium(server, driver, tmp_path, capsys):
    from selenium.webdriver.common.action_chains import ActionChains

    from sdsim.cli import main as cli_main
    from sdsim.model import load_model

    model = load_model(ROOT / "model")
    d = driver
    started = time.monotonic()
    d.get(server.url + "?scenario=baseline&lang=en")
    wait_settled(d)

    # the page loads: one panel per goal of the model, English labels from goals.yaml
    titles = [e.text for e in d.find_elements("css selector", ".panel h3")]
    assert titles == [g.en for g in model.goals.values()]
    assert lever(d, "ht_investment", ".name").text == model.levers["ht_investment"].en
    share0 = panel_value(d, "ht_output_share")

    # moving the high-tech investment slider (mouse clicks along its track) changes the output-share panel
    slider = lever(d, "ht_investment", "input[type=range]")
    width = slider.size["width"]
    shares = []
    for frac in (0.2, 0.4, 0.6, 0.8, 0.5, 0.3, 0.7, 0.9):
        ActionChains(d).move_to_element_with_offset(slider, int((frac - 0.5) * (width - 16)), 0).click().perform()
        wait_settled(d)
        shares.append(panel_value(d, "ht_output_share"))
    assert all(s > share0 for s in shares)
    assert shares[3] > shares[1] > shares[0]  # more investment, a larger share
    timings = {"ht_investment (redraws the panels it changes)": d.execute_script("return window.sdsimTimings.slice(1)")}
    # a lever that moves every goal (every panel redrawn), measured the same way
    n = len(d.execute_script("return window.sdsimTimings"))
    wide = lever(d, "gdp_growth", "input[type=range]")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", wide)
    for frac in (0.3, 0.7, 0.5, 0.9):
        ActionChains(d).move_to_element_with_offset(wide, int((frac - 0.5) * (wide.size["width"] - 16)), 0).click().perform()
        wait_settled(d)
    timings["gdp_growth (redraws every panel)"] = d.execute_script(f"return window.sdsimTimings.slice({n})")
    lever(d, "gdp_growth", ".reset1").click()
    wait_settled(d)

    # typed value: the URL carries it, so the page can be shared
    type_into(d, "ht_investment", "100")
    wait_settled(d)
    assert "ht_investment=100" in d.current_url
    shown = {g: panel_value(d, g) for g in model.goals}
    series = d.execute_script("return window.sdsimState.last.series")
    years = d.execute_script("return window.sdsimState.last.years")
    probability = float(d.find_element("css selector", '.panel[data-goal="ht_output_share"] .prob')
                        .get_attribute("data-value"))
    assert 0 <= probability <= 1

    # "download as scenario YAML" -> simulate run reproduces the shown values to 1e-9
    d.find_element("id", "download").click()
    downloads = tmp_path / "downloads"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not [p for p in downloads.glob("*.yaml")]:
        time.sleep(0.1)
    files = list(downloads.glob("*.yaml"))
    assert files, "the scenario file was not downloaded"
    assert "extends" not in yaml.safe_load(files[0].read_text(encoding="utf-8"))
    assert cli_main(["run", str(files[0]), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    capsys.readouterr()
    folder = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    with open(folder / "goals.csv", encoding="utf-8") as f:
        cli = {r["goal"]: float(r["value_2026"]) for r in csv.DictReader(f)}
    with open(folder / "timeseries.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for g, v in shown.items():
        assert cli[g] == pytest.approx(v, rel=1e-9, abs=1e-12), g
    share_path = [float(r["ht_output_share"]) for r in rows]
    assert [int(r["year"]) for r in rows] == years
    assert share_path == pytest.approx(series["ht_output_share"]["value"], rel=1e-9)

    # the shared link restores the state
    link = d.current_url
    d.get(link)
    wait_settled(d)
    assert lever(d, "ht_investment", "input[type=text]").get_attribute("value") == "100"
    assert panel_value(d, "ht_output_share") == shown["ht_output_share"]

    # language toggle: Chinese labels from the model files
    d.find_element("id", "lang").click()
    titles = [e.text for e in d.find_elements("css selector", ".panel h3")]
    assert titles == [g.zh for g in model.goals.values()]
    assert lever(d, "ht_investment", ".name").text == model.levers["ht_investment"].zh
    assert "lang=zh" in d.current_url

    # bad input: a one-line message on the page, the panels keep the last valid run
    type_into(d, "ht_investment", "-5")
    wait_settled(d)
    message = d.find_element("id", "message")
    assert message.is_displayed()
    assert "levers.ht_investment" in message.text and "expected a number >= 0, got -5" in message.text
    assert "Traceback" not in d.page_source
    assert panel_value(d, "ht_output_share") == shown["ht_output_share"]
    type_into(d, "ht_investment", "50")
    wait_settled(d)
    assert not d.find_element("id", "message").is_displayed()

    with capsys.disabled():
        print(f"\n[benchmark] slider moves in headless Chromium, from the input event to the redrawn panels "
              f"(whole test {time.monotonic() - started:.1f} s):")
        for what, rows in timings.items():
            central = [t["central_ms"] for t in rows]
            ensemble = [t["ensemble_ms"] for t in rows if t["ensemble_ms"] is not None]
            print(f"  {what}, {len(rows)} moves: central run median {statistics.median(central):.0f} ms "
                  f"(max {max(central):.0f}); with the ensemble median {statistics.median(ensemble):.0f} ms "
                  f"(max {max(ensemble):.0f})")
