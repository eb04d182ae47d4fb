"""Accuracy and loss of a model on a dataset, batched, leaving the model's mode as it was."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import ImageDataset, as_dataset, iterate
from sparta.models.utils import device_of, eval_mode, frozen

__all__ = ["eval_mode", "evaluate", "frozen", "predict"]  # eval_mode, frozen: from models


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
    device = device or device_of(model)
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
    device = device_of(model)
    with eval_mode(model):
        return torch.cat(
            [model(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        )
