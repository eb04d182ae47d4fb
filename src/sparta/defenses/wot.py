"""WOT: weighted optimisation trajectories against robust overfitting.

Huang et al. 2023, "Enhancing Adversarial Training via Reweighting Optimization Trajectory"
(arXiv 2306.14275, Sec. 3). What we follow:

* every ``interval`` optimizer steps the current weights w_{t_j} are recorded; the
  trajectory segments are d_j = w_{t_j} - w_{t_{j-1}};
* after ``k`` segments the weights become w = w_{t_0} + sum_j c_j d_j with coefficients
  c_j in [0, 1] (c = 1 everywhere is the plain trajectory, our starting point), one per
  segment (WOT-W) or one per segment and layer block (WOT-B, ``blocks > 1``: parameters
  are cut into that many contiguous groups in module order);
* the c are fitted by a few gradient steps on the adversarial (PGD) cross-entropy of a
  held-out split that training never sees: dL/dc_{j,g} = <d_j, grad_w L> restricted to
  group g, then clipped to [0, 1]. The steps use Adam on c (scale-free: the inner products
  vary by orders of magnitude over training);
* then BatchNorm statistics are recomputed on training batches and the optimizer's state
  (momentum) is reset, and the trajectory starts again from the refined weights.

Pruned weights stay pruned: an entry that is exactly zero in the current weights (masked)
is kept at zero in the combination. The recorded weights and the generator travel in the
training checkpoints (:meth:`WOT.state_dict`), so a resumed run continues the same
trajectory and ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.attacks.base import ce_loss
from sparta.data import ImageDataset, as_dataset
from sparta.defenses.craft import check_attack_options, perturb
from sparta.defenses.pgd_at import _pgd_at
from sparta.models.utils import eval_mode, train_mode
from sparta.train.callbacks import Callback
from sparta.train.objectives import register_objective

# ``sparta train --adv wot``: PGD-AT whose weights follow the WOT trajectory (the command adds
# the WOT callback to the objective)
register_objective(
    "wot",
    adversarial=True,
    summary="PGD-AT with weight-trajectory smoothing (sparta train adds the WOT callback)",
)(_pgd_at)

if TYPE_CHECKING:
    from sparta.train.loop import Trainer


def _groups(params: list[nn.Parameter], blocks: int) -> list[int]:
    """Group id per parameter: ``blocks`` contiguous groups of about equal size."""
    sizes = torch.tensor([p.numel() for p in params], dtype=torch.float64)
    edges = sizes.cumsum(0) - sizes / 2  # the middle of each parameter
    return [min(int(e / sizes.sum() * blocks), blocks - 1) for e in edges]


def _count(state: dict[str, Any], prefix: str) -> int:
    return sum(1 for k in state if k.startswith(prefix))


class WOT(Callback):
    """Refine the weights every ``k * interval`` steps from the last ``k`` trajectory segments."""

    name = "wot"

    def __init__(
        self,
        holdout: ImageDataset,
        eps: float,
        norm: str = "linf",
        k: int = 5,
        interval: int = 100,
        blocks: int = 1,
        fit_steps: int = 10,
        fit_lr: float = 0.05,
        batch_size: int = 256,
        attack_steps: int = 10,
        start: float = 0.0,
        bn_batches: int = 20,
        seed: int = 0,
    ) -> None:
        check_attack_options(eps, norm, attack_steps, None)
        for what, value in (("k", k), ("interval", interval), ("blocks", blocks)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"wot {what}={value!r} is not allowed; expected an integer >= 1")
        if not isinstance(fit_steps, int) or fit_steps < 1:
            raise ValueError(f"wot fit_steps={fit_steps!r} is not allowed; expected an int >= 1")
        if not 0 <= start < 1:
            raise ValueError(f"wot start={start!r} is not allowed; expected a fraction in [0, 1)")
        holdout = as_dataset(holdout, split="val")
        if len(holdout) == 0:
            raise ValueError("WOT needs a non-empty held-out split")
        self.holdout = holdout
        self.eps, self.norm, self.attack_steps = float(eps), norm, attack_steps
        self.k, self.interval, self.blocks = k, interval, blocks
        self.fit_steps, self.fit_lr, self.batch_size = fit_steps, fit_lr, batch_size
        self.start, self.bn_batches, self.seed = start, bn_batches, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.points: list[list[torch.Tensor]] = []
        self.refinements = 0
        self.last_coeffs: list[float] = []
        self._resumed = False

    # ------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: Trainer) -> None:
        if not self._resumed:
            self.points = []
        else:  # a resumed fit continues the loaded trajectory, on the model's device
            params = list(trainer.model.parameters())
            self.points = [
                [t.to(p.device, p.dtype) for t, p in zip(point, params, strict=True)]
                for point in self.points
            ]
        self._resumed = False

    def after_step(self, trainer: Trainer) -> None:
        if trainer.step < self.start * trainer.total_steps or trainer.step % self.interval:
            return
        self.points.append([p.detach().clone() for p in trainer.model.parameters()])
        if len(self.points) == self.k + 1:
            self.refine(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics["wot_refinements"] = self.refinements
        if self.last_coeffs:
            metrics["wot_coef_mean"] = sum(self.last_coeffs) / len(self.last_coeffs)

    def state_dict(self) -> dict[str, Any]:
        """Counters, the generator's state and the recorded points (``point.<j>.<i>``: the
        i-th parameter at the j-th point), as tensors the checkpoint stores."""
        state: dict[str, Any] = {
            "refinements": self.refinements,
            "last_coeffs": self.last_coeffs,
            "n_points": len(self.points),
            "generator": self.generator.get_state(),
        }
        for j, point in enumerate(self.points):
            state.update({f"point.{j}.{i}": t for i, t in enumerate(point)})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.refinements = state.get("refinements", 0)
        self.last_coeffs = list(state.get("last_coeffs", []))
        if "generator" in state:
            self.generator.set_state(state["generator"])
        n = state.get("n_points", 0)
        self.points = [
            [state[f"point.{j}.{i}"] for i in range(_count(state, f"point.{j}."))] for j in range(n)
        ]
        self._resumed = True

    # ------------------------------------------------------------ the refinement
    def _batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.holdout)
        idx = torch.randperm(n, generator=self.generator)[: min(self.batch_size, n)]
        return self.holdout.x[idx].to(device), self.holdout.y[idx].to(device)

    def refine(self, trainer: Trainer) -> torch.Tensor:
        """Fit the coefficients, set the model to the combination, recalibrate BN, reset
        the optimizer state; returns the coefficients (k x blocks)."""
        model = trainer.model
        params = list(model.parameters())
        origin = self.points[0]
        deltas = [
            [b - a for a, b in zip(prev, cur, strict=True)]
            for prev, cur in zip(self.points[:-1], self.points[1:], strict=True)
        ]
        keep = [(p != 0) for p in self.points[-1]]  # pruned (exactly zero) entries stay zero
        group = _groups(params, self.blocks)
        c = torch.ones(self.k, self.blocks, dtype=torch.float64)

        def combine(c: torch.Tensor) -> None:
            with torch.no_grad():
                for i, p in enumerate(params):
                    w = origin[i].clone()
                    for j, d in enumerate(deltas):
                        w.add_(d[i], alpha=float(c[j, group[i]]))
                    p.copy_(w * keep[i])

        # Adam on c (2306.14275 fits c by gradient descent on the held-out adversarial loss)
        m = torch.zeros_like(c)
        v = torch.zeros_like(c)
        b1, b2 = 0.9, 0.999
        for t in range(1, self.fit_steps + 1):
            combine(c)
            x, y = self._batch(trainer.device)
            x_adv = perturb(
                model,
                x,
                lambda logits, y=y: ce_loss(logits, y),
                self.eps,
                self.norm,
                self.attack_steps,
                generator=self.generator,
            )
            with torch.enable_grad(), eval_mode(model):
                grads = torch.autograd.grad(
                    F.cross_entropy(model(x_adv), y), [p for p in params if p.requires_grad]
                )
            grads_iter = iter(grads)
            g = torch.zeros_like(c)
            for i, p in enumerate(params):
                if not p.requires_grad:
                    continue
                gi = next(grads_iter)
                for j, d in enumerate(deltas):
                    g[j, group[i]] += float((d[i] * gi).sum())
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + 1e-12)
            c = (c - self.fit_lr * step).clamp(0.0, 1.0)
        combine(c)
        self._recalibrate_bn(trainer)
        trainer.optimizer.state.clear()  # reset momentum (the trajectory restarted)
        self.points = [[p.detach().clone() for p in params]]
        self.refinements += 1
        self.last_coeffs = [float(v) for v in c.flatten()]
        return c

    @torch.no_grad()
    def _recalibrate_bn(self, trainer: Trainer) -> None:
        """Recompute BatchNorm running statistics on training batches (cumulative average)."""
        bns = [m for m in trainer.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns or self.bn_batches < 1:
            return
        momenta = [(m, m.momentum) for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        data = trainer.train_data
        bs = trainer.config.batch_size
        order = torch.randperm(len(data), generator=self.generator)
        with train_mode(trainer.model):
            for b in range(min(self.bn_batches, math.ceil(len(data) / bs))):
                idx = order[b * bs : (b + 1) * bs]
                trainer.model(data.x[idx].to(trainer.device))
        for m, momentum in momenta:
            m.momentum = momentum
