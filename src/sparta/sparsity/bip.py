"""BiP: pruning as bi-level optimisation (Zhang et al., "Advancing Model Pruning via Bi-level
Optimization", NeurIPS 2022, arXiv 2210.04092).

The problem (§3): the *upper* level chooses the mask, the *lower* level retrains the
weights under it,

    min_{m in S}  l(m ⊙ θ*(m))   s.t.   θ*(m) = argmin_θ  l(m ⊙ θ) + γ/2 ||θ||²,

with S the masks of the target sparsity. The upper gradient is the implicit gradient (§4)
``dl/dm = ∇_m l + (dθ*(m)/dm)^T ∇_θ l``; with the Hessian ``∇²_θθ l`` taken as 0 (the
"Hessian-free" assumption, damped by the ridge term) ``dθ*/dm^T = -(1/γ) ∇²_mθ l``, and since
``l`` depends on ``m`` and ``θ`` only through ``z = m ⊙ θ`` (bi-linearity, §4)
``∇²_mθ l = diag(∇_z l)``. Hence (§4, the IG formula with 1/γ)::

    dl/dm = θ ⊙ ∇_z l  -  (1/γ) ∇_z l ⊙ ∇_θ l,      ∇_θ l = m ⊙ ∇_z l

(:func:`mask_hypergradient`; :func:`implicit_gradient` is the second term). Both come from one
backward pass to ``z``, so an upper step costs one forward and one backward, like a lower step.
Two departures, both as in the reference code (OPTML-Group/BiP): γ is decoupled -- the lower
level's ridge term is the training config's ``weight_decay``, ``ig_gamma`` only damps the
implicit gradient -- because one γ cannot be both a 5e-4 weight decay and a useful 1/γ; and the
mask is relaxed to scores. (The reference code multiplies ``∇_θ l`` by the *score* gradient
``θ ⊙ ∇_z l`` with a 1e-4 factor; we keep the paper's ``∇_z l``, which the finite-difference
test confirms is the derivative.)

The algorithm (§4, the BiP algorithm) alternates, per mini-batch: ``lower_steps`` SGD steps on the
weights through the current mask (the lower level: weight decay plays the ridge term), then
one step on continuous scores ``s`` with the implicit gradient, the mask being the top-k of the
scores (the projection onto S by hard thresholding, §4 "upper-level: projected gradient
descent"). The scores reach the mask straight through the top-k (the reference code's
relaxation): a score's gradient is its mask entry's. Unlike IMP nothing is retrained after: the
lower level has trained the weights under the final mask all along.

Which ranking: ``scope="global"`` (one threshold over all layers, the default) or
``"uniform"`` (the same sparsity in every layer, as the reference code does). Global is the
default because sparta's IMP and one-shot baselines rank globally, and at 90%+ sparsity a
uniform ranking prunes LeNet-300-100's 10-way output layer as hard as its 784-wide input layer.
Scores start at ``|w|`` (``score_init="abs"``: the reference code's ``scaled_score_init``
copies the weights and ranks their absolute values), so BiP's first mask is one-shot
magnitude pruning's and the upper level improves on it.

``structure="channel"``: one score per channel of each channel group
(:func:`sparta.sparsity.groups.channel_groups`), initialised by a channel criterion (``l1`` by
default), top-k over channels (:func:`sparta.sparsity.channels.select_channels`); the masks
(producer rows, norms, consumer columns) are those of :func:`sparta.sparsity.channels.masks_for`,
so :func:`sparta.sparsity.export.compact` exports the result physically smaller. The implicit
gradient of a channel score sums its entries' (the same bi-linear argument, ``m`` broadcast).

``sparsity``: fraction of the weights pruned (of the channels with ``structure="channel"``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from sparta.data import ImageDataset, as_dataset
from sparta.options import Options, option, require
from sparta.sparsity.allocation import DISTRIBUTIONS, check_distribution
from sparta.sparsity.channels import SCOPES as CHANNEL_SCOPES
from sparta.sparsity.channels import channel_scores, masks_for, select_channels
from sparta.sparsity.groups import channel_groups
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import attach, masks_of
from sparta.sparsity.scores import SCORE_INITS, ScoredModel, straight_through
from sparta.sparsity.topk import check_sparsity
from sparta.train import Callback, TrainConfig, Trainer, evaluate
from sparta.train.objectives import Objective
from sparta.train.schedule import lr_factor

log = logging.getLogger(__name__)

STRUCTURES = ("unstructured", "channel")


@dataclass
class BiPConfig(Options):
    """BiP's own options (the training ones -- epochs, lr, batch size -- are TrainConfig's)."""

    sparsity: float = option(
        0.9, "fraction of the weights pruned (with --structure channel: of the channels)"
    )
    structure: str = option("unstructured", "unstructured or channel", choices=STRUCTURES)
    scope: str = option(
        "global", "ranking of the scores: global, uniform (alias layer), or erk (unstructured)"
    )
    ig_gamma: float = option(
        1.0, "damping γ of the implicit gradient (scaled by 1/γ; the ridge is --weight-decay)"
    )
    score_lr: float = option(0.1, "upper-level (mask score) learning rate")
    lower_steps: int = option(1, "lower-level SGD steps on the weights per upper-level step")
    score_init: str = option(
        "abs", f"initial scores: {', '.join(SCORE_INITS)}; channel: a channel criterion (l1)"
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        check_sparsity(self.sparsity)
        require(self.structure in STRUCTURES, "structure", self.structure, f"one of {STRUCTURES}")
        if self.structure == "channel":
            self.scope = check_distribution(self.scope, CHANNEL_SCOPES, "scope")
            from sparta.sparsity.criteria import criterion

            criterion("l1" if self.score_init == "abs" else self.score_init)
        else:
            self.scope = check_distribution(self.scope, DISTRIBUTIONS, "scope")
            require(self.score_init in SCORE_INITS, "score_init", self.score_init, str(SCORE_INITS))
        require(self.ig_gamma > 0, "ig_gamma", self.ig_gamma, "a number > 0")
        require(self.score_lr > 0, "score_lr", self.score_lr, "a number > 0")
        require(self.lower_steps >= 1, "lower_steps", self.lower_steps, "an integer >= 1")


# ------------------------------------------------------------------ the implicit gradient
def implicit_gradient(grad_z: torch.Tensor, grad_theta: torch.Tensor, gamma: float) -> torch.Tensor:
    """BiP's implicit-gradient term ``-(1/γ) ∇_z l ⊙ ∇_θ l`` (2210.04092 §4): the
    ``(dθ*/dm)^T ∇_θ l`` of the upper gradient with ``∇²_θθ l`` replaced by the damping γ."""
    return -(grad_z * grad_theta) / gamma


def mask_hypergradient(
    theta: torch.Tensor, mask: torch.Tensor, grad_z: torch.Tensor, gamma: float
) -> torch.Tensor:
    """``dl(m ⊙ θ*(m))/dm`` at ``θ = θ*(m)``: ``θ ⊙ ∇_z l - (1/γ) ∇_z l ⊙ (m ⊙ ∇_z l)``, with
    ``∇_z l`` the loss gradient at the effective weights ``z = m ⊙ θ`` (§4)."""
    return theta * grad_z + implicit_gradient(grad_z, mask * grad_z, gamma)


# ------------------------------------------------------------------ mask parametrisations
class ChannelScoredModel(nn.Module):
    """``model`` whose channels are kept by the top-k of one learned score per channel.

    The channel analogue of :class:`sparta.sparsity.scores.ScoredModel` (same ``model``,
    ``names``, ``masks()``, ``forward`` and ``finalize()``): scores start from a channel
    criterion (:func:`sparta.sparsity.channels.channel_scores`), the top-k is
    :func:`sparta.sparsity.channels.select_channels` and the masks are laid out by
    :func:`sparta.sparsity.channels.masks_for` (so the result compacts). Weights train.
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        init: str = "l1",
        scope: str = "uniform",
        data: Any = None,
        input_shape: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_sparsity(sparsity)
        self.sparsity = float(sparsity)
        self.scope = scope
        self.model = model
        self.groups = channel_groups(model, input_shape)
        if not self.groups:
            raise ValueError(f"{type(model).__name__} has no prunable channel group")
        start = channel_scores(model, self.groups, init, data, seed=seed)
        device = next(model.parameters()).device
        self.scores = nn.ParameterList([nn.Parameter(s.detach().float().to(device)) for s in start])
        ones = [torch.ones(g.size, dtype=torch.bool) for g in self.groups]
        self.names = list(masks_for(model, self.groups, ones))

    def keeps(self) -> list[torch.Tensor]:
        """One boolean keep-vector per channel group (True = kept)."""
        scores = [s.detach().float().cpu() for s in self.scores]
        return select_channels(scores, self.sparsity, self.scope)

    @torch.no_grad()
    def masks(self) -> dict[str, torch.Tensor]:
        """Parameter name -> boolean mask removing the unselected channels."""
        return masks_for(self.model, self.groups, self.keeps())

    def soft_masks(self) -> dict[str, torch.Tensor]:
        """The masks as floats, differentiable in the scores (straight through the top-k)."""
        keeps = [
            straight_through(s, k.to(s.device))
            for s, k in zip(self.scores, self.keeps(), strict=True)
        ]
        return masks_for(self.model, self.groups, keeps)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return _masked_call(self.model, self.masks(), args, kwargs)

    @torch.no_grad()
    def finalize(self) -> nn.Module:
        """The wrapped model with the current channel masks attached as buffers."""
        attach(self.model, self.masks())
        return self.model


