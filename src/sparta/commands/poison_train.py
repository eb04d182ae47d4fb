"""``sparta train --poison SPEC``: train a Trojaned model on a poisoned training set.

Registered as a :class:`~sparta.commands.train.TrainExtension`. With ``--poison`` set
(``badnets:ratio=0.05,target=0[,size=3,pos=br,pattern=white]`` or
``blended:ratio=0.05,target=0,alpha=0.1``, see :mod:`sparta.backdoor.poison`):

* the training split (after the validation split is held out) is replaced by its poisoned
  copy; validation and test sets stay clean;
* ``poisoned_indices.json`` in the run folder lists the poisoned samples' original indices;
* every epoch logs ``asr`` (attack success rate on the triggered test images outside the
  target class), so ``summary.json`` holds ``test_acc`` and ``asr`` of the final model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option
from sparta.train.callbacks import Callback

INDICES_FILE = "poisoned_indices.json"


@dataclass
class PoisonTrainOptions(Options):
    """Poisoning options of ``sparta train`` (recorded in config.yaml)."""

    poison: str = option(
        "",
        "poison the training set: badnets:ratio=0.05,target=0[,size=3,pos=br,pattern=white] "
        "or blended:ratio=0.05,target=0,alpha=0.1 ('' for none)",
    )

    def __post_init__(self) -> None:
        if self.poison:
            from sparta.backdoor.poison import parse_poison

            parse_poison(self.poison)  # a bad spec is an error before any data is loaded


def active(opts: PoisonTrainOptions) -> bool:
    """Whether the options ask for poisoning."""
    return bool(opts.poison)


class BackdoorLog(Callback):
    """Writes the poisoned indices at fit start and adds ``asr`` to every epoch's metrics."""

    name = "backdoor"

    def __init__(self, poisoned: Any, test: Any, batch_size: int = 1000) -> None:
        self.poisoned, self.test, self.batch_size = poisoned, test, batch_size

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.run is not None and trainer.is_main:
            from sparta.io import write_json

            write_json(trainer.run.file(INDICES_FILE), self.poisoned.to_dict())

    def on_epoch_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        from sparta.backdoor.metrics import asr

        cfg = self.poisoned.config
        metrics["asr"] = asr(trainer.model, self.test, cfg.trigger(), cfg.target, self.batch_size)


def setup(opts: PoisonTrainOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Poison ``splits.train`` in place and add the ASR/indices callback."""
    from sparta.backdoor.poison import parse_poison, poison

    poisoned = poison(splits.train, parse_poison(opts.poison))
    splits.train = poisoned.data
    plan.callbacks.append(BackdoorLog(poisoned, splits.test, cfg.eval_batch_size))


EXTENSIONS.append(TrainExtension(options=PoisonTrainOptions, active=active, setup=setup))
