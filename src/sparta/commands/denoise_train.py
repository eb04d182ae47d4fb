"""``sparta train`` options for denoised smoothing: ``--denoiser dncnn --target CKPT
[--black-box --ae-latent 64]``.

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``. With ``--denoiser`` the model trained is not ``--model`` but a
:class:`~sparta.models.DenoisedClassifier`: a DnCNN denoiser (and, with ``--ae-latent``, a
conv autoencoder) in front of the fixed classifier loaded from ``--target``:

* first the white-box stage that needs no classifier (``--denoise-pretrain-epochs``): the
  autoencoder learns to reconstruct clean images, the denoiser the MSE objective at
  ``--denoise-sigma`` (Salman et al. 2020, arXiv 2003.01908, Sec. 3.2; ZO-AE-DS, Zhang et
  al. 2022, arXiv 2203.14195, Sec. 4);
* then ``--epochs`` of the stability loss ``CE(f(D(x + delta)), f(x))``: with gradients
  through the frozen classifier (first-order denoised smoothing), or with ``--black-box``
  from RGE estimates (``--zo-q`` directions, radius ``--zo-mu``) taken at the autoencoder's
  code, the classifier answering score queries only (ZO-AE-DS);
* every epoch logs ``val_noisy_acc`` (accuracy at ``x + noise`` on the validation split,
  ``best_metric`` when left at ``val_acc``) and ``queries`` (classifier rows queried).

The saved model holds the classifier's weights too, so ``sparta certify --method smooth
--sigma 0.25 RUN`` certifies the whole pipeline. ``--resume`` repeats the (short) first stage
before loading the checkpoint, which then replaces its weights.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option, require, require_defaults

DENOISERS = ("", "dncnn")


@dataclass
class DenoiseTrainOptions(Options):
    """Denoised-smoothing options of ``sparta train`` (recorded in config.yaml)."""

    denoiser: str = option(
        "", "train a denoiser in front of --target: dncnn ('' for none)", choices=DENOISERS
    )
    target: str = option("", "checkpoint or run folder of the fixed classifier (--denoiser)")
    black_box: bool = option(False, "query --target for scores only: ZO estimates (ZO-AE-DS)")
    denoise_sigma: float = option(0.25, "Gaussian noise std (pixels) the denoiser is trained for")
    denoiser_depth: int = option(5, "DnCNN convolutions (features: 32 x --width)")
    ae_latent: int = option(0, "autoencoder code size after the denoiser (ZO-AE-DS); 0: none")
    denoise_q: int = option(20, "random directions per ZO gradient estimate (--black-box)")
    denoise_mu: float = option(0.005, "ZO finite-difference radius (--black-box)")
    denoise_pretrain_epochs: int = option(1, "MSE pre-training epochs of denoiser and autoencoder")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.denoiser in DENOISERS, "denoiser", self.denoiser, f"one of {DENOISERS}")
        if not self.denoiser:
            others = [f.name for f in fields(self) if f.name != "denoiser"]
            require_defaults(self, others, "denoiser", DENOISERS[1:])
            return
        require(bool(self.target), "target", self.target, "a checkpoint or run folder")
        require(self.denoise_sigma > 0, "denoise_sigma", self.denoise_sigma, "a number > 0")
        require(self.denoiser_depth >= 2, "denoiser_depth", self.denoiser_depth, "an integer >= 2")
        require(self.ae_latent >= 0, "ae_latent", self.ae_latent, "an integer >= 0")
        require(self.denoise_q >= 1, "denoise_q", self.denoise_q, "an integer >= 1")
        require(self.denoise_mu > 0, "denoise_mu", self.denoise_mu, "a number > 0")
        require(
            self.denoise_pretrain_epochs >= 0,
            "denoise_pretrain_epochs",
            self.denoise_pretrain_epochs,
            "an integer >= 0",
        )
        from sparta.io import resolve

        resolve(self.target)  # FileNotFoundError before any folder is made


def active(opts: DenoiseTrainOptions) -> bool:
    """Whether the options ask for a denoiser."""
    return bool(opts.denoiser)


def setup(opts: DenoiseTrainOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Build the pipeline around ``--target``, run the white-box first stage, set the
    stability objective and the noisy validation."""
    from sparta import io, models
    from sparta.defenses import DenoiserObjective, DenoiserValidation, prepare

    if plan.objective is not None or plan.callbacks:
        raise ValueError(
            f"--denoiser {opts.denoiser} is not allowed with other training options (--adv, "
            "--cert, --noise-sigma, sparse training); expected it alone: the classifier is fixed"
        )
    classifier = io.load(opts.target)
    info = splits.train.info
    spec = models.spec_of(classifier)["dataset"]
    if tuple(spec["input_shape"]) != tuple(info.input_shape) or spec["num_classes"] != (
        info.num_classes
    ):
        raise ValueError(
            f"target={opts.target!r} classifies {tuple(spec['input_shape'])} inputs into "
            f"{spec['num_classes']} classes; dataset {cfg.dataset!r} has "
            f"{tuple(info.input_shape)} and {info.num_classes}: expected a classifier of it"
        )
    net = models.create_denoised(classifier, opts.denoiser_depth, opts.ae_latent, cfg.width)
    prepare(
        net,
        splits.train,
        opts.denoise_sigma,
        opts.denoise_pretrain_epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    plan.model = net
    plan.objective = DenoiserObjective(
        opts.denoise_sigma, opts.black_box, opts.denoise_q, opts.denoise_mu, seed=cfg.seed
    )
    plan.callbacks.append(DenoiserValidation(splits.val, opts.denoise_sigma, seed=cfg.seed, n=1000))
    if splits.val is not None and len(splits.val) and cfg.best_metric == "val_acc":
        cfg.best_metric = "val_noisy_acc"


EXTENSIONS.append(TrainExtension(options=DenoiseTrainOptions, active=active, setup=setup))
