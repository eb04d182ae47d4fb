"""``sparta train`` options for certified training (``--cert ibp --cert-eps 0.1``) and
Gaussian-noise training for randomized smoothing (``--noise-sigma 0.25``).

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``. With ``--cert ibp`` (Gowal et al. 2018, arXiv 1810.12715):

* the objective becomes ``kappa * CE(clean) + (1 - kappa) * CE(IBP worst case)``;
* eps ramps linearly from 0 to ``--cert-eps`` and kappa from 1 to ``--cert-kappa`` over
  ``--cert-ramp`` after ``--cert-warmup`` (lengths like ``2ep`` or ``500it``; empty: Gowal et
  al.'s shares, 1/30 and 1/6 of training);
* ``val_verified_acc`` (IBP at ``--cert-eps`` on at most ``--cert-val-n`` validation
  examples) is logged every epoch, and ``best_metric``, left at ``val_acc``, becomes it.

With ``--noise-sigma`` the objective is cross-entropy under ``N(0, sigma^2)`` pixel noise
(Cohen et al. 2019, arXiv 1902.02918, Sec. 4), the base classifier of ``sparta certify
--method smooth``. Neither combines with ``--adv`` (each sets the objective); both combine
with the sparse-training options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sparta.checks import check_eps
from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option, require, require_defaults
from sparta.registry import get_registry

CERT_METHODS = ("", *get_registry("objectives").aliases(certified=True))


@dataclass
class CertTrainOptions(Options):
    """Certified / noise training options of ``sparta train`` (recorded in config.yaml)."""

    cert: str = option("", "certified training: ibp ('' for none)", choices=CERT_METHODS)
    cert_eps: float = option(0.1, "Linf eps (pixels) that --cert trains for")
    cert_kappa: float = option(0.5, "final weight of the clean loss (Gowal et al.: 0.5)")
    cert_warmup: str = option("", "steps at eps 0 first, e.g. '1ep' or '500it' ('': 1/30)")
    cert_ramp: str = option("", "length of the eps/kappa ramp, e.g. '5ep' ('': 1/6 of training)")
    cert_val_n: int = option(1000, "verified validation on at most this many examples (0: all)")
    noise_sigma: float = option(0.0, "train under Gaussian pixel noise of this std (0: off)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        from sparta.certify.training import parse_steps

        require(self.cert in CERT_METHODS, "cert", self.cert, f"one of {CERT_METHODS}")
        check_eps(self.cert_eps, "cert_eps")
        require(0 <= self.cert_kappa <= 1, "cert_kappa", self.cert_kappa, "a number in [0, 1]")
        for name in ("cert_warmup", "cert_ramp"):
            if getattr(self, name):
                parse_steps(getattr(self, name), 1, name)
        require(self.cert_val_n >= 0, "cert_val_n", self.cert_val_n, "an integer >= 0")
        require(self.noise_sigma >= 0, "noise_sigma", self.noise_sigma, "a number >= 0 (0: off)")
        if self.cert and self.noise_sigma:
            raise ValueError(
                f"noise_sigma={self.noise_sigma!r} is not allowed with --cert {self.cert}; "
                "expected one of them (each sets the training objective)"
            )
        if not self.cert:
            others = [f.name for f in fields(self) if f.name.startswith("cert_")]
            require_defaults(self, others, "cert", CERT_METHODS[1:])


def active(opts: CertTrainOptions) -> bool:
    """Whether the options ask for certified or noise training."""
    return bool(opts.cert) or opts.noise_sigma > 0


def setup(opts: CertTrainOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Set the objective (and, for ``--cert``, the ramp and verified validation)."""
    if plan.objective is not None:
        raise ValueError(
            f"--cert {opts.cert or 'off'} / --noise-sigma {opts.noise_sigma} is not allowed "
            "with another objective (e.g. --adv); expected only one of them"
        )
    if opts.noise_sigma > 0:
        from sparta.certify.smoothing import GaussianAugmentation

        plan.objective = GaussianAugmentation(opts.noise_sigma, cfg.seed, cfg.label_smoothing)
        return
    from sparta.certify.training import CertifiedValidation, IBPSchedule, IBPTraining

    objective = IBPTraining(opts.cert_eps, opts.cert_kappa)
    plan.objective = objective
    plan.callbacks.append(
        IBPSchedule(
            objective,
            opts.cert_eps,
            opts.cert_kappa,
            warmup=opts.cert_warmup or None,
            ramp=opts.cert_ramp or None,
        )
    )
    if splits.val is None or not len(splits.val):
        return
    plan.callbacks.append(
        CertifiedValidation(splits.val, opts.cert_eps, "ibp", n=opts.cert_val_n or None)
    )
    if cfg.best_metric == "val_acc":
        cfg.best_metric = "val_verified_acc"


EXTENSIONS.append(TrainExtension(options=CertTrainOptions, active=active, setup=setup))
