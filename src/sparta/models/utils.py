"""What every layer above needs to know about a model: its device, its input shape, the plain
module behind a wrapper, and blocks that run it in eval mode and restore the caller's state.

Everything here works on any ``nn.Module``, including one without parameters (a black-box
wrapper around another model or a remote service).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from sparta.models.registry import spec_of


@contextlib.contextmanager
def train_mode(model: nn.Module, training: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in train mode (``training=False``: eval mode) for the block and restore
    each module's previous mode afterwards, even if the block raises."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def eval_mode(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Put ``model`` in eval mode for the block and restore each module's previous mode."""
    return train_mode(model, False)


@contextlib.contextmanager
def grad_flags(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every parameter's ``requires_grad`` after the block, even if it raises.

    Only leaf tensors carry a flag: a reparametrised module (``torch.func.functional_call``,
    HYDRA's score phase) exposes computed weights, which are skipped."""
    flags = [(p, p.requires_grad) for p in model.parameters() if p.is_leaf]
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients for the block (attacks, bounds, trigger search
    optimise inputs, not weights); restores every module's mode and every flag afterwards."""
    with eval_mode(model), grad_flags(model):
        for p in model.parameters():
            if p.is_leaf:
                p.requires_grad_(False)
        yield model


def bare(model: nn.Module) -> nn.Module:
    """The plain module behind DistributedDataParallel (``.module``) and ``torch.compile``
    (``._orig_mod``) wrappers, however they are nested; ``model`` itself if unwrapped."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            wrapped = isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel)
            inner = model.module if wrapped else None
        if inner is None:
            return model
        model = inner


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter, else of its first buffer, else CPU (a
    parameter-free model such as a black-box wrapper)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def dtype_of(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer, else float32."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def input_shape_of(model: nn.Module, input_shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """``input_shape`` as a tuple of ints, else the ``(C, H, W)`` in the model's sparta spec
    (set by :func:`sparta.models.create`); ValueError when neither is known or a size is < 1."""
    if input_shape is None:
        try:  # the spec that create() attached, also behind a wrapper
            input_shape = spec_of(model)["dataset"]["input_shape"]
        except ValueError:
            raise ValueError(
                f"input_shape is needed: {type(model).__name__} was not built by "
                "sparta.models.create, so its input shape is unknown"
            ) from None
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 1 or min(shape) < 1:
        raise ValueError(f"input_shape must be positive sizes like (C, H, W), got {input_shape}")
    return shape
