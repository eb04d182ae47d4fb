"""``sparta backdoor detect|recover|remove --ckpt RUN``: Trojan tickets, triggers, removal.

* ``detect``: progressive IMP of the checkpoint with the Trojan score per level, then
  trigger recovery on the dense model and the winning ticket for the verdict
  (:mod:`sparta.experiments.trojan`); writes ``summary.json`` (``trojan``, ``score``,
  ``target``, ``anomaly_index``, ``best_level``, ``sparsity``, ``levels``), ``levels.png``
  and ``ticket.safetensors`` (the winning Trojan ticket: the sparse level with the peak
  score). The defender's data is the checkpoint's training split (``--subset`` samples of
  it), or noise with ``--data-free``.
* ``recover``: data-free trigger recovery (:mod:`sparta.backdoor.recover`); ``--ckpt`` may
  be a ``detect`` run folder, then the trigger is recovered on its ticket and its ASR is
  measured on the original model. Writes ``trigger.png`` and ``summary.json`` (``target``,
  ``trojan``, ``mask_l1``, ``anomaly_index``, ``recovered_asr``).
* ``remove``: unlearn the poisoned samples of a ``sparta train --poison`` run; writes
  ``summary.json`` (``asr_before``, ``test_acc_before``, ``asr``, ``test_acc``, ...).

When the checkpoint's run folder records ``--poison``, clean accuracy and ASR of the true
trigger are reported too (evaluation only: detection and recovery never see the trigger).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparta.cli import Command
from sparta.options import Options, option, require


@dataclass
class SuspectOptions(Options):
    """The suspect model (detect, remove)."""

    ckpt: str = option("", "run folder or .safetensors of the suspect", required=True)


@dataclass
class DetectData(Options):
    """The defender's data for detection."""

    subset: int = option(5000, "defender samples (0: all)")

    def __post_init__(self) -> None:
        require(self.subset >= 0, "subset", self.subset, "an integer >= 0")


@dataclass
class RecoverSource(Options):
    """The model whose trigger is recovered."""

    ckpt: str = option("", "a model, or a `backdoor detect` run folder", required=True)


@dataclass
class RemoveMethod(Options):
    """How to unlearn the poisoned samples."""

    method: str = option("salun", "unlearning method (see sparta unlearn)")

    def __post_init__(self) -> None:
        from sparta.unlearn import get_method

        self.method = get_method(self.method).name


@dataclass
class Suspect:
    """A checkpoint, the splits it was trained with, and its poisoning (None: not recorded)."""

    model: Any
    train: Any  # the training split as trained on (poisoned when the run was)
    test: Any
    config: Any
    poisoned: Any  # PoisonedData or None


def load_suspect(ckpt: str, device: str = "cpu") -> Suspect:
    """Load ``ckpt`` and rebuild its training split, poisoned as its run folder records."""
    from sparta.backdoor.poison import poison
    from sparta.runs import Run, run_folder_of
    from sparta.train.config import read_yaml

    model, splits, base = Run.from_checkpoint(ckpt, device, splits="run")
    assert splits is not None
    train, test = splits.train, splits.test
    folder = run_folder_of(model.sparta_checkpoint["path"])
    spec = read_yaml(folder / "config.yaml").get("poison") if folder is not None else None
    poisoned = poison(train, spec) if spec else None
    if poisoned is not None:
        assert folder is not None
        _check_indices(folder, poisoned)
    return Suspect(model, poisoned.data if poisoned else train, test, base, poisoned)


def _check_indices(folder: Path, poisoned: Any) -> None:
    from sparta.commands.poison_train import INDICES_FILE

    file = folder / INDICES_FILE
    if file.is_file() and json.loads(file.read_text())["indices"] != poisoned.indices.tolist():
        raise ValueError(f"{file} does not match the poisoning rebuilt from config.yaml")


def _truth(s: Suspect) -> dict[str, Any]:
    """Trigger and target for evaluation, when the run recorded them."""
    if s.poisoned is None:
        return {}
    return {"trigger": s.poisoned.trigger, "target": s.poisoned.config.target}


