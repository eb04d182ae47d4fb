"""The card's variants: recipes that turn the dense model into a (sparse) variant.

A recipe is one function ``(ctx, sparsity, seed) -> (model, summary)`` registered in
:data:`VARIANTS`; ``sparse=False`` recipes are built once (at sparsity 0). A new method
joins the card with one decorator::

    @VARIANTS.register("my-method", sparse=True, summary="what it does")
    def my_method(ctx, sparsity, seed): ...
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from sparta.experiments.card.cells import CellContext
from sparta.registry import Registry

VARIANTS: Registry[Any] = Registry(
    "variants", populate="sparta.experiments.card.variants", label="variant"
)

Recipe = tuple[nn.Module, dict[str, Any]]


def _steps_per_epoch(ctx: CellContext) -> int:
    return max(1, math.ceil(len(ctx.splits().train) / ctx.options.batch_size))


def _pgd_objective(ctx: CellContext, seed: int) -> Any:
    import sparta.defenses  # noqa: F401  (registers "pgd-at")
    from sparta.train import create_objective

    o = ctx.options
    return create_objective("pgd-at", eps=o.eps, norm="linf", steps=o.adv_steps, seed=seed)


def _gmp(ctx: CellContext, model: nn.Module, sparsity: float, epochs: int) -> Any:
    from sparta.sparsity import GradualPruning

    total = max(1, epochs) * _steps_per_epoch(ctx)
    return GradualPruning(
        model, sparsity, start=0.0, end=0.75, interval=max(1, total // 20), distribution="global"
    )


def structured_fraction(sparsity: float) -> float:
    """The fraction of channels (neurons) to remove so that about ``sparsity`` of the weights
    go: removing a fraction c of the channels of consecutive layers removes about
    ``1 - (1 - c) ** 2`` of the weights between them, so the card's sparsity axis means the
    same for structured and unstructured recipes."""
    return 1.0 - math.sqrt(1.0 - sparsity)


@VARIANTS.register("dense", sparse=False, summary="the trained dense model")
def dense(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """The dense model: ``--ckpt`` as given, or trained for ``--epochs``."""
    o = ctx.options
    if o.ckpt:
        from sparta.io import load

        return load(o.ckpt), {"source": o.ckpt}
    from sparta.train import train

    cfg = ctx.train_config(o.epochs, seed)
    res = train(cfg, write_run=False, quiet=True, splits=ctx.splits())
    return res.model.eval(), {"epochs": o.epochs, "train_test_acc": res.summary["test_acc"]}


@VARIANTS.register(
    "oneshot", sparse=True, summary="global magnitude pruning of the dense model + fine-tune"
)
def oneshot(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """One-shot global magnitude pruning after training, then ``finetune_epochs``."""
    from sparta.sparsity import prune

    model = ctx.dense()
    handle = prune(model, method="magnitude", sparsity=sparsity, scope="global")
    ctx.fit(model, ctx.options.finetune_epochs, seed, [handle.callback()], lr=ctx.options.lr / 5)
    return model, {"epochs": ctx.options.finetune_epochs}


@VARIANTS.register(
    "gmp", sparse=True, summary="gradual magnitude pruning (cubic schedule) from the dense model"
)
def gmp(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """Gradual magnitude pruning (Zhu & Gupta) for ``gmp_epochs``, starting from the dense model."""
    model = ctx.dense()
    epochs = ctx.options.gmp_epochs
    ctx.fit(model, epochs, seed, [_gmp(ctx, model, sparsity, epochs)], lr=ctx.options.lr / 2)
    return model, {"epochs": epochs}


@VARIANTS.register(
    "lottery", sparse=True, summary="lottery ticket: IMP with rewinding to init, from scratch"
)
def lottery(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """IMP with rewinding to the init: ``lottery_levels`` levels at the rate that reaches
    ``sparsity`` (global ranking), each trained ``lottery_epochs``; the last ticket."""
    from sparta.io import load
    from sparta.sparsity import lottery as run_lottery

    o = ctx.options
    levels = o.lottery_levels
    rate = 1.0 - (1.0 - sparsity) ** (1.0 / levels)
    cfg = ctx.train_config(o.lottery_epochs, seed)
    res = run_lottery(
        cfg,
        levels=levels,
        rate=rate,
        controls="none",
        scope="global",
        root=ctx.cell_dir("lottery", sparsity),
        name="imp",
        resume=True,
    )
    ticket = res.run.path / "levels" / f"level_{levels:02d}" / "ticket" / "model.safetensors"
    return load(ticket), {"levels": levels, "rate": rate, "epochs_per_level": o.lottery_epochs}


@VARIANTS.register("rigl", sparse=True, summary="RigL dynamic sparse training from scratch (ERK)")
def rigl(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """RigL at ``sparsity`` (ERK distribution) for ``rigl_epochs`` (0: ``--epochs``)."""
    from sparta.sparsity import create_dst

    o = ctx.options
    epochs = o.rigl_epochs or o.epochs
    model = ctx.fresh(seed)
    total = max(1, epochs) * _steps_per_epoch(ctx)
    dst = create_dst(
        "rigl",
        model,
        sparsity,
        distribution="erk",
        update_interval=max(1, total // 20),
        seed=seed,
    )
    ctx.fit(model, epochs, seed, [dst])
    return model, {"epochs": epochs}


@VARIANTS.register(
    "channel", sparse=True, summary="L1 channel pruning + fine-tune, exported compact"
)
def channel(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """L1-norm channel pruning (per layer) of the dense model, removing the channel fraction
    that takes about ``sparsity`` of the weights (:func:`structured_fraction`), then
    ``finetune_epochs``; the efficiency pillar exports it as a physically smaller model."""
    from sparta.sparsity import prune

    model = ctx.dense()
    frac = structured_fraction(sparsity)
    handle = prune(model, method="l1", sparsity=frac, structure="channel", scope="layer")
    ctx.fit(model, ctx.options.finetune_epochs, seed, [handle.callback()], lr=ctx.options.lr / 5)
    return model, {"epochs": ctx.options.finetune_epochs, "channel_fraction": frac}


@VARIANTS.register(
    "stability", sparse=True, summary="stability pruning of unstable ReLU neurons (IBP) + fine-tune"
)
def stability(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """Prune the ReLU neurons most often unstable under IBP at ``--cert-eps`` on 512 training
    images (sparta.certify.prune_unstable; the neuron fraction of :func:`structured_fraction`),
    then ``finetune_epochs``."""
    from sparta.experiments.stability import prune_unstable

    model = ctx.dense()
    x = ctx.splits().train.x[:512]
    frac = structured_fraction(sparsity)
    handle = prune_unstable(model, x, eps=ctx.options.cert_eps, sparsity=frac, method="ibp")
    ctx.fit(model, ctx.options.finetune_epochs, seed, [handle.callback()], lr=ctx.options.lr / 5)
    return model, {"epochs": ctx.options.finetune_epochs, "neuron_fraction": frac}


@VARIANTS.register("pgd-at", sparse=False, summary="dense PGD adversarial training (fine-tune)")
def pgd_at(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """PGD-AT at ``--eps`` (``adv_steps`` steps) for ``adv_epochs`` from the dense model."""
    model = ctx.dense()
    ctx.fit(model, ctx.options.adv_epochs, seed, objective=_pgd_objective(ctx, seed))
    return model, {"epochs": ctx.options.adv_epochs}


@VARIANTS.register(
    "pgd-at-gmp", sparse=True, summary="PGD-AT with gradual magnitude pruning (sparse robust)"
)
def pgd_at_gmp(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """PGD-AT and gradual magnitude pruning together for ``adv_epochs`` from the dense model."""
    model = ctx.dense()
    epochs = ctx.options.adv_epochs
    ctx.fit(
        model,
        epochs,
        seed,
        [_gmp(ctx, model, sparsity, epochs)],
        objective=_pgd_objective(ctx, seed),
    )
    return model, {"epochs": epochs}


@VARIANTS.register(
    "sup-tickets",
    sparse=True,
    summary="RigL whose last cycles' tickets are superposed and pruned back (Sup-tickets)",
)
def sup_tickets(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """RigL at ``sparsity`` (ERK) for ``rigl_epochs`` (0: ``--epochs``), the same budget as
    the ``rigl`` variant, with Sup-tickets' 4 cosine cycles in the last 20% of the steps; the
    model is the superposition pruned back to the budget (2205.15322)."""
    from sparta.sparsity import create_dst
    from sparta.sparsity.dst.sup_tickets import SupTickets

    o = ctx.options
    epochs = o.rigl_epochs or o.epochs
    model = ctx.fresh(seed)
    total = max(1, epochs) * _steps_per_epoch(ctx)
    dst = create_dst(
        "rigl", model, sparsity, distribution="erk", update_interval=max(1, total // 20), seed=seed
    )
    sup = SupTickets(dst, cycles=4)
    ctx.fit(model, epochs, seed, [dst, sup])
    return model, {"epochs": epochs, "tickets": sup.count}


@VARIANTS.register(
    "app",
    sparse=True,
    summary="anytime progressive pruning over 4 mega-batches of the training set (APP)",
)
def app(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """APP (2204.01640): the training set arrives in 4 seeded mega-batches; before each the
    model is SNIP-pruned further (``app_sparsities``, the target at the last), then trained
    ``max(1, epochs // 2)`` epochs on every mega-batch so far (warm start)."""
    from sparta.data import megabatches
    from sparta.sparsity import SparsityHandle
    from sparta.sparsity.anytime import branch_sparsities, progressive
    from sparta.train import Trainer

    k, epochs = 4, max(1, ctx.options.epochs // 2)
    model = ctx.fresh(seed)
    parts = megabatches(ctx.splits().train, k, seed=seed)
    sparsities = branch_sparsities("app", k, sparsity)

    def fit(m: nn.Module, data: Any, i: int) -> None:
        keep = SparsityHandle(m).callback()  # pruned weights stay zero
        Trainer(m, data, ctx.train_config(epochs, seed), callbacks=[keep], quiet=True).fit()

    for _ in progressive(model, parts, sparsities, fit):
        pass
    return model.eval(), {"megabatches": k, "epochs_per_megabatch": epochs}
