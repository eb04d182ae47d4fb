"""Small networks and a soundness checker shared by the certify tests."""

from __future__ import annotations

import torch
from torch import nn

from sparta import data, models
from sparta.certify import Bounds

TOL = 1e-5

# (registry name, input shape, width): small versions of the supported architectures
ARCHS = [
    ("lenet300", (1, 8, 8), 0.1),
    ("lenet5", (1, 8, 8), 0.25),
    ("conv2", (1, 8, 8), 0.1),
    ("resnet20", (1, 8, 8), 0.25),
]


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters (eval-mode BatchNorm)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
    return model


def small_model(
    name: str, shape, width: float, seed: int = 0
) -> tuple[nn.Module, data.ImageDataset]:
    torch.manual_seed(seed)
    ds = data.load("synthetic", "train", n=32, shape=shape, num_classes=4, seed=seed)
    model = models.create(name, dataset=ds.info, width=width)
    if name == "resnet20":  # He init with BN blows bounds up; shrink the weights
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.mul_(0.3)
    return randomize_bn(model.eval(), seed), ds


def samples(x: torch.Tensor, eps: float, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points per example of ``x`` from the Linf ball ∩ [0,1]: uniform and corners.

    Returns (n, B, *shape)."""
    g = torch.Generator().manual_seed(seed)
    u = (torch.rand((n, *x.shape), generator=g) * 2 - 1) * eps
    corners = torch.randint(0, 2, (n // 2, *x.shape), generator=g).float() * 2 - 1
    u[: n // 2] = corners * eps
    return (x[None] + u).clamp(0, 1)


def check_sound(model: nn.Module, points: torch.Tensor, y: torch.Tensor, b: Bounds) -> None:
    """No point's logits or margins leave the bounds."""
    with torch.no_grad():
        z = model(points.flatten(0, 1)).view(points.shape[0], points.shape[1], -1)
    assert (z >= b.lower - TOL).all(), float((b.lower - z).max())
    assert (z <= b.upper + TOL).all(), float((z - b.upper).max())
    margins = z.gather(2, y[None, :, None].expand(len(z), -1, 1)) - z
    assert (margins >= b.margin_lower - TOL).all(), float((b.margin_lower - margins).max())


def pgd_extremes(model: nn.Module, x: torch.Tensor, eps: float, steps: int = 20) -> torch.Tensor:
    """Points found by signed-gradient ascent/descent on every logit (2K, B, *shape)."""
    k = model(x[:1]).shape[1]
    found = []
    lo, up = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    for j in range(k):
        for sign in (1.0, -1.0):
            xa = x.clone()
            for _ in range(steps):
                xa.requires_grad_(True)
                (g,) = torch.autograd.grad(sign * model(xa)[:, j].sum(), xa)
                xa = torch.minimum(torch.maximum(xa.detach() + eps / 4 * g.sign(), lo), up)
            found.append(xa.detach())
    return torch.stack(found)
