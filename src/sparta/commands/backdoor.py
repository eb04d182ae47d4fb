"""``sparta backdoor detect|recover|remove --ckpt RUN``: Trojan tickets, triggers, removal.

* ``detect``: progressive IMP of the checkpoint with the Trojan score per level, then
  trigger recovery on the dense model and the winning ticket for the verdict
  (:mod:`sparta.backdoor.detect`); writes ``summary.json`` (``trojan``, ``score``,
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


def register(sub: argparse._SubParsersAction) -> None:
    from sparta.backdoor.detect import DetectOptions
    from sparta.backdoor.recover import RecoverOptions
    from sparta.cli import Parser, add_dataclass_flags, add_run_flags
    from sparta.unlearn.options import UnlearnOptions

    p = sub.add_parser("backdoor", help="Trojan-ticket detection, trigger recovery, removal")
    actions = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    d = actions.add_parser("detect", help="is this model Trojaned? (IMP + Trojan score)")
    d.add_argument("--ckpt", required=True, help="run folder or .safetensors of the suspect")
    d.add_argument("--subset", type=int, default=5000, help="defender samples (0: all)")
    add_dataclass_flags(d, DetectOptions)
    add_run_flags(d, resume=False)
    d.set_defaults(func=run_detect)
    r = actions.add_parser("recover", help="recover the trigger from noise (Neural Cleanse/TABOR)")
    r.add_argument("--ckpt", required=True, help="a model, or a `backdoor detect` run folder")
    add_dataclass_flags(r, RecoverOptions)
    add_run_flags(r, resume=False)
    r.set_defaults(func=run_recover)
    u = actions.add_parser("remove", help="unlearn the poisoned samples of a --poison run")
    u.add_argument("--ckpt", required=True, help="run folder of a `sparta train --poison` run")
    u.add_argument("--method", default="salun", help="unlearning method (see sparta unlearn)")
    add_dataclass_flags(u, UnlearnOptions)
    add_run_flags(u, resume=False)
    u.set_defaults(func=run_remove)


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
    from sparta.commands.unlearn import _run_config, load_checkpoint
    from sparta.train.config import read_yaml

    model, train, test, base = load_checkpoint(ckpt, None, device)
    config = _run_config(Path(model.sparta_checkpoint["path"]))
    spec = read_yaml(config).get("poison") if config is not None else None
    poisoned = poison(train, spec) if spec else None
    if poisoned is not None:
        _check_indices(config.parent, poisoned)
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


def run_detect(args: argparse.Namespace) -> int:
    from sparta.backdoor.detect import DetectOptions, detect, plot_detection
    from sparta.cli import config_from_args
    from sparta.io import save
    from sparta.runs import Run

    opts = config_from_args(DetectOptions, args)
    if args.subset < 0:
        raise ValueError(f"subset={args.subset!r} is not allowed; expected an integer >= 0")
    s = load_suspect(args.ckpt, opts.device)
    data = s.train.take(min(args.subset, len(s.train)), seed=opts.seed) if args.subset else s.train
    config = {"ckpt": str(s.model.sparta_checkpoint["path"]), "subset": args.subset}
    out = Run.create({**config, **opts.to_dict()}, "backdoor-detect", args.out, args.name,
                     overwrite=args.overwrite)  # fmt: skip
    res = detect(s.model, data, opts, test=s.test, on_level=out.log, **_truth(s))
    save(res.ticket, out.file("ticket.safetensors"), level=res.best_level, score=res.score)
    out.write_summary(res.summary)
    plot = plot_detection(res.levels, out.file("levels.png"), title=f"{s.config.model}")
    peak = 100 * res.levels[res.best_level]["remaining"]
    print(f"trojan={str(res.trojan).lower()} target={res.target} "
          f"anomaly_index={res.anomaly_index:.2f} score={res.score:.4f} (winning ticket: level "
          f"{res.best_level}, {peak:.2f}% remaining)")  # fmt: skip
    print(f"run: {out.path}")
    print(f"plot: {plot}")
    return 0


def run_recover(args: argparse.Namespace) -> int:
    import sparta
    from sparta.backdoor.metrics import asr
    from sparta.backdoor.recover import RecoverOptions, recover, save_trigger_png
    from sparta.cli import config_from_args
    from sparta.runs import Run

    opts = config_from_args(RecoverOptions, args)
    folder = Path(args.ckpt)
    ticket = None
    if folder.is_dir() and (folder / "ticket.safetensors").is_file():  # a detect run folder
        ticket = sparta.load(folder / "ticket.safetensors", device=opts.device)
        original = Run(folder).read_config()["ckpt"]
    else:
        original = args.ckpt
    s = load_suspect(original, opts.device)
    probe = ticket if ticket is not None else s.model
    info = s.test.info
    config = {"ckpt": args.ckpt, "original": str(s.model.sparta_checkpoint["path"])}
    out = Run.create({**config, **opts.to_dict()}, "backdoor-recover", args.out, args.name,
                     overwrite=args.overwrite)  # fmt: skip
    res = recover(probe, tuple(info.input_shape), info.num_classes, opts)
    summary = res.to_dict()
    summary["on_ticket"] = ticket is not None
    if res.target is not None:
        summary["recovered_asr"] = asr(s.model, s.test, res.trigger(res.target), res.target)
    truth = _truth(s)
    if truth:
        summary["true_target"] = truth["target"]
        summary["correct"] = res.target == truth["target"]
    torch_png = save_trigger_png(res, out.file("trigger.png"))
    out.write_summary(summary)
    extra = f" recovered_asr={summary['recovered_asr']:.4f}" if res.target is not None else ""
    print(f"target={res.target} trojan={str(res.target is not None).lower()} "
          f"anomaly_index={summary['anomaly_index']:.2f}{extra}")  # fmt: skip
    print(f"run: {out.path}")
    print(f"trigger: {torch_png}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from sparta.backdoor.remove import remove
    from sparta.cli import config_from_args
    from sparta.io import save
    from sparta.runs import Run
    from sparta.unlearn.options import UnlearnOptions

    opts = config_from_args(UnlearnOptions, args)
    s = load_suspect(args.ckpt, opts.device)
    if s.poisoned is None:
        raise ValueError(f"{args.ckpt} is not a `sparta train --poison` run: nothing to unlearn")
    config = {"ckpt": str(s.model.sparta_checkpoint["path"]), "method": args.method}
    out = Run.create({**config, **opts.to_dict()}, "backdoor-remove", args.out, args.name,
                     overwrite=args.overwrite)  # fmt: skip
    res = remove(s.model, s.poisoned, s.test, args.method, opts, s.config, quiet=args.quiet)
    save(res.model, out.file("model.safetensors"), **{k: v for k, v in res.summary.items()
                                                      if isinstance(v, float)})  # fmt: skip
    out.write_summary(res.summary)
    m = res.summary
    what = f"({m['method']}, {m['n_forget']} poisoned samples forgotten)"
    print(f"asr {m['asr_before']:.4f} -> {m['asr']:.4f}, "
          f"test_acc {m['test_acc_before']:.4f} -> {m['test_acc']:.4f} {what}")  # fmt: skip
    print(f"run: {out.path}")
    return 0
