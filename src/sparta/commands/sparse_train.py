"""``sparta train`` options for sparse training: DST (``--dst set|rigl``), gradual magnitude
pruning (``--gmp``) and one-shot pruning at init (``--prune-method``), all at ``--sparsity``.

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan

DST_METHODS = ("", "set", "rigl")
DISTRIBUTIONS = ("erk", "uniform", "global")
PRUNE_SCOPES = {"erk": "erk", "uniform": "layer", "global": "global"}


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


@dataclass
class SparseTrainOptions:
    """Sparse-training options of ``sparta train`` (recorded in config.yaml)."""

    sparsity: float = _opt(0.0, "target fraction of pruned weights, in [0, 1) (0: dense)")
    dst: str = _opt("", "dynamic sparse training: set or rigl ('' for none)", choices=DST_METHODS)
    distribution: str = _opt(
        "erk",
        "how sparsity is spread over layers: erk, uniform, or global (GMP/one-shot only)",
        choices=DISTRIBUTIONS,
    )
    update_interval: int = _opt(100, "steps between DST topology updates or GMP pruning steps")
    drop_fraction: float = _opt(0.3, "DST: initial fraction of active weights dropped per update")
    stop_fraction: float = _opt(0.75, "DST: fraction of training after which topology is fixed")
    gmp: bool = _opt(False, "gradual magnitude pruning to --sparsity on the cubic schedule")
    gmp_start: float = _opt(0.1, "GMP: fraction of training at which pruning starts")
    gmp_end: float = _opt(0.6, "GMP: fraction of training at which --sparsity is reached")
    scale_init: bool = _opt(
        True, "scale surviving initial weights by 1/sqrt(layer density) (sparse init)"
    )
    prune_method: str = _opt(
        "", "one-shot pruning criterion at init (random, magnitude, snip, grasp, synflow, ...)"
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        _check(0.0 <= self.sparsity < 1.0, "sparsity", self.sparsity, "a number in [0, 1)")
        _check(self.dst in DST_METHODS, "dst", self.dst, f"one of {DST_METHODS}")
        _check(
            self.distribution in DISTRIBUTIONS,
            "distribution",
            self.distribution,
            f"one of {DISTRIBUTIONS}",
        )
        _check(self.update_interval >= 1, "update_interval", self.update_interval, "an int >= 1")
        _check(
            0 < self.drop_fraction < 1, "drop_fraction", self.drop_fraction, "a number in (0, 1)"
        )
        _check(0 <= self.stop_fraction <= 1, "stop_fraction", self.stop_fraction, "[0, 1]")
        _check(
            0 <= self.gmp_start < self.gmp_end <= 1,
            "gmp_start, gmp_end",
            (self.gmp_start, self.gmp_end),
            "0 <= gmp_start < gmp_end <= 1",
        )
        asks = bool(self.dst or self.gmp or self.prune_method)
        _check(
            asks or self.sparsity == 0,
            "sparsity",
            self.sparsity,
            "0 unless --dst, --gmp or --prune-method is given",
        )
        _check(
            not asks or self.sparsity > 0,
            "sparsity",
            self.sparsity,
            "a number in (0, 1) with --dst, --gmp or --prune-method",
        )
        _check(not (self.gmp and self.dst), "gmp", self.gmp, "not together with --dst")
        _check(not (self.gmp and self.prune_method), "gmp", self.gmp, "not with --prune-method")
        _check(
            not (self.dst and self.distribution == "global"),
            "distribution",
            self.distribution,
            "erk or uniform with --dst",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SparseTrainOptions:
        """Build from a mapping; unknown keys are an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown sparse option {unknown[0]!r}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**values)


def active(opts: SparseTrainOptions) -> bool:
    """Whether the options ask for any sparsity."""
    return opts.sparsity > 0


def sparse_callbacks(opts: SparseTrainOptions, model: Any, cfg: Any, splits: Any) -> list[Any]:
    """Prune ``model`` (one-shot / initial DST masks) and return the training callbacks."""
    from sparta.sparsity.dst import create_dst, scale_by_density
    from sparta.sparsity.schedules import GradualPruning

    handle = None
    if opts.prune_method:
        from sparta.sparsity.pruning import prune

        handle = prune(
            model,
            method=opts.prune_method,
            sparsity=opts.sparsity,
            scope=PRUNE_SCOPES[opts.distribution],
            data=splits.train,
        )
        if opts.scale_init:
            scale_by_density(model, handle.masks)
    if opts.dst:
        dst = create_dst(
            opts.dst,
            model,
            opts.sparsity,
            distribution=opts.distribution,
            update_interval=opts.update_interval,
            drop_fraction=opts.drop_fraction,
            stop_fraction=opts.stop_fraction,
            seed=cfg.seed,
            scale_init=opts.scale_init,
        )
        return [dst]
    if opts.gmp:
        gmp = GradualPruning(
            model,
            opts.sparsity,
            start=opts.gmp_start,
            end=opts.gmp_end,
            interval=opts.update_interval,
            distribution=opts.distribution,
        )
        return [gmp]
    return [handle.callback()] if handle is not None else []


def setup(opts: SparseTrainOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Make ``plan.model`` sparse and add the callback that keeps (or evolves) its masks."""
    plan.callbacks.extend(sparse_callbacks(opts, plan.model, cfg, splits))


EXTENSIONS.append(TrainExtension(options=SparseTrainOptions, active=active, setup=setup))
