"""Model v2 (docs/history.md; README, How it works), as properties: the statistics layer feeds nothing back, the register slows
down, R&D follows the economy, HTE certificates age on a three-year conveyor, and the loader refuses a system
that reads a published figure or a history file that cannot be used as evidence."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from sdsim.cli import main
from sdsim.errors import ModelError
from sdsim.model import load_model
from sdsim.timefuncs import TimeFunction
from tests.conftest import MODEL_DIR, run_model

END = 2030


@pytest.fixture(scope="module")
def base(model, cm):
    """The baseline at the model's own dt, to 2030."""
    return run_model(cm, end=END, dt=model.dt)[0]


def system_names(model, run):
    """Every recorded variable of the system layer (stocks, flows, auxiliaries, annual outputs, series)."""
    reporting = {n for n, v in model.aux.items() if v.layer != "system"}
    return [n for n in run.names if n not in reporting]


# ------------------------------------------------------------------------------ the statistics layer


def test_reporting_feeds_nothing_back(model, cm):
    """The whole system, HTE included, is identical whatever the reporting scope factor (two ends of its range);
    only the reported indicators move."""
    lo, hi = model.params["reporting_scope_factor"].range
    run, _ = run_model(cm, [{"reporting_scope_factor": lo}, {"reporting_scope_factor": hi}], end=END, dt=model.dt)
    reported = [n for n, v in model.aux.items() if v.layer == "reported"]
    assert {"reported_tech_enterprises", "reported_high_tech_enterprises"} <= set(reported)
    for name in system_names(model, run):
        np.testing.assert_array_equal(run.get(name)[:, 0], run.get(name)[:, 1], err_msg=name)
    for name in reported:
        assert not np.array_equal(run.get(name)[:, 0], run.get(name)[:, 1]), name


def test_reported_counts_are_the_scope_factor_times_the_seed_scope_counts_from_end_2022(model, base):
    a = model.params["reporting_scope_factor"].value
    brk = model.params["scope_break_year"].value
    assert brk == 2022 and 0 < a < 1
    for rep, var in (("reported_tech_enterprises", "tech_enterprises"),
                     ("reported_high_tech_enterprises", "high_tech_enterprises")):
        r, v = base.get(rep)[:, 0], base.get(var)[:, 0]
        old = base.years < brk
        np.testing.assert_array_equal(r[old], v[old])  # the seed's scope up to end 2021
        np.testing.assert_allclose(r[~old], a * v[~old], rtol=1e-12)  # the new scope from end 2022 on
    # a flow reported in a year wholly in the new scope
    r, v = base.get("reported_new_tech_enterprises")[:, 0], base.get("new_tech_enterprises")[:, 0]
    assert r[list(base.years).index(2021)] == v[list(base.years).index(2021)]
    later = base.years > brk
    np.testing.assert_allclose(r[later], a * v[later], rtol=1e-12)


# ------------------------------------------------------------------- behaviour (README, How it works: model v2)


def test_the_seed_scope_register_grows_ever_more_slowly_after_2022(base):
    """Entries decelerate as the eligible backlog is used up (§4b item 1; the city register +40 % in 2021,
    +16 % in 2022): at baseline the register's net growth after 2022 is below its 2022 growth and falls year by
    year to 2026, and the backlog shrinks while the drive draws it down."""
    tech = {int(y): v for y, v in zip(base.years, base.get("tech_enterprises")[:, 0], strict=True)}
    net = {y: tech[y] - tech[y - 1] for y in range(2021, END + 1)}
    assert all(net[y] < net[2022] for y in range(2023, END + 1))
    assert all(net[y + 1] < net[y] for y in range(2022, 2026))
    assert all(n > 0 for n in net.values())  # cumulative: few removals, it still grows
    backlog = base.get("eligible_backlog")[:, 0]
    assert backlog[list(base.years).index(2022)] < backlog[0]


def test_baseline_rd_intensity_moves_by_tenths_of_a_point_a_year(base):
    """§7 hypothesis made a test: R&D intensity rises by a few tenths of a point a year, not by a point
    (average change over 2021-2030 between -0.2 and +0.5 percentage points a year)."""
    ri = base.get("rd_intensity")[:, 0]
    years = list(base.years)
    per_year = (ri[years.index(2030)] - ri[years.index(2021)]) / (2030 - 2021)
    assert -0.002 <= per_year <= 0.005


