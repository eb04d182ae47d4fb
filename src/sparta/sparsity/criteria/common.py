"""Helpers shared by the criteria: a context that restores the model, seeded batches, grads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import ImageDataset
from sparta.models.utils import device_of, grad_flags, train_mode


@contextlib.contextmanager
def scoring(
    model: nn.Module, params: Mapping[str, nn.Parameter], train: bool = False
) -> Iterator[nn.Module]:
    """Within the block: ``params`` require grad and the model is in eval (or train) mode.

    Afterwards every module's mode, every parameter's ``requires_grad`` and every buffer
    (BatchNorm statistics move in train mode) are restored.
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if train else []
    with train_mode(model, train), grad_flags(model):
        for p in params.values():
            p.requires_grad_(True)
        try:
            yield model
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)


def sample_batches(
    data: ImageDataset, batches: int, batch_size: int, seed: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` batches of ``batch_size`` samples in a seeded random order (no repeats;
    fewer when the dataset runs out)."""
    if batches < 1 or batch_size < 1:
        raise ValueError(f"batches={batches}, batch_size={batch_size}: both must be >= 1")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    for i in range(batches):
        idx = order[i * batch_size : (i + 1) * batch_size]
        if idx.numel() == 0:
            break
        yield data.x[idx].to(device), data.y[idx].to(device)


def loss_grads(
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    temperature: float = 1.0,
    create_graph: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Gradients of the mean cross-entropy of ``model(x) / temperature`` w.r.t. ``params``
    (via ``autograd.grad``: no ``.grad`` field is touched)."""
    loss = F.cross_entropy(model(x) / temperature, y)
    return torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)


def data_batches(
    model: nn.Module, data: ImageDataset, batches: int, batch_size: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The seeded batches a data-dependent criterion uses, on the model's device."""
    return list(sample_batches(data, batches, batch_size, seed, device_of(model)))
