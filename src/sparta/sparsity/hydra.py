"""HYDRA: robust pruning by learned importance scores (Sehwag et al. 2020, arXiv 2002.10509).

HYDRA has three phases (§3): *pre-train* a dense network with a robust objective (the caller:
``sparta train --adv pgd-at``, ``--cert ibp`` or ``--noise-sigma``), *prune* by learning one
importance score per weight under the same robust objective with every weight frozen (§3.2),
and *fine-tune* the kept weights under that objective with the mask fixed (§3.3).

Prune (§3.2): the forward pass uses ``w * 1[|s| in the top k of its layer]``; the indicator
passes the gradient straight through (``GetSubnet`` of the reference code, after edge-popup),
so ``dL/ds = dL/dw_eff * w``. Every layer keeps the same fraction ``k = 1 - sparsity`` (the
reference code sets one ``k`` on every layer, the last one included). Scores start from the
weights scaled to the range of Kaiming-uniform, ``s = sqrt(6 / fan_in) * w / max|w|`` (§3.2,
eq. 5, "scaled initialization"), so the first mask is layer-wise magnitude pruning and SGD
then moves away from it where the robust loss says so. HYDRA ranks ``|s|``; here the scores
start at ``|s|`` and rank by value (:class:`~sparta.sparsity.scores.ScoredModel`), which is
the same ranking and the same update of the ranked quantity while a score stays positive (a
score pushed below zero is at the bottom of either ranking).

The objectives are found by name (:func:`sparta.train.create_objective`): ``pgd-at`` and
``trades`` (adversarial training), ``ibp`` (certified training, as HYDRA does with
CROWN-IBP/MixTrain, §4.2), ``gaussian`` (noise training for randomized smoothing, §4.2) or
``standard``. During the score phase the objective sees the plain wrapped model with its
weights replaced by the effective ones (``torch.func``'s reparametrisation), so attacks and
bound propagation (which read a layer's ``weight``) work unchanged and their loss reaches the
scores.

:func:`hydra` runs both phases with run folders::

    <run>/score/     checkpoints/ of the score phase, model.safetensors (the pruned, not yet
                     fine-tuned model, masks as buffers), summary.json (marks it finished)
    <run>/           checkpoints/, model.safetensors, summary.json of the fine-tune phase

A killed run resumes (``resume=True``) from the newest epoch checkpoint of the phase it was in;
a finished score phase is not repeated.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils.stateless import _reparametrize_module

from sparta import models
from sparta.io import read_checkpoint, restore_model, save
from sparta.models.registry import SPEC_ATTR
from sparta.options import Options, option, require
from sparta.runs import DEFAULT_ROOT, Run
from sparta.sparsity.masks import prunable_parameters
from sparta.sparsity.scores import ScoredModel
from sparta.sparsity.topk import check_sparsity
from sparta.train import Callback, Splits, TrainConfig, Trainer, evaluate, load_splits, train
from sparta.train.objectives import Objective, create_objective, objective_names

#: the robust objectives HYDRA prunes and fine-tunes with (§4: adversarial training,
#: verifiable training, randomized smoothing), plus plain cross-entropy
HYDRA_OBJECTIVES = ("pgd-at", "trades", "ibp", "gaussian", "standard")
#: the reference code's pruning phase: SGD at lr 0.1, cosine, 20 epochs (configs.yml);
#: fine-tuning starts at lr 0.01 (README: "--lr 0.01")
SCORE_LR = 0.1
FINETUNE_LR = 0.01


def hydra_scores(model: nn.Module, params: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """HYDRA's scaled initial scores (§3.2, eq. 5), as magnitudes:
    ``|s| = sqrt(6 / fan_in) * |w| / max|w|`` per layer."""
    named = dict(model.named_parameters())
    out = {}
    for name in params if params is not None else prunable_parameters(model):
        w = named[name].detach().float()
        fan_in = int(w[0].numel()) if w.dim() > 1 else int(w.numel())
        top = float(w.abs().max()) or 1.0
        out[name] = math.sqrt(6.0 / fan_in) * w.abs() / top
    return out


@dataclass
class HydraOptions(Options):
    """HYDRA's options (recorded in config.yaml); the fine-tune phase is the TrainConfig's."""

    sparsity: float = option(0.9, "fraction of the prunable weights removed, in [0, 1)")
    objective: str = option(
        "pgd-at", f"robust objective of both phases: {', '.join(HYDRA_OBJECTIVES)}"
    )
    eps: float = option(0.1, "Linf budget in pixels of pgd-at, trades and ibp")
    attack_steps: int = option(10, "PGD steps while training (pgd-at, trades)")
    trades_beta: float = option(6.0, "TRADES weight of the KL term")
    kappa: float = option(0.5, "ibp: weight of the clean loss (Gowal et al.: 0.5)")
    sigma: float = option(0.25, "gaussian: noise std in pixels")
    score_epochs: int = option(5, "epochs of score learning (weights frozen; HYDRA: 20)")
    score_lr: float = option(SCORE_LR, "peak learning rate of the scores (HYDRA: 0.1, cosine)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        check_sparsity(self.sparsity)
        require(
            self.objective in HYDRA_OBJECTIVES,
            "objective",
            self.objective,
            f"one of {HYDRA_OBJECTIVES}",
        )
        require(0 <= self.eps <= 1, "eps", self.eps, "a number in [0, 1]")
        require(self.attack_steps >= 1, "attack_steps", self.attack_steps, "an integer >= 1")
        require(self.trades_beta >= 0, "trades_beta", self.trades_beta, "a number >= 0")
        require(0 <= self.kappa <= 1, "kappa", self.kappa, "a number in [0, 1]")
        require(self.sigma > 0, "sigma", self.sigma, "a number > 0")
        require(self.score_epochs >= 1, "score_epochs", self.score_epochs, "an integer >= 1")
        require(self.score_lr > 0, "score_lr", self.score_lr, "a number > 0")

    def objective_options(self, seed: int) -> dict[str, Any]:
        """Keyword options of :func:`sparta.train.create_objective` for ``objective``."""
        if self.objective in ("pgd-at", "trades"):
            opts: dict[str, Any] = {"eps": self.eps, "steps": self.attack_steps, "seed": seed}
            if self.objective == "trades":
                opts["beta"] = self.trades_beta
            return opts
        if self.objective == "ibp":
            return {"eps": self.eps, "kappa": self.kappa}
        if self.objective == "gaussian":
            return {"sigma": self.sigma, "seed": seed}
        return {}

    def create_objective(self, seed: int) -> Objective:
        """The objective, built by name (the pillars register theirs)."""
        if self.objective not in objective_names():
            raise ValueError(
                f"objective={self.objective!r} is not registered; expected one of "
                f"{tuple(objective_names())}"
            )
        return create_objective(self.objective, **self.objective_options(seed))


class ThroughScores:
    """``objective`` applied to the model a :class:`ScoredModel` wraps, with its prunable
    weights replaced by the effective ``w * top_k(s)`` (straight through to the scores)
    for the whole call: attacks and bounds that read ``layer.weight`` see the pruned network.
    The mask is chosen once per batch. Forwards the objective's state (random generators)
    to checkpoints."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.robust_logits = getattr(objective, "robust_logits", False)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with pruned_view(_scored(model)) as inner:
            return self.objective(inner, x, y)

    def state_dict(self) -> dict[str, Any]:
        get = getattr(self.objective, "state_dict", None)
        return get() if callable(get) else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load = getattr(self.objective, "load_state_dict", None)
        if callable(load):
            load(state)


