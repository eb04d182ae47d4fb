"""IBP soundness: sampled points, corners and PGD never leave the interval bounds."""

import pytest
import torch
from torch import nn

from sparta.certify import bounds
from sparta.sparsity import prune

from .helpers import ARCHS, check_sound, pgd_extremes, samples, small_model


@pytest.mark.parametrize("name,shape,width", ARCHS)
def test_ibp_bounds_contain_samples_corners_and_pgd(name, shape, width):
    model, ds = small_model(name, shape, width)
    x, y, eps = ds.x[:4], ds.y[:4], 0.03
    b = bounds(model, x, eps, method="ibp", y=y)
    check_sound(model, samples(x, eps, 1000), y, b)
    check_sound(model, pgd_extremes(model, x, eps, steps=5), y, b)


def test_ibp_margin_is_tighter_than_logit_difference():
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    x, y = ds.x[:8], ds.y[:8]
    b = bounds(model, x, 0.05, method="ibp", y=y)
    naive = b.lower.gather(1, y[:, None]) - b.upper
    assert (b.margin_lower >= naive - 1e-6).all()
    assert (b.margin_lower.gather(1, y[:, None]) == 0).all()


def test_ibp_is_exact_at_eps_zero_and_differentiable():
    model, ds = small_model("lenet5", (1, 8, 8), 0.25)
    x = ds.x[:3]
    b = bounds(model, x, 0.0, method="ibp")
    assert torch.allclose(b.lower, model(x), atol=1e-5)
    assert torch.allclose(b.upper, model(x), atol=1e-5)
    b = bounds(model, x, 0.05, method="ibp", y=ds.y[:3])
    (-b.margin_lower.sum()).backward()
    assert model.fc1.weight.grad is not None


def test_masked_model_is_bounded_as_is():
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    prune(model, method="magnitude", sparsity=0.8)
    with torch.no_grad():
        model.fc1.weight[:3] = 0  # three neurons pruned away entirely
    x, y = ds.x[:4], ds.y[:4]
    b = bounds(model, x, 0.05, method="crown", y=y)
    check_sound(model, samples(x, 0.05, 500), y, b)
    lo, up = b.preact["relu1"]
    assert torch.allclose(lo[:, :3], up[:, :3])  # exactly stable: no CROWN rows spent


def test_l2_bounds_are_sound():
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    x, y, eps = ds.x[:4], ds.y[:4], 0.3
    g = torch.Generator().manual_seed(0)
    d = torch.randn((2000, *x.shape), generator=g)
    d = (
        d
        / d.flatten(2).norm(dim=-1)[..., None, None, None]
        * eps
        * torch.rand(2000, 4, 1, 1, 1, generator=g)
    )
    pts = (x[None] + d).clamp(0, 1)
    for method in ("ibp", "crown", "alpha-crown"):
        check_sound(model, pts, y, bounds(model, x, eps, norm="l2", method=method, y=y))
    box = bounds(model, x, eps, norm="linf", method="crown")
    l2 = bounds(model, x, eps, norm="l2", method="crown")
    assert (l2.lower >= box.lower - 1e-5).all()


def test_residual_and_avgpool_toy():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.relu = nn.ReLU()
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            h = self.relu(self.conv(x) + x)
            return self.fc(torch.flatten(self.pool(h), 1))

    torch.manual_seed(0)
    model = Block().eval()
    x, y = torch.rand(3, 2, 4, 4), torch.tensor([0, 1, 2])
    for method in ("ibp", "crown"):
        b = bounds(model, x, 0.05, method=method, y=y)
        check_sound(model, samples(x, 0.05, 1000), y, b)
