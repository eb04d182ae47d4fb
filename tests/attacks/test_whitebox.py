"""FGSM and PGD: against a textbook loop, on a trained digits model, options and masks."""

import copy
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from sparta.attacks import base, whitebox  # noqa: F401  (registers fgsm, pgd)
from sparta.sparsity import attach, masks_of, prunable_parameters
from tests.attacks.helpers import (
    digits_model,
    one_thread,  # noqa: F401  (autouse fixture)
)


def robust_acc(res):
    return float(res.robust.float().mean())


def textbook_pgd(model, x, y, eps, alpha, steps, start=None):
    """Madry et al.'s Linf PGD as usually written: sign steps, clip to ball and box; returns
    which examples the last iterate fools."""
    x_adv = x.clone() if start is None else start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_matches_a_textbook_loop(random_start, eps):
    """The same iterates: every example the textbook's last iterate fools is fooled (ours
    also keeps an earlier iterate that fooled it), and nothing else is gained."""
    model, x, y = digits_model()
    steps, alpha = 10, 2.5 * eps / 10
    start = None
    if random_start:  # the same uniform draw as the attack's seed-0 generator makes
        u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
        start = (x + (u * (2 * eps) - eps)).clamp(0, 1)
    ref = textbook_pgd(model, x, y, eps, alpha, steps, start)
    res = base.create("pgd", model, eps=eps, steps=steps, random_start=random_start)(x, y)
    assert not (ref & ~res.success).any()
    gained = float((res.success & ~ref).float().mean())  # fooled on the way, not at the end
    assert gained <= 0.03, gained
    assert 0.1 < 1 - float(ref.float().mean()) < 0.95  # a regime where the attack matters


class Counting(torch.nn.Module):
    """Counts the rows it is called on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += len(x)
        return self.model(x)


def test_pgd_attacks_only_the_examples_not_yet_fooled():
    """The success of each iterate comes from its own gradient step's forward pass: fooled
    examples leave the batch and keep that point; examples never fooled get one more
    forward pass, on their last iterate."""
    model, x, y = digits_model()
    with torch.no_grad():
        pred = model(x).argmax(1)
    labels = torch.where(torch.arange(len(x)) % 2 == 0, (pred + 1) % 10, pred)  # half fooled
    counted = Counting(model)
    res = base.create("pgd", counted, eps=1e-4, steps=4, num_classes=10, random_start=False)(
        x, labels
    )
    fooled = labels != pred
    assert torch.equal(res.success, fooled)  # eps too small to change a prediction
    torch.testing.assert_close(res.x_adv[fooled], x[fooled], rtol=0, atol=0)  # the start
    m = int((~fooled).sum())
    assert counted.rows == len(x) + 3 * m + m  # step 1 all, steps 2-4 the rest, final forward
    counted.rows = 0
    with torch.no_grad():
        wrong = (model(x).argmax(1) + 1) % 10
    res = base.create("pgd", counted, eps=0.05, steps=4, num_classes=10)(x, wrong)
    assert res.success.all() and counted.rows == len(x)  # all fooled at the start: one pass
    counted.rows = 0
    res = base.create("pgd", counted, eps=0.2, steps=4, num_classes=10)(x, y)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)
    assert res.success.float().mean() > 0.5 and counted.rows < 5 * len(x)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_robust_acc_below_clean_and_non_increasing_in_eps(name):
    model, x, y = digits_model()
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    accs = [
        robust_acc(base.create(name, model, eps=eps)(x, y)) for eps in (0.0, 0.03, 0.1, 0.2, 1.0)
    ]
    assert accs[0] == pytest.approx(clean)
    assert all(a >= b for a, b in pairwise(accs)), accs
    assert accs[1] < clean
    if name == "pgd":
        assert accs[-1] <= 0.01  # eps = 1 covers the whole box: ~0% for untargeted PGD


def test_fgsm_is_one_signed_step():
    model, x, y = digits_model()
    eps = 0.07
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y, reduction="sum").backward()
    want = (x + eps * xr.grad.sign()).clamp(0, 1)
    res = base.create("fgsm", model, eps=eps)(x, y)
    torch.testing.assert_close(res.x_adv, want)
    with torch.no_grad():
        assert torch.equal(res.success, model(want).argmax(1) != y)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.5)])
def test_targeted_pgd_reaches_the_target(norm, eps):
    model, x, y = digits_model()
    target = (y + 3) % 10
    res = base.create("pgd", model, eps=eps, norm=norm, steps=20)(x, y, target=target)
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred == target)
    assert res.success.float().mean() > 0.9


@pytest.mark.parametrize("loss", ["ce", "margin", "cw", "dlr"])
def test_losses_all_attack(loss):
    model, x, y = digits_model()
    res = base.create("pgd", model, eps=0.2, steps=10, loss=loss)(x, y)
    assert res.success.float().mean() > 0.8
    assert torch.isfinite(res.loss).all()


def test_restarts_and_early_stop_only_add_successes():
    model, x, y = digits_model()
    one = base.create("pgd", model, eps=0.08, steps=5)(x, y)
    more = base.create("pgd", model, eps=0.08, steps=5, restarts=3)(x, y)
    early = base.create("pgd", model, eps=0.08, steps=5, early_stop=True)(x, y)
    assert (more.success >= one.success).all() and more.success.sum() > one.success.sum()
    assert (early.success >= one.success).all()
    # restart 1 is the single run: where it succeeded, the same point is kept
    assert torch.equal(more.x_adv[one.success], one.x_adv[one.success])
    with torch.no_grad():
        assert torch.equal(early.success, model(early.x_adv).argmax(1) != y)


def test_seeded_and_deterministic():
    model, x, y = digits_model()
    a = base.create("pgd", model, eps=0.1, steps=3, seed=1)(x, y)
    b = base.create("pgd", model, eps=0.1, steps=3, seed=1)(x, y)
    c = base.create("pgd", model, eps=0.1, steps=3, seed=2)(x, y)
    assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)


def test_masked_model_attacks_unchanged_and_keeps_masks():
    model, x, y = digits_model()
    sparse = copy.deepcopy(model).train()
    g = torch.Generator().manual_seed(0)
    attach(
        sparse,
        {n: torch.rand(p.shape, generator=g) > 0.5 for n, p in prunable_parameters(sparse).items()},
    )
    before = {n: m.clone() for n, m in masks_of(sparse).items()}
    weights = [p.detach().clone() for p in sparse.parameters()]
    res = base.create("pgd", sparse, eps=0.1, steps=5)(x, y)
    assert sparse.training
    assert all(torch.equal(m, before[n]) for n, m in masks_of(sparse).items())
    assert all(torch.equal(p, w) for p, w in zip(sparse.parameters(), weights, strict=True))
    assert res.success.any()
