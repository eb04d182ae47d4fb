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
    model, dst, epochs = _dst_start(ctx, "rigl", sparsity, seed)
    ctx.fit(model, epochs, seed, [dst])
    return model, {"epochs": epochs}


def _dst_start(ctx: CellContext, method: str, sparsity: float, seed: int):
    """A fresh model and the DST ``method`` at ``sparsity`` (ERK) with 20 topology updates over
    ``rigl_epochs`` (0: ``--epochs``): ``(model, dst, epochs)``, to train with ``ctx.fit``."""
    from sparta.sparsity import create_dst

    o = ctx.options
    epochs = o.rigl_epochs or o.epochs
    model = ctx.fresh(seed)
    total = max(1, epochs) * _steps_per_epoch(ctx)
    interval = max(1, total // 20)
    dst = create_dst(
        method, model, sparsity, distribution="erk", update_interval=interval, seed=seed
    )
    return model, dst, epochs


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
    "bip", sparse=True, summary="BiP: bi-level pruning (mask scores + weights) of the dense model"
)
def bip(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """BiP (2210.04092) from the dense model: ``finetune_epochs`` epochs of the bi-level loop
    (global ranking, scores from |w|, the oneshot variant's fine-tuning lr for the weights);
    no fine-tuning after, the lower level trained the weights under the final mask."""
    from sparta.sparsity.bip import bip as run_bip

    model = ctx.dense()
    o = ctx.options
    cfg = ctx.train_config(o.finetune_epochs, seed, lr=o.lr / 5)
    handle = run_bip(model, sparsity, ctx.splits().train, config=cfg, scope="global", quiet=True)
    return handle.model.eval(), {"epochs": o.finetune_epochs}


def _hydra(
    ctx: CellContext,
    variant: str,
    model: nn.Module,
    sparsity: float,
    seed: int,
    epochs: int,
    **options: Any,
) -> Recipe:
    """HYDRA's prune and fine-tune phases (2002.10509, §3), ``epochs`` each, from ``model``:
    scores at HYDRA's lr 0.1, fine-tune at the card's ``lr / 5`` (as one-shot's)."""
    from sparta.sparsity.hydra import HydraOptions, hydra

    opts = HydraOptions(sparsity=sparsity, score_epochs=epochs, **options)
    cfg = ctx.train_config(epochs, seed, lr=ctx.options.lr / 5)
    res = hydra(
        model,
        cfg,
        opts,
        splits=ctx.splits(),
        root=ctx.cell_dir(variant, sparsity),
        name="hydra",
        resume=True,
    )
    return res.model.eval(), {
        "score_epochs": epochs,
        "epochs": epochs,
        "pruned_test_acc": res.summary["pruned_test_acc"],
    }


@VARIANTS.register(
    "hydra", sparse=True, summary="HYDRA: scores learned under PGD-AT (weights frozen), then PGD-AT"
)
def hydra_variant(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """HYDRA's three phases (2002.10509, §3) at ``--eps``: PGD-AT pre-training for
    ``adv_epochs`` from the dense model (the ``pgd-at`` recipe), then ``max(1, adv_epochs // 2)``
    epochs of score learning and as many of fine-tuning, both with PGD-AT (``adv_steps``)."""
    o = ctx.options
    model, _ = pgd_at(ctx, 0.0, seed)
    return _hydra(
        ctx,
        "hydra",
        model,
        sparsity,
        seed,
        max(1, o.adv_epochs // 2),
        objective="pgd-at",
        eps=o.eps,
        attack_steps=o.adv_steps,
    )


@VARIANTS.register(
    "hydra-cert", sparse=True, summary="HYDRA with the IBP certified loss at --cert-eps"
)
def hydra_cert(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """HYDRA's prune and fine-tune phases with the IBP loss (Gowal et al., kappa 0.5) at
    ``--cert-eps`` from the dense model, ``finetune_epochs`` each (HYDRA finds certifiable
    subnetworks of networks not trained for it, 2002.10509 §4.4)."""
    o = ctx.options
    return _hydra(
        ctx,
        "hydra-cert",
        ctx.dense(),
        sparsity,
        seed,
        max(1, o.finetune_epochs),
        objective="ibp",
        eps=o.cert_eps,
    )


@VARIANTS.register(
    "edge-popup",
    sparse=True,
    summary="edge-popup supermask of a random init (no weight trained)",
)
def edge_popup(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """Edge-popup (1911.13299): a fresh random init of the card's architecture, weights
    redrawn as Kaiming normal and frozen, biases zero; only the scores of the per-layer top-k
    mask train, for ``--epochs`` at the card's lr (SGD, momentum, cosine, as the paper)."""
    from sparta.sparsity.supermask import supermask

    epochs = ctx.options.epochs
    scored = supermask(ctx.fresh(seed), sparsity, seed=seed)
    ctx.fit(scored, epochs, seed)
    return scored.finalize().eval(), {"epochs": epochs, "weights": "kaiming-normal"}


def _imp_ticket(
    ctx: CellContext, sparsity: float, seed: int, variant: str, **objective: Any
) -> Recipe:
    """The last ticket of IMP with rewinding to the init whose every level trains with an
    objective (``objective=name, objective_options={...}`` of :func:`sparta.sparsity.lottery`,
    or ``setup=`` and ``extra_config=`` of :func:`run_lottery`), as the ``lottery`` variant."""
    from sparta.io import load
    from sparta.sparsity.lottery import LotteryConfig, run_lottery

    o = ctx.options
    levels = o.lottery_levels
    rate = 1.0 - (1.0 - sparsity) ** (1.0 / levels)
    opts = LotteryConfig(levels=levels, rate=rate, controls="none", scope="global")
    if "objective" in objective:  # by name: the setup that builds it
        from sparta.sparsity.lottery import objective_setup

        name, options = objective["objective"], objective["objective_options"]
        objective = {"setup": objective_setup(name, **options), "extra_config": objective}
    res = run_lottery(
        ctx.train_config(o.lottery_epochs, seed),
        opts,
        root=ctx.cell_dir(variant, sparsity),
        name="imp",
        resume=True,
        **objective,
    )
    ticket = res.run.path / "levels" / f"level_{levels:02d}" / "ticket" / "model.safetensors"
    return load(ticket), {"levels": levels, "rate": rate, "epochs_per_level": o.lottery_epochs}


@VARIANTS.register(
    "robust-lottery",
    sparse=True,
    summary="robust lottery ticket: IMP whose every level trains with PGD-AT, from scratch",
)
def robust_lottery(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """IMP with rewinding to the init as ``lottery`` (``lottery_levels`` x ``lottery_epochs``),
    every level trained with PGD-AT at ``--eps`` (``adv_steps`` steps); the last ticket."""
    o = ctx.options
    options = {"eps": o.eps, "norm": "linf", "steps": o.adv_steps}
    model, summary = _imp_ticket(
        ctx, sparsity, seed, "robust-lottery", objective="pgd-at", objective_options=options
    )
    return model, {**summary, "objective": "pgd-at", "eps": o.eps}


@VARIANTS.register(
    "certified-lottery",
    sparse=True,
    summary="certified lottery ticket: IMP whose every level trains with IBP, from scratch",
)
def certified_lottery(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """IMP with rewinding to the init as ``lottery``, every level trained with IBP certified
    training (Gowal et al. ramp) at ``--cert-eps``, the budget the certification pillar
    verifies; the last ticket."""
    from sparta.experiments.robust_tickets import certified_setup

    eps = ctx.options.cert_eps
    model, summary = _imp_ticket(
        ctx, sparsity, seed, "certified-lottery", setup=certified_setup(eps),
        extra_config={"objective": "ibp", "objective_options": {"eps": eps}},
    )  # fmt: skip
    return model, {**summary, "objective": "ibp", "eps": eps}


@VARIANTS.register(
    "lottery-pool",
    sparse=True,
    summary="Lottery Pools: the lottery ticket interpolated with its neighbouring IMP tickets",
)
def lottery_pool(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """IMP as the ``lottery`` variant (``lottery_levels`` levels of ``lottery_epochs``, global
    ranking, rewound to the init) with 10% of the training set held out, then Lottery Pools
    (2208.10842) on the last ticket: greedy interpolation with the other levels' tickets,
    coefficients chosen on the held-out 10%, the last ticket's mask kept."""
    import dataclasses

    from sparta.sparsity import lottery as run_lottery
    from sparta.sparsity.pools import PoolConfig, pool_run

    o = ctx.options
    levels = o.lottery_levels
    rate = 1.0 - (1.0 - sparsity) ** (1.0 / levels)
    cfg = dataclasses.replace(ctx.train_config(o.lottery_epochs, seed), val_fraction=0.1)
    folder = ctx.cell_dir("lottery-pool", sparsity)
    res = run_lottery(
        cfg,
        levels=levels,
        rate=rate,
        controls="none",
        scope="global",
        root=folder,
        name="imp",
        resume=True,
    )
    pool = pool_run(res.run.path, PoolConfig(), root=folder, name="pool", resume=True)
    s = pool.summary
    return pool.model, {
        "levels": levels,
        "rate": rate,
        "epochs_per_level": o.lottery_epochs,
        "accepted": s["accepted"],
        "ticket_val_acc": s["target_val_acc"],
        "pool_val_acc": s["val_acc"],
    }


@VARIANTS.register(
    "sup-tickets",
    sparse=True,
    summary="RigL whose last cycles' tickets are superposed and pruned back (Sup-tickets)",
)
def sup_tickets(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """RigL at ``sparsity`` (ERK) for ``rigl_epochs`` (0: ``--epochs``), the same budget as
    the ``rigl`` variant, with Sup-tickets' 4 cosine cycles in the last 20% of the steps; the
    model is the superposition pruned back to the budget (2205.15322)."""
    from sparta.sparsity.dst.sup_tickets import SupTickets

    model, dst, epochs = _dst_start(ctx, "rigl", sparsity, seed)
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


@VARIANTS.register(
    "deepzero",
    sparse=False,
    summary="trained from scratch from loss values only (DeepZero: sparse CGE, ZO-GraSP)",
)
def deepzero(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """DeepZero (2310.02025): a fresh model trained ``zo_epochs`` with zeroth-order SGD
    (sparse CGE at the paper's 90% gradient sparsity, ZO-GraSP layer ratios, feature reuse).
    The coordinate mask thins the *gradient* only, so the model is dense (``sparse=False``)."""
    from sparta.train.deepzero import DeepZero

    epochs = ctx.options.zo_epochs
    model = ctx.fresh(seed)
    objective = DeepZero("cge", seed=seed)
    ctx.fit(model, epochs, seed, objective=objective)
    return model, {"epochs": epochs, "queries": objective.total_queries}


@VARIANTS.register(
    "chase",
    sparse=True,
    summary="Chase: RigL that removes its sparsest channels while training (ERK), smaller model",
)
def chase(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """Chase (2305.19454) at ``sparsity`` (ERK) for ``rigl_epochs`` (0: ``--epochs``), the
    same budget and update interval as the ``rigl`` variant; 30% of the channels go between
    10% and 50% of training, so the trained model is physically smaller."""
    model, dst, epochs = _dst_start(ctx, "chase", sparsity, seed)
    ctx.fit(model, epochs, seed, [dst])
    removed = 1.0 - dst.channels / dst.total_channels
    return model, {"epochs": epochs, "channels_removed": removed}


@VARIANTS.register(
    "pixelfly",
    sparse=True,
    summary="Pixelated Butterfly layers (flat block butterfly + low rank) trained from scratch",
)
def pixelfly(ctx: CellContext, sparsity: float, seed: int) -> Recipe:
    """Pixelfly (2112.00029): a fresh model whose Linear layers wide enough for two blocks
    become flat block butterfly + low-rank layers holding ``1 - sparsity`` of their weights
    (block 32, or the largest of 16/8/4 that fits the model), trained for ``--epochs``."""
    from sparta.models.pixelfly import PixelflyLinear, eligible, pixelfly_

    model = ctx.fresh(seed)
    block = next(
        (b for b in (32, 16, 8, 4) if any(eligible(n, m, b) for n, m in model.named_modules())),
        4,
    )
    names = pixelfly_(model, block=block, density=1.0 - sparsity)
    ctx.fit(model, ctx.options.epochs, seed)
    fly = [m for m in model.modules() if isinstance(m, PixelflyLinear)]
    kept = sum(m.nonzero_params() for m in fly) / sum(m.dense_numel for m in fly)
    return model.eval(), {
        "epochs": ctx.options.epochs,
        "block": block,
        "layers": names,
        "pixelfly_density": kept,
    }
