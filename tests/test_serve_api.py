"""The interactive page's JSON API (issue 17): same numbers and same messages as the CLI, never a traceback."""

from __future__ import annotations

import csv
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("plotly")

from sdsim.cli import main as cli_main  # noqa: E402
from sdsim.scenario import load_scenario  # noqa: E402
from sdsim.sensitivity import define_problem, goal_probability, run_experiments, sample_mc  # noqa: E402
from sdsim.web.server import App  # noqa: E402
from sdsim.web.service import Service  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
SAMPLES = 60


@pytest.fixture(scope="module")
def service() -> Service:
    return Service(ROOT / "model", [SCENARIOS], samples=SAMPLES, seed=7)


@pytest.fixture(scope="module")
def server(service: Service):
    app = App(("127.0.0.1", 0), service)
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    yield app
    app.shutdown()
    app.server_close()


def call(app: App, path: str, body: object = None, raw: bytes | None = None, headers: dict | None = None):
    """(status, parsed JSON or bytes) of a request to the test server."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(app.url.rstrip("/") + path, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, payload, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, payload, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(payload) if ctype.startswith("application/json") else payload)


def cli_goals(tmp_path: Path, scenario: Path, *sets: str) -> tuple[dict[str, float], dict[str, list[float]]]:
    """2026 goal values and the yearly time series of ``simulate.py run`` (goals.csv, timeseries.csv)."""
    args = ["run", str(scenario), "--out", str(tmp_path / "out"), "--no-plots"]
    for s in sets:
        args += ["--set", s]
    assert cli_main(args) == 0
    folder = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    with open(folder / "goals.csv", encoding="utf-8") as f:
        goals = {r["goal"]: float(r["value_2026"]) for r in csv.DictReader(f)}
    with open(folder / "timeseries.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    series = {k: [float(r[k]) if r[k] else float("nan") for r in rows] for k in rows[0]}
    return goals, series


def test_baseline_with_ht_investment_100_gives_the_cli_numbers(server, tmp_path):
    status, out = call(server, "/api/run", {"scenario": "baseline", "levers": {"ht_investment": 100}, "ensemble": False})
    assert status == 200
    goals, series = cli_goals(tmp_path, SCENARIOS / "baseline.yaml", "ht_investment=100")
    api = {g["name"]: g["value"] for g in out["goals"]}
    assert set(api) == set(goals)
    for name, v in goals.items():  # goals.csv holds 10 significant digits
        assert api[name] == pytest.approx(v, rel=1e-9, abs=1e-12), name
    years = out["years"]
    assert years == [int(y) for y in series["year"]]
    for g in out["goals"]:
        api_path = np.array([np.nan if x is None else x for x in out["series"][g["name"]]["value"]])
        np.testing.assert_allclose(api_path, series[g["variable"]], rtol=1e-9, equal_nan=True)
    # the lever acts: the output share moves away from the baseline, the other goals keep their baseline values
    row = next(g for g in out["goals"] if g["name"] == "ht_output_share")
    assert row["value"] > row["baseline_value"] + 0.01
    assert out["scenario"]["levers"] == {"ht_investment": 100}


def test_the_goal_table_carries_the_published_scope_where_the_model_defines_it(server, service):
    _, out = call(server, "/api/run", {"scenario": "baseline", "ensemble": False})
    for g in out["goals"]:
        goal = service.model.goals[g["name"]]
        if goal.reported:
            assert g["value_reported"] is not None and g["threshold_reported"] is not None
            assert g["threshold_reported"] < g["threshold"]  # the narrower scope
            assert out["series"][g["name"]]["reported"] is not None
        else:
            assert g["value_reported"] is None and out["series"][g["name"]]["reported"] is None
        assert isinstance(g["met"], bool) and 0 <= g["probability"] <= 1
    assert any(g["rebased_target"] is not None for g in out["goals"])


def test_the_ensemble_matches_the_sensitivity_monte_carlo_and_is_calibrated_once(server, service):
    body = {"scenario": "ht_manufacturing", "levers": {"st_funding": 1.0}}
    status, out = call(server, "/api/run", body)
    assert status == 200
    ens = out["ensemble"]
    sc = load_scenario(SCENARIOS / "ht_manufacturing.yaml", service.model)
    sc.levers.update(service.request(body)[0].levers)
    problem = define_problem(service.model, sc)
    with np.errstate(all="ignore"):  # samples that cannot be calibrated overflow on the way to being rejected
        exp = run_experiments(service.cm, problem, sc, sample_mc(problem, SAMPLES, 7))
    expected = {p.goal: p.probability for p in goal_probability(service.model, exp)}
    assert ens["n"] == SAMPLES and ens["n_ok"] == int(exp.ok.sum()) > 0
    for name, p in expected.items():
        assert ens["probability"][name] == pytest.approx(p, abs=1e-12), name
    cached = dict(service._ensembles)
    _, again = call(server, "/api/run", {"scenario": "ht_manufacturing", "levers": {"st_funding": 0.0}})
    assert dict(service._ensembles) == cached  # a lever move re-uses the calibrated samples
    assert again["ensemble"]["n_ok"] == ens["n_ok"]
    band = ens["bands"]["ht_output_share"]
    i = ens["years"].index(2026)
    assert band["p5"][i] <= band["p50"][i] <= band["p95"][i]


def test_downloaded_scenario_is_self_contained_and_reproduces_the_page(server, tmp_path):
    body = {"scenario": "ht_manufacturing", "levers": {"st_funding": 0.5, "rd_subsidy": 0.1}}
    status, out = call(server, "/api/scenario", body)
    assert status == 200
    data = yaml.safe_load(out["yaml"])
    assert "extends" not in data and data["levers"]["st_funding"] == 0.5
    assert data["levers"]["ht_investment"] == {"ramp": {"from": 2024, "to": 2026, "start": 0.0, "end": 100.0}}
    path = tmp_path / out["filename"]
    path.write_text(out["yaml"], encoding="utf-8")
    goals, series = cli_goals(tmp_path, path)
    _, run = call(server, "/api/run", {**body, "ensemble": False})
    for g in run["goals"]:
        assert goals[g["name"]] == pytest.approx(g["value"], rel=1e-9, abs=1e-12), g["name"]
        np.testing.assert_allclose([np.nan if x is None else x for x in run["series"][g["name"]]["value"]],
                                   series[g["variable"]], rtol=1e-9, equal_nan=True)


def _cli_message(capsys, value: str) -> str:
    assert cli_main(["run", str(SCENARIOS / "baseline.yaml"), "--no-plots", "--set", value]) == 2
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize("lever, value, text", [
    ("ht_investment", -5, "ht_investment=-5"),
    ("rd_subsidy", 3, "rd_subsidy=3"),
    ("ht_investment", "lots", "ht_investment=lots"),
    ("ht_investment", {"ramp": {"from": 2026, "to": 2024, "start": 0, "end": 1}},
     "ht_investment={ramp: {from: 2026, to: 2024, start: 0, end: 1}}"),
])
def test_bad_lever_values_get_the_cli_message_with_http_400(server, capsys, lever, value, text):
    status, out = call(server, "/api/run", {"scenario": "baseline", "levers": {lever: value}})
    assert status == 400
    cli = _cli_message(capsys, text)
    # the same key path and message after the place it names (the request here, --set there)
    key = f"levers.{lever}"
    assert out["error"].startswith("request: ") and key in cli
    assert out["error"][out["error"].index(key):] == cli[cli.index(key):]


@pytest.mark.parametrize("body, expect", [
    ({"scenario": "nope"}, "unknown scenario 'nope'"),
    ({"scenario": "../model/goals"}, "unknown scenario"),
    ({"scenario": "baseline", "levers": {"ht_invest": 1}}, "unknown lever 'ht_invest'"),
    ({"scenario": "baseline", "levers": {"reporting_scope_factor": 1}}, "it is a parameter"),
    ({"scenario": "baseline", "parameters": {"hte_2021": 900}}, "needs 'recalibrate: false'"),
    ({"scenario": "baseline", "parameters": {"no_such": 1}}, "unknown parameter 'no_such'"),
    ({"scenario": "baseline", "levers": [1]}, "expected a mapping"),
    ({"scenario": "baseline", "ensemble": "yes"}, "expected true or false"),
    ({"scenario": "baseline", "extra": 1}, "unknown key 'extra'"),
    ({"levers": {}}, "missing required key 'scenario'"),
    ([1, 2], "expected a mapping"),
])
def test_bad_requests_answer_400_with_one_line(server, body, expect):
    for path in ("/api/run", "/api/scenario"):
        status, out = call(server, path, body)
        assert status == 400, (path, out)
        assert expect in out["error"] and "\n" not in out["error"] and "Traceback" not in out["error"]


@pytest.mark.parametrize("raw, expect", [
    (b"{not json", "not valid JSON"),
    (b'{"scenario": "baseline", "levers": {"ht_investment": NaN}}', "finite"),
    (b'{"scenario": "baseline", "levers": {"ht_investment": 1e999}}', "finite"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b" " * (2 << 20), "at most"),
], ids=["not-json", "nan", "overflow", "not-utf8", "deep", "too-large"])
def test_malformed_bodies_answer_400(server, raw, expect):
    status, out = call(server, "/api/run", raw=raw)
    assert status == 400 and expect in out["error"] and "\n" not in out["error"]


def test_page_and_assets_are_served_locally(server):
    status, page = call(server, "/?scenario=baseline&ht_investment=100")
    assert status == 200 and b"/static/plotly.min.js" in page and b"https://" not in page
    status, js = call(server, "/static/plotly.min.js")
    assert status == 200 and len(js) > 1_000_000
    status, app_js = call(server, "/static/app.js")
    assert status == 200 and b"/api/run" in app_js
    status, out = call(server, "/static/../model/goals.yaml")
    assert status == 404 and "not found" in out["error"]
    status, out = call(server, "/api/meta", headers={"Host": "evil.example:80"})
    assert status == 403


def test_page_code_names_nothing_of_the_model(service):
    """Labels, levers and goals come from the model files: the page's code names none of them."""
    static = Path(__file__).resolve().parent.parent / "sdsim" / "web" / "static"
    code = "".join((static / f).read_text(encoding="utf-8") for f in ("index.html", "app.js", "app.css"))
    names = [*service.model.goals, *service.model.levers, *(g.en for g in service.model.goals.values()),
             *(p.en for p in service.model.levers.values()), "Yubei", "渝北"]
    assert [n for n in names if n in code] == []


