"""Iterative magnitude pruning (IMP) with rewinding: lottery tickets.

Frankle & Carbin, "The Lottery Ticket Hypothesis" (ICLR 2019, arXiv 1803.03635), with late
rewinding from Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery
Ticket Hypothesis" (ICML 2020, arXiv 1912.05671).

Level 0 trains the dense network. Level ``L`` prunes ``rate`` of the weights that survived
level ``L-1``, ranked by the magnitude of level ``L-1``'s trained weights, rewinds the
survivors (and every unpruned parameter) to the rewind point (init, or the dense run's state
after ``rewind_step`` optimizer steps) and retrains with the mask enforced. Controls trained
at each level: ``reinit`` (same mask, fresh random init from another seed) and ``random``
(a random mask with the ticket's per-layer counts, rewound weights).

Every (level, branch) is a resumable unit with its own Trainer run folder::

    <run>/config.yaml  summary.json  metrics.jsonl     (``sparta.report``: levels.md, levels.png)
    <run>/rewind.safetensors                 the weights survivors are rewound to
    <run>/levels/level_XX/mask.safetensors   the ticket mask of level XX (XX >= 1)
    <run>/levels/level_XX/{ticket,reinit,random}/   checkpoints/, model.safetensors, summary.json

A unit with a ``summary.json`` is finished and skipped on re-run (as in open_lth); a unit
killed mid-way resumes from its newest epoch checkpoint. Retraining starts a fresh optimizer
and the full schedule of ``config.epochs`` at every level, also after late rewinding.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import models
from sparta.io import read_checkpoint, save, write_checkpoint
from sparta.options import Options, option, require
from sparta.runs import DEFAULT_ROOT, Run
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import attach, prunable_parameters
from sparta.sparsity.topk import global_masks, keep_top, n_keep
from sparta.train import Callback, TrainConfig, Trainer, evaluate, load_splits
from sparta.train.api import Splits

log = logging.getLogger(__name__)

CONTROLS = ("reinit", "random")
SCOPES = ("layer", "global")
BRANCHES = ("ticket", *CONTROLS)
ACC_KEYS = {"ticket": "test_acc", "reinit": "reinit_acc", "random": "random_acc"}
# options that may change when a run folder is resumed (more levels, more controls)
_RESUMABLE_CHANGES = {"levels", "controls"}


@dataclass
class LotteryConfig(Options):
    """Options of iterative magnitude pruning (their fields are the CLI flags)."""

    levels: int = option(10, "pruning levels after the dense level 0")
    rate: float = option(0.2, "fraction of the remaining weights pruned at each level")
    output_rate: float | None = option(
        None,
        "rate of the output layer; default: half of --rate with scope 'layer' (Frankle & "
        "Carbin 2019, Sec. 2 / Fig. 2: connections to the output pruned at half the rate), "
        "with scope 'global' the output layer joins the global ranking (Sec. 4)",
    )
    scope: str = option("layer", "rank weights per layer or across layers", choices=SCOPES)
    rewind_step: int = option(0, "rewind survivors to the dense run's step k (0: the init)")
    controls: str = option("reinit,random", "controls trained at each level: reinit,random or none")

    def __post_init__(self) -> None:
        if not isinstance(self.controls, str):
            self.controls = ",".join(self.controls) or "none"
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.levels >= 1, "levels", self.levels, "an integer >= 1")
        require(0 < self.rate < 1, "rate", self.rate, "a number in (0, 1)")
        if self.output_rate is not None:
            require(0 <= self.output_rate < 1, "output_rate", self.output_rate, "[0, 1)")
        require(self.scope in SCOPES, "scope", self.scope, f"one of {SCOPES}")
        require(self.rewind_step >= 0, "rewind_step", self.rewind_step, "an integer >= 0")
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
        """The output layer's rate, or None when it is ranked with the others (global)."""
        if self.output_rate is not None:
            return self.output_rate
        return self.rate / 2 if self.scope == "layer" else None


@dataclass
class LotteryResult:
    """``levels``: one ``{level, remaining, test_acc[, reinit_acc, random_acc]}`` per level."""

    levels: list[dict[str, Any]]
    run: Run
    summary: dict[str, Any]


