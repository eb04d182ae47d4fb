"""``sparta certify``: verified accuracy of a checkpoint (IBP, CROWN, alpha-CROWN, BaB) or the
certified accuracy of its Gaussian-smoothed version (randomized smoothing).

Writes a run folder with summary.json: for bound methods ``verified_acc``, ``clean_acc``,
``upper_acc``, counts ``verified``/``falsified``/``unknown``/``wrong``, ``branches``,
``time_per_image_s``, ``method``, ``eps``, ``norm``, ``n``; for ``smooth`` the keys of
:func:`sparta.certify.smoothing.certify_dataset` (``certified_acc_r{radius}``, ...) and the
certified-accuracy plot.
"""

from __future__ import annotations

import argparse

from sparta.registry import get_registry

METHODS = tuple(get_registry("certify").aliases())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify", help="verified / certified accuracy of a checkpoint")
    p.add_argument("--ckpt", required=True, help="run folder or .safetensors file")
    p.add_argument("--method", default="crown", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--eps", type=float, default=0.0, help="Linf (or L2) radius in [0, 1] units")
    p.add_argument("--norm", default="linf", help="linf or l2 (bound methods)")
    p.add_argument("--timeout", type=float, default=30.0, help="BaB seconds per example")
    p.add_argument("--max-branches", type=int, default=100_000, help="BaB sub-problems per example")
    p.add_argument("--n", type=int, default=100, help="certify this many test examples")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--sigma", type=float, default=0.25, help="smoothing noise level (pixels)")
    p.add_argument("--n-samples", type=int, default=10_000, help="smoothing: noise samples n")
    p.add_argument("--n0", type=int, default=100, help="smoothing: selection samples n0")
    p.add_argument("--alpha", type=float, default=0.001, help="smoothing: failure probability")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs")
    p.add_argument("--name")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from sparta.certify.domain import check_eps, check_norm

    if args.method not in METHODS:
        raise ValueError(
            f"method={args.method!r} is not allowed; expected one of {', '.join(METHODS)}"
        )
    if args.n < 1:
        raise ValueError(f"n={args.n} is not allowed; expected an integer >= 1")
    if args.method == "smooth":
        from sparta.certify.smoothing import check_alpha, check_sigma

        check_sigma(args.sigma)
        check_alpha(args.alpha)
        return
    check_eps(args.eps)
    check_norm(args.norm)
    if args.timeout <= 0:
        raise ValueError(f"timeout={args.timeout!r} is not allowed; expected seconds > 0")


def run(args: argparse.Namespace) -> int:
    from sparta.certify.graph import trace
    from sparta.commands.eval import load_for_eval
    from sparta.runs import Run

    _check(args)
    model, dataset = load_for_eval(args.ckpt, args.dataset, args.split, args.device)
    data = dataset.take(min(args.n, len(dataset)), seed=args.seed)
    config = {
        "ckpt": str(model.sparta_checkpoint["path"]),
        "dataset": dataset.name,
        "split": args.split,
        **{k: v for k, v in vars(args).items() if k not in ("func", "ckpt", "dataset")},
    }
    if args.method == "smooth":
        from sparta.certify.smoothing import certify_dataset

        run_ = Run.create(config, "certify", root=args.out, name=args.name, overwrite=True)
        summary = certify_dataset(
            model,
            data,
            args.sigma,
            n0=args.n0,
            n=args.n_samples,
            alpha=args.alpha,
            seed=args.seed,
            plot=run_.file("certified_acc_vs_radius.png"),
        )
        summary["method"] = "smooth"
        run_.write_summary(summary)
        keys = [k for k in summary if k.startswith("certified_acc_r")]
        print(" ".join(f"{k}={summary[k]:.4f}" for k in keys))
        print(f"run: {run_.path}")
        return 0
    from sparta.certify.verify import verified_accuracy

    trace(model, tuple(data.x.shape[1:]), "crown" if args.method == "bab" else args.method)
    run_ = Run.create(config, "certify", root=args.out, name=args.name, overwrite=True)
    summary = verified_accuracy(
        model,
        (data.x.to(args.device), data.y.to(args.device)),
        args.eps,
        args.method,
        timeout=args.timeout,
        norm=args.norm,
        batch_size=args.batch_size,
        max_branches=args.max_branches,
    )
    run_.write_summary(summary)
    print(
        f"verified_acc={summary['verified_acc']:.4f} clean_acc={summary['clean_acc']:.4f} "
        f"({args.method}, eps={args.eps:g} {args.norm}, n={summary['n']}: "
        f"{summary['verified']} verified, {summary['falsified']} falsified, "
        f"{summary['unknown']} unknown, {summary['wrong']} wrong; "
        f"{summary['time_per_image_s'] * 1000:.1f} ms/image)"
    )
    print(f"run: {run_.path}")
    return 0
