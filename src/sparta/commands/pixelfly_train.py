"""``sparta train --pixelfly block=32,density=0.25,rank=16``: Pixelated Butterfly layers.

The model's eligible ``nn.Linear`` layers (at least two blocks of inputs and outputs: the MLPs'
hidden layers, the ViT's ``qkv``/``proj``/``fc1``/``fc2``) become
:class:`~sparta.models.pixelfly.PixelflyLinear` (flat block butterfly + low rank, 2112.00029)
before training; the run's checkpoints load back with ``sparta.load``. Every key is optional
(``--pixelfly on``: block 32, density 0.25, rank from a quarter of the budget).

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flag to ``sparta train``. Its setup runs first, so masks or wrappers of the other
extensions see the Pixelfly model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option


@dataclass
class PixelflyOptions(Options):
    """Pixelfly option of ``sparta train`` (recorded in config.yaml)."""

    pixelfly: str = option(
        "",
        "Pixelated Butterfly layers: 'block=32,density=0.25,rank=16' (any subset; 'on': "
        "defaults; '': off)",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad setting and what is allowed."""
        from sparta.models.pixelfly import parse_pixelfly

        parse_pixelfly(self.pixelfly)


def active(opts: PixelflyOptions) -> bool:
    return bool(opts.pixelfly.strip())


def setup(opts: PixelflyOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Swap ``plan.model``'s eligible Linear layers for Pixelfly layers."""
    import logging

    from sparta.models.pixelfly import parse_pixelfly, pixelfly_

    names = pixelfly_(plan.model, **parse_pixelfly(opts.pixelfly))
    logging.getLogger(__name__).info("pixelfly layers: %s", ", ".join(names))


EXTENSIONS.append(TrainExtension(PixelflyOptions, active, setup))
