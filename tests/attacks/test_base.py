"""The attack core: registry, input checks, projections, random starts, losses, frozen()."""

import math

import pytest
import torch
import torch.nn.functional as F

from sparta.attacks import base
from tests.attacks.helpers import (
    import_all_attacks,
    mlp,
    one_thread,  # noqa: F401  (autouse fixture)
)

NAMES = import_all_attacks()


def _x(n=4, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ registry and errors
def test_registry_lists_the_white_box_attacks():
    assert {"fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t"} <= set(NAMES)
    assert set(base.names(black_box=False)) >= {"fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t"}
    assert not set(base.names(black_box=True)) & {"fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t"}


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'pgd'"):
        base.register_attack("pgd")(type("Dup", (base.Attack,), {"perturb": lambda *a: None}))


def test_unknown_attack_name():
    with pytest.raises(ValueError, match="'nope'.*allowed: .*pgd"):
        base.create("nope", mlp(0), eps=0.1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf")])
def test_bad_eps(name, eps):
    with pytest.raises(ValueError, match=f"eps={eps!r}"):
        base.create(name, mlp(0), eps=eps)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_norm(name):
    with pytest.raises(ValueError, match="'l3'.*allowed: linf, l2"):
        base.create(name, mlp(0), eps=0.1, norm="l3")


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t"])
def test_inputs_outside_the_unit_box(name):
    atk = base.create(name, mlp(0), eps=0.1)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 1\].*1\.5"):
        bad = _x()
        bad[0, 0, 0, 0] = 1.5
        atk(bad, y)
    bad = _x()
    bad[1, 0, 2, 3] = -0.25
    with pytest.raises(ValueError, match=r"-0\.25"):
        atk(bad, y)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t"])
def test_labels_and_targets_out_of_range(name):
    atk = base.create(name, mlp(0, classes=5), eps=0.1)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="7 out of range; allowed 0..4"):
        atk(_x(), torch.tensor([0, 1, 7, 3]))
    with pytest.raises(ValueError, match="7 out of range; allowed 0..4"):
        atk(_x(), y, target=torch.tensor([1, 7, 0, 0]))
    with pytest.raises(ValueError, match="-1 out of range"):
        atk(_x(), y, target=torch.tensor([1, -1, 0, 0]))


@pytest.mark.parametrize(
    "name,option,value",
    [
        ("pgd", "steps", 0),
        ("pgd", "restarts", 0),
        ("pgd", "alpha", -0.1),
        ("pgd", "loss", "hinge"),
        ("fgsm", "alpha", 0.0),
        ("apgd-ce", "steps", 0),
        ("apgd-ce", "rho", -1.0),
        ("apgd-ce", "momentum", 1.5),
        ("apgd-t", "n_target_classes", 0),
        ("fab-t", "steps", 0),
        ("fab-t", "beta", 1.0),
        ("fab-t", "alpha_max", 2.0),
    ],
)
def test_bad_options_name_the_value(name, option, value):
    with pytest.raises(ValueError, match=f"{value!r}"):
        base.create(name, mlp(0), eps=0.1, **{option: value})


def test_dlr_losses_need_enough_classes():
    x, y = _x(), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="dlr loss needs at least 3 classes.*2"):
        base.create("pgd", mlp(0, classes=2), eps=0.1, loss="dlr")(x, y)
    with pytest.raises(ValueError, match="targeted dlr loss needs at least 4 classes.*3"):
        base.create("apgd-t", mlp(0, classes=3), eps=0.1)(x, y)


# ------------------------------------------------------------------ projections and starts
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_project_lands_in_ball_and_box_and_is_idempotent(norm):
    x = _x(8)
    z = x + 3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    p = base.project(z, x, 0.3, norm)
    delta = (p - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= 0.3 + 1e-6).all() and p.min() >= 0 and p.max() <= 1
    torch.testing.assert_close(base.project(p, x, 0.3, norm), p)
    inside = x + 0.01 * (z - x).sign() * (x > 0.05) * (x < 0.95)
    torch.testing.assert_close(base.project(inside, x, 0.3, norm), inside)


def test_normalize_step():
    g = torch.randn(3, 1, 4, 4)
    assert torch.equal(base.normalize_step(g, "linf"), g.sign())
    n = base.normalize_step(g, "l2").flatten(1).norm(dim=1)
    torch.testing.assert_close(n, torch.ones(3))
    assert torch.equal(base.normalize_step(torch.zeros(2, 3), "l2"), torch.zeros(2, 3))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_seeded_and_inside(norm):
    x = _x(16)
    a = base.random_start(x, 0.2, norm, torch.Generator().manual_seed(3))
    b = base.random_start(x, 0.2, norm, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    d = (a - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= 0.2 + 1e-6).all() and a.min() >= 0 and a.max() <= 1
    assert (size > 0).all()


# ------------------------------------------------------------------ losses
def test_losses_by_hand():
    z = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 5.0, 1.0]])
    y = torch.tensor([0, 1])
    torch.testing.assert_close(base.margin_loss(z, y), torch.tensor([1.0 - 3.0, 5.0 - 2.0]))
    # DLR (2003.01690 Eq. 5): -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)
    torch.testing.assert_close(base.dlr_loss(z, y), torch.tensor([-(3 - 1) / 3.0, 3 / 4.0]))
    t = torch.tensor([2, 0])
    # targeted DLR (Eq. 6): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    want = torch.tensor([-(3 - 0) / (3 - (0 - 1) / 2), -(2 - 0) / (5 - (1 + 0) / 2)])
    torch.testing.assert_close(base.dlr_targeted_loss(z, y, t), want)
    torch.testing.assert_close(base.ce_loss(z, y), F.cross_entropy(z, y, reduction="none"))
    assert base.get_loss("cw") is base.margin_loss
    with pytest.raises(ValueError, match="'hinge'"):
        base.get_loss("hinge")


def test_dlr_is_scale_invariant():
    z = torch.randn(5, 6)
    y = torch.arange(5)
    torch.testing.assert_close(base.dlr_loss(3.7 * z, y), base.dlr_loss(z, y))


# ------------------------------------------------------------------ model state
def test_frozen_restores_mode_and_flags_even_on_error():
    m = mlp(0, dropout=True).train()
    m[1].weight.requires_grad_(False)
    flags = [p.requires_grad for p in m.parameters()]
    with pytest.raises(RuntimeError), base.frozen(m):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
        raise RuntimeError("boom")
    assert m.training and all(mod.training for mod in m.modules())
    assert [p.requires_grad for p in m.parameters()] == flags


def test_gradient_matches_autograd():
    m = mlp(0).eval()
    atk = base.create("pgd", m, eps=0.1)
    x, y = _x(), torch.tensor([0, 1, 2, 3])
    loss, logits, grad = atk.gradient(x, y, base.ce_loss)
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(m(xr), y, reduction="sum").backward()
    torch.testing.assert_close(grad, xr.grad)
    torch.testing.assert_close(logits, m(x).detach())
    assert not math.isnan(float(loss.sum()))
