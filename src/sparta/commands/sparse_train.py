"""``sparta train`` options for sparse training: DST (``--dst set|rigl|chase``, with
Sup-tickets ``--sup-tickets N``; Chase's channel removal with ``--chase-channel-sparsity``),
gradual magnitude pruning (``--gmp``) and one-shot pruning at init (``--prune-method``), all
at ``--sparsity``.

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option, require, require_defaults
from sparta.registry import get_registry

DST_METHODS = ("", *get_registry("dst").aliases())
DISTRIBUTIONS = ("erk", "uniform", "global")


@dataclass
class SparseTrainOptions(Options):
    """Sparse-training options of ``sparta train`` (recorded in config.yaml)."""

    sparsity: float = option(0.0, "target fraction of pruned weights, in [0, 1) (0: dense)")
    dst: str = option(
        "",
        f"dynamic sparse training: {', '.join(DST_METHODS[1:])} ('' for none)",
        choices=DST_METHODS,
    )
    distribution: str = option(
        "erk",
        "how sparsity is spread over layers: erk, uniform, or global (GMP/one-shot only)",
        choices=DISTRIBUTIONS,
    )
    update_interval: int = option(100, "steps between DST topology updates or GMP pruning steps")
    drop_fraction: float = option(0.3, "DST: initial fraction of active weights dropped per update")
    stop_fraction: float = option(0.75, "DST: fraction of training after which topology is fixed")
    gmp: bool = option(False, "gradual magnitude pruning to --sparsity on the cubic schedule")
    gmp_start: float = option(0.1, "GMP: fraction of training at which pruning starts")
    gmp_end: float = option(0.6, "GMP: fraction of training at which --sparsity is reached")
    scale_init: bool = option(
        True, "scale surviving initial weights by 1/sqrt(layer density) (sparse init)"
    )
    prune_method: str = option(
        "", "one-shot pruning criterion at init (random, magnitude, snip, grasp, synflow, ...)"
    )
    sup_tickets: int = option(
        0, "Sup-tickets with --dst: this many lr cycles at the end, tickets superposed (0: off)"
    )
    sup_fraction: float = option(0.2, "Sup-tickets: fraction of training the cycles fill")
    sup_high: float = option(0.05, "Sup-tickets: cycle lr at its start, times --lr")
    sup_low: float = option(0.01, "Sup-tickets: cycle lr at its end (the ticket), times --lr")
    sup_explore: float = option(
        0.5, "Sup-tickets: fraction of active weights dropped and regrown as each cycle starts"
    )
    chase_channel_sparsity: float = option(
        0.3, "Chase (--dst chase): fraction of channels removed (physically) while training"
    )
    chase_start: float = option(0.1, "Chase: fraction of training at which channel removal starts")
    chase_end: float = option(0.5, "Chase: fraction of training by which it is complete")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(0.0 <= self.sparsity < 1.0, "sparsity", self.sparsity, "a number in [0, 1)")
        require(self.dst in DST_METHODS, "dst", self.dst, f"one of {DST_METHODS}")
        require(
            self.distribution in DISTRIBUTIONS,
            "distribution",
            self.distribution,
            f"one of {DISTRIBUTIONS}",
        )
        require(self.update_interval >= 1, "update_interval", self.update_interval, "an int >= 1")
        require(
            0 < self.drop_fraction < 1, "drop_fraction", self.drop_fraction, "a number in (0, 1)"
        )
        require(0 <= self.stop_fraction <= 1, "stop_fraction", self.stop_fraction, "[0, 1]")
        require(
            0 <= self.gmp_start < self.gmp_end <= 1,
            "gmp_start, gmp_end",
            (self.gmp_start, self.gmp_end),
            "0 <= gmp_start < gmp_end <= 1",
        )
        asks = bool(self.dst or self.gmp or self.prune_method)
        require(
            asks or self.sparsity == 0,
            "sparsity",
            self.sparsity,
            "0 unless --dst, --gmp or --prune-method is given",
        )
        require(
            not asks or self.sparsity > 0,
            "sparsity",
            self.sparsity,
            "a number in (0, 1) with --dst, --gmp or --prune-method",
        )
        require(not (self.gmp and self.dst), "gmp", self.gmp, "not together with --dst")
        require(self.sup_tickets >= 0, "sup_tickets", self.sup_tickets, "an integer >= 0")
        if self.sup_tickets:
            require(bool(self.dst), "sup_tickets", self.sup_tickets, "0 unless --dst is given")
            require(0 < self.sup_fraction <= 1, "sup_fraction", self.sup_fraction, "(0, 1]")
            require(self.sup_high > 0, "sup_high", self.sup_high, "a number > 0")
            require(0 <= self.sup_low <= self.sup_high, "sup_low", self.sup_low, "[0, sup_high]")
            require(0 <= self.sup_explore < 1, "sup_explore", self.sup_explore, "[0, 1)")
        else:
            names = ("sup_fraction", "sup_high", "sup_low", "sup_explore")
            require_defaults(self, names, "sup-tickets", ("1", "2", "..."))
        if self.dst == "chase":
            require(
                not self.sup_tickets,
                "sup_tickets",
                self.sup_tickets,
                "0 with --dst chase (its tickets would have different shapes)",
            )
            require(
                0 <= self.chase_channel_sparsity < 1,
                "chase_channel_sparsity",
                self.chase_channel_sparsity,
                "a number in [0, 1)",
            )
            require(
                0 <= self.chase_start < self.chase_end <= self.stop_fraction,
                "chase_start, chase_end",
                (self.chase_start, self.chase_end),
                "0 <= chase_start < chase_end <= stop_fraction",
            )
        else:
            names = ("chase_channel_sparsity", "chase_start", "chase_end")
            require_defaults(self, names, "dst", ("chase",))
        require(not (self.gmp and self.prune_method), "gmp", self.gmp, "not with --prune-method")
        require(
            not (self.dst and self.distribution == "global"),
            "distribution",
            self.distribution,
            "erk or uniform with --dst",
        )


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
            distribution=opts.distribution,
            data=splits.train,
        )
        if opts.scale_init:
            scale_by_density(model, handle.masks)
    if opts.dst:
        chase = (
            {
                "channel_sparsity": opts.chase_channel_sparsity,
                "channel_start": opts.chase_start,
                "channel_end": opts.chase_end,
            }
            if opts.dst == "chase"
            else {}
        )
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
            **chase,
        )
        if chase:  # its schedule must fit in the run: checked before its folder is made
            import math

            if cfg.compile:
                raise ValueError(
                    "compile=True is not allowed with --dst chase (the model shrinks while "
                    "it trains); drop --compile"
                )

            dst.plan(math.ceil(len(splits.train) / cfg.batch_size) * cfg.epochs)
        if opts.sup_tickets:
            import math

            from sparta.sparsity.dst.sup_tickets import SupTickets
            from sparta.train.schedule import cycle_plan

            # the cycles must fit in the run: checked before its folder is made
            steps = math.ceil(len(splits.train) / cfg.batch_size) * cfg.epochs
            cycle_plan(steps, opts.sup_tickets, opts.sup_fraction)

            sup = SupTickets(
                dst,
                opts.sup_tickets,
                fraction=opts.sup_fraction,
                high=opts.sup_high,
                low=opts.sup_low,
                explore=opts.sup_explore,
            )
            return [dst, sup]
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
