"""Iterative pruning with rewinding (IMP): lottery tickets, and the one IMP loop.

Frankle & Carbin, "The Lottery Ticket Hypothesis" (ICLR 2019, arXiv 1803.03635), with late
rewinding from Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery
Ticket Hypothesis" (ICML 2020, arXiv 1912.05671).

:func:`imp` is the loop every iterative schedule uses (lottery tickets here, Trojan tickets in
:mod:`sparta.experiments.trojan`): level 0 is the model as given (trained by the caller's
``train``); level ``L`` prunes ``rate`` of the weights that survived level ``L-1``
(:func:`imp_masks`: any criterion, structure and distribution, through the same selection as
one-shot :func:`sparta.sparsity.pruning.prune`), rewinds the survivors (and every unpruned
parameter) to the rewind point and hands the ticket to ``train``.

:func:`lottery` runs it with run folders. Level 0 trains the dense network; the rewind point
is its init, or its state after ``rewind_step`` optimizer steps (late rewinding). Each level
then trains from step ``rewind_step`` to the end of the schedule of ``config.epochs`` (the
learning rate and the data order continue from there, with a fresh optimizer), as in the
late-rewinding paper. Controls trained at each level: ``reinit`` (same mask, fresh random
init from another seed) and ``random`` (a random mask with the ticket's per-layer counts,
or per-group channel counts, rewound weights).

Every (level, branch) is a resumable unit with its own Trainer run folder::

    <run>/config.yaml  summary.json  metrics.jsonl     (``sparta.report``: levels.md, levels.png)
    <run>/rewind.safetensors                 the weights survivors are rewound to
    <run>/levels/level_XX/mask.safetensors   the ticket mask of level XX (XX >= 1)
    <run>/levels/level_XX/{ticket,reinit,random}/   checkpoints/, model.safetensors, summary.json

A unit with a ``summary.json`` is finished and skipped on re-run (as in open_lth); a unit
killed mid-way resumes from its newest epoch checkpoint.

Robust and certified tickets: every unit (the dense level 0, every ticket and control) trains
with the objective a :data:`UnitSetup` builds afresh for it (``objective="pgd-at"``, ``"trades"``,
``"ibp"``... by name through :func:`sparta.train.create_objective`, or ``sparta lottery --adv
pgd-at`` / ``--cert ibp`` with the flags of ``sparta train``), so IMP finds robust tickets
(adversarial training at every level, rewound as usual) or certified tickets (IBP training at
every level: Li et al., "Can pruning improve certified robustness?", 2206.07311, Sec. 3-4 train
the pruned networks with the certified objective). The objective is recorded in config.yaml.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import models, progress
from sparta.data import ImageDataset
from sparta.io import read_checkpoint, restore_model, save, write_checkpoint
from sparta.options import Options, option, require
from sparta.runs import DEFAULT_ROOT, Run
from sparta.sparsity.allocation import ALIASES, DISTRIBUTIONS, allocate, check_distribution
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import SUFFIX, attach, kept_fraction, masks_of, prunable_parameters
from sparta.sparsity.pruning import select_masks
from sparta.sparsity.structures import parse_structure
from sparta.sparsity.topk import keep_top, n_keep
from sparta.train import Callback, TrainConfig, Trainer, create_objective, evaluate, load_splits
from sparta.train.api import Splits
from sparta.train.objectives import Objective

log = logging.getLogger(__name__)

CONTROLS = ("reinit", "random")
SCOPES = (*DISTRIBUTIONS, *ALIASES)  # the distributions, "layer" an alias of "uniform"
BRANCHES = ("ticket", *CONTROLS)
ACC_KEYS = {"ticket": "test_acc", "reinit": "reinit_acc", "random": "random_acc"}
# options that may change when a run folder is resumed (more levels, more controls)
_RESUMABLE_CHANGES = {"levels", "controls"}
# what a run folder written before a key existed meant by it: late-rewound levels were
# retrained from step 0 then, so such a folder cannot be resumed under the new rule
_LEGACY = {"rewind_retrain": "from_step_0"}

#: builds the objective (None: cross-entropy) and extra callbacks of one unit from the run's
#: config and splits; called afresh for every unit, so no state leaks from one to the next
UnitSetup = Callable[[TrainConfig, Splits], tuple[Objective | None, Sequence[Callback]]]


def objective_setup(name: str, **options: Any) -> UnitSetup:
    """A :data:`UnitSetup` training every unit with the objective registered as ``name``
    (``create_objective(name, seed=config.seed, **options)``: e.g. ``"pgd-at"`` with
    ``eps=0.1, steps=10``, ``"trades"``, ``"ibp"``)."""
    create_objective(name, **options)  # an unknown name or option fails here, not mid-run

    def setup(cfg: TrainConfig, splits: Splits) -> tuple[Objective | None, Sequence[Callback]]:
        return create_objective(name, **{"seed": cfg.seed, **options}), ()

    return setup


def default_output_rate(rate: float, distribution: str) -> float | None:
    """The output layer's IMP rate: half of ``rate`` with the ``uniform`` distribution
    (Frankle & Carbin 2019, Sec. 2 / Fig. 2), else None (ranked with the other layers)."""
    return rate / 2 if check_distribution(distribution) == "uniform" else None


@dataclass
class LotteryConfig(Options):
    """Options of iterative pruning with rewinding (their fields are the CLI flags)."""

    levels: int = option(10, "pruning levels after the dense level 0")
    rate: float = option(0.2, "fraction of the remaining weights (or channels) pruned per level")
    output_rate: float | None = option(
        None,
        "rate of the output layer; default: half of --rate with scope 'uniform' (Frankle & "
        "Carbin 2019, Sec. 2 / Fig. 2: connections to the output pruned at half the rate), "
        "otherwise the output layer joins the ranking (Sec. 4)",
    )
    scope: str = option(
        "uniform", "distribution: uniform (alias layer), global or erk", choices=SCOPES
    )
    method: str = option("magnitude", "criterion ranking the survivors (magnitude, snip, ...)")
    structure: str = option("unstructured", "unstructured, block:b or channel")
    rewind_step: int = option(0, "rewind survivors to the dense run's step k (0: the init)")
    controls: str = option("reinit,random", "controls trained at each level: reinit,random or none")

    def __post_init__(self) -> None:
        if not isinstance(self.controls, str):
            self.controls = ",".join(self.controls) or "none"
        self.validate()
        self.scope = check_distribution(self.scope)

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.levels >= 1, "levels", self.levels, "an integer >= 1")
        require(0 < self.rate < 1, "rate", self.rate, "a number in (0, 1)")
        if self.output_rate is not None:
            require(0 <= self.output_rate < 1, "output_rate", self.output_rate, "[0, 1)")
        require(self.scope in SCOPES, "scope", self.scope, f"one of {SCOPES}")
        require(self.rewind_step >= 0, "rewind_step", self.rewind_step, "an integer >= 0")
        st = parse_structure(self.structure)
        require(st.density is None, "structure", self.structure, "unstructured, block:b or channel")
        from sparta.sparsity.criteria import criterion

        if st.kind != "channel":
            criterion(self.method)
        self.control_list  # noqa: B018 - validates the names

    @property
    def control_list(self) -> tuple[str, ...]:
        """The control branches asked for, in canonical order."""
        names = [c.strip() for c in self.controls.split(",") if c.strip()]
        if names in ([], ["none"]):
            return ()
        bad = [c for c in names if c not in CONTROLS]
        if bad:
            raise ValueError(
                f"unknown control {bad[0]!r}; allowed: {', '.join(CONTROLS)} (comma-separated) "
                "or none"
            )
        return tuple(c for c in CONTROLS if c in names)

    def effective_output_rate(self) -> float | None:
        """The output layer's rate, or None when it is ranked with the others."""
        if self.output_rate is not None:
            return self.output_rate
        return default_output_rate(self.rate, self.scope)


