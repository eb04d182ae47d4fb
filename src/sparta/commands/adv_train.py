"""``sparta train`` options for adversarial training: ``--adv pgd|trades|fast|wot --eps 0.1``.

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``. With ``--adv`` set:

* the objective becomes PGD-AT (``pgd`` and ``wot``), TRADES or Fast-AT;
* a :class:`~sparta.defenses.RobustValidation` callback adds ``val_robust_acc`` (PGD with
  ``--val-attack-steps`` on at most ``--val-n`` validation examples) to every epoch;
* ``best_metric``, when left at its default ``val_acc``, becomes ``val_robust_acc``, so
  ``best.safetensors`` is the most robust epoch (robust overfitting: the last epoch is
  often not the best one);
* ``--adv wot`` adds the WOT callback; it fits its coefficients on one half of the
  validation split and robust validation uses the other half, so model selection never
  sees the data WOT was fitted on.

Combines with the sparse-training options (``--dst``, ``--gmp``, ``--prune-method``): the
mask callback keeps pruned weights at zero under any objective.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sparta.checks import NORMS, check_eps
from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option, require, require_defaults
from sparta.registry import canonical, get_registry

ADV_METHODS = ("", *get_registry("objectives").aliases(adversarial=True))  # "pgd" = "pgd-at"


@dataclass
class AdvTrainOptions(Options):
    """Adversarial-training options of ``sparta train`` (recorded in config.yaml)."""

    adv: str = option(
        "", f"adversarial training: {', '.join(ADV_METHODS[1:])} ('' for none)", choices=ADV_METHODS
    )
    eps: float = option(0.1, "perturbation budget in pixel units [0, 1] (with --adv)")
    adv_norm: str = option("linf", "threat model of --adv: linf or l2", choices=NORMS)
    adv_steps: int = option(10, "attack steps while training (pgd, trades, wot; fast uses 1)")
    adv_alpha: float = option(
        0.0, "attack step size (0: 2.5*eps/steps for pgd/wot, eps/4 trades, 1.25*eps fast)"
    )
    trades_beta: float = option(6.0, "TRADES weight of the KL term (1/lambda)")
    wot_k: int = option(5, "WOT: trajectory segments per refinement")
    wot_interval: int = option(100, "WOT: optimizer steps per trajectory segment")
    wot_blocks: int = option(1, "WOT: coefficient groups per segment (1: WOT-W, >1: WOT-B)")
    wot_fit_steps: int = option(10, "WOT: gradient steps that fit the coefficients")
    val_attack_steps: int = option(10, "PGD steps of the per-epoch robust validation")
    val_n: int = option(1000, "robust validation on at most this many examples (0: all)")

    def __post_init__(self) -> None:
        if canonical(self.adv) in ADV_METHODS[1:]:  # recorded by its name: --adv pgd is pgd-at
            self.adv = get_registry("objectives").resolve(self.adv)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.adv in ADV_METHODS, "adv", self.adv, f"one of {ADV_METHODS}")
        check_eps(self.eps)
        require(self.adv_norm in NORMS, "adv_norm", self.adv_norm, f"one of {NORMS}")
        require(self.adv_steps >= 1, "adv_steps", self.adv_steps, "an integer >= 1")
        require(self.adv_alpha >= 0, "adv_alpha", self.adv_alpha, "a number >= 0 (0: default)")
        require(self.trades_beta >= 0, "trades_beta", self.trades_beta, "a number >= 0")
        for name in ("wot_k", "wot_interval", "wot_blocks", "wot_fit_steps", "val_attack_steps"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        require(self.val_n >= 0, "val_n", self.val_n, "an integer >= 0")
        if not self.adv:
            others = [f.name for f in fields(self) if f.name != "adv"]
            require_defaults(self, others, "adv", ADV_METHODS[1:])


def active(opts: AdvTrainOptions) -> bool:
    """Whether the options ask for adversarial training."""
    return bool(opts.adv)


def objective_of(opts: AdvTrainOptions, seed: int = 0, label_smoothing: float = 0.0) -> Any:
    """The training objective ``--adv`` asks for."""
    import sparta.defenses  # noqa: F401  (registers the objectives)
    from sparta.train import create_objective

    alpha = opts.adv_alpha or None
    common = {"eps": opts.eps, "norm": opts.adv_norm, "alpha": alpha, "seed": seed}
    if opts.adv == "trades":
        return create_objective("trades", steps=opts.adv_steps, beta=opts.trades_beta, **common)
    if opts.adv == "fast":
        return create_objective("fast", label_smoothing=label_smoothing, **common)
    return create_objective(  # pgd-at, or wot (PGD-AT; setup adds the WOT callback)
        opts.adv, steps=opts.adv_steps, label_smoothing=label_smoothing, **common
    )


def setup(opts: AdvTrainOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Set the objective, add robust validation (and WOT), select by ``val_robust_acc``."""
    from sparta import data as sdata
    from sparta.defenses import WOT, RobustValidation

    plan.objective = objective_of(opts, cfg.seed, cfg.label_smoothing)
    val = splits.val
    if opts.adv == "wot":
        if val is None or len(val) < 2:
            raise ValueError(
                f"val_fraction={cfg.val_fraction!r} is not allowed with --adv wot; expected a "
                "number in (0, 1): WOT fits its coefficients on a held-out split"
            )
        holdout, val = sdata.train_val_split(val, val_fraction=0.5, seed=cfg.seed)
        plan.callbacks.append(
            WOT(
                holdout,
                opts.eps,
                opts.adv_norm,
                k=opts.wot_k,
                interval=opts.wot_interval,
                blocks=opts.wot_blocks,
                fit_steps=opts.wot_fit_steps,
                attack_steps=opts.adv_steps,
                seed=cfg.seed,
            )
        )
    if val is None:
        return
    plan.callbacks.append(
        RobustValidation(
            val,
            opts.eps,
            opts.adv_norm,
            steps=opts.val_attack_steps,
            n=opts.val_n or None,
            batch_size=cfg.eval_batch_size,
            seed=cfg.seed,
        )
    )
    if cfg.best_metric == "val_acc":
        cfg.best_metric = "val_robust_acc"


EXTENSIONS.append(TrainExtension(options=AdvTrainOptions, active=active, setup=setup))
