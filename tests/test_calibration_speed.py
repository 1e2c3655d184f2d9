"""Grouped finite differences: the calibration's solutions and failure reports are those of one
finite-difference run per free parameter, over a Monte Carlo design with failing samples."""

from __future__ import annotations

import numpy as np
import pytest

from sdsim import calibrate as cal
from sdsim.runner import parameter_batch
from sdsim.scenario import load_scenario
from tests.conftest import ROOT, design_params


def test_groups_never_share_a_target(cm):
    dep = cal.dependence(cm)
    groups = cal.fd_groups(dep)
    assert sorted(j for g in groups for j in g) == list(range(dep.shape[1]))
    assert len(groups) < dep.shape[1]  # the sectors are (nearly) decoupled: fewer runs than free parameters
    for g in groups:
        assert (dep[:, g].sum(axis=1) <= 1).all()


def test_grouped_jacobian_gives_the_same_solutions_and_failures(cm, monkeypatch):
    params, levers, sc = design_params(cm, 1500, 3)
    with np.errstate(all="ignore"):
        new = cal.calibrate(cm, params, levers, sc.dt, sc.method, workers=1)
        monkeypatch.setattr(cal, "GROUPED_FD", False)
        old = cal.calibrate(cm, params, levers, sc.dt, sc.method, workers=1)
    assert 0 < new.n_failed < 1500
    assert list(new.reason) == list(old.reason)
    assert np.array_equal(new.ok, old.ok)
    free = [f.name for f in cm.model.calibration.free]
    x_new = np.stack([new.params[f] for f in free], 1)
    x_old = np.stack([old.params[f] for f in free], 1)
    ok = new.ok
    np.testing.assert_allclose(x_new[ok], x_old[ok], rtol=1e-10, atol=0)
    assert np.array_equal(x_new, x_old, equal_nan=True)  # in fact bit-identical, failed samples included


# ------------------------------------------------------------------------- the solvers of issue 15

ALLOWED = {"did not converge", "no finite solution"}


def _x(cm, res) -> np.ndarray:
    return np.stack([np.broadcast_to(res.params[f.name], res.ok.shape) for f in cm.model.calibration.free], 1)


def _solve(cm, params, levers, sc, legacy: bool = False, warm: bool = False):
    old_legacy, old_warm = cal._LEGACY, cal.WARM_START
    cal._LEGACY, cal.WARM_START = legacy, warm
    try:
        with np.errstate(all="ignore"):
            return cal.calibrate(cm, params, levers, sc.dt, sc.method, workers=1)
    finally:
        cal._LEGACY, cal.WARM_START = old_legacy, old_warm


@pytest.fixture(scope="module")
def solved(cm):
    """2,000 sampled sets solved by the solver before issue 15 (_LEGACY), the default and the warm-started one."""
    params, levers, sc = design_params(cm, 2000, 11)
    return (params, levers, sc, _solve(cm, params, levers, sc, legacy=True), _solve(cm, params, levers, sc),
            _solve(cm, params, levers, sc, warm=True))


def test_the_default_solver_fails_the_same_sets_and_solves_the_others_the_same(cm, solved):
    _, _, _, old, new, _ = solved
    assert 0 < (~old.ok).sum() < old.ok.size
    assert np.array_equal(new.ok, old.ok)  # the same sets reported failed ...
    assert set(new.reason[~new.ok]) <= ALLOWED and not any(new.reason[new.ok])
    # ... sooner: a set that makes no progress for STALL_PLAIN iterations stops instead of wandering to MAX_ITER
    assert new.iterations < old.iterations == cal.MAX_ITER
    # The same path for every solved set; the old solver sent every set of an iteration to least squares when one
    # set's system was singular, the default only that set: agreement within the tolerance's reach, most bit for bit
    x_new, x_old = _x(cm, new)[new.ok], _x(cm, old)[old.ok]
    np.testing.assert_allclose(x_new, x_old, rtol=1e-9, atol=0)
    assert (x_new == x_old).all(axis=1).mean() > 0.9
    assert np.abs(new.residuals[new.ok]).max() < cal.TOLERANCE


def test_the_warm_solver_keeps_every_old_solution(cm, solved):
    _, _, _, old, _, warm = solved
    assert not (old.ok & ~warm.ok).any()  # no set loses its solution
    both = old.ok & warm.ok
    # Both solvers stop at a relative residual below TOLERANCE (1e-10); the weakly determined free parameters
    # (registration time, HTE cultivation rate) then differ from the exact root by up to ~5e-10 relative in the
    # OLD solutions themselves (measured against a 1e-14 solve), so that is the agreement to expect.
    np.testing.assert_allclose(_x(cm, warm)[both], _x(cm, old)[both], rtol=1e-9, atol=0)
    assert np.abs(warm.residuals[warm.ok]).max() < cal.TOLERANCE
    failed = ~warm.ok
    assert 0 < failed.sum() < 0.1 * failed.size
    # no root from the prediction nor from the own start, or a root below a documented lower bound
    lower = {f"{f.name} below its lower bound" for f in cm.model.calibration.free}
    assert set(warm.reason[failed]) <= ALLOWED | lower


