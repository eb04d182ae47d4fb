import pytest
import torch

from sparta.sparsity.allocation import allocate, erk, uniform


def test_uniform():
    assert uniform({"a": torch.Size([3, 4]), "b": torch.Size([5])}, 0.75) == {"a": 0.25, "b": 0.25}


def _kept(shapes, dens):
    return sum(torch.Size(s).numel() * dens[n] for n, s in shapes.items())


def test_erk_matches_hand_computed_densities_and_budget():
    shapes = {"a": torch.Size([10, 20]), "b": torch.Size([10, 5])}
    # raw densities (sum/prod): a 30/200 = 0.15, b 15/50 = 0.3; budget 0.2 * 250 = 50
    # eps = 50 / (0.15 * 200 + 0.3 * 50) = 50 / 45
    dens = erk(shapes, 0.8)
    assert dens["a"] == pytest.approx(0.15 * 50 / 45) and dens["b"] == pytest.approx(0.3 * 50 / 45)
    assert _kept(shapes, dens) == pytest.approx(50)
    # at sparsity 0.2, b would exceed density 1: it is kept dense and a takes the rest
    dens = erk(shapes, 0.2)
    assert dens["b"] == 1.0 and dens["a"] == pytest.approx((200 - 50) / 200)
    assert _kept(shapes, dens) == pytest.approx(200)


def test_erk_counts_kernel_dims():
    shapes = {"conv": torch.Size([4, 2, 3, 3]), "fc": torch.Size([8, 8])}
    dens = erk(shapes, 0.9)
    ratio = ((4 + 2 + 3 + 3) / 72) / ((8 + 8) / 64)
    assert dens["conv"] / dens["fc"] == pytest.approx(ratio)
    assert _kept(shapes, dens) == pytest.approx(0.1 * (72 + 64))


def test_allocate_dispatch_and_unknown_kind():
    shapes = {"a": torch.Size([4, 4])}
    assert allocate("layer", shapes, 0.5) == {"a": 0.5}
    with pytest.raises(ValueError, match="zigzag"):
        allocate("zigzag", shapes, 0.5)