def test_meta_has_labels_ranges_scenarios_and_observed_points(server, service):
    status, meta = call(server, "/api/meta")
    assert status == 200
    assert [g["name"] for g in meta["goals"]] == list(service.model.goals)
    lever = next(x for x in meta["levers"] if x["name"] == "ht_investment")
    p = service.model.levers["ht_investment"]
    assert lever["label"] == {"en": p.en, "zh": p.zh} and lever["policy_range"] == list(p.policy_range)
    assert lever["units"] == p.units and lever["note"] == p.note
    names = [s["name"] for s in meta["scenarios"]]
    assert names == sorted(f.stem for f in SCENARIOS.glob("*.yaml"))
    ht = next(s for s in meta["scenarios"] if s["name"] == "ht_manufacturing")
    assert ht["levers"]["ht_investment"]["kind"] == "ramp" and ht["levers"]["ht_investment"]["value"] == 100
    tech = next(g for g in meta["goals"] if g["name"] == "tech_enterprises")
    assert any(pt["kind"] == "fact" for pt in tech["points"]) and tech["targets"]


def test_user_scenarios_are_listed_first_and_broken_ones_say_why(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\nextends: " + str(SCENARIOS / "baseline.yaml") +
                                        "\nlevers: {ht_investment: 20}\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("levers: {ht_investment: -1}\n", encoding="utf-8")
    svc = Service(ROOT / "model", [tmp_path, SCENARIOS], samples=10)
    meta = svc.meta()
    names = [s["name"] for s in meta["scenarios"]]
    assert "mine" in names and "baseline" in names
    broken = next(s for s in meta["scenarios"] if s["name"] == "broken")
    assert "levers.ht_investment" in broken["error"]
    out = svc.run({"scenario": "mine", "ensemble": False})
    assert out["scenario"]["levers"] == {"ht_investment": 20}


def test_another_model_works_unchanged(tmp_path):
    """The page's service knows no model: the textbook fixture (no calibration, 1990) runs through it."""
    fixture = ROOT / "tests" / "fixtures" / "textbook"
    svc = Service(fixture, [fixture / "scenarios"], samples=10)
    meta = svc.meta()
    assert [g["name"] for g in meta["goals"]] == list(svc.model.goals)
    out = svc.run({"scenario": "baseline", "levers": {"boost": 2}})
    base = svc.run({"scenario": "baseline", "ensemble": False})
    assert out["goals"][0]["value"] > base["goals"][0]["value"]
    assert out["ensemble"]["n_ok"] == 10


def test_serve_rejects_bad_options_with_one_line(capsys):
    assert cli_main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--port" in err and "65535" in err
    assert cli_main(["serve", "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err
    assert cli_main(["serve", "--scenarios", "/no/such/folder"]) == 2
    assert "scenario folder not found" in capsys.readouterr().err


def test_serve_on_a_busy_port_says_so(server, capsys):
    port = server.server_address[1]
    assert cli_main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot listen on 127.0.0.1" in err and err.count("\n") == 0


def test_serve_warns_when_listening_beyond_this_machine(monkeypatch, capsys):
    from sdsim.web import server as web_server

    def stop(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(web_server.App, "serve_forever", stop)
    monkeypatch.setattr(Service, "warm", lambda self, name=None: None)
    assert cli_main(["serve", "--host", "127.0.0.2", "--port", "0", "--samples", "5"]) == 0
    out = capsys.readouterr()
    assert "warning: serving on 127.0.0.2" in out.err and "Serving the interactive page at http://127.0.0.2:" in out.out
    assert cli_main(["serve", "--port", "0", "--samples", "5"]) == 0
    assert "warning" not in capsys.readouterr().err
