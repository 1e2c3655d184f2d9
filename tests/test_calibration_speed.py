"""Grouped finite differences: the calibration's solutions and failure reports are those of one
finite-difference run per free parameter, over a Monte Carlo design with failing samples."""

from __future__ import annotations

import numpy as np
import pytest

from sdsim import calibrate as cal
from sdsim import sensitivity as sa
from sdsim.runner import parameter_batch
from sdsim.scenario import load_scenario
from tests.conftest import ROOT


def test_groups_never_share_a_target(cm):
    dep = cal.dependence(cm)
    groups = cal.fd_groups(dep)
    assert sorted(j for g in groups for j in g) == list(range(dep.shape[1]))
    assert len(groups) < dep.shape[1]  # the sectors are (nearly) decoupled: fewer runs than free parameters
    for g in groups:
        assert (dep[:, g].sum(axis=1) <= 1).all()


def test_grouped_jacobian_gives_the_same_solutions_and_failures(cm, monkeypatch):
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    problem = sa.define_problem(cm.model, sc)
    design = sa.sample_mc(problem, 1500, 3)
    params = dict(parameter_batch(cm, [{}]))
    for j, q in enumerate(problem.uncertainties):
        params[q.name] = design.x[:, j]
    levers = {k: params[k] for k in cm.model.levers}
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


def _design_params(cm, n: int, seed: int) -> tuple[dict, dict, object]:
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    problem = sa.define_problem(cm.model, sc)
    design = sa.sample_mc(problem, n, seed)
    params = dict(parameter_batch(cm, [{}]))
    for j, q in enumerate(problem.uncertainties):
        params[q.name] = design.x[:, j]
    return params, {k: params[k] for k in cm.model.levers}, sc


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
    params, levers, sc = _design_params(cm, 2000, 11)
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
    assert set(warm.reason[failed]) <= ALLOWED


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


def test_with_the_warm_solver_a_small_batch_solves_exactly_the_sets_a_large_batch_solves(cm, solved):
    params, _, sc, _, _, warm = solved
    rows = np.arange(40)  # fewer than WARM_MIN: solved from their own values, failures retried from the prediction
    assert rows.size < cal.WARM_MIN
    sub = {k: (v[rows] if np.ndim(v) and np.size(v) == warm.ok.size else v) for k, v in params.items()}
    small = _solve(cm, sub, {k: sub[k] for k in cm.model.levers}, sc, warm=True)
    assert np.array_equal(small.ok, warm.ok[rows])
    np.testing.assert_allclose(_x(cm, small)[small.ok], _x(cm, warm)[rows][small.ok], rtol=1e-9, atol=0)


@pytest.mark.parametrize("warm", [False, True])
def test_one_set_is_solved_as_before(cm, warm):
    """A single set (a scenario run) takes the old path: bit-identical solution and iteration count."""
    params = dict(parameter_batch(cm, [{}]))
    levers = {k: params[k] for k in cm.model.levers}
    sc = load_scenario(ROOT / "scenarios/baseline.yaml", cm.model)
    new = _solve(cm, params, levers, sc, warm=warm)
    old = _solve(cm, params, levers, sc, legacy=True)
    assert new.ok.all() and new.iterations == old.iterations
    assert np.array_equal(_x(cm, new), _x(cm, old))