def _scored(model: nn.Module) -> ScoredModel:
    from sparta.models.utils import bare

    inner = bare(model)
    if not isinstance(inner, ScoredModel):
        raise TypeError(f"ThroughScores needs a ScoredModel, got {type(inner).__name__}")
    return inner


@contextlib.contextmanager
def pruned_view(scored: ScoredModel) -> Iterator[nn.Module]:
    """The wrapped model with its weights replaced by the current effective weights
    (differentiable in the scores) for the block, restored on exit: code that reads
    ``layer.weight`` (bounds, attacks) sees the pruned network. (``_reparametrize_module`` is
    what ``torch.func.functional_call`` runs inside; torch has no public context manager.)"""
    with _reparametrize_module(scored.model, scored.effective_weights()):
        yield scored.model


@dataclass
class HydraResult:
    model: nn.Module  # fine-tuned, masks as buffers
    run: Run | None
    summary: dict[str, Any]


def score_phase(
    model: nn.Module,
    opts: HydraOptions,
    config: TrainConfig,
    splits: Splits,
    run: Run | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    quiet: bool = True,
) -> tuple[ScoredModel, list[dict[str, Any]]]:
    """Learn HYDRA's scores on ``model`` (weights frozen, bit-identical) for
    ``opts.score_epochs`` at ``opts.score_lr`` with the training config's optimizer and
    schedule; checkpoints go to ``run`` (resumable). Returns the trained ScoredModel and
    the epoch metrics."""
    scored = ScoredModel(
        model, opts.sparsity, init=hydra_scores(model), distribution="uniform", seed=config.seed
    )
    # checkpoints describe the wrapped model's architecture (io.model_meta)
    setattr(scored, SPEC_ATTR, models.spec_of(model))
    # weight decay on the scores would shrink them towards the pruning threshold at zero;
    # the reference code applies its wd to every trainable tensor, we keep the config's
    cfg = replace(config, epochs=opts.score_epochs, lr=opts.score_lr, best_metric="")
    trainer = Trainer(
        scored,
        splits.train,
        cfg,
        val_data=splits.val,
        objective=ThroughScores(opts.create_objective(config.seed)),
        callbacks=list(callbacks),
        run=run,
        quiet=quiet,
    )
    history = trainer.fit(resume=resume and run is not None)
    return scored, history


