"""Sup-tickets (Yin et al., UAI 2022, arXiv 2205.15322): superpose cheap tickets into one.

The last ``fraction`` of a sparse training run (SET, RigL, any :class:`DynamicSparsity`, or
a fixed mask) is split into ``cycles`` learning-rate cycles; the rest runs the config's
schedule compressed to the steps before the cycles (the reference code's "pre-training"
epochs, with their own lr decay). Each cycle:

1. starts with one large topology update (drop and regrow ``explore`` of each layer's
   active weights: the reference code's ``--re_explore --large-death-rate 0.5``) and keeps
   the topology fixed within the cycle (``--no_maskupdates``), so each cycle explores a
   different subnetwork;
2. anneals the learning rate by a cosine from ``high`` to ``low`` times the peak rate
   (:func:`sparta.train.schedule.cyclic_factor`; the reference runs use 0.005 -> 0.001 at a
   peak of 0.1, hence the defaults 0.05 and 0.01);
3. ends in a cheap ticket, taken at the low rate.

Superposition ("CAA", cumulative arithmetic averaging, the reference code's default): the
model at the end of the pre-cycle phase is the first ticket; after the c-th cycle the
running superposition becomes ``(1 - 1/(c+1)) sup + 1/(c+1) ticket_c``, an average over the
union of the tickets' masks (a weight a ticket lacks counts as zero), and is pruned back by
magnitude to the budget: each masked layer keeps as many weights as the training model's
mask (the DST's per-layer counts, so the distribution, e.g. ERK, is that of the base
method). The training model itself continues from its own weights; when training ends the
model becomes the pruned superposition. Everything stays within the base run's epochs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sparta.sparsity.masks import SUFFIX, masks_of
from sparta.sparsity.topk import keep_top
from sparta.train.callbacks import Callback
from sparta.train.evaluate import evaluate
from sparta.train.schedule import cycle_plan, cyclic_factor

if TYPE_CHECKING:
    from sparta.sparsity.dst.base import DynamicSparsity
    from sparta.train.loop import Trainer

#: reference defaults (luuyin/Sup-tickets README runs: lr 0.1, cycle lrs 0.005 and 0.001,
#: large death rate 0.5; main_suptickets.py's default cycle_rate 0.2)
HIGH, LOW, EXPLORE, FRACTION = 0.05, 0.01, 0.5, 0.2


def _check(name: str, value: float, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


@torch.no_grad()
def superpose(
    average: dict[str, torch.Tensor],
    count: int,
    ticket: dict[str, torch.Tensor],
    budget: dict[str, int],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Add ``ticket`` (a state dict) to the running ``average`` of ``count`` tickets and prune
    every entry of ``budget`` (parameter name -> weights to keep) back to its budget by
    magnitude. Returns the new average and its masks (exactly ``budget[name]`` True each)."""
    f = 1.0 / (count + 1)
    new = {k: (1.0 - f) * average[k] + f * ticket[k] for k in average}
    masks = {}
    for name, k in budget.items():
        masks[name] = keep_top(new[name].abs(), k)
        new[name].mul_(masks[name])
    return new, masks


