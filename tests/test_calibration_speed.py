"""Grouped finite differences: the calibration's solutions and failure reports are those of one
finite-difference run per free parameter, over a Monte Carlo design with failing samples."""

from __future__ import annotations

import numpy as np

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