@dataclass
class LotteryResult:
    """``levels``: one ``{level, remaining, test_acc[, reinit_acc, random_acc]}`` per level."""

    levels: list[dict[str, Any]]
    run: Run
    summary: dict[str, Any]


# ------------------------------------------------------------------ masks
def imp_masks(
    model: nn.Module,
    rate: float,
    *,
    output_rate: float | None = None,
    distribution: str = "uniform",
    method: str = "magnitude",
    structure: str = "unstructured",
    data: ImageDataset | None = None,
    include: str | Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    **criterion_options: Any,
) -> dict[str, torch.Tensor]:
    """Masks pruning ``rate`` of ``model``'s surviving weights (one IMP level), nested in the
    masks it carries, by criterion ``method`` within ``structure`` and ``distribution``.

    Unstructured and block: ``uniform`` keeps ``round(survivors * (1 - rate))`` of every
    tensor; ``global`` ranks all tensors but the output layer together and keeps that
    share of the pool; ``erk`` spreads the pool's kept count by ERK. With ``output_rate``
    the output layer (the last prunable tensor) is pruned on its own at that rate.
    ``channel``: ``rate`` of the remaining channels go (``output_rate`` does not apply).
    """
    if not 0 < rate < 1:
        raise ValueError(f"rate={rate!r} is not allowed; expected a number in (0, 1)")
    st, dist = parse_structure(structure), check_distribution(distribution)
    opts: dict[str, Any] = dict(criterion_options, data=data)
    if st.kind == "channel":
        from sparta.sparsity.export import channel_fraction

        remaining = 1.0 - channel_fraction(model)
        return select_masks(model, 1.0 - remaining * (1.0 - rate), method, st, dist, **opts)
    if st.density is not None:
        raise ValueError(f"structure {st} fixes the sparsity; it has no iterative schedule")
    params = prunable_parameters(model, include, exclude)
    current = masks_of(model)
    alive = {n: int(current[n].sum()) if n in current else p.numel() for n, p in params.items()}
    out = list(params)[-1]
    alone = {out} if output_rate is not None else set()

    def density(name: str) -> float:
        kept = n_keep(alive[name], 1.0 - (output_rate if name in alone else rate))
        return kept / params[name].numel()

    if dist == "uniform":
        densities = {n: density(n) for n in params}
        return select_masks(model, 0.0, method, st, densities, params=params, **opts)
    pool = {n: p for n, p in params.items() if n not in alone}
    kept = n_keep(sum(alive[n] for n in pool), 1.0 - rate)
    total = sum(p.numel() for p in pool.values())
    if kept == 0:
        masks = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in pool.items()}
    else:
        target = 1.0 - kept / total
        spread: str | dict[str, float] = dist
        if dist == "erk":
            spread = allocate("erk", {n: p.shape for n, p in pool.items()}, target)
        masks = select_masks(model, target, method, st, spread, params=pool, **opts)
    if alone:
        only = {out: params[out]}
        masks.update(select_masks(model, 0.0, method, st, {out: density(out)}, params=only, **opts))
    return {n: masks[n] for n in params}


