"""A score-only view of a model: the black box of query-based (zeroth-order) methods.

:class:`BlackBox` runs the wrapped model in eval mode under ``no_grad`` and counts every input
row it is asked about (``queries``). Its output is sealed by an autograd function whose
backward raises, so a method that claims to use only scores cannot silently back-propagate
through the model: if it tried, it would fail loudly.
"""

from __future__ import annotations

import torch
from torch import nn

from sparta.models.utils import eval_mode


class BlackBoxGradientError(RuntimeError):
    """Raised when something tries to differentiate through a :class:`BlackBox`."""


class _Sealed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return scores.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> None:  # noqa: ARG004
        raise BlackBoxGradientError(
            "a black-box model returns scores only: no gradient flows through it"
        )


class BlackBox(nn.Module):
    """Query ``model`` for scores only, ``max_batch`` rows per call; ``queries`` counts rows.

    The model is kept outside this module's parameters, so an optimizer built on a module
    holding a ``BlackBox`` never sees its weights.
    """

    def __init__(self, model: nn.Module, max_batch: int = 4096) -> None:
        super().__init__()
        self.__dict__["model"] = model  # not a submodule: its parameters stay hidden
        self.max_batch = max_batch
        self.queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(self.model):
            scores = torch.cat([self.model(chunk) for chunk in x.split(self.max_batch)])
        self.queries += len(x)
        return _Sealed.apply(x, scores)