# ------------------------------------------------------------------ masks
def prune_level(
    weights: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    rate: float,
    output_rate: float | None,
    scope: str = "layer",
    output: str | None = None,
) -> dict[str, torch.Tensor]:
    """Masks keeping ``1 - rate`` of each mask's survivors, by ``|weight|``.

    ``scope="layer"`` ranks each tensor on its own; ``"global"`` ranks all tensors but
    ``output`` together. The tensor named ``output`` is pruned on its own at ``output_rate``
    (with ``output_rate=None`` it is treated like the others). Kept counts are
    ``round(survivors * (1 - rate))``, per tensor or per pool; new masks nest in the old.
    """
    scores = {n: torch.where(masks[n], w.detach().abs().float(), -1.0) for n, w in weights.items()}
    alive = {n: int(m.sum()) for n, m in masks.items()}
    alone = {output} if output is not None and output_rate is not None else set()
    rates = {n: output_rate if n in alone else rate for n in scores}
    if scope == "layer":
        return {n: keep_top(s, n_keep(alive[n], 1 - rates[n])) for n, s in scores.items()}
    pool = {n: s for n, s in scores.items() if n not in alone}
    k = n_keep(sum(alive[n] for n in pool), 1 - rate)
    total = sum(s.numel() for s in pool.values())
    new = global_masks(pool, 1 - k / total) if k else {n: s < -2 for n, s in pool.items()}
    new.update({n: keep_top(scores[n], n_keep(alive[n], 1 - rates[n])) for n in alone})
    return {n: new[n] for n in scores}


def random_masks_like(masks: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Uniformly random masks with the same number of kept entries per tensor."""
    g = torch.Generator().manual_seed(seed)
    return {n: keep_top(torch.rand(m.shape, generator=g), int(m.sum())) for n, m in masks.items()}


def kept_fraction(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of the masked entries that are kept."""
    return sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())


# ------------------------------------------------------------------ callbacks
class SaveAtStep(Callback):
    """Save the model once, right after optimizer step ``step`` (late-rewinding point)."""

    name = "save_at_step"

    def __init__(self, step: int, path: str | os.PathLike) -> None:
        self.step, self.path = step, Path(path)

    def after_step(self, trainer: Trainer) -> None:
        if trainer.step == self.step:
            save(trainer.model, self.path, step=self.step)


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

    def new_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return models.create(self.cfg.model, dataset=self.splits.train.info, width=self.cfg.width)

    def level_dir(self, level: int) -> Path:
        return self.run.path / "levels" / f"level_{level:02d}"

    @property
    def rewind_file(self) -> Path:
        return self.run.file("rewind.safetensors")


def _derived_seed(seed: int, level: int, branch: str) -> int:
    return (seed * 1_000_003 + level * 7919 + BRANCHES.index(branch) * 104_729 + 1) % (2**62)