def test_a_solution_below_the_processing_time_bound_is_reported_not_clipped(cm, solved):
    """registration_processing_time has a documented lower bound (registration_processing_time_min): a set whose
    root lies below it converged there (residual below the tolerance) and is reported as failing for that reason,
    with the root as found; every solved set lies on or above the bound."""
    _, _, _, _, _, warm = solved
    bound = cm.model.params["registration_processing_time_min"].value
    pt = np.broadcast_to(warm.params["registration_processing_time"], warm.ok.shape)
    below = warm.reason == "registration_processing_time below its lower bound"
    assert below.any() and warm.ok.any()
    assert (pt[below] < bound).all()
    assert np.abs(warm.residuals[below]).max() < cal.TOLERANCE
    assert (pt[warm.ok] >= bound * (1 - 1e-12)).all()


def test_sets_only_the_warm_solver_solves_are_solutions_the_old_solver_accepts(cm, solved):
    """The old solver failed these from the model's starting values (its first Newton step on the registration
    time overshoots below 0 when the solution is short); started at the warm solution, it accepts it at once."""
    params, _, sc, old, _, warm = solved
    gained = np.flatnonzero(warm.ok & ~old.ok)
    assert gained.size > 0
    sub = {k: (v[gained] if np.ndim(v) and np.size(v) == old.ok.size else v) for k, v in params.items()}
    x = _x(cm, warm)[gained]
    for j, f in enumerate(cm.model.calibration.free):
        sub[f.name] = x[:, j]
    check = _solve(cm, sub, {k: sub[k] for k in cm.model.levers}, sc, legacy=True)
    assert check.ok.all() and check.iterations == 1  # solved where it started: inside the bounds, residual < 1e-10
    np.testing.assert_array_equal(_x(cm, check), x)


def test_a_set_is_solved_to_the_same_bits_in_any_batch(cm, solved):
    """Every set starts from the baseline reference's prediction, whatever else is in its batch: a set solved
    alone, in a small batch or in the 2,000-set batch gets the same solution, bit for bit, and the same verdict
    (also the sets retried from their own starting values)."""
    params, _, sc, _, _, warm = solved
    retried = np.flatnonzero(np.isin(warm.reason, cal.RETRY_REASONS))  # no root from the prediction nor own start
    assert retried.size
    for rows in (np.arange(40), np.arange(1500, 1503), retried[:3], retried[:1]):
        sub = {k: (v[rows] if np.ndim(v) and np.size(v) == warm.ok.size else v) for k, v in params.items()}
        small = _solve(cm, sub, {k: sub[k] for k in cm.model.levers}, sc, warm=True)
        assert np.array_equal(small.ok, warm.ok[rows])
        assert list(small.reason) == list(warm.reason[rows])
        assert np.array_equal(_x(cm, small), _x(cm, warm)[rows], equal_nan=True)


def test_a_prediction_across_a_switch_is_retried_from_the_own_start(cm):
    """A forced variable switches on at a time given by a parameter: the linear prediction across the switch
    is far off (no finite solution from it), so the set is solved again from its own starting values, where the
    force (from the window's end) changes nothing: the baseline solution."""
    from sdsim.compiler import compile_model
    from sdsim.validity import forced_model

    cmf = compile_model(forced_model(cm.model, ["rd_spend"]))
    end = float(cm.model.calibration.end)
    params = dict(parameter_batch(cmf, [{"xforce_on_rd_spend": 1.0, "xforce_from_rd_spend": end}, {}]))
    levers = {k: params[k] for k in cmf.model.levers}
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    warm = cal._warm_start(cmf, params, levers, 2, sc.dt, sc.method)
    assert warm is not None and not np.isfinite(warm.predict(params, levers, 2)[0]).all() or \
        np.abs(warm.predict(params, levers, 2)[0]).max() > 1e6  # the prediction across the switch is useless
    first = cal._calibrate(cmf, params, levers, sc.dt, sc.method, warm)
    assert first.reason[0] in cal.RETRY_REASONS and first.ok[1]
    res = _solve(cmf, params, levers, sc, warm=True)
    assert res.ok.all()
    np.testing.assert_allclose(_x(cm, res)[0], _x(cm, res)[1], rtol=1e-9)


@pytest.mark.parametrize("warm", [False, True])
def test_one_set_is_solved_as_before(cm, warm):
    """A single set (a scenario run): the plain solver takes the old path (bit-identical solution and iteration
    count); the warm solver starts at the baseline reference, which is this set's solution: one iteration, the
    same solution within the tolerance's reach."""
    params = dict(parameter_batch(cm, [{}]))
    levers = {k: params[k] for k in cm.model.levers}
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    new = _solve(cm, params, levers, sc, warm=warm)
    old = _solve(cm, params, levers, sc, legacy=True)
    assert new.ok.all()
    dep = cal.dependence(cm)
    if warm:
        assert new.iterations == 1 < old.iterations
        np.testing.assert_allclose(_x(cm, new), _x(cm, old), rtol=1e-9, atol=0)
        # one run at the prediction plus one per finite-difference group of the coupled free parameters
        assert new.window_runs == 1 + len(cal.fd_groups(dep[:, ~cal._decoupled(dep)]))
    else:
        assert new.iterations == old.iterations
        assert np.array_equal(_x(cm, new), _x(cm, old))
        # the first iteration with its finite-difference groups, then one run per iteration (Broyden)
        assert new.window_runs == 1 + len(cal.fd_groups(dep)) + new.iterations - 1
