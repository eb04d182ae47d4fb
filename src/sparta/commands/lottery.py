"""``sparta lottery``: iterative magnitude pruning with rewinding (lottery tickets).

Writes ``summary.json`` (``levels``, ``test_acc`` of the last ticket, ``sparsity``), a
markdown table ``levels.md`` and ``levels.png`` (test accuracy vs % weights remaining).

Robust and certified tickets: the objective flags of ``sparta train`` (``--adv pgd-at|trades
--eps 0.1 --adv-steps 10``, ``--cert ibp --cert-eps 0.1``, ``--noise-sigma``) make every level,
dense and pruned, and every control train with that objective, with the same per-epoch robust
(``val_robust_acc``) or verified (``val_verified_acc``) validation as ``sparta train``.
"""

from __future__ import annotations

import argparse
from typing import Any

from sparta.cli import Command

#: the ``sparta train`` extensions whose objective (and flags) ``sparta lottery`` takes
OBJECTIVE_EXTENSIONS = ("sparta.commands.adv_train", "sparta.commands.cert_train")


class Lottery(Command):
    name = "lottery"
    help = "lottery tickets: iterative magnitude pruning + rewinding"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.sparsity.lottery import LotteryConfig
        from sparta.train import TrainConfig

        return (TrainConfig, LotteryConfig, *(ext.options for ext in _extensions()))

    def _active(self) -> list[Any]:
        """The objective extensions whose flags ask for something, with their options."""
        return [(e, self.get(e.options)) for e in _extensions() if e.active(self.get(e.options))]

    def config(self) -> dict[str, Any]:
        """The training and IMP options, and those of an objective only when one is asked for
        (so a plain lottery's folder name and config are those it always had)."""
        from sparta.sparsity.lottery import LotteryConfig
        from sparta.train import TrainConfig

        out = {**self.get(TrainConfig).to_dict(), **self.get(LotteryConfig).to_dict()}
        for _, opts in self._active():
            out.update(opts.to_dict())
        return out

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--rewind",
            dest="rewind_step",
            type=int,
            default=argparse.SUPPRESS,
            help="same as --rewind-step: 0 rewinds to the init, k to step k of the dense run",
        )
        p.add_argument(
            "--pool",
            action="store_true",
            default=False,
            help="then Lottery Pools on the last ticket (default options; written to "
            "<run>/pool-lXX; `sparta pool --ckpt <run>` for others)",
        )

    def validate(self) -> None:
        from sparta.commands.train import check_names
        from sparta.train import TrainConfig

        check_names(self.get(TrainConfig))
        active = self._active()
        if len(active) > 1:  # --adv and --cert / --noise-sigma
            adv, cert = (o for _, o in active[:2])
            raise ValueError(
                f"--adv {adv.adv} is not allowed with --cert {cert.cert or 'off'} / "
                f"--noise-sigma {cert.noise_sigma}; expected one objective"
            )
        super().validate()

    def run(self) -> int:
        from sparta.sparsity.lottery import LotteryConfig, run_lottery
        from sparta.train import TrainConfig

        cfg, options = self.get(TrainConfig), self.get(LotteryConfig)
        path = self.location(self.config())
        active = self._active()

        def setup(config: TrainConfig, splits: Any) -> tuple[Any, list[Any]]:
            """A fresh objective and its callbacks for one unit, as ``sparta train`` has."""
            from sparta.commands.train import TrainPlan

            plan = TrainPlan(model=None)  # type: ignore[arg-type]  # no extension here swaps it
            for ext, opts in active:
                ext.setup(opts, plan, config, splits)
            return plan.objective, plan.callbacks

        extra: dict[str, Any] = {}
        for _, opts in active:
            extra.update(opts.to_dict())
        result = run_lottery(
            cfg,
            options,
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
            setup=setup if active else None,
            extra_config=extra,
        )
        from sparta.report import plot_run

        plot_run(result.run.path)  # levels.md, levels.png
        print(result.run.file("levels.md").read_text(), end="")
        s = result.summary
        print(
            f"test_acc={s['test_acc']:.4f} at {100 * s['remaining']:.2f}% weights remaining "
            f"(dense {s['dense_test_acc']:.4f}; {cfg.model} on {cfg.dataset})"
        )
        print(f"run: {result.run.path}")
        print(f"plot: {result.run.file('levels.png')}")
        if self.args.pool:
            from sparta.commands.pool import print_pool
            from sparta.sparsity.pools import pool_run

            last = result.levels[-1]["level"]
            res = pool_run(
                result.run.path, root=result.run.path, name=f"pool-l{last:02d}", resume=True
            )
            print_pool(res)
        return 0


def _extensions() -> list[Any]:
    """The ``sparta train`` extensions of :data:`OBJECTIVE_EXTENSIONS`, in that order."""
    import importlib

    from sparta.commands.train import EXTENSIONS

    modules = [importlib.import_module(m) for m in OBJECTIVE_EXTENSIONS]
    return [e for e in EXTENSIONS if any(e.setup is m.setup for m in modules)]


def register(sub: argparse._SubParsersAction) -> None:
    Lottery.register(sub)
