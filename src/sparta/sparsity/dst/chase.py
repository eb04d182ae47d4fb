"""Chase (Yin et al., NeurIPS 2023, arXiv 2305.19454): channel-aware dynamic sparse training.

Unstructured DST silently concentrates its sparsity in some channels (the paper's
observation: up to 60% of the channels are far sparser than the rest). Chase turns that
into channel sparsity during one sparse run, and here the model **physically shrinks** as
it trains:

1. The unstructured part is RigL (the paper's method builds on GraNet/RigL's gradient
   regrowth): every ``update_interval`` steps drop the smallest active weights and regrow
   as many where the dense gradient is largest, with RigL's cosine drop fraction.
2. Channel score: the **unmasked mean magnitude** (UMM, the paper's channel criterion),
   the L1 norm of a channel's kept weights divided by the number of weights the channel
   has (masked ones included), summed over the producers of a channel group (residual
   streams are one group, :mod:`sparta.sparsity.groups`). A channel that DST has made
   sparse has a small UMM: the "amenable" channels.
3. Gradual channel removal ("gradual amenable channel pruning"): at the topology updates
   between ``channel_start`` and ``channel_end`` (fractions of training; the last update
   before ``channel_end`` completes it when no update falls on it) the fraction of
   removed channels follows the cubic schedule of gradual magnitude pruning (Zhu & Gupta
   2017, used by GraNet and Chase) from 0 to ``channel_sparsity``; the channels with the
   smallest UMM go, ranked over all groups after dividing by their group's mean UMM
   (:func:`select_channels`'s ``global``), each group keeping at least one channel. The
   removal is physical (:func:`sparta.sparsity.export.shrink`): layers, masks, gradients
   and optimizer state are cut to the kept channels, so every later step is cheaper.
4. Parameter budget ("soft memory bound"): the active weights that leave with the removed
   channels are regrown, where the dense gradient is largest, in the remaining channels;
   first each layer gets back what it lost (keeping the ERK layer budgets), a layer too
   small for its budget passes the rest to one global gradient ranking over all layers.
   The total number of active weights is therefore exactly the starting budget after
   every update (while the smaller model can hold it).

Only the abstract and introduction of the paper could be read from here (search excerpts);
the components follow their description there and the method as published; the reference
code (VITA-Group/ChaseSparse) was not available. This module's own choices: the normalised
global ranking, the per-layer return of the budget and the 10%-50% window.

Order within an update step (the step's optimizer update is replaced, as in RigL): channel
removal and budget regrowth first, then the RigL drop/grow on the shrunk model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sparta.sparsity.channels import select_channels
from sparta.sparsity.dst.base import check_fraction, register_dst
from sparta.sparsity.dst.rigl import RigL
from sparta.sparsity.export import shrink
from sparta.sparsity.groups import ChannelGroup, channel_groups
from sparta.sparsity.masks import masks_of, reset_optimizer_state
from sparta.sparsity.schedules import cubic_sparsity
from sparta.sparsity.topk import keep_top

if TYPE_CHECKING:
    from sparta.train.loop import Trainer

log = logging.getLogger(__name__)

#: defaults (this module's choice): remove 30% of the channels between 10% and 50% of
#: training (the paper reports several channel sparsities per model, Fig. 1; the end leaves
#: RigL time to re-settle the masks of the smaller model before its updates stop at 75%)
CHANNEL_SPARSITY, CHANNEL_START, CHANNEL_END = 0.3, 0.1, 0.5


def unmasked_mean_magnitude(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """UMM of each channel of ``group``: ``sum |w * m|`` over the channel's producer rows
    divided by the number of entries in those rows (the paper's UMM)."""
    mods, masks = dict(model.named_modules()), masks_of(model)
    mass = torch.zeros(group.size, dtype=torch.float64)
    count = 0
    for name in group.producers:
        w = mods[name].weight.detach()
        m = masks.get(f"{name}.weight")
        kept = w if m is None else w * m
        mass += kept.abs().flatten(1).sum(1).double().cpu()
        count += w[0].numel()
    return mass / max(count, 1)


@register_dst("chase")
class Chase(RigL):
    """RigL that removes the channels of smallest UMM during training and shrinks the model.

    ``channel_sparsity``: the fraction of the prunable channel groups' channels removed by
    ``channel_end`` (fractions of the training steps, as ``channel_start``);
    ``input_shape`` defaults to the model's sparta spec. Other options are
    :class:`~sparta.sparsity.dst.base.DynamicSparsity`'s.
    """

    name = "dst"

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        channel_sparsity: float = CHANNEL_SPARSITY,
        channel_start: float = CHANNEL_START,
        channel_end: float = CHANNEL_END,
        input_shape: Sequence[int] | None = None,
        **options: Any,
    ) -> None:
        check_fraction("channel_sparsity", channel_sparsity, low_open=False, high_open=True)
        if not 0 <= channel_start < channel_end <= 1:
            raise ValueError(
                f"channel_start={channel_start!r}, channel_end={channel_end!r} are not allowed; "
                "expected 0 <= channel_start < channel_end <= 1"
            )
        groups = channel_groups(model, input_shape)
        if not groups:
            raise ValueError(f"{type(model).__name__} has no prunable channel group for chase")
        super().__init__(model, sparsity, **options)
        stop = self.stop_fraction
        if channel_sparsity > 0 and channel_end > stop:
            raise ValueError(
                f"channel_end={channel_end!r} is not allowed; expected at most stop_fraction="
                f"{stop!r} (channels are removed at topology updates)"
            )
        self.channel_sparsity = float(channel_sparsity)
        self.channel_start, self.channel_end = float(channel_start), float(channel_end)
        self.input_shape = input_shape
        self.total_channels = sum(g.size for g in groups)
        self.channels = self.total_channels
        masks = masks_of(model)
        #: active weights per masked parameter: constant through every update
        self.budget = {n: int(masks[n].sum()) for n in self.names}
        self.channel_updates = 0
        self.start_step = self.final_step = 0

    # ------------------------------------------------------------------ schedule
    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer._forward is not trainer.model:
            raise ValueError(
                "chase shrinks the model while it trains, which a compiled or DDP-wrapped "
                "model cannot follow; train without --compile and on one process"
            )
        super().on_fit_start(trainer)
        self.start_step, self.final_step = self.plan(trainer.total_steps)

    def plan(self, total_steps: int) -> tuple[int, int]:
        """The steps after which channel removal starts and by which it is complete in a
        run of ``total_steps``; a ValueError when no topology update falls between them."""
        end = int(self.stop_fraction * total_steps)
        start = int(self.channel_start * total_steps)
        # channels go at topology updates: the last one before channel_end completes it
        last = end // self.interval * self.interval
        final = min(max(start + 1, int(self.channel_end * total_steps)), last)
        if self.channel_sparsity > 0 and final <= start:
            raise ValueError(
                f"chase: no topology update (every {self.interval} steps until step {end}) "
                f"falls after channel_start (step {start} of {total_steps}); lower "
                "update_interval or channel_start"
            )
        return start, final

    def target_channels(self, step: int) -> int:
        """How many of the original channels should be gone at ``step`` (cubic schedule)."""
        n = self.final_step - self.start_step
        s = cubic_sparsity(step, 0.0, self.channel_sparsity, self.start_step, n, 1)
        return int(round(self.total_channels * s))

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def update(
        self, model: nn.Module, step: int, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """Remove channels (when the schedule asks), regrow the freed budget, then RigL."""
        if step > self.start_step and step not in self.explore:
            self.remove_channels(model, step, optimizer)
        super().update(model, step, optimizer)

    @torch.no_grad()
    def remove_channels(
        self, model: nn.Module, step: int, optimizer: torch.optim.Optimizer | None = None
    ) -> int:
        """Physically remove the channels of smallest UMM that the schedule asks for at
        ``step`` and regrow the active weights they held; returns how many went."""
        k = self.target_channels(step) - (self.total_channels - self.channels)
        if k <= 0:
            return 0
        groups = channel_groups(model, self.input_shape)
        current = sum(g.size for g in groups)
        scores = [unmasked_mean_magnitude(model, g) for g in groups]
        keeps = select_channels(scores, min(k / current, 1.0 - 1e-9), "global")
        removed = current - sum(int(keep.sum()) for keep in keeps)
        if removed == 0:
            return 0
        shrink(model, groups, keeps, optimizer)
        self.channels = current - removed
        self.channel_updates += 1
        self.regrow(model, optimizer)
        log.info("chase step %d: removed %d channels, %d left", step, removed, self.channels)
        return removed

    @torch.no_grad()
    def regrow(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Give each layer back the active weights it lost, at the inactive entries of
        largest ``|dL/dw|`` (RigL's grow score); what a layer cannot hold goes to one
        global ranking over all layers. New connections start at zero."""
        params, masks = dict(model.named_parameters()), masks_of(model)
        spill = 0
        for index, name in enumerate(self.names):
            mask = masks[name]
            want = self.budget[name] - int(mask.sum())
            free = mask.numel() - int(mask.sum())
            spill += max(0, want - free)
            if min(want, free) > 0:
                self._grow(name, params[name], mask, index, min(want, free), optimizer)
        if spill > 0:
            scores = {
                n: self.grow_score(n, params[n], 0, i).masked_fill(masks[n], -float("inf"))
                for i, n in enumerate(self.names)
            }
            free = sum(masks[n].numel() - int(masks[n].sum()) for n in self.names)
            flat = torch.cat([s.flatten().float().cpu() for s in scores.values()])
            chosen = keep_top(flat, min(spill, free))
            start = 0
            for name, s in scores.items():
                grow = chosen[start : start + s.numel()].view(s.shape).to(masks[name].device)
                start += s.numel()
                grow &= ~masks[name]
                if grow.any():
                    reset_optimizer_state(optimizer, params[name], grow)
                    params[name].masked_fill_(grow, 0.0)
                    masks[name] |= grow
            if spill > free:
                log.warning(
                    "chase: the shrunk model holds %d fewer weights than the budget", spill - free
                )
        self.budget = {n: int(masks[n].sum()) for n in self.names}

    def _grow(
        self,
        name: str,
        p: nn.Parameter,
        mask: torch.Tensor,
        index: int,
        k: int,
        optimizer: torch.optim.Optimizer | None,
    ) -> None:
        score = self.grow_score(name, p, 0, index).masked_fill(mask, -float("inf"))
        grow = keep_top(score, k) & ~mask
        reset_optimizer_state(optimizer, p, grow)
        p.masked_fill_(grow, 0.0)
        mask |= grow

    # ------------------------------------------------------------------ logging and resume
    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        super().on_epoch_end(trainer, metrics)
        metrics["channels"] = self.channels
        metrics["channel_sparsity"] = 1.0 - self.channels / self.total_channels
        metrics["params"] = sum(p.numel() for p in trainer.model.parameters())
        metrics["active_weights"] = sum(self.budget.values())
        if "epoch_time_s" in metrics and trainer.steps_per_epoch:
            metrics["step_time_s"] = metrics["epoch_time_s"] / trainer.steps_per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "channels": self.channels,
            "channel_updates": self.channel_updates,
            "budget": dict(self.budget),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.channels = int(state["channels"])
        self.channel_updates = int(state["channel_updates"])
        self.budget = {n: int(v) for n, v in state["budget"].items()}
