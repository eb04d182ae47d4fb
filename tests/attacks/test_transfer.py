"""Transfer attacks (MI-FGSM, DI, DA-PGD) and the transfer matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sparta.attacks import create, names
from sparta.attacks.transfer import MIFGSM, transfer_matrix
from tests.attacks.test_square import accuracy, assert_in_ball, digits_batch, digits_model

TRANSFER = ("mi-fgsm", "di-fgsm", "da-pgd")


def fgsm_by_hand(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def test_registered_as_white_box() -> None:
    assert set(TRANSFER) <= set(names(black_box=False))


def test_mi_fgsm_one_step_without_momentum_is_fgsm() -> None:
    model = digits_model()
    x, y = digits_batch(50)
    res = create("mi-fgsm", model, eps=0.1, steps=1, momentum=0.0)(x, y)
    assert torch.allclose(res.x_adv, fgsm_by_hand(model, x, y, 0.1), atol=1e-6)
    if "fgsm" in names():
        ref = create("fgsm", model, eps=0.1)(x, y)
        assert torch.allclose(res.x_adv, ref.x_adv, atol=1e-6)


@pytest.mark.parametrize("name", TRANSFER)
def test_transfer_attacks_fool_the_surrogate_and_restore_flags(name: str) -> None:
    model = digits_model().train()
    x, y = digits_batch(100)
    res = create(name, model, eps=0.3)(x, y)
    assert model.training and all(p.requires_grad for p in model.parameters())
    model.eval()
    assert accuracy(model, res.x_adv, y) < 0.1
    assert_in_ball(res.x_adv, x, 0.3)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


def test_di_without_diversity_is_mi_and_transform_keeps_shape() -> None:
    model = digits_model()
    x, y = digits_batch(40)
    mi = create("mi-fgsm", model, eps=0.1)(x, y)
    di0 = create("di-fgsm", model, eps=0.1, diversity_prob=0.0)(x, y)
    assert torch.equal(mi.x_adv, di0.x_adv)
    atk = create("di-fgsm", model, eps=0.1, diversity_prob=1.0, resize_rate=0.5)
    out = atk.transform(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    a, b = atk(x, y), atk(x, y)
    assert torch.equal(a.x_adv, b.x_adv)  # seeded


def test_da_pgd_with_zero_radius_is_sign_pgd() -> None:
    model = digits_model()
    x, y = digits_batch(40)
    da = create("da-pgd", model, eps=0.1, radius=0.0, n_samples=4, steps=5)(x, y)
    pgd = create("mi-fgsm", model, eps=0.1, momentum=0.0, steps=5, step_size=2.5 * 0.1 / 5)
    assert torch.equal(da.x_adv, pgd(x, y).x_adv)


@pytest.mark.parametrize("name", TRANSFER)
def test_transfer_matrix_diagonal_is_white_box_success(name: str) -> None:
    models = {"a": digits_model(0, 64), "b": digits_model(1, 32)}
    x, y = digits_batch(80)
    eps = 0.1
    labels, matrix = transfer_matrix(models, name, x, y, eps=eps)
    assert labels == ["a", "b"] and matrix.shape == (2, 2)
    assert torch.all((matrix >= 0) & (matrix <= 1))
    for i, model in enumerate(models.values()):
        res = create(name, model, eps=eps)(x, y)
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        expected = res.success[correct].double().mean().item()
        assert matrix[i, i].item() == pytest.approx(expected)


def test_transfer_matrix_accepts_a_factory_and_a_list() -> None:
    x, y = digits_batch(30)
    labels, matrix = transfer_matrix([digits_model(0, 64)], MIFGSM, x, y, eps=0.3)
    assert labels == ["0:Sequential"] and matrix[0, 0].item() == 1.0


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("mi-fgsm", {"eps": -0.5}, "eps=-0.5"),
        ("mi-fgsm", {"eps": 0.1, "norm": "l0"}, "l0"),
        ("mi-fgsm", {"eps": 0.1, "steps": 0}, "steps=0"),
        ("mi-fgsm", {"eps": 0.1, "momentum": -1.0}, "momentum=-1.0"),
        ("di-fgsm", {"eps": 0.1, "diversity_prob": 2.0}, "diversity_prob=2.0"),
        ("di-fgsm", {"eps": 0.1, "resize_rate": 1.5}, "resize_rate=1.5"),
        ("da-pgd", {"eps": 0.1, "n_samples": 0}, "n_samples=0"),
        ("da-pgd", {"eps": 0.1, "radius": -1.0}, "radius=-1.0"),
    ],
)
def test_transfer_bad_options(name: str, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create(name, digits_model(), **options)


def test_transfer_matrix_needs_models() -> None:
    x, y = digits_batch(4)
    with pytest.raises(ValueError, match="at least one model"):
        transfer_matrix([], "mi-fgsm", x, y, eps=0.1)
