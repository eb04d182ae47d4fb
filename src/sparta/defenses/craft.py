"""The one inner-maximisation loop the training objectives share (PGD-AT, TRADES, Fast-AT).

Adversarial examples for training are crafted with the model in **eval mode** (the
registry's ``frozen``: BatchNorm uses its running statistics, dropout is off, parameters
need no gradient), then the loss is taken in the caller's train mode. Why eval mode:

* the inner maximisation then attacks each example against the network that will be
  deployed, not a batch-coupled one (in train mode BatchNorm normalises with the batch's
  statistics, so one example's perturbation moves the others' outputs);
* the k crafting passes do not push k adversarial batches into BatchNorm's running
  statistics per optimizer step; only the training forward pass updates them, once;
* it is what the TRADES reference code does (``model.eval()`` while crafting) and matches
  how the model is attacked at evaluation (every registry attack freezes it the same way).

Madry et al.'s and Wong et al.'s code craft in train mode; on BatchNorm-free models (lenet5,
lenet300, ...) the two choices are identical.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sparta.attacks.base import check_eps, check_norm, frozen, normalize_step, project, random_start

LossFn = Callable[[torch.Tensor], torch.Tensor]  # logits -> per-example loss to maximise


def bare(model: nn.Module) -> nn.Module:
    """The plain module behind a DistributedDataParallel or ``torch.compile`` wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def check_attack_options(eps: float, norm: str, steps: int, alpha: float | None) -> None:
    """Raise ValueError naming the first bad option."""
    check_eps(eps)
    check_norm(norm)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; expected an integer >= 1")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"alpha={alpha!r} is not allowed; expected a number > 0 (or None)")


def perturb(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: LossFn,
    eps: float,
    norm: str = "linf",
    steps: int = 10,
    alpha: float | None = None,
    start: str = "uniform",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``steps`` of projected steepest ascent on ``loss_fn(model(x'))`` inside the eps-ball.

    ``start``: "uniform" (a uniform point of the ball, Madry et al. / Wong et al.),
    "normal" (x + 0.001 N(0, 1), TRADES Alg. 1) or "none". ``alpha`` defaults to
    2.5 eps / steps (Madry et al. 2018), enough to cross the ball from any start point.
    Returns a detached ``x'`` inside the ball and [0, 1]; the model is in eval mode with
    parameter gradients off during the loop, and restored afterwards.
    """
    if eps == 0:
        return x.detach()
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    generator = generator or torch.Generator().manual_seed(0)
    x = x.detach()
    if start == "uniform":
        x_adv = random_start(x, eps, norm, generator)
    elif start == "normal":
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x)
        x_adv = project(x + 0.001 * noise, x, eps, norm)
    else:
        x_adv = x.clone()
    with frozen(model), torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = loss_fn(model(x_adv)).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = project(x_adv.detach() + alpha * normalize_step(grad, norm), x, eps, norm)
    return x_adv.detach()
