"""Lottery Pools: interpolate a lottery ticket with its neighbouring IMP levels' tickets.

Yin, Liu, Fang, Huang, Menkovski & Pechenizkiy, "Lottery Pools: Winning More by
Interpolating Tickets without Increasing Training or Inference Cost" (AAAI 2023, arXiv
2208.10842), Sec. 3 (Algorithm 1) and the authors' ``Lottery_pools.py``:

* the **pool** is the tickets of one IMP run (every level, the dense level 0 too); the
  candidates of a target level ``t`` are tried nearest first: ``t-1, t+1, t-2, t+2, ...``
  (:func:`neighbours`), at most ``candidates`` of them;
* **greedy interpolation**: start from the target ticket ``w`` and its validation accuracy;
  for each candidate ``c`` and each coefficient ``a`` of the grid (default 0.05, 0.1, 0.2,
  ..., 0.9, 0.95, the authors'), form ``a c + (1 - a) w`` and re-apply the target's mask
  (its sparsity and so its inference cost are unchanged); keep the best coefficient and
  accept it only when it beats the current validation accuracy (strictly), else the
  candidate is skipped;
* BatchNorm statistics are re-estimated on the training data after each interpolation
  (the authors call ``torch.optim.swa_utils.update_bn``); models without BatchNorm skip it.

Choices are made on the validation split only; :func:`pool_run` reads the test split once,
after the search, to report the target and the pooled ticket. This module re-applies the
target's mask exactly (the pooled ticket is the same subnetwork: same sparsity and
inference cost, as the paper states); the authors' ``Lottery_pools.py`` instead re-prunes
the interpolated weights by global magnitude to the target's density, which may move it.

The search state (current weights, accepted coefficients, next candidate, every try) is a
checkpoint written after each candidate: a killed search continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import progress
from sparta.data import ImageDataset
from sparta.io import read_checkpoint, save, write_checkpoint
from sparta.options import Options, option, require
from sparta.runs import DEFAULT_ROOT, Run
from sparta.sparsity.masks import SUFFIX, kept_fraction, masks_of
from sparta.train import evaluate

log = logging.getLogger(__name__)

#: the interpolation coefficients of the authors' README (``--interpolation_value_list``)
DEFAULT_COEFFICIENTS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
STATE_FILE = "search.safetensors"


@dataclass
class PoolConfig(Options):
    """Options of Lottery Pools (their fields are the CLI flags)."""

    target: int = option(-1, "IMP level of the target ticket (-1: the last level)")
    candidates: int = option(0, "neighbouring tickets tried, nearest level first (0: all)")
    coefficients: list[float] = field(
        default_factory=lambda: list(DEFAULT_COEFFICIENTS),
        metadata={
            "help": "interpolation coefficients tried per candidate (weight of the candidate)"
        },
    )

    def __post_init__(self) -> None:
        self.coefficients = [float(a) for a in self.coefficients]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.target >= -1, "target", self.target, "a level >= 0, or -1 for the last")
        require(self.candidates >= 0, "candidates", self.candidates, "an integer >= 0")
        require(bool(self.coefficients), "coefficients", self.coefficients, "at least one")
        for a in self.coefficients:
            require(0 < a < 1, "coefficients", a, "numbers in (0, 1)")


@dataclass
class PoolResult:
    """The pooled ticket and how it was found.

    ``accepted``: ``(level, coefficient)`` in the order they were merged; ``tries``: one
    ``{level, coefficient, val_acc}`` per interpolation evaluated; ``order``: the candidate
    levels in search order."""

    model: nn.Module
    target: int
    order: list[int]
    accepted: list[tuple[int, float]]
    val_acc: float
    target_val_acc: float
    tries: list[dict[str, Any]]
    run: Run | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def neighbours(target: int, levels: Sequence[int], limit: int = 0) -> list[int]:
    """The levels of ``levels`` other than ``target``, nearest first, the lower level first
    at equal distance (``t-1, t+1, t-2, t+2, ...``, the authors' order); ``limit`` > 0 keeps
    that many."""
    if target not in levels:
        raise ValueError(f"target level {target} is not in the pool; levels: {sorted(levels)}")
    order = sorted((lv for lv in levels if lv != target), key=lambda lv: (abs(lv - target), lv))
    return order[:limit] if limit > 0 else order


def interpolate(
    current: Mapping[str, torch.Tensor],
    candidate: Mapping[str, torch.Tensor],
    alpha: float,
    masks: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """``alpha * candidate + (1 - alpha) * current`` for every floating tensor of
    ``current`` (weights, biases, BatchNorm statistics), the ``masks`` re-applied to the
    masked weights; other entries (masks, counters) are kept from ``current``."""
    out: dict[str, torch.Tensor] = {}
    for k, v in current.items():
        if k.endswith(SUFFIX) or not v.is_floating_point():
            out[k] = v.clone()
            continue
        if k not in candidate:
            raise ValueError(f"candidate ticket has no {k!r}; the tickets must share a model")
        out[k] = torch.lerp(v, candidate[k].to(v), alpha)
        if k in masks:
            out[k] = out[k] * masks[k].to(out[k].dtype)
    return out


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state of ``model`` without its masks (name -> detached tensor)."""
    return {k: v.detach() for k, v in model.state_dict().items() if not k.endswith(SUFFIX)}


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def reestimate_bn(model: nn.Module, data: ImageDataset, batch_size: int = 256) -> None:
    """Recompute every BatchNorm's running mean and variance on ``data`` (cumulative average
    over one pass, as ``torch.optim.swa_utils.update_bn``); the model's mode is restored."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was = model.training
    model.train()
    try:
        device = next(model.parameters()).device
        for x, _ in data.batches(batch_size):
            model(x.to(device))
    finally:
        model.train(was)
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom


def pool_tickets(
    ticket: Callable[[int], nn.Module] | Mapping[int, nn.Module],
    levels: Sequence[int],
    target: int,
    val: ImageDataset,
    *,
    coefficients: Sequence[float] = DEFAULT_COEFFICIENTS,
    candidates: int = 0,
    bn_data: ImageDataset | None = None,
    state_file: str | os.PathLike | None = None,
    on_try: Callable[[dict[str, Any]], None] | None = None,
    quiet: bool = True,
) -> PoolResult:
    """Lottery Pools' greedy search (Algorithm 1 of 2208.10842): the ticket of ``target``
    interpolated with its neighbours among ``levels`` (``ticket(level)`` gives each trained
    ticket), coefficients chosen on ``val`` only; the result has exactly the target's masks.

    ``bn_data`` (the training split) re-estimates BatchNorm statistics after each
    interpolation. With ``state_file`` the search state is written after each candidate
    and a search killed mid-way resumes from it; ``on_try`` gets every evaluated try.
    """
    get = ticket.__getitem__ if isinstance(ticket, Mapping) else ticket
    coefficients = [float(a) for a in coefficients]
    PoolConfig(target=target, candidates=candidates, coefficients=coefficients)  # checks
    order = neighbours(target, levels, candidates)
    model = copy.deepcopy(get(target))
    masks = masks_of(model)
    if not masks:
        log.warning("target ticket of level %d has no masks (the dense level)", target)
    state_meta = {"target": target, "order": order, "coefficients": coefficients}

    def score(m: nn.Module) -> float:
        return float(evaluate(m, val)["acc"])

    target_acc = score(model)  # the ticket as trained (its own BatchNorm statistics)
    best, accepted, tries, start = target_acc, [], [], 0
    path = Path(state_file) if state_file is not None else None
    if path is not None and path.with_suffix(".json").is_file():
        tensors, meta = read_checkpoint(path)
        was = {k: meta.get(k) for k in state_meta}
        if was != json.loads(json.dumps(state_meta)):
            raise ValueError(
                f"search state {path} was made with {was}, not {state_meta}; "
                "use another run folder or --overwrite"
            )
        model.load_state_dict(tensors)
        best, start = float(meta["best"]), int(meta["next"])
        accepted = [(int(lv), float(a)) for lv, a in meta["accepted"]]
        tries = list(meta["tries"])
        log.info("resuming the pool search at candidate %d of %d", start, len(order))

    for i in progress.bar(
        range(start, len(order)), desc="pool candidates", unit="ticket", quiet=quiet
    ):
        level = order[i]
        cand = _weights(get(level))
        current = model.state_dict()
        found: tuple[float, float, dict[str, torch.Tensor]] | None = None
        for a in coefficients:
            trial = copy.deepcopy(model)
            trial.load_state_dict(interpolate(current, cand, a, masks))
            if bn_data is not None and _has_batchnorm(trial):
                reestimate_bn(trial, bn_data)
            acc = score(trial)
            rec = {"level": level, "coefficient": a, "val_acc": acc}
            tries.append(rec)
            if on_try is not None:
                on_try(rec)
            if found is None or acc > found[0]:  # the first of equal scores, as the authors
                found = (acc, a, trial.state_dict())
        assert found is not None
        if found[0] > best:  # accept only a strict improvement on validation
            best = found[0]
            model.load_state_dict(found[2])
            accepted.append((level, found[1]))
            log.info("pool: level %d at %.2f -> val_acc %.4f", level, found[1], best)
        if path is not None:
            meta = {**state_meta, "best": best, "next": i + 1, "accepted": accepted}
            write_checkpoint(path, model.state_dict(), {**meta, "tries": tries})
    return PoolResult(model, target, order, accepted, best, target_acc, tries)


# ------------------------------------------------------------------ a lottery run folder
def lottery_levels(run: str | os.PathLike) -> dict[int, Path]:
    """The finished tickets of a lottery run folder: level -> model.safetensors."""
    root = Path(run)
    if not (root / "config.yaml").is_file() or not (root / "levels").is_dir():
        raise FileNotFoundError(
            f"{root} is not a lottery run folder (config.yaml and levels/ are missing); "
            "give the folder `sparta lottery` wrote"
        )
    out: dict[int, Path] = {}
    for d in sorted((root / "levels").glob("level_*")):
        unit = d / "ticket"
        if (unit / "summary.json").is_file() and (unit / "model.safetensors").is_file():
            out[int(d.name.split("_")[1])] = unit / "model.safetensors"
    if len(out) < 2:
        raise ValueError(
            f"lottery run {root} has {len(out)} finished ticket(s); pooling needs at least 2"
        )
    return out


def _train_config(run: Path) -> Any:
    """The TrainConfig recorded in a lottery run's config.yaml."""
    import dataclasses

    from sparta.train import TrainConfig

    recorded = Run(run).read_config()
    if recorded.get("command") != "lottery":
        raise ValueError(f"{run} is a `sparta {recorded.get('command')}` run, not a lottery run")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_dict({k: v for k, v in recorded.items() if k in names})


def pool_run(
    ckpt: str | os.PathLike,
    options: PoolConfig | None = None,
    *,
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = True,
) -> PoolResult:
    """Lottery Pools on the tickets of the lottery run folder ``ckpt`` (no retraining):
    the search on the run's validation split, then the target and the pooled ticket on its
    test split. Writes ``root/name``: config.yaml, metrics.jsonl (one line per try),
    ``search.safetensors`` (the resumable search state), model.safetensors (the pooled
    ticket) and summary.json (``test_acc``, ``target_test_acc``, ``val_acc``, ...)."""
    from sparta import load
    from sparta.train import load_splits

    opts = options or PoolConfig()
    src = Path(ckpt)
    tickets = lottery_levels(src)
    target = max(tickets) if opts.target == -1 else opts.target
    if target not in tickets:
        raise ValueError(
            f"target={opts.target!r} is not a finished level of {src}; levels: {sorted(tickets)}"
        )
    cfg = _train_config(src)
    splits = load_splits(cfg)
    if splits.val is None:
        raise ValueError(
            f"lottery run {src} has no validation split (val_fraction=0); Lottery Pools "
            "chooses its coefficients on validation data, never on the test set"
        )
    config = {"ckpt": str(src), **opts.to_dict()}
    run = Run.create(config, "pool", root=root, name=name, resume=resume, overwrite=overwrite)
    res = pool_tickets(
        lambda lv: load(tickets[lv]),
        sorted(tickets),
        target,
        splits.val,
        coefficients=opts.coefficients,
        candidates=opts.candidates,
        bn_data=splits.train,
        state_file=run.file(STATE_FILE),
        on_try=run.log,
        quiet=quiet,
    )
    # the test split, read once the choices are made
    target_test = evaluate(load(tickets[target]), splits.test)["acc"]
    test = evaluate(res.model, splits.test)
    save(res.model, run.file("model.safetensors"), source=str(src), target=target)
    remaining = kept_fraction(masks_of(res.model)) if masks_of(res.model) else 1.0
    res.summary = {
        "test_acc": test["acc"],
        "test_loss": test["loss"],
        "target_test_acc": target_test,
        "val_acc": res.val_acc,
        "target_val_acc": res.target_val_acc,
        "sparsity": 1.0 - remaining,
        "remaining": remaining,
        "target_level": target,  # not "target": the backdoor key of that name
        "order": res.order,
        "accepted": [[lv, a] for lv, a in res.accepted],
        "tries": len(res.tries),
    }
    run.write_summary(res.summary)
    res.run = run
    return res
