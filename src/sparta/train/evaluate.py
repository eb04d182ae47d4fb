"""Accuracy and loss of a model on a dataset, batched, leaving the model's mode as it was."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import ImageDataset, as_dataset, iterate
from sparta.models.utils import device_of, eval_mode, frozen

__all__ = [
    "eval_mode",
    "evaluate",
    "evaluate_corruptions",
    "frozen",
    "predict",
]  # eval_mode, frozen: from models


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


def evaluate_corruptions(
    model: nn.Module,
    data: ImageDataset,
    seed: int = 0,
    kinds: tuple[str, ...] | None = None,
    batch_size: int = 1000,
    sets: list[tuple[str, int, ImageDataset]] | None = None,
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``data`` under every corruption of
    :mod:`sparta.data.corruptions` (``kinds``, default all) at severities 1..5, seeded.

    Returns ``corruption_acc`` (the mean over kinds and severities, Hendrycks & Dietterich's
    mean corruption accuracy without AlexNet normalisation), ``by_kind`` (kind -> mean over
    severities), ``by_severity`` (severity -> mean over kinds), ``acc`` (kind -> the five
    accuracies) and ``n`` (images per corrupted set). ``sets``: the corrupted sets made
    once by ``list(every_corruption(data, seed))``, to score many models on them."""
    from sparta.data.corruptions import CORRUPTIONS, every_corruption

    data = as_dataset(data)
    acc: dict[str, list[float]] = {}
    for kind, _, ds in sets or every_corruption(data, seed, tuple(kinds or CORRUPTIONS)):
        acc.setdefault(kind, []).append(evaluate(model, ds, batch_size)["acc"])
    by_kind = {k: sum(v) / len(v) for k, v in acc.items()}
    n_sev = len(next(iter(acc.values())))
    by_severity = {s + 1: sum(v[s] for v in acc.values()) / len(acc) for s in range(n_sev)}
    return {
        "corruption_acc": sum(by_kind.values()) / len(by_kind),
        "by_kind": by_kind,
        "by_severity": by_severity,
        "acc": acc,
        "n": len(data),
    }
