"""``sparta attack``: robust accuracy of a checkpoint under an attack suite.

Writes a run folder with summary.json (clean_acc, robust_acc, robust_acc_<attack>, warnings,
n, eps, norm, ...) and robust_acc_vs_eps.png.
"""

from __future__ import annotations

import argparse


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--eps-curve {text!r} is not allowed; expected numbers separated by commas"
        ) from None


def register(sub: argparse._SubParsersAction) -> None:
    from sparta.attacks.base import NORMS
    from sparta.attacks.evaluate import SUITE_NAMES

    p = sub.add_parser("attack", help="robust accuracy of a checkpoint under an attack suite")
    p.add_argument("--ckpt", required=True, help="run folder or .safetensors file")
    p.add_argument("--eps", type=float, required=True, help="perturbation budget in [0, 1] units")
    p.add_argument("--norm", default="linf", help=f"threat model: {', '.join(NORMS)}")
    p.add_argument(
        "--suite",
        help=f"{', '.join(SUITE_NAMES)} (default: custom with --attacks, else standard)",
    )
    p.add_argument("--attacks", help="comma-separated attack names for the custom suite")
    p.add_argument("--n", type=int, default=1000, help="attack this many test examples")
    p.add_argument("--eps-curve", help="also evaluate these eps (comma-separated) for the plot")
    p.add_argument("--steps", type=int, help="iterations of every gradient attack (override)")
    p.add_argument("--queries", type=int, help="query budget of black-box attacks (override)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs")
    p.add_argument("--name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sparta.attacks  # noqa: F401  (registers every attack)
    from sparta.attacks.base import check_eps, check_norm
    from sparta.attacks.evaluate import evaluate, plot_robust_curve, resolve_attacks
    from sparta.commands.eval import load_for_eval
    from sparta.runs import Run

    eps = check_eps(args.eps)
    norm = check_norm(args.norm)
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()] if args.attacks else None
    suite = args.suite or ("custom" if attacks else "standard")
    curve = _floats(args.eps_curve) if args.eps_curve else []
    for e in curve:
        check_eps(e)
    resolve_attacks(suite, attacks, None, args.steps, args.queries)  # bad input: fail early
    if args.n < 1:
        raise ValueError(f"n={args.n} is not allowed; expected an integer >= 1")

    model, dataset = load_for_eval(args.ckpt, args.dataset, args.split, args.device)
    options = dict(
        norm=norm,
        attacks=attacks,
        suite=suite,
        batch_size=args.batch_size,
        seed=args.seed,
        n=args.n,
        steps=args.steps,
        queries=args.queries,
    )
    main = evaluate(model, dataset, eps, **options)
    reports = [main] + [
        evaluate(model, dataset, e, **{**options, "checks": False})
        for e in sorted(set(curve))
        if e != eps
    ]
    config = {
        "ckpt": str(model.sparta_checkpoint["path"]),
        "dataset": dataset.name,
        "split": args.split,
        **{k: v for k, v in options.items() if k != "attacks"},
        "attacks": main.attacks,
        "eps": eps,
        "eps_curve": sorted(set(curve)),
    }
    run = Run.create(config, "attack", root=args.out, name=args.name, overwrite=True)
    summary = main.summary()
    if len(reports) > 1:
        summary["curve"] = [
            {"eps": r.eps, "robust_acc": r.robust_acc} for r in sorted(reports, key=lambda r: r.eps)
        ]
    run.write_summary(summary)
    plot = plot_robust_curve(reports, run.file("robust_acc_vs_eps.png"), title=run.path.name)
    print(
        f"clean_acc={main.clean_acc:.4f} robust_acc={main.robust_acc:.4f} "
        f"({suite} suite, eps={eps:g} {norm}, n={main.n})"
    )
    for name, acc in main.robust_acc_by_attack.items():
        print(f"  after {name}: {acc:.4f} ({main.attack_time_s[name]:.1f}s)")
    if main.warnings:
        print(f"{len(main.warnings)} warning(s) about the evaluation: see summary.json")
    print(f"run: {run.path}")
    print(f"plot: {plot}")
    return 0
