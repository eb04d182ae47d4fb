"""Pieces the white-box attacks share: objectives to maximise, target choice, per-example bests.

Kept out of ``base.py`` because only the gradient attacks (PGD, APGD, FAB) use them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from sparta.attacks.base import Attack, AttackResult, dlr_targeted_loss, get_loss, margin_loss
from sparta.checks import check_int, check_positive  # noqa: F401  (re-exported)

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: classes the DLR losses need: the untargeted one reads z_pi3, the targeted one z_pi4
#: (Croce & Hein 2020, 2003.01690, Eq. 5 and 6)
_MIN_CLASSES = {("dlr", False): 3, ("dlr", True): 4}


def objective(
    loss: str, target: torch.Tensor | None, num_classes: int
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-example function ``f(logits, y)`` that the attack *maximises*.

    Untargeted: the named loss of the true label. Targeted (``target`` given): ``-CE`` toward
    the target, the target's margin ``z_t - max_{j != t} z_j``, or the targeted DLR loss.
    """
    get_loss(loss)  # validates the name
    need = _MIN_CLASSES.get((loss, target is not None), 2)
    if num_classes < need:
        kind = "targeted " if target is not None else ""
        raise ValueError(
            f"the {kind}{loss} loss needs at least {need} classes, the model has {num_classes}"
        )
    if target is None:
        return get_loss(loss)
    if loss == "ce":
        return lambda logits, y: -F.cross_entropy(logits, target, reduction="none")
    if loss in ("margin", "cw"):
        return lambda logits, y: -margin_loss(logits, target)
    return lambda logits, y: dlr_targeted_loss(logits, y, target)


def classes_of(attack: Attack, x: torch.Tensor) -> int:
    """The model's number of classes (``attack.num_classes``, else read off one forward)."""
    if attack.num_classes is None:
        with torch.no_grad():
            attack.num_classes = int(attack.model(x[:1]).shape[1])
    return attack.num_classes


def top_targets(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, k')`` the ``k' = min(k, C - 1)`` highest-scoring classes other than ``y``, best
    first (the target classes of APGD-T and FAB-T, 2003.01690 Sec. 4)."""
    k = min(k, logits.shape[1] - 1)
    masked = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return masked.topk(k, dim=1).indices


def dist(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example Linf or L2 norm of a batch of perturbations."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example bool ``(N,)`` shaped to broadcast against a batch ``like``."""
    return mask.view(-1, *([1] * (like.ndim - 1)))


class Best:
    """Per-example best point over iterates, restarts and targets.

    A successful point beats an unsuccessful one; between equals the higher loss wins, so an
    example keeps its first success unless a later one has a higher loss.
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.x_adv = x.clone()
        self.success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.loss = torch.full((len(x),), float("-inf"), dtype=x.dtype, device=x.device)

    def pending(self) -> torch.Tensor:
        """Indices of the examples without a success yet."""
        return (~self.success).nonzero().squeeze(1)

    def update(
        self,
        idx: torch.Tensor | None,
        x_adv: torch.Tensor,
        success: torch.Tensor,
        loss: torch.Tensor,
    ) -> None:
        """Offer candidates for rows ``idx`` (all rows when None)."""
        if idx is None:
            idx = torch.arange(len(self.success), device=self.success.device)
        cur_s, cur_l = self.success[idx], self.loss[idx]
        better = (success & ~cur_s) | ((success == cur_s) & (loss > cur_l))
        where = idx[better]
        self.x_adv[where] = x_adv[better]
        self.success[where] = success[better]
        self.loss[where] = loss[better]

    def result(self) -> AttackResult:
        """The kept points as an :class:`AttackResult`."""
        return AttackResult(self.x_adv, self.success, self.loss)


def until_success(best: Best, rounds: int, run: Callable[[torch.Tensor, int], tuple]) -> None:
    """Call ``run(idx, r)`` for ``r < rounds`` on the examples still without success (fully
    batched over them); ``run`` returns ``(x_adv, success, loss)`` for those rows."""
    for r in range(rounds):
        idx = best.pending()
        if idx.numel() == 0:
            return
        best.update(idx, *run(idx, r))
