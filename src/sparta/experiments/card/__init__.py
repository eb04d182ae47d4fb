"""The report card: one dense model, its sparse variants, scored on every pillar.

    from sparta.experiments.card import card
    result = card(dataset="digits", model="lenet5", variants=["dense", "gmp"], out="runs")
    result.card["rows"]   # one row per (variant, sparsity); result.files["card.json"]

Variants (:data:`VARIANTS`) and pillars (:data:`PILLARS`) are registries: a new method joins
the card with one decorator.
"""

from sparta.experiments.card.cells import PillarScore, cell_seed
from sparta.experiments.card.engine import CardResult, assemble, card, resolve_options
from sparta.experiments.card.options import CardOptions
from sparta.experiments.card.pillars import PILLARS, metric
from sparta.experiments.card.variants import VARIANTS

__all__ = [
    "PILLARS",
    "VARIANTS",
    "CardOptions",
    "CardResult",
    "PillarScore",
    "assemble",
    "card",
    "cell_seed",
    "metric",
    "resolve_options",
]
