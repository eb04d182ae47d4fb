"""APGD-CE and APGD-T: the paper's checkpoints and halving rule, strength on a trained model."""

from itertools import pairwise

import pytest
import torch

from sparta.attacks import apgd, base, whitebox  # noqa: F401  (register the attacks)
from tests.attacks.helpers import (
    digits_model,
    one_thread,  # noqa: F401  (autouse fixture)
)


def test_checkpoints_are_the_papers_for_100_iterations():
    # 2003.01690 Sec. 3.2: p = 0, .22, .41, .57, .70, .80, .87, .93, .99; w_j = ceil(p_j * 100)
    assert apgd.checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("n", [1, 5, 10, 37, 250])
def test_checkpoints_shape(n):
    w = apgd.checkpoints(n)
    assert w[0] == 0 and w == sorted(set(w)) and w[-1] <= n
    assert w[1] == -(-22 * n // 100)  # ceil(0.22 n)
    gaps = [b - a for a, b in pairwise(w)]
    assert all(g >= 1 for g in gaps)


def test_halving_rule_conditions():
    # four examples, checkpoint w = 4 after w_prev = 0
    hist = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, 1.0],
            [2.0, 0.5, 0.0, 2.0],
            [3.0, 0.7, 0.0, 3.0],
            [4.0, 0.2, 0.0, 4.0],
        ]
    )
    f_max = hist.amax(0)
    reduced = torch.tensor([False, False, False, True])
    f_last = torch.tensor([0.0, 0.0, 0.0, 0.0])
    halve = apgd.should_halve(hist, 0, 4, 0.75, reduced, f_max, f_last)
    # 0: every step improved (4 >= 3) and f_max grew -> keep
    # 1: 2 of 4 steps improved (< 0.75 * 4) -> condition 1 halves
    # 2: nothing improved: condition 1 (and 2) halve
    assert halve.tolist() == [False, True, True, False]
    # condition 2 alone: enough increasing steps but no new best and no halving last time
    flat_best = torch.tensor([4.0, 4.0, 4.0, 4.0])
    halve = apgd.should_halve(hist, 0, 4, 0.75, reduced, f_max.clamp(max=4), flat_best)
    assert halve.tolist() == [True, True, True, False]


def test_step_size_halves_when_progress_stalls():
    """The loss peaks at a point c inside the ball: fixed-size sign steps would oscillate
    around c for ever; APGD's halving (condition 1) shrinks the moves and converges."""
    eps = 0.2
    x = torch.full((1, 1, 4, 4), 0.5)
    c = x + 0.37 * eps * torch.linspace(-1, 1, 16).view_as(x)
    seen = []

    class Peak(torch.nn.Module):
        def forward(self, z):
            seen.append(z.detach().clone())
            bump = -((z - c) ** 2).flatten(1).sum(1, keepdim=True)
            return torch.cat([bump, torch.zeros_like(bump)], 1)  # CE of class 1 grows with bump

    res = base.create("apgd-ce", Peak(), eps=eps, steps=100)(x, torch.ones(1, dtype=torch.long))
    moves = [float((b - a).abs().max()) for a, b in pairwise(seen[1:])]
    assert max(moves[:10]) > eps / 4
    assert max(moves[-10:]) < 2 * eps / 2**5  # halved at (nearly) every later checkpoint
    assert float((res.x_adv - c).abs().max()) < eps / 2**5


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-t"])
def test_apgd_at_least_as_strong_as_pgd(name):
    model, x, y = digits_model()
    pgd = base.create("pgd", model, eps=0.1, steps=10)(x, y)
    res = (
        base.create(name, model, eps=0.1, n_target_classes=3, steps=50)(x, y)
        if name == "apgd-t"
        else base.create(name, model, eps=0.1, steps=50)(x, y)
    )
    assert res.robust.float().mean() <= pgd.robust.float().mean() + 0.01
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred != y)


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-t"])
@pytest.mark.parametrize(
    "norm,grid", [("linf", (0.0, 0.03, 0.1, 1.0)), ("l2", (0.0, 0.3, 1.0, 8.0))]
)
def test_robust_acc_below_clean_and_non_increasing(name, norm, grid):
    model, x, y = digits_model()
    opts = {"steps": 20}
    if name == "apgd-t":
        opts["n_target_classes"] = 3
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    accs = [
        float(base.create(name, model, eps=e, norm=norm, **opts)(x, y).robust.float().mean())
        for e in grid
    ]
    assert accs[0] == pytest.approx(clean)
    assert all(a >= b for a, b in pairwise(accs)), accs
    assert accs[-1] <= 0.01


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-t"])
def test_explicit_target(name):
    model, x, y = digits_model()
    target = (y + 1) % 10
    res = base.create(name, model, eps=0.3, steps=20)(x, y, target=target)
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred == target)
    # targeted DLR only asks z_t > z_y, so a third class can still win the argmax
    assert res.success.float().mean() > 0.8


def test_apgd_t_targets_are_the_top_non_true_classes():
    logits = torch.tensor([[5.0, 1.0, 4.0, 3.0, 0.0], [0.0, 9.0, 8.0, 1.0, 2.0]])
    y = torch.tensor([0, 2])
    from sparta.attacks._shared import top_targets

    assert top_targets(logits, y, 3).tolist() == [[2, 3, 1], [1, 4, 3]]
    assert top_targets(logits, y, 9).shape == (2, 4)