def test_rd_follows_the_economy_in_a_downturn(model, cm, base):
    """GDP shrinking 20 %/yr from the policy start (2024): R&D spend in 2026 is below the baseline's and keeps
    falling, while R&D intensity stays at most 15 % (§4b item 3 and item 7)."""
    first = model.calibration.policy_start
    down, _ = run_model(cm, end=END, dt=model.dt, levers={"gdp_growth": TimeFunction("constant", value=-0.2)})
    years = list(down.years)
    assert down.at("gdp", 2026)[0] < base.at("gdp", 2026)[0]
    assert down.at("rd_spend", 2026)[0] < base.at("rd_spend", 2026)[0]
    rd = down.get("rd_spend")[years.index(first):, 0]
    assert np.all(np.diff(rd) < 0)
    assert np.all(down.get("rd_intensity")[1:, 0] <= 0.15)
    assert down.at("rd_intensity", 2026)[0] <= 0.15


def test_hte_never_exceed_the_firms_that_qualify(model, cm, base):
    """HTE are a subset of the qualifying population (§4b item 2) at baseline and at the corners of the
    uncertainty ranges of the HTE dynamics."""
    assert np.all(base.get("high_tech_enterprises") <= base.get("qualifying_firms"))
    names = ["hte_cohort_growth", "renewal_rate", "hte_exit_rate",
             "hte_capability_slope", "hte_capability_ceiling", "qualifying_exit_rate"]
    # all low, all high, and the two alternating corners
    sets = [{n: model.params[n].range[(k + i) % 2 if i < 2 else i - 2] for k, n in enumerate(names)} for i in range(4)]
    run, _ = run_model(cm, sets, end=2035, dt=model.dt)
    hte, q = run.get("high_tech_enterprises"), run.get("qualifying_firms")
    assert np.all(hte >= 0) and np.all(hte <= q)


def test_hte_certificates_age_on_a_three_year_conveyor(model, base):
    """After the first validity_years, expiry equals the certificates issued validity_years earlier (a fixed
    delay, not first-order cohorts); before, the certificates held at t0 expire. At expiry the holders that
    closed meanwhile (1 - exp(-hte_exit_rate * validity_years)) leave, a share of the survivors renews and the
    rest returns to the qualifying firms; the stock is exactly the certificates on the conveyor."""
    v = model.params["validity_years"].value
    r = model.params["hte_exit_rate"].value
    start = model.calibration.start
    years = [int(y) for y in base.years]
    expiry = base.get("hte_expiry")[:, 0]
    issued = base.get("hte_certificates_issued")[:, 0]
    for i, y in enumerate(years):
        if y >= start + v:
            j = years.index(int(y - v))
            assert expiry[i] == pytest.approx(issued[j], rel=1e-9), y
        else:
            assert expiry[i] == base.get("hte_initial_cohort_expiry")[i, 0], y
    # the conveyor is not a first-order outflow: expiry is not proportional to the stock
    ratio = expiry[years.index(2024):] / base.get("high_tech_enterprises")[years.index(2024):, 0]
    assert np.ptp(ratio) > 0.01 * ratio.mean()
    # renewal at expiry: failed renewals are the expiring certificates not renewed (annual totals)
    share = model.params["renewal_rate"].value
    fail = base.get("hte_renewal_failure")[:, 0]
    renew = base.get("hte_renewal")[:, 0]  # year-end values
    survival = np.exp(-r * v)
    np.testing.assert_allclose(renew[1:], share * survival * expiry[1:], rtol=1e-12)
    assert np.all(fail[1:] > 0)
    # exits happen at expiry: over every year, exits / failed renewals = (1 - survival) / (survival (1 - share))
    exits, fails_total = base.get("hte_exit")[1:, 0], base.get("hte_renewal_failure")[1:, 0]
    np.testing.assert_allclose(exits / fails_total, (1 - survival) / (survival * (1 - share)), rtol=1e-9)



