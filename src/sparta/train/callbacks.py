"""Callbacks: how other pillars hook into the fit loop without editing it.

Hooks run in list order. ``after_backward`` sees the gradients before the optimizer
step (mask them there); ``after_step`` sees the updated weights (re-mask them, update
a sparse topology). ``state_dict`` must be JSON-able; tensors belong in model buffers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sparta.io import save

if TYPE_CHECKING:
    from sparta.train.loop import Trainer


class Callback:
    """Base class; override only the hooks you need."""

    name = "callback"

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def lr_factor(self, trainer: Trainer, step: int, factor: float) -> float:
        """The learning-rate multiplier of the ``step``-th (0-based) optimizer step, given
        the config schedule's ``factor``; a pure function of the step, so a resumed run
        needs no state (e.g. Sup-tickets' cyclic phases). Default: ``factor`` unchanged."""
        return factor

    def on_epoch_start(self, trainer: Trainer) -> None: ...

    def after_backward(self, trainer: Trainer) -> None: ...

    def after_step(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: JSON values, and tensors as top-level values (the
        checkpoint stores those in its safetensors file and hands them back on load)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _better(metric: str) -> tuple[float, Any]:
    """Worst start value and comparison for a metric: losses go down, the rest up."""
    if "loss" in metric:
        return math.inf, lambda new, best: new < best
    return -math.inf, lambda new, best: new > best


class BestCheckpoint(Callback):
    """Keep ``best.safetensors`` in the run folder: the model at the best ``metric``."""

    name = "best"

    def __init__(self, metric: str = "val_acc") -> None:
        self.metric = metric
        self.best, self._is_better = _better(metric)
        self.best_epoch = -1

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.metric not in metrics:
            raise ValueError(
                f"best_metric {self.metric!r} is not among the epoch metrics: {sorted(metrics)}"
            )
        value = metrics[self.metric]
        if self._is_better(value, self.best):
            self.best, self.best_epoch = value, metrics["epoch"]
            if trainer.run is not None and trainer.is_main:
                save(
                    trainer.model,
                    trainer.run.file("best.safetensors"),
                    epoch=metrics["epoch"],
                    **{self.metric: value},
                )
        metrics[f"best_{self.metric}"] = self.best

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(Callback):
    """Stop when ``metric`` has not improved for ``patience`` epochs."""

    name = "early_stopping"

    def __init__(self, metric: str = "val_acc", patience: int = 5) -> None:
        if patience < 1:
            raise ValueError(f"patience={patience} is not allowed; expected an integer >= 1")
        self.metric, self.patience = metric, patience
        self.best, self._is_better = _better(metric)
        self.waited = 0

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        value = metrics[self.metric]
        if self._is_better(value, self.best):
            self.best, self.waited = value, 0
        else:
            self.waited += 1
            if self.waited >= self.patience:
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.waited = state["best"], state["waited"]


class TensorBoardLogger(Callback):
    """Mirror the epoch metrics to TensorBoard when the package is installed."""

    name = "tensorboard"

    def __init__(self, log_dir: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ValueError(
                "--tensorboard needs the tensorboard package: pip install 'sparta[tensorboard]'"
            ) from e
        self.writer = SummaryWriter(log_dir)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if trainer.is_main:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.writer.add_scalar(k, v, metrics["epoch"])
            self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        self.writer.close()
