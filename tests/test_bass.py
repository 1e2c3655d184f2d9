"""A second, independent model through the generic engine: Bass diffusion (tests/fixtures/bass).

The fixture starts in 2000, is calibrated to 2003 (the market size is solved so that the adopters of
2003 are reproduced), has its own goals for 2010, its own figures (figures.yaml) and scenarios. It
runs through every command with ``--model DIR``; its trajectory matches the analytic Bass solution;
its goal table, figures and XMILE export (run by PySD) carry its own names and years, never Yubei's.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pysd
import pytest

from sdsim.cli import main
from sdsim.compiler import compile_model
from sdsim.model import load_model
from sdsim.runner import run_scenarios
from sdsim.scenario import load_scenario
from sdsim.xmile import export_scenario

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "bass"
P, Q, T0 = 0.03, 0.38, 2000  # parameters.yaml values and the model's start
FACT_2003 = 150_500.0  # observed.yaml adopters_2003
YUBEI_WORDS = ("maker", "incubat", "R&D", "enterprise", "2021", "2026", "firms", "孵化", "企业", "研发")


def bass_share(t: np.ndarray, p: float = P, q: float = Q) -> np.ndarray:
    """F(t) = (1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t}): the adopted share t years after launch."""
    e = np.exp(-(p + q) * t)
    return (1 - e) / (1 + q / p * e)


@pytest.fixture()
def bass(tmp_path) -> Path:
    """A copy of the fixture (describe writes docs/ beside the model folder)."""
    d = tmp_path / "bass"
    shutil.copytree(FIXTURE, d)
    return d


def _run(name: str = "baseline", method: str = "rk4", dt: float = 1 / 64, end: int | None = None):
    m = load_model(FIXTURE)
    sc = load_scenario(FIXTURE / "scenarios" / f"{name}.yaml", m)
    sc.method, sc.dt = method, dt
    if end is not None:
        sc.end = end
    return m, sc, run_scenarios(compile_model(m), [sc])[0]


def test_years_come_from_the_model_files():
    m = load_model(FIXTURE)
    assert (m.calibration.start, m.calibration.end, m.calibration.lever_start) == (2000, 2003, 2004)
    sc = load_scenario(FIXTURE / "scenarios" / "baseline.yaml", m)
    assert (sc.start, sc.end) == (2000, 2010)  # t0 and the goal year, not Yubei's 2020 and 2026
    assert list(m.figures.figures) == ["diffusion"]


def test_matches_the_analytic_bass_solution():
    m, _, res = _run(end=2015)
    market = res.params["market_size"]
    t = res.run.years.astype(float) - T0
    share = res.run.get("adopters")[:, 0] / market
    np.testing.assert_allclose(share, bass_share(t), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(res.run.get("adopter_share")[:, 0], share, rtol=1e-14)
    # stocks conserve the market: potential + adopters = m at every year
    total = res.run.get("potential_adopters")[:, 0] + res.run.get("adopters")[:, 0]
    np.testing.assert_allclose(total, market, rtol=1e-12)


def test_calibration_reproduces_2003_and_recovers_the_market():
    _, _, res = _run()
    assert res.run.at("adopters", 2003)[0] == pytest.approx(FACT_2003, rel=1e-9)
    # the fact was derived from m = 1e6 with the analytic F(3): the solve recovers it
    assert res.params["market_size"] == pytest.approx(FACT_2003 / bass_share(np.array(3.0)), rel=1e-6)
    assert res.params["market_size"] == pytest.approx(1e6, rel=1e-5)


def test_euler_converges_to_the_analytic_solution_at_first_order():
    errs = []
    for dt in (1 / 16, 1 / 32, 1 / 64):
        _, _, res = _run(method="euler", dt=dt)
        share = res.run.get("adopter_share")[:, 0]
        errs.append(np.abs(share - bass_share(res.run.years.astype(float) - T0)).max())
    assert errs[2] < 2e-3
    assert 1.8 < errs[0] / errs[1] < 2.2 and 1.8 < errs[1] / errs[2] < 2.2


def test_cli_goal_table_has_the_bass_goals_and_values(bass, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", str(bass / "scenarios" / "baseline.yaml"), "--model", str(bass), "--out", str(out),
                 "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "(2000-2010, dt 1/32, euler)" in text and "2010 value" in text
    assert re.search(r"Half the market has adopted\s+81\.2%\s+>= 50%\s+yes\s+2007", text), text
    rows = {r["goal"]: r for r in csv.DictReader((out / "baseline" / "goals.csv").open())}
    assert set(rows) == {"half_the_market", "adopters_900k"}
    # Euler at dt 1/32 stays within 0.5 % of the analytic share F(10) = 0.8128
    assert float(rows["half_the_market"]["value_2010"]) == pytest.approx(float(bass_share(np.array(10.0))), rel=5e-3)
    assert rows["half_the_market"]["first_year_met"] == "2007"  # F(t) = 1/2 at t = 6.55
    assert rows["adopters_900k"]["met"] == "false"


def _texts_of(fig) -> list[str]:
    out = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_ylabel(), ax.get_xlabel()]
        out += [t.get_text() for t in ax.texts]
        leg = ax.get_legend()
        out += [t.get_text() for t in leg.get_texts()] if leg else []
    for leg in fig.legends:
        out += [t.get_text() for t in leg.get_texts()]
    return [t for t in out if t]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_run_figures_carry_the_bass_names_and_years(lang):
    from sdsim import plots
    from sdsim.goals import evaluate

    lang = plots.setup_language(lang)
    m, _, res = _run()
    status = evaluate(m, res.run, params=res.params)
    assert plots.run_figures(m) == ["goals", "diffusion"]
    figs = {name: plots.run_figure(m, name, res.run, lang, "Bass", status) for name in plots.run_figures(m)}
    texts = {name: " | ".join(_texts_of(f)) for name, f in figs.items()}
    if lang == "en":
        assert "2010 goals: Bass" in texts["goals"] and "observed 2003" in texts["goals"]
        assert "Bass diffusion: Bass" in texts["diffusion"]
        for label in ("Adopters", "Potential adopters", "Adoption from word of mouth (imitators)", "people",
                      "people per year", "goal >= 50%", "observed 2003"):
            assert label in texts["diffusion"], label
    else:
        assert "2010年目标" in texts["goals"] and "巴斯扩散" in texts["diffusion"] and "2003年实际" in texts["diffusion"]
        assert "人/年" in texts["diffusion"]
    for name, text in texts.items():
        for word in YUBEI_WORDS:
            assert word not in text, (name, word)
    # the panels hold the model's numbers: the star at the 2003 fact, the goal line at 50 %
    ax = figs["diffusion"].axes[0]
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert [(x, y) for ln in stars for x, y in zip(ln.get_xdata(), ln.get_ydata(), strict=True)] == [(2003, FACT_2003)]
    goal_lines = [ln for ln in figs["diffusion"].axes[2].get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_ydata()[0] for ln in goal_lines] == [0.5]


@pytest.mark.parametrize("argv", [
    ["run", "{d}/scenarios/baseline.yaml", "{d}/scenarios/marketing_push.yaml", "--out", "{out}/runs"],
    ["run", "{d}/scenarios/baseline.yaml", "--out", "{out}/runs_zh", "--lang", "zh"],
    ["compare", "{d}/scenarios/baseline.yaml", "{d}/scenarios/marketing_push.yaml",
     "{d}/scenarios/slow_word_of_mouth.yaml", "--out", "{out}/cmp"],
    ["sensitivity", "{d}/scenarios/baseline.yaml", "--method", "mc", "--samples", "64", "--out", "{out}/mc"],
    ["sensitivity", "{d}/scenarios/baseline.yaml", "--method", "sobol", "--samples", "16", "--out", "{out}/sobol"],
    ["sensitivity", "{d}/scenarios/baseline.yaml", "--method", "oat", "--out", "{out}/oat", "--no-plots"],
    ["check"],
    ["describe"],
    ["describe", "--format", "md"],
    ["export", "{d}/scenarios/marketing_push.yaml", "--out", "{out}/push.xmile"],
])
def test_every_command_runs_with_the_bass_model(bass, tmp_path, capsys, argv):
    args = [a.format(d=bass, out=tmp_path / "out") for a in argv] + ["--model", str(bass)]
    assert main(args) == 0
    out = capsys.readouterr().out
    folder = Path(args[args.index("--out") + 1]) if "--out" in args else None
    if argv[0] == "run":
        assert ("过半市场已采用" if "zh" in argv else "Half the market has adopted") in out
        sub = folder / "baseline"
        assert {p.name for p in sub.iterdir()} >= {"goals.png", "diffusion.png", "report.md", "goals.csv"}
        report = (sub / "report.md").read_text(encoding="utf-8")
        assert "diffusion.png" in report and "2003" in report
        assert not any(w in report for w in ("incubation", "R&D", "2021", "2026"))
    if argv[0] == "compare":
        assert {"overlay.png", "matrix.png"} <= {p.name for p in folder.iterdir()}
        assert "slow_word_of_mouth" in out
    if argv[0] == "sensitivity" and argv[3] != "oat":
        names = {p.name for p in folder.iterdir()}
        assert "goal_probability.png" in names
        assert ("fan_chart.png" in names) if argv[3] == "mc" else ("sobol_half_the_market.png" in names)
        report = (folder / "report.md").read_text(encoding="utf-8")
        assert "half_the_market" in report and "each goal in 2010" in report and "2003" in report
    if argv[0] == "check":
        assert "10 of 10 checks passed" in out and "calibration 2003" in out
    if argv[0] == "describe" and len(argv) == 1:
        for name in ("potential_adopters", "imitation_coefficient", "word_of_mouth", "Sultan"):
            assert name in out, name
    if argv[:2] == ["describe", "--format"]:
        assert (bass.parent / "docs" / "stock_flow.png").is_file()


def test_xmile_export_runs_in_pysd_with_the_same_trajectories(tmp_path):
    m = load_model(FIXTURE)
    cm = compile_model(m)
    sc = load_scenario(FIXTURE / "scenarios" / "marketing_push.yaml", m)
    sc.method = "euler"  # PySD integrates with Euler
    exp = export_scenario(cm, sc)
    path = tmp_path / "push.xmile"
    path.write_text(exp.text, encoding="utf-8")
    run = run_scenarios(cm, [sc])[0].run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pysd.read_xmile(str(path)).run(return_timestamps=exp.years)
    cols = {c.lower(): c for c in out.columns}
    for name in ("adopters", "potential_adopters", "adopter_share"):
        mine = run.get(name)[:, 0]
        theirs = out[cols[name]].to_numpy(dtype=float)
        np.testing.assert_allclose(theirs, mine, rtol=1e-9, atol=1e-6, err_msg=name)
    # the lever's step from 2004 was written: advertising doubles the innovation flow after 2003
    assert math.isclose(out[cols["advertising"]].to_numpy(dtype=float)[-1], 2.0)


def test_an_unknown_key_or_name_in_figures_yaml_is_a_one_line_input_error(bass, capsys):
    f = bass / "figures.yaml"
    text = f.read_text(encoding="utf-8")
    for old, new, message in (
        ("    grid: [1, 3]", "    grid: [1, 3]\n    colour: red", "figures.diffusion.colour: unknown key 'colour'"),
        ("lines: [{variable: adopter_share", "lines: [{variable: adopter_shares",
         "unknown variable 'adopter_shares' (did you mean 'adopter_share'?)"),
        ("facts: [adopters_2003]", "facts: [adopters_2004]", "unknown fact 'adopters_2004'"),
        ("goals: [half_the_market]", "goals: [half_market]", "unknown goal 'half_market'"),
        ("    grid: [1, 3]", "    grid: [1, 2]", "a 1 x 2 grid has no room for 3 panels"),
        ("goals: [half_the_market]", "goals: [half_the_market]\n        legend_columns: 0",
         "legend_columns: expected a whole number from 1 to 4, got 0"),
        ("goals: [half_the_market]", "goals: [half_the_market]\n        headroom: 5",
         "headroom: expected a number from 1 to 3, got 5"),
    ):
        assert old in text
        f.write_text(text.replace(old, new), encoding="utf-8")
        code = main(["run", str(bass / "scenarios" / "baseline.yaml"), "--model", str(bass), "--no-plots",
                     "--out", str(bass / "out")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and "\n" not in err, err
        assert "figures.yaml" in err and message in err, err
    f.write_text(text, encoding="utf-8")


def test_plot_modules_leave_matplotlib_alone_at_import():
    """No backend chosen and no pyplot imported by importing the figure modules (a notebook keeps its own)."""
    import subprocess
    import sys

    code = ("import matplotlib, sys\n"
            "import sdsim.plots, sdsim.plots_sensitivity, sdsim.plots_conditioning, sdsim.diagram\n"
            "print(matplotlib.rcParams._get_backend_or_none(), 'matplotlib.pyplot' in sys.modules)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["None", "False"], out


def test_figures_touch_no_global_state_and_zh_draws_without_warnings(tmp_path):
    """A zh figure with bold text is built and saved with warnings as errors; pyplot's registry and
    rcParams are the same before and after; bold CJK text uses a bold face when the font has one."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    from sdsim import diagram, plots
    from sdsim.goals import evaluate

    lang = plots.setup_language("zh")
    if lang != "zh":
        pytest.skip("no CJK font on this machine (install the zh extra)")
    m, _, res = _run()
    status = evaluate(m, res.run, params=res.params)
    before = dict(matplotlib.rcParams)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = [plots.run_figure(m, name, res.run, lang, "巴斯", status) for name in plots.run_figures(m)]
        figs.append(plots.goal_matrix(m, [("基准", status)], lang, plots.t("matrix_title", lang, year=2010)))
        figs.append(diagram.draw(m, lang))
        for i, fig in enumerate(figs):
            plots.save(fig, tmp_path / f"f{i}")
    assert plt.get_fignums() == []
    assert dict(matplotlib.rcParams) == before
    assert all((tmp_path / f"f{i}.png").stat().st_size > 10_000 for i in range(len(figs)))
    value_text = next(t for t in figs[2].axes[0].texts if t.get_text().endswith("%"))
    assert value_text.get_fontweight() == plots.bold("zh")
    if plots.bold("zh") == "bold":  # the weight is really drawn: the bold face of the family is found
        path = font_manager.findfont(value_text.get_fontproperties(), fallback_to_default=False)
        assert "Bold" in str(path)