def _train_unit(
    ctx: _Context,
    folder: Path,
    make_model: Callable[[], nn.Module],
    extra: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train one unit in ``folder`` (resuming it), or read its result when it is finished."""
    done = folder / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())
    run = Run.create(
        ctx.cfg.to_dict(), "lottery-unit", root=folder.parent, name=folder.name, resume=True
    )
    model = make_model()
    trainer = Trainer(
        model,
        ctx.splits.train,
        ctx.cfg,
        val_data=ctx.splits.val,
        callbacks=[SparsityHandle(model).callback(), *extra, *ctx.callbacks],
        run=run,
        quiet=ctx.quiet,
    )
    trainer.fit(resume=True)
    test = evaluate(trainer.model, ctx.splits.test, ctx.cfg.eval_batch_size, trainer.device)
    save(trainer.model, run.file("model.safetensors"), epoch=trainer.epoch, test_acc=test["acc"])
    summary = {"test_acc": test["acc"], "test_loss": test["loss"], "epochs": trainer.epoch}
    if trainer.history:
        summary.update(
            {k: trainer.history[-1][k] for k in ("val_acc",) if k in trainer.history[-1]}
        )
    run.write_summary(summary)  # written last: marks the unit finished
    ctx.run.log({"unit": str(folder.relative_to(ctx.run.path)), **summary})
    log.info("%s: test_acc=%.4f", folder.relative_to(ctx.run.path), test["acc"])
    return summary


def _dense_level(ctx: _Context) -> dict[str, Any]:
    """Level 0: train the dense network and keep the rewind point."""
    k = ctx.opts.rewind_step

    def make() -> nn.Module:
        model = ctx.new_model(ctx.cfg.seed)
        if k == 0 and not ctx.rewind_file.is_file():
            save(model, ctx.rewind_file, step=0)
        return model

    extra = [SaveAtStep(k, ctx.rewind_file)] if k > 0 else []
    res = _train_unit(ctx, ctx.level_dir(0) / "ticket", make, extra)
    if not ctx.rewind_file.is_file():
        raise FileNotFoundError(
            f"rewind point {ctx.rewind_file} is missing; rerun with --overwrite"
        )
    return {"level": 0, "remaining": 1.0, "test_acc": res["test_acc"]}


def _level_mask(ctx: _Context, level: int) -> dict[str, torch.Tensor]:
    """The ticket mask of ``level``, pruned from level ``level - 1``'s trained ticket."""
    path = ctx.level_dir(level) / "mask.safetensors"
    if path.with_suffix(".json").is_file():  # the sidecar is written last
        return read_checkpoint(path)[0]
    tensors, _ = read_checkpoint(ctx.level_dir(level - 1) / "ticket" / "model.safetensors")
    names = list(prunable_parameters(ctx.new_model(ctx.cfg.seed)))
    weights = {n: tensors[n] for n in names}
    previous = {
        n: tensors.get(n + "_mask", torch.ones_like(w, dtype=torch.bool))
        for n, w in weights.items()
    }
    o = ctx.opts
    masks = prune_level(weights, previous, o.rate, o.effective_output_rate(), o.scope, names[-1])
    write_checkpoint(path, masks, {"level": level, "remaining": kept_fraction(masks)})
    return masks


def _rewound(ctx: _Context, masks: dict[str, torch.Tensor], seed: int | None = None) -> nn.Module:
    """A model at the rewind point (or a fresh init from ``seed``) with ``masks`` attached."""
    model = ctx.new_model(ctx.cfg.seed if seed is None else seed)
    if seed is None:
        model.load_state_dict(read_checkpoint(ctx.rewind_file)[0])
    attach(model, masks)
    return model


def _pruned_level(ctx: _Context, level: int) -> dict[str, Any]:
    """Level >= 1: the ticket and the controls asked for."""
    masks = _level_mask(ctx, level)
    seed = ctx.cfg.seed
    makers: dict[str, Callable[[], nn.Module]] = {
        "ticket": lambda: _rewound(ctx, masks),
        "reinit": lambda: _rewound(ctx, masks, seed=_derived_seed(seed, level, "reinit")),
        "random": lambda: _rewound(
            ctx, random_masks_like(masks, _derived_seed(seed, level, "random"))
        ),
    }
    row: dict[str, Any] = {"level": level, "remaining": kept_fraction(masks)}
    for branch in ("ticket", *ctx.opts.control_list):
        res = _train_unit(ctx, ctx.level_dir(level) / branch, makers[branch])
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
        for key, value in config.items():
            if key not in _RESUMABLE_CHANGES and key in old and old[key] != value:
                raise ValueError(
                    f"run folder {path} was made with {key}={old[key]!r}, not {value!r}; "
                    "use another --name or --overwrite"
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
) -> LotteryResult:
    """Run (or resume) IMP with ``options``; see :func:`lottery`."""
    splits = load_splits(config)
    total = math.ceil(len(splits.train) / config.batch_size) * config.epochs
    if options.rewind_step > total:
        raise ValueError(
            f"rewind_step={options.rewind_step} is beyond the dense run's {total} steps "
            f"({config.epochs} epochs x {math.ceil(len(splits.train) / config.batch_size)})"
        )
    full = {**config.to_dict(), **options.to_dict()}
    run = _open_run(full, root, name, resume, overwrite)
    ctx = _Context(run, config, options, splits, callbacks, quiet)
    levels = [_dense_level(ctx)]
    levels += [_pruned_level(ctx, level) for level in range(1, options.levels + 1)]
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
    scope: str = "layer",
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    quiet: bool = True,
) -> LotteryResult:
    """Iterative magnitude pruning with rewinding, ``levels`` levels after the dense one.

    Each level prunes ``rate`` of the remaining prunable weights (the output layer at
    ``output_rate``, default half the rate with ``scope="layer"``), rewinds survivors to
    the init (``rewind_step=0``) or to step k of the dense run, and retrains
    ``config.epochs``; ``controls`` ("reinit", "random") are trained beside each ticket.
    Writes a run folder ``root/name``; ``resume`` skips finished units and continues a
    killed one. ``callbacks`` are added to every unit's Trainer.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    opts = LotteryConfig(
        levels=levels,
        rate=rate,
        output_rate=output_rate,
        scope=scope,
        rewind_step=rewind_step,
        controls=controls if isinstance(controls, str) else ",".join(controls) or "none",
    )
    return run_lottery(
        cfg,
        opts,
        root=root,
        name=name,
        resume=resume,
        overwrite=overwrite,
        callbacks=callbacks,
        quiet=quiet,
    )
