"""Robust validation: PGD robust accuracy on the held-out split after every epoch.

Adds ``val_robust_acc`` to the epoch metrics, so ``BestCheckpoint("val_robust_acc")`` keeps
the most robust epoch and robust overfitting (Rice et al. 2020, arXiv 2002.11569: robust
validation accuracy falling while training accuracy rises) shows in metrics.jsonl and plots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sparta.checks import check_eps, check_int, check_norm
from sparta.data import ImageDataset, as_dataset
from sparta.train.callbacks import Callback

if TYPE_CHECKING:
    from sparta.train.loop import Trainer


class RobustValidation(Callback):
    """``metrics["val_robust_acc"]``: accuracy under ``attack`` (default PGD) on ``data``.

    ``n`` limits the evaluation to a fixed seeded subset (the same examples every epoch).
    The attack comes from the registry (``sparta.attacks``), run through
    :func:`sparta.attacks.evaluate.evaluate` without its sanity checks.
    """

    name = "robust_validation"

    def __init__(
        self,
        data: ImageDataset,
        eps: float,
        norm: str = "linf",
        steps: int = 10,
        attack: str = "pgd",
        n: int | None = None,
        batch_size: int = 500,
        seed: int = 0,
        **attack_options: Any,
    ) -> None:
        data = as_dataset(data, split="val")
        if len(data) == 0:
            raise ValueError("robust validation needs a non-empty validation split")
        check_int("steps", steps)
        self.eps, self.norm = check_eps(eps), check_norm(norm)
        self.data = data.take(n, seed=seed) if n and n < len(data) else data
        self.attack = (attack, {"steps": steps, **attack_options})
        self.batch_size, self.seed = batch_size, seed
        self.last: float | None = None

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        import sparta.attacks.whitebox  # noqa: F401  (registers pgd, the default)
        from sparta.attacks.evaluate import evaluate

        report = evaluate(
            trainer.model,
            self.data.to(trainer.device),
            self.eps,
            self.norm,
            attacks=[self.attack],
            batch_size=self.batch_size,
            seed=self.seed,
            checks=False,
        )
        self.last = report.robust_acc
        metrics["val_robust_acc"] = report.robust_acc

    def state_dict(self) -> dict[str, Any]:
        return {"last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last = state.get("last")