def hydra(
    model: nn.Module,
    config: TrainConfig | dict[str, Any],
    options: HydraOptions | None = None,
    *,
    splits: Splits | None = None,
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    score_callbacks: Sequence[Callback] = (),
    callbacks: Sequence[Callback] = (),
    quiet: bool = True,
    command: str = "hydra",
    extra_config: dict[str, Any] | None = None,
    **option_values: Any,
) -> HydraResult:
    """Prune the pre-trained ``model`` with HYDRA and fine-tune it; returns the fine-tuned
    model (masks as buffers), its run and summary.

    ``options`` (or keyword ``option_values``, e.g. ``sparsity=0.99, objective="trades"``) set
    the score phase; ``config`` is the fine-tune phase (its ``epochs`` and ``lr``; HYDRA
    fine-tunes at 0.01) and the data; ``extra_config`` is recorded beside them (e.g. the
    source checkpoint). ``score_callbacks`` / ``callbacks`` are added to the
    score / fine-tune Trainer (e.g. robust validation). Resumable (see the module docstring).
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    opts = options if options is not None else HydraOptions(**option_values)
    if options is not None and option_values:
        raise ValueError(f"pass options or keyword options, not both: {sorted(option_values)}")
    splits = load_splits(cfg) if splits is None else splits
    extra = {**opts.to_dict(), **(extra_config or {})}
    full = {**cfg.to_dict(), **extra}
    run = Run.open(full, command, root, name, resume, overwrite)
    score_dir = run.path / "score"
    done = score_dir / "summary.json"
    if done.is_file():  # a finished score phase: read its pruned model back
        tensors, meta = read_checkpoint(score_dir / "model.safetensors")
        pruned = models.from_spec(meta["model"])
        restore_model(pruned, tensors, meta)
        score_summary = json.loads(done.read_text())
    else:
        score_run = Run.create(
            {**full, "phase": "score"}, "hydra-score", root=run.path, name="score", resume=True
        )
        start = time.perf_counter()
        scored, history = score_phase(
            model,
            opts,
            cfg,
            splits,
            score_run,
            callbacks=score_callbacks,
            resume=True,
            quiet=quiet,
        )
        pruned = scored.finalize()
        test = evaluate(pruned, splits.test, cfg.eval_batch_size)
        score_summary = {
            "pruned_test_acc": test["acc"],
            "score_epochs": opts.score_epochs,
            "score_time_s": time.perf_counter() - start,
            **{
                f"score_{k}": v
                for k, v in (history[-1] if history else {}).items()
                if k in ("val_acc", "train_loss", "train_acc", "train_robust_acc")
            },
        }
        save(pruned, score_run.file("model.safetensors"), test_acc=test["acc"])
        score_run.write_summary(score_summary)  # written last: marks the phase finished
    from sparta.sparsity.handle import SparsityHandle

    handle = SparsityHandle(pruned)
    result = train(
        cfg,
        root=run.path.parent,
        name=run.path.name,
        resume=True,  # the folder is ours (opened above); continues a killed fine-tune
        model=pruned,
        objective=opts.create_objective(cfg.seed),
        callbacks=[handle.callback(), *callbacks],
        extra_config=extra,
        quiet=quiet,
        splits=splits,
        command=command,
    )
    summary = {
        **result.summary,
        **score_summary,
        "sparsity": handle.sparsity(),
        "objective": opts.objective,
    }
    run.write_summary(summary)
    return HydraResult(result.model, run, summary)
