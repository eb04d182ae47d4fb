"""Accuracy and loss of a model on a dataset, batched, leaving the model's mode as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import ImageDataset, as_dataset, iterate


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore each module's previous mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients for the block (attacks, bounds, trigger search
    optimise inputs, not weights); restores every module's mode and every flag afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageDataset,
    batch_size: int = 1000,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """``{"loss", "acc", "n"}`` of ``model`` on ``data`` (mean cross-entropy, accuracy);
    ``data``: any dataset or DataLoader of ``(x, y)`` (see :func:`sparta.data.as_dataset`)."""
    data = as_dataset(data)
    if len(data) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = device or next(model.parameters()).device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with eval_mode(model):
        for x, y in iterate(data.x, data.y, batch_size):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    n = len(data)
    return {"loss": float(loss_sum) / n, "acc": int(correct) / n, "n": n}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched."""
    device = next(model.parameters()).device
    with eval_mode(model):
        return torch.cat(
            [model(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        )