def random_masks_like(masks: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Uniformly random masks with the same number of kept entries per tensor."""
    g = torch.Generator().manual_seed(seed)
    return {n: keep_top(torch.rand(m.shape, generator=g), int(m.sum())) for n, m in masks.items()}


def random_channel_masks(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Channel masks keeping, in every group, as many uniformly random channels as the masks
    of ``model`` keep."""
    from sparta.sparsity.channels import masks_for
    from sparta.sparsity.export import kept_channels
    from sparta.sparsity.groups import channel_groups

    g = torch.Generator().manual_seed(seed)
    groups = channel_groups(model)
    keeps = [
        keep_top(torch.rand(k.numel(), generator=g), int(k.sum()))
        for k in kept_channels(model, groups)
    ]
    return masks_for(model, groups, keeps)


# ------------------------------------------------------------------ the IMP loop
def rewound(
    template: nn.Module, state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> nn.Module:
    """A copy of ``template`` with the weights and buffers of ``state`` (its masks left out)
    and ``masks`` attached: the survivors at the rewind point, the rest zero."""
    model = copy.deepcopy(template)
    weights = {k: v for k, v in state.items() if not k.endswith(SUFFIX)}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith(SUFFIX)]
    if missing or unexpected:
        raise ValueError(f"rewind point does not match the model: {(missing + unexpected)[0]}")
    attach(model, masks)
    return model


@dataclass
class ImpLevel:
    """One level of :func:`imp`: its ``ticket`` (trained by the caller's ``train``) and the
    ``masks`` it was pruned to (empty at level 0). ``next_masks``, computed on first use,
    are the masks of the next level: the ticket pruned once more."""

    level: int
    ticket: nn.Module
    masks: dict[str, torch.Tensor]
    prune: Callable[[nn.Module, int], dict[str, torch.Tensor]] = field(repr=False)

    @functools.cached_property
    def next_masks(self) -> dict[str, torch.Tensor]:
        return self.prune(self.ticket, self.level + 1)


def imp(
    model: nn.Module,
    levels: int,
    prune: Callable[[nn.Module, int], dict[str, torch.Tensor]],
    *,
    train: Callable[[nn.Module, int], nn.Module | None] | None = None,
    rewind: Callable[[], Mapping[str, torch.Tensor]] | None = None,
    quiet: bool = False,
) -> Iterator[ImpLevel]:
    """Iterative pruning with rewinding: yield level 0 and ``levels`` pruned levels.

    Level 0's ticket is ``train(model, 0)`` (or ``model``). Level ``L``'s masks are
    ``prune(ticket of L-1, L)`` (e.g. :func:`imp_masks`); its ticket is a copy of the
    untrained ``model`` rewound to ``rewind()`` (default: ``model``'s state as given) with
    those masks, then ``train(ticket, L)`` (which may return another module, e.g. one read
    back from disk). ``model`` itself is only changed by ``train``. A progress bar counts
    the pruned levels (``quiet=True``: none).
    """
    template = copy.deepcopy(model)
    point = None if rewind is not None else copy.deepcopy(model.state_dict())
    ticket = (train(model, 0) if train is not None else None) or model
    previous = ImpLevel(0, ticket, {}, prune)
    yield previous
    for level in progress.bar(range(1, levels + 1), desc="IMP levels", unit="level", quiet=quiet):
        masks = previous.next_masks
        ticket = rewound(template, rewind() if rewind is not None else point, masks)
        ticket = (train(ticket, level) if train is not None else None) or ticket
        previous = ImpLevel(level, ticket, masks, prune)
        yield previous


# ------------------------------------------------------------------ callbacks
class SaveAtStep(Callback):
    """Save the model once, right after optimizer step ``step`` (late-rewinding point)."""

    name = "save_at_step"

    def __init__(self, step: int, path: str | os.PathLike) -> None:
        self.step, self.path = step, Path(path)

    def after_step(self, trainer: Trainer) -> None:
        if trainer.step == self.step:
            save(trainer.model, self.path, step=self.step)


class RewoundTrainer(Trainer):
    """A Trainer that starts at optimizer step ``start_step`` of its schedule (late rewinding,
    1912.05671): the learning-rate schedule and the per-epoch data order continue from
    there, so ``total_steps - start_step`` optimizer steps are taken. The batches of the
    starting epoch before ``start_step`` are not trained on; they are only evaluated (eval
    mode, no gradient) for that epoch's training metrics. A resumed unit continues from its
    checkpoint as usual."""

    def __init__(self, *args: Any, start_step: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0 <= start_step <= self.total_steps:
            raise ValueError(
                f"start_step={start_step} is not allowed; expected 0..{self.total_steps}"
            )
        self.start_step = start_step
        self.epoch = start_step // self.steps_per_epoch
        self.step = self.epoch * self.steps_per_epoch

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.step >= self.start_step:
            return super().train_step(x, y, weight)
        self.step += 1  # a step of the schedule before the rewind point: skipped
        with models.eval_mode(self.model):  # with gradients: an adversarial objective needs them
            loss, logits = self.objective(self._forward, x, y)
        return loss.detach(), logits.detach()


# ------------------------------------------------------------------ the run
@dataclass
class _Context:
    """What every unit of one lottery run shares."""

    run: Run
    cfg: TrainConfig
    opts: LotteryConfig
    splits: Splits
    callbacks: Sequence[Callback]
    quiet: bool
    setup: UnitSetup | None = None

    def new_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return models.create(self.cfg.model, dataset=self.splits.train.info, width=self.cfg.width)

    def level_dir(self, level: int) -> Path:
        return self.run.path / "levels" / f"level_{level:02d}"

    @property
    def rewind_file(self) -> Path:
        return self.run.file("rewind.safetensors")

    def rewind_point(self) -> dict[str, torch.Tensor]:
        if not self.rewind_file.is_file():
            raise FileNotFoundError(
                f"rewind point {self.rewind_file} is missing; rerun with --overwrite"
            )
        return read_checkpoint(self.rewind_file)[0]


def _derived_seed(seed: int, level: int, branch: str) -> int:
    return (seed * 1_000_003 + level * 7919 + BRANCHES.index(branch) * 104_729 + 1) % (2**62)


def _train_unit(
    ctx: _Context,
    folder: Path,
    make_model: Callable[[], nn.Module],
    extra: Sequence[Callback] = (),
    start_step: int = 0,
) -> dict[str, Any]:
    """Train one unit in ``folder`` (resuming it), or read its result when it is finished."""
    done = folder / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())
    run = Run.create(
        ctx.cfg.to_dict(), "lottery-unit", root=folder.parent, name=folder.name, resume=True
    )
    model = make_model()
    cfg, objective, own = ctx.cfg, None, ()
    if ctx.setup is not None:  # a fresh objective (and its callbacks) for every unit
        cfg = copy.deepcopy(ctx.cfg)  # a setup may change best_metric
        objective, own = ctx.setup(cfg, ctx.splits)
    trainer = RewoundTrainer(
        model,
        ctx.splits.train,
        cfg,
        val_data=ctx.splits.val,
        callbacks=[SparsityHandle(model).callback(), *extra, *own, *ctx.callbacks],
        run=run,
        quiet=ctx.quiet,
        objective=objective,
        start_step=start_step,
    )
    trainer.fit(resume=True)
    test = evaluate(trainer.model, ctx.splits.test, ctx.cfg.eval_batch_size, trainer.device)
    save(trainer.model, run.file("model.safetensors"), epoch=trainer.epoch, test_acc=test["acc"])
    summary = {"test_acc": test["acc"], "test_loss": test["loss"], "epochs": trainer.epoch}
    if trainer.history:  # val_acc, and val_robust_acc / val_verified_acc of a setup's callbacks
        summary.update({k: v for k, v in trainer.history[-1].items() if k.startswith("val_")})
    run.write_summary(summary)  # written last: marks the unit finished
    ctx.run.log({"unit": str(folder.relative_to(ctx.run.path)), **summary})
    log.info("%s: test_acc=%.4f", folder.relative_to(ctx.run.path), test["acc"])
    return summary


def _trained(ctx: _Context, level: int) -> nn.Module:
    """The trained ticket of ``level``, read back from its unit folder."""
    model = ctx.new_model(ctx.cfg.seed)
    restore_model(model, *read_checkpoint(ctx.level_dir(level) / "ticket" / "model.safetensors"))
    return model


def _dense_level(ctx: _Context, model: nn.Module) -> dict[str, Any]:
    """Level 0: train the dense network and keep the rewind point."""
    k = ctx.opts.rewind_step

    def make() -> nn.Module:
        if k == 0 and not ctx.rewind_file.is_file():
            save(model, ctx.rewind_file, step=0)
        return model

    extra = [SaveAtStep(k, ctx.rewind_file)] if k > 0 else []
    res = _train_unit(ctx, ctx.level_dir(0) / "ticket", make, extra)
    ctx.rewind_point()  # it must exist now
    return {"level": 0, "remaining": 1.0, "test_acc": res["test_acc"]}


def _level_mask(ctx: _Context, model: nn.Module, level: int) -> dict[str, torch.Tensor]:
    """The ticket mask of ``level``, pruned from level ``level - 1``'s trained ticket
    ``model`` (read back from the level's mask file once it is written)."""
    path = ctx.level_dir(level) / "mask.safetensors"
    if path.with_suffix(".json").is_file():  # the sidecar is written last
        return read_checkpoint(path)[0]
    o = ctx.opts
    masks = imp_masks(
        model,
        o.rate,
        output_rate=o.effective_output_rate(),
        distribution=o.scope,
        method=o.method,
        structure=o.structure,
        data=ctx.splits.train,
    )
    write_checkpoint(path, masks, {"level": level, "remaining": kept_fraction(masks)})
    return masks


def _pruned_level(ctx: _Context, ticket: nn.Module, level: int) -> dict[str, Any]:
    """Level >= 1: train the rewound ``ticket`` and the controls asked for, from the rewind
    step to the end of the schedule."""
    masks = masks_of(ticket)
    seed = ctx.cfg.seed

    def random_control() -> nn.Module:
        control_seed = _derived_seed(seed, level, "random")
        if parse_structure(ctx.opts.structure).kind == "channel":
            chosen = random_channel_masks(ticket, control_seed)
        else:
            chosen = random_masks_like(masks, control_seed)
        return rewound(ctx.new_model(seed), ctx.rewind_point(), chosen)

    def reinit_control() -> nn.Module:
        model = ctx.new_model(_derived_seed(seed, level, "reinit"))
        attach(model, masks)
        return model

    makers: dict[str, Callable[[], nn.Module]] = {
        "ticket": lambda: ticket,
        "reinit": reinit_control,
        "random": random_control,
    }
    row: dict[str, Any] = {"level": level, "remaining": kept_fraction(masks)}
    for branch in ("ticket", *ctx.opts.control_list):
        folder = ctx.level_dir(level) / branch
        res = _train_unit(ctx, folder, makers[branch], start_step=ctx.opts.rewind_step)
        row[ACC_KEYS[branch]] = res["test_acc"]
    return row


def _open_run(
    config: dict[str, Any], root: str | os.PathLike, name: str | None, resume: bool, overwrite: bool
) -> Run:
    """Create the run folder; on resume, refuse a folder made with other options."""
    from sparta.runs import config_hash

    path = Path(root) / (name or f"lottery-{config_hash(config)}")
    if resume and (path / "config.yaml").is_file():
        old = Run(path).read_config()
        if "scope" in old:  # folders written before "uniform" became the canonical name
            old["scope"] = ALIASES.get(old["scope"], old["scope"])
        for key, value in config.items():
            was = old.get(key, _LEGACY.get(key, value))
            if key not in _RESUMABLE_CHANGES and was != value:
                raise ValueError(
                    f"run folder {path} was made with {key}={was!r}, not {value!r}; "
                    "use another --name or --overwrite"
                )
        extra = [k for k in old if k not in config and k != "command"]
        if extra:  # e.g. a robust lottery's objective, resumed without it
            raise ValueError(
                f"run folder {path} was made with {extra[0]}={old[extra[0]]!r}, not without "
                "it; use another --name or --overwrite"
            )
    return Run.create(
        config, "lottery", root=root, name=path.name, resume=resume, overwrite=overwrite
    )


def run_lottery(
    config: TrainConfig,
    options: LotteryConfig,
    *,
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    quiet: bool = True,
    setup: UnitSetup | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> LotteryResult:
    """Run (or resume) IMP with ``options``; see :func:`lottery`. ``setup`` gives every unit
    its objective and callbacks; ``extra_config`` (what it trains with) joins config.yaml,
    the run's name and the resume check."""
    splits = load_splits(config)
    total = math.ceil(len(splits.train) / config.batch_size) * config.epochs
    if options.rewind_step > total:
        raise ValueError(
            f"rewind_step={options.rewind_step} is beyond the dense run's {total} steps "
            f"({config.epochs} epochs x {math.ceil(len(splits.train) / config.batch_size)})"
        )
    full = {**config.to_dict(), **options.to_dict(), **(extra_config or {})}
    if options.rewind_step > 0:  # levels train from step k to the end (1912.05671)
        full["rewind_retrain"] = "from_step_k"
    run = _open_run(full, root, name, resume, overwrite)
    ctx = _Context(run, config, options, splits, callbacks, quiet, setup)
    levels: list[dict[str, Any]] = []

    def train(model: nn.Module, level: int) -> nn.Module:
        row = _dense_level(ctx, model) if level == 0 else _pruned_level(ctx, model, level)
        levels.append(row)
        return _trained(ctx, level)

    for _ in imp(
        ctx.new_model(config.seed),
        options.levels,
        functools.partial(_level_mask, ctx),
        train=train,
        rewind=ctx.rewind_point,
        quiet=quiet,
    ):
        pass
    last = levels[-1]
    summary = {
        "levels": levels,
        "test_acc": last["test_acc"],
        "sparsity": 1.0 - last["remaining"],
        "remaining": last["remaining"],
        "dense_test_acc": levels[0]["test_acc"],
        **{k: last[k] for k in ("reinit_acc", "random_acc") if k in last},
    }
    run.write_summary(summary)
    return LotteryResult(levels, run, summary)


def lottery(
    config: TrainConfig | dict[str, Any],
    levels: int = 10,
    rate: float = 0.2,
    rewind_step: int = 0,
    controls: Sequence[str] | str = CONTROLS,
    *,
    output_rate: float | None = None,
    scope: str = "uniform",
    method: str = "magnitude",
    structure: str = "unstructured",
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    quiet: bool = True,
    objective: str | None = None,
    objective_options: Mapping[str, Any] | None = None,
) -> LotteryResult:
    """Iterative pruning with rewinding, ``levels`` levels after the dense one.

    Each level prunes ``rate`` of the remaining prunable weights (the output layer at
    ``output_rate``, default half the rate with ``scope="uniform"``; channels with
    ``structure="channel"``) ranked by criterion ``method`` (default magnitude: IMP),
    rewinds survivors to the init (``rewind_step=0``) or to step k of the dense run, and
    retrains from that step to the end of ``config.epochs``; ``controls`` ("reinit",
    "random") are trained beside each ticket. ``scope`` is the distribution: ``uniform``
    (alias ``layer``), ``global`` or ``erk``. Writes a run folder ``root/name``; ``resume``
    skips finished units and continues a killed one. ``callbacks`` are added to every
    unit's Trainer.

    ``objective`` (e.g. ``"pgd-at"``, ``"trades"``, ``"ibp"``; see ``sparta list objectives``)
    with ``objective_options`` (``{"eps": 0.1, "steps": 10}``) trains every level, dense and
    pruned, and every control with that objective: robust or certified lottery tickets.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    opts = LotteryConfig(
        levels=levels,
        rate=rate,
        output_rate=output_rate,
        scope=scope,
        method=method,
        structure=structure,
        rewind_step=rewind_step,
        controls=controls if isinstance(controls, str) else ",".join(controls) or "none",
    )
    extra: dict[str, Any] = {}
    setup = None
    if objective is not None and objective != "standard":
        setup = objective_setup(objective, **(objective_options or {}))
        extra = {"objective": objective, "objective_options": dict(objective_options or {})}
    return run_lottery(
        cfg,
        opts,
        root=root,
        name=name,
        resume=resume,
        overwrite=overwrite,
        callbacks=callbacks,
        quiet=quiet,
        setup=setup,
        extra_config=extra,
    )
