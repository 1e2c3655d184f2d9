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


# --------------------------------------------------------------- the warm-started solver (issue 15)

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


@pytest.fixture(scope="module")
def old_and_new(cm):
    """2,000 sampled sets solved by the solver before issue 15 (_LEGACY) and by the warm-started one."""
    params, levers, sc = _design_params(cm, 2000, 11)
    with np.errstate(all="ignore"):
        new = cal.calibrate(cm, params, levers, sc.dt, sc.method, workers=1)
        cal._LEGACY = True
        try:
            old = cal.calibrate(cm, params, levers, sc.dt, sc.method, workers=1)
        finally:
            cal._LEGACY = False
    return params, levers, sc, old, new


def test_every_set_the_old_solver_solved_has_the_same_solution(cm, old_and_new):
    _, _, _, old, new = old_and_new
    assert old.ok.sum() > 1000
    assert not (old.ok & ~new.ok).any()  # no set loses its solution
    both = old.ok & new.ok
    # Both solvers stop at a relative residual below TOLERANCE (1e-10); the weakly determined free parameters
    # (registration time, HTE cultivation rate) then differ from the exact root by up to ~5e-10 relative in the
    # OLD solutions themselves (measured against a 1e-14 solve), so that is the agreement to expect.
    np.testing.assert_allclose(_x(cm, new)[both], _x(cm, old)[both], rtol=1e-9, atol=0)
    assert np.abs(new.residuals[new.ok]).max() < cal.TOLERANCE
    assert np.abs(old.residuals[old.ok]).max() < cal.TOLERANCE


def test_sets_only_the_new_solver_solves_are_solutions_the_old_solver_accepts(cm, old_and_new):
    """The old solver failed these from the model's starting values (its first Newton step on the registration
    time overshoots below 0 when the solution is short); started at the new solution, it accepts it at once."""
    params, levers, sc, old, new = old_and_new
    gained = np.flatnonzero(new.ok & ~old.ok)
    assert gained.size > 0
    sub = {k: (v[gained] if np.ndim(v) and np.size(v) == old.ok.size else v) for k, v in params.items()}
    x = _x(cm, new)[gained]
    for j, f in enumerate(cm.model.calibration.free):
        sub[f.name] = x[:, j]
    sub_lev = {k: sub[k] for k in cm.model.levers}
    cal._LEGACY = True
    try:
        with np.errstate(all="ignore"):
            check = cal.calibrate(cm, sub, sub_lev, sc.dt, sc.method, workers=1)
    finally:
        cal._LEGACY = False
    assert check.ok.all() and check.iterations == 1  # solved where it started: inside the bounds, residual < 1e-10
    np.testing.assert_array_equal(_x(cm, check), x)


def test_failed_sets_are_counted_with_the_old_reasons(cm, old_and_new):
    _, _, _, _, new = old_and_new
    failed = ~new.ok
    assert 0 < failed.sum() < 0.1 * failed.size
    assert set(new.reason[failed]) <= ALLOWED and not any(new.reason[new.ok])


def test_a_small_batch_solves_exactly_the_sets_a_large_batch_solves(cm, old_and_new):
    params, levers, sc, _, new = old_and_new
    rows = np.arange(40)  # fewer than WARM_MIN: solved from their own values, failures retried from the prediction
    assert rows.size < cal.WARM_MIN
    sub = {k: (v[rows] if np.ndim(v) and np.size(v) == new.ok.size else v) for k, v in params.items()}
    with np.errstate(all="ignore"):
        small = cal.calibrate(cm, sub, {k: sub[k] for k in cm.model.levers}, sc.dt, sc.method, workers=1)
    assert np.array_equal(small.ok, new.ok[rows])
    np.testing.assert_allclose(_x(cm, small)[small.ok], _x(cm, new)[rows][small.ok], rtol=1e-9, atol=0)


def test_one_set_is_solved_as_before(cm):
    """A single set (a scenario run) takes the old path: bit-identical solution and iteration count."""
    params = dict(parameter_batch(cm, [{}]))
    levers = {k: params[k] for k in cm.model.levers}
    new = cal.calibrate(cm, params, levers, cm.model.dt, "euler")
    cal._LEGACY = True
    try:
        old = cal.calibrate(cm, params, levers, cm.model.dt, "euler")
    finally:
        cal._LEGACY = False
    assert new.ok.all() and new.iterations == old.iterations
    assert np.array_equal(_x(cm, new), _x(cm, old))
