"""``sparta certify``: verified accuracy of a checkpoint (IBP, CROWN, alpha-CROWN, BaB) or the
certified accuracy of its Gaussian-smoothed version (randomized smoothing).

Writes a run folder with summary.json: for bound methods ``verified_acc``, ``clean_acc``,
``upper_acc``, counts ``verified``/``falsified``/``unknown``/``wrong``, ``branches``,
``time_per_image_s``, ``method``, ``eps``, ``norm``, ``n``; for ``smooth`` the keys of
:func:`sparta.certify.smoothing.certify_dataset` (``certified_acc_r{radius}``, ...) and the
certified-accuracy plot. Bound methods need ``--eps`` (a radius in [0, 1]); ``smooth``
certifies radii from ``--sigma`` and takes no eps. With ``--ckpt RUN`` and no ``--name`` the
run folder is ``RUN/evals/certify-<hash>/``. Bound methods also draw ``verified_acc.png``
(the verified / unknown / falsified / wrong split of the examples).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sparta.cli import CheckpointOptions, Command
from sparta.options import Options, option, require
from sparta.registry import get_registry

METHODS = tuple(get_registry("certify").aliases())


@dataclass
class CertifyOptions(Options):
    """The certification method and its budget (recorded in config.yaml)."""

    method: str = option("crown", f"one of {', '.join(METHODS)}")
    eps: float | None = option(None, "Linf (or L2) radius in [0, 1] units (bound methods)")
    norm: str = option("linf", "linf or l2 (bound methods)")
    timeout: float = option(30.0, "BaB seconds per example")
    max_branches: int = option(100_000, "BaB sub-problems per example")
    bab_bound: str = option(
        "beta-crown", "BaB sub-problem bounds: beta-crown, alpha-crown or crown (the old BaB)"
    )
    bab_branching: str = option(
        "intercept", "BaB's split neuron: intercept (default), fsb (filtered smart) or babsr"
    )
    n: int = option(100, "certify this many test examples")
    batch_size: int = option(100, "batch size of the bound methods")
    sigma: float = option(0.25, "smoothing noise level (pixels)")
    n_samples: int = option(10_000, "smoothing: noise samples n")
    n0: int = option(100, "smoothing: selection samples n0")
    alpha: float = option(0.001, "smoothing: failure probability")
    seed: int = option(0, "seed of the subset and of the smoothing noise")

    def __post_init__(self) -> None:
        from sparta.certify.domain import check_eps, check_norm

        require(self.method in METHODS, "method", self.method, f"one of {', '.join(METHODS)}")
        require(self.n >= 1, "n", self.n, "an integer >= 1")
        if self.method == "smooth":
            from sparta.certify.smoothing import check_alpha, check_sigma

            check_sigma(self.sigma)
            check_alpha(self.alpha)
            return
        if self.eps is None:
            raise ValueError(
                f"--method {self.method} needs --eps, the radius to verify (a number in [0, 1])"
            )
        check_eps(self.eps)
        require(self.eps <= 1, "eps", self.eps, "a radius in [0, 1] (pixel units)")
        check_norm(self.norm)
        require(self.timeout > 0, "timeout", self.timeout, "seconds > 0")
        from sparta.certify.bab import BOUNDS, BRANCHING

        require(
            self.bab_bound in BOUNDS, "bab_bound", self.bab_bound, f"one of {', '.join(BOUNDS)}"
        )
        require(
            self.bab_branching in BRANCHING,
            "bab_branching",
            self.bab_branching,
            f"one of {', '.join(BRANCHING)}",
        )


class Certify(Command):
    name = "certify"
    help = "verified / certified accuracy of a checkpoint"
    options = (CheckpointOptions, CertifyOptions)
    folder = "eval"

    def run(self) -> int:
        from sparta import data as sdata
        from sparta.certify.graph import trace
        from sparta.models import input_shape_of

        src, opts = self.get(CheckpointOptions), self.get(CertifyOptions)
        model, train_config = src.load_model()
        shape = input_shape_of(model)
        if opts.method != "smooth":  # an unsupported layer fails before any data is loaded
            trace(model, shape, "crown" if opts.method == "bab" else opts.method)
        dataset = sdata.load(train_config.dataset, src.split)
        data = dataset.take(min(opts.n, len(dataset)), seed=opts.seed)
        config = self.config()
        if opts.method == "smooth":
            from sparta.certify.smoothing import certify_dataset
            from sparta.report.certify import EXAMPLES, plot_certify_run

            run = self.create_run(config)
            summary = certify_dataset(
                model,
                data,
                opts.sigma,
                n0=opts.n0,
                n=opts.n_samples,
                alpha=opts.alpha,
                seed=opts.seed,
                examples=run.file(EXAMPLES),
            )
            summary["method"] = "smooth"
            run.write_summary(summary)
            plot_certify_run(run)
            keys = [k for k in summary if k.startswith("certified_acc_r")]
            print(" ".join(f"{k}={summary[k]:.4f}" for k in keys))
            print(f"run: {run.path}")
            return 0
        from sparta.experiments.verify import verified_accuracy
        from sparta.report.certify import plot_certify_run

        assert opts.eps is not None  # checked by CertifyOptions
        run = self.create_run(config)
        summary = verified_accuracy(
            model,
            (data.x.to(src.device), data.y.to(src.device)),
            opts.eps,
            opts.method,
            timeout=opts.timeout,
            norm=opts.norm,
            batch_size=opts.batch_size,
            max_branches=opts.max_branches,
            bab_bound=opts.bab_bound,
            bab_branching=opts.bab_branching,
        )
        run.write_summary(summary)
        (plot,) = plot_certify_run(run)
        print(
            f"verified_acc={summary['verified_acc']:.4f} clean_acc={summary['clean_acc']:.4f} "
            f"({opts.method}, eps={opts.eps:g} {opts.norm}, n={summary['n']}: "
            f"{summary['verified']} verified, {summary['falsified']} falsified, "
            f"{summary['unknown']} unknown, {summary['wrong']} wrong; "
            f"{summary['time_per_image_s'] * 1000:.1f} ms/image)"
        )
        print(f"plot: {plot}")
        print(f"run: {run.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Certify.register(sub)
