"""FAB-T: the batched boundary projection against a solver, and the attack on a trained model."""

from itertools import pairwise

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from sparta.attacks import base, fab, whitebox  # noqa: F401  (register the attacks)
from tests.attacks.helpers import digits_model, one_thread  # noqa: F401  (autouse fixture)


def _problem(seed, n=6, d=5):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    w[0, 1] = 0.0  # a coordinate the hyperplane ignores
    c = 0.6 * torch.randn(n, generator=g, dtype=torch.float64)
    return p, w, c


def _reference(p, w, c, norm):
    """Minimal norm of d with w.(p + d) + c = 0 and p + d in [0, 1], or None if infeasible."""
    d = len(p)
    r = float(w @ p + c)
    bounds = [(-float(v), 1 - float(v)) for v in p]
    if norm == "linf":  # variables (d, t): min t, -t <= d_i <= t
        a_ub = np.vstack([np.c_[np.eye(d), -np.ones(d)], np.c_[-np.eye(d), -np.ones(d)]])
        a_eq = np.r_[w.numpy(), 0.0][None]
        lp = linprog(
            np.r_[np.zeros(d), 1.0],
            A_ub=a_ub,
            b_ub=np.zeros(2 * d),
            A_eq=a_eq,
            b_eq=[-r],
            bounds=bounds + [(0, None)],
        )
        return lp.fun if lp.status == 0 else None
    # feasibility by LP (SLSQP alone reports failures on feasible problems in scipy >= 1.17),
    # then the minimal norm by SLSQP started from the LP's feasible point
    feasible = linprog(np.zeros(d), A_eq=w.numpy()[None], b_eq=[-r], bounds=bounds)
    if feasible.status != 0:
        return None
    cons = {"type": "eq", "fun": lambda v: w.numpy() @ v + r}
    qp = minimize(
        lambda v: v @ v,
        feasible.x,
        constraints=[cons],
        bounds=bounds,
        method="SLSQP",
        options={"ftol": 1e-12},
    )
    return float(np.sqrt(qp.fun)) if qp.success and abs(cons["fun"](qp.x)) < 1e-8 else None


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("seed", range(4))
def test_boundary_projection_is_the_minimal_step(norm, seed):
    p, w, c = _problem(seed)
    d = fab.boundary_projection(p, w, c, norm)
    q = p + d
    assert (q >= -1e-12).all() and (q <= 1 + 1e-12).all()
    for i in range(len(p)):
        want = _reference(p[i], w[i], c[i], norm)
        size = float(d[i].abs().max() if norm == "linf" else d[i].norm())
        r0, r1 = float(w[i] @ p[i] + c[i]), float(w[i] @ q[i] + c[i])
        if want is None:  # out of reach inside the box: every free coordinate at its bound
            live = w[i] != 0
            up = w[i][live] * -np.sign(r0) > 0
            assert abs(r1) < abs(r0) and torch.allclose(q[i][live], up.to(q.dtype))
        else:
            assert abs(r1) < 1e-9
            assert size == pytest.approx(want, abs=1e-6)
    assert d[0, 1] == 0.0


def test_boundary_projection_keeps_dtype_and_handles_points_on_the_plane():
    p = torch.full((2, 3), 0.5)
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    c = -(w * p).sum(1)
    d = fab.boundary_projection(p, w, c, "linf")
    assert d.dtype == torch.float32 and torch.equal(d, torch.zeros(2, 3))


@pytest.mark.parametrize("norm,grid", [("linf", (0.0, 0.05, 0.1, 1.0)), ("l2", (0.0, 0.5, 8.0))])
def test_fab_robust_acc_below_clean_and_non_increasing(norm, grid):
    model, x, y = digits_model()
    x, y = x[:100], y[:100]
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    accs = []
    for eps in grid:
        res = base.create("fab-t", model, eps=eps, norm=norm, steps=20, n_target_classes=3)(x, y)
        with torch.no_grad():
            assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)
        accs.append(float(res.robust.float().mean()))
    assert accs[0] == pytest.approx(clean)
    assert all(a >= b for a, b in pairwise(accs)), accs
    assert accs[-1] <= 0.01


def test_fab_close_to_pgd_and_restarts_only_add():
    model, x, y = digits_model()
    pgd = base.create("pgd", model, eps=0.1, steps=20)(x, y)
    one = base.create("fab-t", model, eps=0.1, steps=30, n_target_classes=3)(x, y)
    two = base.create("fab-t", model, eps=0.1, steps=30, n_target_classes=3, restarts=2)(x, y)
    assert one.robust.float().mean() <= pgd.robust.float().mean() + 0.03
    assert (two.success >= one.success).all()


def test_fab_explicit_target():
    model, x, y = digits_model()
    target = (y + 1) % 10
    res = base.create("fab-t", model, eps=0.3, steps=30)(x[:50], y[:50], target=target[:50])
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred == target[:50])
    assert res.success.float().mean() > 0.8