class Detect(Command):
    name = "detect"
    command = "backdoor-detect"
    help = "is this model Trojaned? (IMP + Trojan score)"

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.experiments.trojan import DetectOptions

        return (SuspectOptions, DetectData, DetectOptions)

    def run(self) -> int:
        from sparta.experiments.trojan import DetectOptions, detect
        from sparta.io import save
        from sparta.report.trojan import plot_detection

        opts, subset = self.get(DetectOptions), self.get(DetectData).subset
        s = load_suspect(self.get(SuspectOptions).ckpt, opts.device)
        data = s.train.take(min(subset, len(s.train)), seed=opts.seed) if subset else s.train
        out = self.create_run(self.config())
        res = detect(s.model, data, opts, test=s.test, on_level=out.log, **_truth(s))
        save(res.ticket, out.file("ticket.safetensors"), level=res.best_level, score=res.score)
        out.write_summary(res.summary)
        plot = plot_detection(res.levels, out.file("levels.png"), title=f"{s.config.model}")
        peak = 100 * res.levels[res.best_level]["remaining"]
        print(f"trojan={str(res.trojan).lower()} target={res.target} "
              f"anomaly_index={res.anomaly_index:.2f} score={res.score:.4f} (winning ticket: "
              f"level {res.best_level}, {peak:.2f}% remaining)")  # fmt: skip
        print(f"run: {out.path}")
        print(f"plot: {plot}")
        return 0


class Recover(Command):
    name = "recover"
    command = "backdoor-recover"
    help = "recover the trigger from noise (Neural Cleanse/TABOR)"

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.backdoor.recover import RecoverOptions

        return (RecoverSource, RecoverOptions)

    def run(self) -> int:
        import sparta
        from sparta.backdoor.metrics import asr
        from sparta.backdoor.recover import RecoverOptions, recover
        from sparta.report.triggers import TRIGGERS, save_trigger_png
        from sparta.runs import Run

        opts, ckpt = self.get(RecoverOptions), self.get(RecoverSource).ckpt
        folder = Path(ckpt)
        ticket = None
        if folder.is_dir() and (folder / "ticket.safetensors").is_file():  # a detect run
            ticket = sparta.load(folder / "ticket.safetensors", device=opts.device)
            original = Run(folder).read_config()["ckpt"]
        else:
            original = ckpt
        s = load_suspect(original, opts.device)
        probe = ticket if ticket is not None else s.model
        info = s.test.info
        out = self.create_run(self.config())
        res = recover(probe, tuple(info.input_shape), info.num_classes, opts)
        summary = res.to_dict()
        summary["on_ticket"] = ticket is not None
        summary["original"] = str(s.model.sparta_checkpoint["path"])
        if res.target is not None:
            summary["recovered_asr"] = asr(s.model, s.test, res.trigger(res.target), res.target)
        truth = _truth(s)
        if truth:
            summary["true_target"] = truth["target"]
            summary["correct"] = res.target == truth["target"]
        res.save(out.file(TRIGGERS))  # what `sparta.report.plot_run` re-draws trigger.png from
        png = save_trigger_png(res, out.file("trigger.png"))
        out.write_summary(summary)
        extra = f" recovered_asr={summary['recovered_asr']:.4f}" if res.target is not None else ""
        print(f"target={res.target} trojan={str(res.target is not None).lower()} "
              f"anomaly_index={summary['anomaly_index']:.2f}{extra}")  # fmt: skip
        print(f"run: {out.path}")
        print(f"trigger: {png}")
        return 0


class Remove(Command):
    name = "remove"
    command = "backdoor-remove"
    help = "unlearn the poisoned samples of a --poison run"

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.unlearn.options import UnlearnOptions

        return (SuspectOptions, RemoveMethod, UnlearnOptions)

    def run(self) -> int:
        from sparta.experiments.backdoor_removal import remove
        from sparta.io import save
        from sparta.unlearn.options import UnlearnOptions

        opts, ckpt = self.get(UnlearnOptions), self.get(SuspectOptions).ckpt
        method = self.get(RemoveMethod).method
        s = load_suspect(ckpt, opts.device)
        if s.poisoned is None:
            raise ValueError(f"{ckpt} is not a `sparta train --poison` run: nothing to unlearn")
        out = self.create_run(self.config())
        res = remove(s.model, s.poisoned, s.test, method, opts, s.config, quiet=self.quiet)
        save(res.model, out.file("model.safetensors"), **{k: v for k, v in res.summary.items()
                                                          if isinstance(v, float)})  # fmt: skip
        out.write_summary(res.summary)
        m = res.summary
        what = f"({m['method']}, {m['n_forget']} poisoned samples forgotten)"
        print(f"asr {m['asr_before']:.4f} -> {m['asr']:.4f}, "
              f"test_acc {m['test_acc_before']:.4f} -> {m['test_acc']:.4f} {what}")  # fmt: skip
        print(f"run: {out.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sparta.cli import Parser, add_global_flags

    p = sub.add_parser("backdoor", help="Trojan-ticket detection, trigger recovery, removal")
    add_global_flags(p, after_command=True)
    actions = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    for cmd in (Detect, Recover, Remove):
        cmd.register(actions)