Scored = ScoredModel | ChannelScoredModel


def soft_masks(scored: Scored) -> dict[str, torch.Tensor]:
    """Float masks equal to ``scored.masks()`` whose gradient reaches the scores straight
    through the top-k."""
    if isinstance(scored, ChannelScoredModel):
        return scored.soft_masks()
    masks = scored.masks()
    return {n: straight_through(scored.score_of(n), masks[n]) for n in scored.names}


def _masked_call(
    model: nn.Module, masks: Mapping[str, torch.Tensor], args: Any, kwargs: Any
) -> Any:
    named = dict(model.named_parameters())
    weights = {n: named[n] * m.to(named[n].dtype) for n, m in masks.items()}
    return functional_call(model, weights, args, kwargs, strict=False)


class _With(nn.Module):
    """``model`` run with some parameters replaced by ``weights`` (what an objective sees)."""

    def __init__(self, model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.weights = dict(weights)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.model, self.weights, args, kwargs, strict=False)


def upper_gradients(
    scored: Scored,
    objective: Objective,
    x: torch.Tensor,
    y: torch.Tensor,
    gamma: float,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set ``.grad`` of ``scored``'s scores to BiP's upper gradient on the batch ``(x, y)``
    (:func:`mask_hypergradient`, routed to the scores straight through the top-k); returns the
    objective's ``(loss, logits)``. The weights get no gradient. ``masks``: the
    :func:`soft_masks` to use (default: computed here)."""
    soft = soft_masks(scored) if masks is None else masks
    named = dict(scored.model.named_parameters())
    theta = {n: named[n].detach() for n in soft}
    z = {n: (theta[n] * soft[n].detach()).requires_grad_(True) for n in soft}
    loss, logits = objective(_With(scored.model, z), x, y)
    grads = torch.autograd.grad(loss, list(z.values()))
    hyper = [
        mask_hypergradient(theta[n], soft[n].detach(), g, gamma)
        for n, g in zip(z, grads, strict=True)
    ]
    for s in scored.scores.parameters():
        s.grad = None
    torch.autograd.backward(list(soft.values()), hyper)
    return loss.detach(), logits.detach()


# ------------------------------------------------------------------ the loop
def _optimizer(scored: Scored, cfg: TrainConfig, score_lr: float) -> torch.optim.Optimizer:
    """One optimizer, two groups: the weights (lower level: ``cfg.lr``, weight decay as the
    ridge term) and the scores (upper level: ``score_lr``, no decay). A step moves only the
    group whose gradients are set, so the checkpoint holds both levels' state."""
    score_ids = {id(p) for p in scored.scores.parameters()}
    weights = [p for p in scored.parameters() if p.requires_grad and id(p) not in score_ids]
    groups = [
        {"params": weights, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": list(scored.scores.parameters()), "lr": score_lr, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups)
    return torch.optim.AdamW(groups)


class BiPTrainer(Trainer):
    """The engine's Trainer (progress bar, validation, epoch checkpoints, resume) whose step
    is one BiP iteration: ``lower_steps`` weight steps through the current mask, then one
    score step with the implicit gradient (2210.04092 §4). Both levels see the
    step's mini-batch (the reference code draws two; one halves the data passes). The model
    is the :class:`ScoredModel` / :class:`ChannelScoredModel`; its state (weights and scores)
    and the optimizer's (both levels) travel in the checkpoints."""

    def __init__(
        self, scored: Scored, train_data: ImageDataset, config: TrainConfig, bip: BiPConfig, **kw
    ) -> None:
        if config.amp or config.compile:
            raise ValueError("BiP runs without --amp and --compile; drop them")
        self.bip = bip
        super().__init__(
            scored, train_data, config, optimizer=_optimizer(scored, config, bip.score_lr), **kw
        )
        if self.dist.enabled:
            raise ValueError("BiP runs in one process; start it without torchrun")

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        factor = lr_factor(self.step, self.total_steps, self.config.schedule, *self._schedule_args)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        scored = self.model
        soft = soft_masks(scored)  # one top-k per iteration: the mask of this step
        hard = _With(scored.model, {})
        hard_masks = {n: m.detach() for n, m in soft.items()}
        for _ in range(self.bip.lower_steps):  # lower level: SGD on θ under the mask
            named = dict(scored.model.named_parameters())
            hard.weights = {n: named[n] * m for n, m in hard_masks.items()}
            loss, logits = self.objective(hard, x, y)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * weight if weight != 1.0 else loss).backward()
            for cb in self.callbacks:
                cb.after_backward(self)
            if self.config.grad_clip > 0:
                nn.utils.clip_grad_norm_(scored.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
        # upper level: one projected (top-k) step on the scores with the implicit gradient
        self.optimizer.zero_grad(set_to_none=True)
        upper_gradients(scored, self.objective, x, y, self.bip.ig_gamma, soft)
        self.optimizer.step()
        self.step += 1
        for cb in self.callbacks:
            cb.after_step(self)
        return loss, logits


class MaskDrift(Callback):
    """Logs, per epoch, the sparsity of the mask and the fraction of its kept entries that
    changed since the previous epoch (``mask_change``): how much the upper level moves."""

    name = "bip"

    def __init__(self) -> None:
        self._last: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        masks = trainer.model.masks()
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        metrics["sparsity"] = 1.0 - kept / max(total, 1)
        if self._last is not None:
            new = sum(int((m & ~self._last[n].to(m.device)).sum()) for n, m in masks.items())
            metrics["mask_change"] = new / max(kept, 1)
        self._last = {n: m.cpu() for n, m in masks.items()}

    def state_dict(self) -> dict[str, Any]:
        if self._last is None:
            return {}
        return {f"m.{n}": m.to(torch.uint8) for n, m in self._last.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        last = {k[2:]: v.bool() for k, v in state.items() if k.startswith("m.")}
        self._last = last or None


class BiPHandle(SparsityHandle):
    """The handle of a BiP-pruned model, with the loop's per-epoch metrics (``history``)."""

    def __init__(self, model: nn.Module, history: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(model)
        self.history = list(history)


def scored_model(model: nn.Module, options: BiPConfig, data: Any = None, seed: int = 0) -> Scored:
    """``model`` wrapped for BiP: scores per weight (:class:`ScoredModel`, weights trainable)
    or per channel (:class:`ChannelScoredModel`)."""
    if masks_of(model):
        raise ValueError("BiP prunes a model without masks; this model already carries some")
    if options.structure == "channel":
        init = "l1" if options.score_init == "abs" else options.score_init
        scored: Scored = ChannelScoredModel(
            model, options.sparsity, init=init, scope=options.scope, data=data, seed=seed
        )
    else:
        scored = ScoredModel(
            model,
            options.sparsity,
            init=options.score_init,
            distribution=check_distribution(options.scope),
            train_weights=True,
            seed=seed,
        )
    from sparta.models import spec_of
    from sparta.models.registry import SPEC_ATTR

    try:  # the wrapper's checkpoints describe the wrapped model
        setattr(scored, SPEC_ATTR, spec_of(model))
    except ValueError:
        pass
    return scored


def bip(
    model: nn.Module,
    sparsity: float,
    data: Any,
    *,
    config: TrainConfig | Mapping[str, Any] | None = None,
    options: BiPConfig | None = None,
    val_data: Any = None,
    objective: Objective | None = None,
    callbacks: Sequence[Callback] = (),
    run: Any = None,
    resume: bool = False,
    quiet: bool = False,
    **overrides: Any,
) -> BiPHandle:
    """Prune ``model`` in place with BiP to ``sparsity`` on ``data`` and return its handle.

    ``config`` (a :class:`~sparta.train.TrainConfig` or dict): epochs, lr and schedule of the
    loop (the lower level's weight optimizer); ``options`` (:class:`BiPConfig`) or keyword
    ``overrides`` of its fields (``structure``, ``scope``, ``ig_gamma``, ``score_lr``,
    ``lower_steps``, ``score_init``). ``objective``: any training objective (default
    cross-entropy). ``run`` (a :class:`sparta.runs.Run`): epoch checkpoints go there and
    ``resume`` continues from the newest. The returned model carries the final masks as
    buffers (pruned weights exactly zero) and the weights the lower level trained.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config or {}))
    base = options.to_dict() if options is not None else {}
    opts = BiPConfig.from_dict({**base, **overrides, "sparsity": sparsity})
    data = as_dataset(data)
    torch.manual_seed(cfg.seed)
    scored = scored_model(model.to(cfg.device), opts, data, seed=cfg.seed)
    for name, mask in scored.masks().items():
        if not bool(mask.any()):
            log.warning(
                "BiP's first mask prunes %s entirely (layer collapse: an untrained model's |w| "
                "differ in scale across layers); try scope 'uniform' or score_init 'magnitude'",
                name,
            )
    trainer = BiPTrainer(
        scored,
        data,
        cfg,
        opts,
        val_data=val_data,
        objective=objective,
        callbacks=[MaskDrift(), *callbacks],
        run=run,
        quiet=quiet,
    )
    trainer.fit(resume=resume and run is not None)
    return BiPHandle(scored.finalize(), history=trainer.history)


def run_bip(
    cfg: TrainConfig,
    options: BiPConfig,
    *,
    model: nn.Module | None = None,
    root: str | os.PathLike = "runs",
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    extra_config: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """BiP with a run folder (what ``sparta bip`` runs): loads ``cfg``'s splits, prunes
    ``model`` (default: a fresh ``cfg.model``), evaluates on the test set once and writes
    ``model.safetensors`` and ``summary.json``. Returns ``(run, summary)``."""
    import time

    from sparta import models
    from sparta.io import save
    from sparta.runs import Run
    from sparta.train import load_splits

    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg)
    if model is None:
        model = models.create(cfg.model, dataset=splits.train.info, width=cfg.width)
    config = {**cfg.to_dict(), **options.to_dict(), **(extra_config or {})}
    run = Run.create(config, "bip", root=root, name=name, resume=resume, overwrite=overwrite)
    start = time.perf_counter()
    handle = bip(
        model,
        options.sparsity,
        splits.train,
        config=cfg,
        options=options,
        val_data=splits.val,
        run=run,
        resume=resume,
        quiet=quiet,
    )
    elapsed = time.perf_counter() - start
    model = handle.model
    test = evaluate(model, splits.test, cfg.eval_batch_size, cfg.device)
    history = handle.history
    channels = options.structure == "channel"
    summary: dict[str, Any] = {
        "test_acc": test["acc"],
        "test_loss": test["loss"],
        "epochs": cfg.epochs,
        "sparsity": handle.channel_sparsity() if channels else handle.sparsity(),
        "weight_sparsity": handle.weight_sparsity(),
        "train_time_s": elapsed,
    }
    if history:
        last = history[-1]
        summary.update({k: last[k] for k in ("val_acc", "mask_change") if k in last})
    save(model, run.file("model.safetensors"), test_acc=test["acc"])
    run.write_summary(summary)
    return run, summary