def test_the_certificates_held_at_t0_come_from_cohorts_that_grew(model, cm):
    """The 690 HTE of end 2020 hold certificates of 2018, 2019 and 2020 in the ratio 1 : (1 + g) : (1 + g)^2
    (g = hte_cohort_growth over its range): the shares sum to 1 and older cohorts are never larger, so no corner
    contradicts the growth of certifications that sets the shares; each cohort expires in its own year."""
    lo, hi = model.params["hte_cohort_growth"].range
    gs = [lo, model.params["hte_cohort_growth"].value, hi]
    run, _ = run_model(cm, [{"hte_cohort_growth": g} for g in gs], end=2024, dt=model.dt)
    oldest = run.get("hte_cohort_share_oldest")[0]
    middle = run.get("hte_cohort_share_middle")[0]
    youngest = 1 - oldest - middle
    for i, g in enumerate(gs):
        q = 1 + g
        np.testing.assert_allclose([middle[i] / oldest[i], youngest[i] / middle[i]], [q, q], rtol=1e-12)
        assert oldest[i] <= middle[i] <= youngest[i]
    np.testing.assert_allclose([oldest[0], middle[0], youngest[0]], [1 / 3] * 3, rtol=1e-12)  # g = 0: equal cohorts
    # the expiry rate of the certificates held at t0 in the second and third year (year-end values)
    start = model.calibration.start
    hte0 = model.facts["hte_2020"].value
    grid_years = [int(y) for y in run.years]
    expiry = run.get("hte_initial_cohort_expiry")  # (years, n) year-end values: the next year's rate
    for k, share in enumerate((middle, youngest)):  # rate at the end of 2021 and 2022 = the 2022 and 2023 cohorts
        np.testing.assert_allclose(expiry[grid_years.index(start + 1 + k)], hte0 * share, rtol=1e-12)


# ------------------------------------------------------------------------------ the loader


def copy_model(tmp_path):
    d = tmp_path / "model"
    shutil.copytree(MODEL_DIR, d)
    return d


def edit_yaml(path, change):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def one_line_model_error(capsys, d, *fragments):
    """describe on the model folder: exit 2, one stderr line naming the file and holding every fragment."""
    assert main(["describe", "--model", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    for f in fragments:
        assert f in err[0], (f, err[0])
    with pytest.raises(ModelError):
        load_model(d)
    return err[0]


@pytest.mark.parametrize("name", ["reported_tech_enterprises", "reporting_scope"])
def test_a_system_equation_that_reads_the_statistics_is_refused(tmp_path, capsys, name):
    d = copy_model(tmp_path)
    edit_yaml(d / "structure.yaml", lambda s: s["flows"]["registration"].update(
        equation=f"{s['flows']['registration']['equation']} * {name} / tech_enterprises"))
    one_line_model_error(capsys, d, "structure.yaml", "registration", f"'{name}' is a reporting name")


def test_a_history_row_naming_an_unknown_variable_is_refused(tmp_path, capsys):
    d = copy_model(tmp_path)
    edit_yaml(d / "history.yaml", lambda h: h["rows"]["hte_2022_seed"].update(variable="hte_enterprises"))
    one_line_model_error(capsys, d, "history.yaml", "rows.hte_2022_seed.variable", "unknown variable 'hte_enterprises'")


@pytest.mark.parametrize("variable", ["tech_enterprises", "qualifying_firms"])  # a stock, an auxiliary
def test_a_new_scope_row_on_a_seed_scope_variable_is_refused(tmp_path, capsys, variable):
    d = copy_model(tmp_path)
    edit_yaml(d / "history.yaml", lambda h: h["rows"]["tech_registry_2023h1"].update(variable=variable))
    one_line_model_error(capsys, d, "history.yaml", "rows.tech_registry_2023h1.variable",
                         f"a new-scope figure must name a reported indicator, not '{variable}'")


def test_an_observation_without_tolerance_is_refused(tmp_path, capsys):
    d = copy_model(tmp_path)
    edit_yaml(d / "history.yaml", lambda h: h["rows"]["hte_2022_seed"].pop("tolerance"))
    one_line_model_error(capsys, d, "history.yaml", "rows.hte_2022_seed", "an observation needs a tolerance or an interval")