class SupTickets(Callback):
    """Sup-tickets over the sparse run that ``dst`` drives (``None``: a fixed mask).

    Put it after ``dst`` in the Trainer's callbacks. ``cycles`` cycles fill the last
    ``fraction`` of the steps; see the module docstring for ``high``, ``low`` and
    ``explore`` (0 turns the per-cycle topology update off).
    """

    name = "sup_tickets"

    def __init__(
        self,
        dst: DynamicSparsity | None = None,
        cycles: int = 4,
        *,
        fraction: float = FRACTION,
        high: float = HIGH,
        low: float = LOW,
        explore: float = EXPLORE,
    ) -> None:
        _check("cycles", cycles, isinstance(cycles, int) and cycles >= 1, "an integer >= 1")
        _check("fraction", fraction, 0 < fraction <= 1, "a number in (0, 1]")
        _check("high", high, high > 0, "a number > 0")
        _check("low", low, 0 <= low <= high, "a number in [0, high]")
        _check("explore", explore, 0 <= explore < 1, "a number in [0, 1)")
        self.dst, self.cycles = dst, cycles
        self.fraction, self.high, self.low, self.explore = fraction, high, low, explore
        self.start, self.length = 0, 1
        self.count = 0
        self.average: dict[str, torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.ticket_val_acc: list[float] = []

    # ------------------------------------------------------------------ schedule
    def on_fit_start(self, trainer: Trainer) -> None:
        self.start, self.length = cycle_plan(trainer.total_steps, self.cycles, self.fraction)
        if self.dst is not None:
            cbs = trainer.callbacks
            if self.dst not in cbs or cbs.index(self.dst) > cbs.index(self):
                raise ValueError("SupTickets must come after its DST callback in the callbacks")
            self.dst.end_step = min(self.dst.end_step, self.start)  # fixed within cycles
            if self.explore > 0:
                first = (self.start + c * self.length + 1 for c in range(self.cycles))
                self.dst.explore = {step: self.explore for step in first}

    def lr_factor(self, trainer: Trainer, step: int, factor: float) -> float:
        """The config's schedule over the steps before the cycles, then the cycles."""
        if step < self.start:
            return trainer.schedule_factor(step, self.start)
        return cyclic_factor(step, self.start, self.length, self.high, self.low)

    def cycle_ends(self) -> list[int]:
        """The optimizer steps (1-based counts) after which a ticket is taken: the end of the
        pre-cycle phase (when there is one) and of every cycle."""
        ends = [self.start + (c + 1) * self.length for c in range(self.cycles)]
        return ([self.start] if self.start > 0 else []) + ends

    # ------------------------------------------------------------------ tickets
    def after_step(self, trainer: Trainer) -> None:
        if trainer.step in self.cycle_ends():
            self.take(trainer.model)

    @torch.no_grad()
    def take(self, model: nn.Module) -> None:
        """Superpose the model's current weights as the next ticket."""
        masks = masks_of(model)
        state = {
            k: v.detach().clone()
            for k, v in model.state_dict().items()
            if not k.endswith(SUFFIX) and torch.is_floating_point(v)
        }
        if self.count == 0:
            self.average = state
            self.masks = {n: m.detach().clone() for n, m in masks.items()}
        else:
            budget = {n: int(m.sum()) for n, m in masks.items()}
            self.average, self.masks = superpose(self.average, self.count, state, budget)
        self.count += 1

    def on_fit_end(self, trainer: Trainer) -> None:
        """Replace the model's weights and masks by the pruned superposition."""
        if self.count == 0:
            return
        model = trainer.model
        val = trainer.val_data is not None and len(trainer.val_data) > 0
        if val:
            last = evaluate(model, trainer.val_data, trainer.config.eval_batch_size)["acc"]
        with torch.no_grad():
            state = model.state_dict()
            for k, v in self.average.items():
                state[k].copy_(v)
            live = masks_of(model)
            for name, mask in self.masks.items():
                live[name].copy_(mask)
        if val and trainer.history:  # the last epoch's val figures become the model's
            sup = evaluate(model, trainer.val_data, trainer.config.eval_batch_size)
            trainer.history[-1].update(
                last_ticket_val_acc=last, val_acc=sup["acc"], val_loss=sup["loss"]
            )
        if trainer.history:
            trainer.history[-1]["sup_tickets"] = self.count

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics["sup_tickets"] = self.count

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"count": self.count}
        state.update({f"avg.{k}": v for k, v in self.average.items()})
        state.update({f"mask.{k}": v for k, v in self.masks.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.average = {k[4:]: v for k, v in state.items() if k.startswith("avg.")}
        self.masks = {k[5:]: v.bool() for k, v in state.items() if k.startswith("mask.")}
