"""SalUn (2310.12508): RL that updates only the salient weights.

Weight saliency = |gradient of the forgetting loss (-CE) summed over the forget set|
(Sec. 4, Eq. 5), taken at the original model in eval mode; the mask keeps the global top
``saliency`` share of all parameters (default 0.5, "hard_0.5" in the code's
``generate_mask.py``; the paper's threshold gamma is the median). Then RL (random labels on
the forget set, true labels on the retain set) with only the masked weights free.

Non-salient weights stay bit-identical: their gradients are zeroed before the step, and
after the step their values are copied back and their momentum / Adam moments zeroed, so
neither weight decay nor momentum can move them. With pruning, the share is of the live
weights: pruned weights are never salient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import ImageDataset
from sparta.train import Callback, TrainConfig
from sparta.train.evaluate import eval_mode
from sparta.train.masks import mask_gradients, masks_of
from sparta.unlearn.methods.base import Plan, register_method
from sparta.unlearn.methods.rl import rl_plan
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting

if TYPE_CHECKING:
    from sparta.train import Trainer

_MOMENTS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def saliency_scores(
    model: nn.Module, forget: ImageDataset, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """|sum over forget batches of the gradient of -CE| per trainable parameter."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    device = next(iter(params.values())).device
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    with eval_mode(model):
        for x, y in forget.batches(batch_size):
            model.zero_grad(set_to_none=True)
            (-F.cross_entropy(model(x.to(device)), y.to(device))).backward()
            mask_gradients(model)
            for n, p in params.items():
                if p.grad is not None:
                    total[n] += p.grad
    model.zero_grad(set_to_none=True)
    return {n: t.abs() for n, t in total.items()}


def saliency_masks(
    model: nn.Module, forget: ImageDataset, saliency: float = 0.5, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Boolean masks (True = salient, free to change): the global top ``saliency`` share of
    the live entries (pruned entries, if any, are never salient and not counted)."""
    if not 0 < saliency <= 1:
        raise ValueError(f"saliency={saliency!r} is not allowed; expected a number in (0, 1]")
    scores = saliency_scores(model, forget, batch_size)
    pruned = masks_of(model)
    total = sum(s.numel() for s in scores.values())
    live = total
    for name, mask in pruned.items():
        if name in scores:
            scores[name] = torch.where(mask, scores[name], torch.full_like(scores[name], -1.0))
            live -= int((~mask).sum())
    # the global top share, ties in parameter order (a stable sort keeps equal scores in place)
    # k as the density 1 - sparsity of the whole model (float for float as before this
    # selection moved here, so the masks stay bit-identical)
    k = int(round(total * (1.0 - (1.0 - saliency * live / total))))
    flat = torch.cat([s.detach().flatten().float().cpu() for s in scores.values()])
    keep = torch.zeros(total, dtype=torch.bool)
    keep[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    parts = keep.split([s.numel() for s in scores.values()])
    pairs = zip(scores.items(), parts, strict=True)
    return {n: m.view(s.shape).to(s.device) for (n, s), m in pairs}


class FreezeCallback(Callback):
    """Keep every entry outside ``masks`` (False) bit-identical through training."""

    name = "freeze"

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        self.masks = dict(masks)
        self.frozen: dict[str, tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        params = dict(trainer.model.named_parameters())
        missing = [n for n in self.masks if n not in params]
        if missing:
            raise ValueError(f"saliency mask names no parameter {missing[0]!r}")
        self.frozen = {
            n: (params[n], m.to(params[n].device), params[n].detach().clone())
            for n, m in self.masks.items()
        }

    def after_backward(self, trainer: Trainer) -> None:
        for p, m, _ in self.frozen.values():
            if p.grad is not None:
                p.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, trainer: Trainer) -> None:
        for p, m, value in self.frozen.values():
            p.copy_(torch.where(m, p, value))
            state = trainer.optimizer.state.get(p, {})
            for key in _MOMENTS:
                if isinstance(state.get(key), torch.Tensor):
                    state[key].mul_(m)


@register_method("salun", epochs=10, lr=0.013, summary="RL on the salient weights only")
def prepare(model: nn.Module, setting: Setting, opts: UnlearnOptions, base: TrainConfig) -> Plan:
    """Saliency mask from the forget loss's gradient, then RL on the salient weights."""
    model.to(opts.device)
    masks = saliency_masks(model, setting.forget, opts.saliency, opts.batch_size)
    plan = rl_plan(setting, opts)
    plan.callbacks.append(FreezeCallback(masks))
    plan.info["saliency_masks"] = masks
    return plan
