"""What every attack shares: the registry, input checks, the result type, projections, losses.

All attacks work in pixel space [0, 1] (normalisation is inside the model), are fully
batched, and leave the model's train/eval mode and ``requires_grad`` flags as they were.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.checks import NORMS, check_eps, check_norm  # noqa: F401  (re-exported)
from sparta.models.utils import device_of, frozen  # noqa: F401  (re-exported for attacks)
from sparta.registry import Registry

#: every attack class by name; ``meta['black_box']`` as the class says
ATTACKS: Registry[type[Attack]] = Registry("attacks", populate="sparta.attacks", label="attack")
_ATTACKS = ATTACKS  # the old name (``_ATTACKS[name]`` still gives the class)


@dataclass
class AttackResult:
    """Per-example outcome of an attack on a batch."""

    x_adv: torch.Tensor  # same shape as x, inside the eps-ball and [0, 1]
    success: torch.Tensor  # bool (N,): misclassified (untargeted) / sent to target (targeted)
    loss: torch.Tensor  # float (N,): the attack's loss at x_adv
    queries: torch.Tensor | None = None  # long (N,): model queries spent (black-box attacks)

    @property
    def robust(self) -> torch.Tensor:
        return ~self.success


def register_attack(
    name: str, aliases: tuple[str, ...] = ()
) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator: make an :class:`Attack` subclass available by ``name``."""

    def deco(cls: type[Attack]) -> type[Attack]:
        entry = ATTACKS.add(name, cls, aliases=aliases, black_box=bool(cls.black_box))
        cls.name = entry.name
        return cls

    return deco


def names(black_box: bool | None = None, pattern: str | None = None) -> list[str]:
    """Registered attack names (optionally only black-box or only white-box ones)."""
    return ATTACKS.names(pattern, **({} if black_box is None else {"black_box": black_box}))


def create(name: str, model: nn.Module, **options: Any) -> Attack:
    """``create("pgd", model, eps=0.1, norm="linf", steps=10)``."""
    return ATTACKS[name](model, **options)


def check_inputs(x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> None:
    """Inputs must be pixel-space images in [0, 1] with one integer label each."""
    if x.ndim < 2 or len(x) != len(y):
        raise ValueError(f"got {tuple(x.shape)} inputs for {tuple(y.shape)} labels")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"inputs must lie in [0, 1] (pixel space; normalisation belongs inside the model), "
            f"got values in [{lo:.4g}, {hi:.4g}]"
        )
    if num_classes is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"label/target {int(y.max()) if int(y.max()) >= num_classes else int(y.min())} "
            f"out of range; allowed 0..{num_classes - 1}"
        )


def _flat_norm(v: torch.Tensor) -> torch.Tensor:
    """L2 norm per example, shaped to broadcast against ``v``."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project onto the intersection of the eps-ball around ``x`` and the box [0, 1]."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * scale
    return (x + delta).clamp(0.0, 1.0)


def normalize_step(g: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit size: sign for Linf, g / ||g||_2 for L2."""
    if norm == "linf":
        return g.sign()
    return g / _flat_norm(g).clamp_min(1e-12)


def random_start(
    x: torch.Tensor, eps: float, norm: str, generator: torch.Generator
) -> torch.Tensor:
    """A uniform point of the Linf ball, or of the L2 ball (direction x radius^(1/d))."""
    if norm == "linf":  # u * 2 eps - eps in [-eps, eps]: only the box can cut it
        delta = torch.rand(x.shape, generator=generator, device="cpu").to(x)
        return delta.mul_(2 * eps).sub_(eps).add_(x).clamp_(0.0, 1.0)
    d = x[0].numel()
    g = torch.randn(x.shape, generator=generator, device="cpu").to(x)
    r = torch.rand(len(x), generator=generator, device="cpu").to(x) ** (1.0 / d)
    delta = g / _flat_norm(g) * (eps * r).view(-1, *([1] * (x.ndim - 1)))
    return project(x + delta, x, eps, norm)


# ------------------------------------------------------------------ losses (per example)
def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin: max_{j != y} z_j - z_y (positive = misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, 2003.01690, Eq. 5), untargeted:
    -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3); needs at least 3 classes."""
    s = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    top_is_y = (logits.argmax(1) == y).float()
    best_other = s[:, 0] * (1 - top_is_y) + s[:, 1] * top_is_y
    return -(true - best_other) / (s[:, 0] - s[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (2003.01690, Eq. 6): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
    s = logits.sort(dim=1, descending=True).values
    zy = logits.gather(1, y[:, None]).squeeze(1)
    zt = logits.gather(1, target[:, None]).squeeze(1)
    return -(zy - zt) / (s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + 1e-12)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": ce_loss,
    "margin": margin_loss,
    "cw": margin_loss,
    "dlr": dlr_loss,
}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name not in LOSSES:
        raise ValueError(f"loss {name!r} is not known; allowed: {', '.join(LOSSES)}")
    return LOSSES[name]


class Attack(abc.ABC):
    """Base class. Subclasses implement :meth:`perturb` on a checked, frozen model.

    ``targeted``: with ``target`` labels given to ``__call__``, success means the model
    predicts the target; otherwise success means it does not predict ``y``.

    Every attack takes ``model`` and ``eps`` first, its own options, and this base's
    ``norm`` ("linf"), ``seed`` (0) and ``num_classes`` (None: read off one forward) as
    keywords (subclasses pass them on as ``**common``).
    """

    name = "attack"
    black_box = False  # black-box attacks only ever call ``self.query`` (no gradients)

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        norm: str = "linf",
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        self.model = model
        self.eps = check_eps(eps)
        self.norm = check_norm(norm)
        self.seed = seed
        self.num_classes = num_classes

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> AttackResult:
        """Attack the batch ``(x, y)`` (and ``target`` labels for targeted attacks)."""
        with frozen(self.model):
            n_cls = self.num_classes
            if n_cls is None:
                with torch.no_grad():
                    n_cls = self.model(x[:1]).shape[1]
            check_inputs(x, y, n_cls)
            if target is not None:
                check_inputs(x, target, n_cls)
            res = self.perturb(x.detach(), y, target)
        res.x_adv = project(res.x_adv.detach(), x, self.eps, self.norm)
        return res

    @abc.abstractmethod
    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        """The attack proper, on checked inputs with the model frozen in eval mode."""

    # helpers for subclasses
    def success_of(
        self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred == target if target is not None else pred != y

    def gradient(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: Callable[..., torch.Tensor],
        *args: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(per-example loss, logits, d sum(loss) / dx)`` in one forward-backward pass;
        ``loss_fn(logits, *args)`` (default args: ``y``). ``transform``: a differentiable
        input transformation the gradient is taken through (DI-FGSM's resize-and-pad)."""
        if self.black_box:
            raise RuntimeError(f"black-box attack {self.name} must not use gradients")
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x if transform is None else transform(x))
            loss = loss_fn(logits, *args) if args else loss_fn(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), logits.detach(), grad
