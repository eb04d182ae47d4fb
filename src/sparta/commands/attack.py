"""``sparta attack``: robust accuracy of a checkpoint under an attack suite.

Writes a run folder with summary.json (clean_acc, robust_acc, robust_acc_<attack>, warnings,
n, eps, norm, ...) and robust_acc_vs_eps.png. With ``--ckpt RUN`` and no ``--name`` the run
folder is ``RUN/evals/attack-<hash>/``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sparta.cli import CheckpointOptions, Command
from sparta.options import Options, option, require


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--eps-curve {text!r} is not allowed; expected numbers separated by commas"
        ) from None


@dataclass
class AttackOptions(Options):
    """The threat model and the attack suite (recorded in config.yaml)."""

    eps: float | None = option(None, "perturbation budget in [0, 1] units", required=True)
    norm: str = option("linf", "threat model: linf, l2")
    suite: str = option(
        "", "fast, standard, custom (default: custom with --attacks, else standard)"
    )
    attacks: str = option("", "comma-separated attack names for the custom suite")
    n: int = option(1000, "attack this many test examples")
    eps_curve: str = option("", "also evaluate these eps (comma-separated) for the plot")
    steps: int | None = option(None, "iterations of every gradient attack (override)")
    queries: int | None = option(None, "query budget of black-box attacks (override)")
    batch_size: int = option(500, "attack batch size")
    seed: int = option(0, "seed of the subset and of randomised attacks")

    def __post_init__(self) -> None:
        import sparta.attacks  # noqa: F401  (registers every attack)
        from sparta.attacks.base import check_eps, check_norm
        from sparta.attacks.evaluate import resolve_attacks

        if self.eps is not None:
            self.eps = check_eps(self.eps)
        self.norm = check_norm(self.norm)
        for e in self.curve:
            check_eps(e)
        require(self.n >= 1, "n", self.n, "an integer >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        resolve_attacks(self.suite_name, self.attack_list, None, self.steps, self.queries)

    @property
    def attack_list(self) -> list[str] | None:
        return [a.strip() for a in self.attacks.split(",") if a.strip()] or None

    @property
    def suite_name(self) -> str:
        return self.suite or ("custom" if self.attack_list else "standard")

    @property
    def curve(self) -> list[float]:
        return sorted(set(_floats(self.eps_curve))) if self.eps_curve else []


class Attack(Command):
    name = "attack"
    help = "robust accuracy of a checkpoint under an attack suite"
    options = (CheckpointOptions, AttackOptions)
    folder = "eval"

    def run(self) -> int:
        from sparta.attacks.evaluate import evaluate
        from sparta.report.attacks import plot_robust_curve

        src, opts = self.get(CheckpointOptions), self.get(AttackOptions)
        assert opts.eps is not None  # required
        model, dataset = src.load()
        kw = dict(
            norm=opts.norm,
            attacks=opts.attack_list,
            suite=opts.suite_name,
            batch_size=opts.batch_size,
            seed=opts.seed,
            n=opts.n,
            steps=opts.steps,
            queries=opts.queries,
        )
        main = evaluate(model, dataset, opts.eps, **kw)
        reports = [main] + [
            evaluate(model, dataset, e, **{**kw, "checks": False})
            for e in opts.curve
            if e != opts.eps
        ]
        run = self.create_run(self.config())
        summary = main.summary()
        summary.update(dataset=dataset.name, ckpt_file=str(model.sparta_checkpoint["path"]))
        if len(reports) > 1:
            summary["curve"] = [  # every attack's accuracy too: `plot_run` re-draws the same plot
                {k: v for k, v in r.summary().items() if k == "eps" or k.startswith("robust_acc")}
                for r in sorted(reports, key=lambda r: r.eps)
            ]
        run.write_summary(summary)
        title = f"{model.sparta_spec['name']} on {dataset.name}, eps={opts.eps:g} {opts.norm}"
        plot = plot_robust_curve(reports, run.file("robust_acc_vs_eps.png"), title=title)
        print(
            f"clean_acc={main.clean_acc:.4f} robust_acc={main.robust_acc:.4f} "
            f"({opts.suite_name} suite, eps={opts.eps:g} {opts.norm}, n={main.n})"
        )
        for name, acc in main.robust_acc_by_attack.items():
            print(f"  after {name}: {acc:.4f} ({main.attack_time_s[name]:.1f}s)")
        if main.warnings:
            print(f"{len(main.warnings)} warning(s) about the evaluation: see summary.json")
        print(f"run: {run.path}")
        print(f"plot: {plot}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Attack.register(sub)
