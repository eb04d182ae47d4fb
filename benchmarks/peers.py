"""sparta side by side with the peer libraries, in one process (issue 16; not in CI).

Runs in the environment ``make bench-peers`` builds (``.venv-peers``: torch 2.14.1 and
torchvision 0.29.1, torch-pruning, torchattacks, adversarial-robustness-toolbox and sparta from
this checkout). Every time is a median over interleaved repeats (shuffled order, after a
warm-up) of the process's CPU time on one thread -- the machine is shared and loaded, so the
wall time mostly measures the wait for a core; wall medians are kept in the JSON.

prune       Torch-Pruning (MagnitudePruner, L1 importance, 50% of the channels of every
            layer but the classifier) against sparta (``prune_channels(..., "l1", "layer")``
            + ``compact``) on LeNet-5 (28 px), conv4 and resnet20 (32 px): parameters and
            MACs (both counted with Torch-Pruning's ``count_ops_and_params`` and sparta's
            ``count_flops``), whether the pruned shapes are identical, and inference time at
            batch 256 (untrained weights: speed does not depend on them).
step        the masked SGD step of LeNet-300-100 at 90% (sparta's MaskCallback against
            ``torch.nn.utils.prune.global_unstructured``; ``sparsity_speed.train_steps``).
pgd         PGD-10 (Linf eps 0.1, step 2.5 eps / 10, random start) on LeNet-300-100 and
            LeNet-5 trained ``--epochs`` epochs: time per batch of 250 for sparta,
            torchattacks' ``PGD``, ART's ``ProjectedGradientDescentPyTorch`` and the
            hand-written loop of ``attack_speed.py``; robust accuracy on ``--n-pgd`` test
            images for each.
autoattack  sparta's standard suite (``attacks.evaluate(..., suite="standard")``) against
            torchattacks' ``AutoAttack(version="standard")`` -- its port of the reference
            AutoAttack, which is not on PyPI -- on the first ``--n-aa`` test images at Linf
            ``--aa-eps``: robust accuracy and time (``--aa-repeats`` interleaved runs).

Writes ``benchmarks/results/peers.json`` and prints markdown tables::

    make bench-peers                                    # builds .venv-peers, runs all parts
    .venv-peers/bin/python benchmarks/peers.py --parts pgd --repeats 3 --results /tmp/x
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from attack_speed import hand_pgd, interleaved, trained
from sparsity_speed import CIFAR, FASHION, train_steps
from torch import nn

from sparta import attacks, models
from sparta import data as sdata
from sparta.sparsity.channels import prune_channels
from sparta.sparsity.export import choose_inference, compact, for_inference

RESULTS = Path(__file__).parent / "results"
PARTS = ("prune", "step", "pgd", "autoattack")


def medians(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {k: {c: statistics.median(v) for c, v in t.items()} for k, t in times.items()}


def versions() -> dict[str, str]:
    out = {"torch": torch.__version__, "python": platform.python_version()}
    for name, module in (
        ("torchvision", "torchvision"),
        ("torch-pruning", "torch_pruning"),
        ("torchattacks", "torchattacks"),
        ("adversarial-robustness-toolbox", "art"),
    ):
        try:
            out[name] = __import__(module).__version__
        except ImportError:
            out[name] = "not installed"
    return out


# ------------------------------------------------------------------ channel pruning
def weight_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def torch_pruning(model: nn.Module, example: torch.Tensor, ratio: float) -> nn.Module:
    """Torch-Pruning's MagnitudePruner (L1 norm, the same ratio in every layer, one step),
    leaving the classifier's outputs alone."""
    import torch_pruning as tp

    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[classifier],
    )
    pruner.step()
    return model.eval()


def counts(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return {
        "tp_macs": int(macs),
        "tp_params": int(params),
        "sparta_macs": int(models.count_flops(model, tuple(example.shape[1:]))),
        "sparta_params": int(models.count_params(model)),
    }


def forward(model: nn.Module, x: torch.Tensor):
    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def prune_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in args.prune_models:
        info = FASHION if name in ("lenet5", "lenet300") else CIFAR
        torch.manual_seed(0)
        dense = models.create(name, info).eval()
        example = torch.rand((1, *info.input_shape), generator=torch.Generator().manual_seed(1))
        x = torch.rand((args.batch, *info.input_shape), generator=torch.Generator().manual_seed(2))
        masked = copy.deepcopy(dense)
        prune_channels(masked, args.ratio, "l1", "layer")
        ours = compact(masked).eval()
        # what `sparta export --format compact` ships: BatchNorm folded, the fastest measured
        # CPU mode (eager, channels-last, torch.jit) chosen on its own timing run
        shipped = compact(masked, fold_bn=True).eval()
        choose_inference(shipped, x)
        mode = shipped.sparta_inference["mode"]
        shipped = for_inference(shipped)
        theirs = torch_pruning(copy.deepcopy(dense), example, args.ratio)
        with torch.no_grad():
            err = float((masked(x[:16]) - ours(x[:16])).abs().max())
        fns = {
            "dense": forward(dense, x),
            "sparta": forward(ours, x),
            "sparta_export": forward(shipped, x),
            "tp": forward(theirs, x),
        }
        med = medians(interleaved(fns, args.repeats))
        row = {
            "model": name,
            "input": list(info.input_shape),
            "batch": args.batch,
            "channel_ratio": args.ratio,
            "same_shapes": weight_shapes(ours) == weight_shapes(theirs),
            "sparta_shapes": weight_shapes(ours),
            "tp_shapes": weight_shapes(theirs),
            "compact_max_err": err,
            "dense": counts(dense, example),
            "sparta": counts(ours, example),
            "tp": counts(theirs, example),
            "cpu_s": {k: v["cpu"] for k, v in med.items()},
            "wall_s": {k: v["wall"] for k, v in med.items()},
        }
        row["sparta_over_tp"] = row["cpu_s"]["sparta"] / row["cpu_s"]["tp"]
        row["export_mode"] = mode
        row["export_over_tp"] = row["cpu_s"]["sparta_export"] / row["cpu_s"]["tp"]
        rows.append(row)
        print(
            f"{name}: same shapes {row['same_shapes']}; params dense/sparta/tp "
            f"{row['dense']['tp_params']}/{row['sparta']['tp_params']}/{row['tp']['tp_params']}; "
            f"ms dense/sparta/tp {row['cpu_s']['dense'] * 1e3:.1f}/"
            f"{row['cpu_s']['sparta'] * 1e3:.1f}/{row['cpu_s']['tp'] * 1e3:.1f}; "
            f"sparta/tp {row['sparta_over_tp']:.3f}; export ({mode}) "
            f"{row['cpu_s']['sparta_export'] * 1e3:.1f} ms, /tp {row['export_over_tp']:.3f}"
        )
    return rows


# ------------------------------------------------------------------ PGD
def art_pgd(model: nn.Module, shape: tuple[int, ...], eps: float, steps: int, batch: int):
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model,
        loss=nn.CrossEntropyLoss(),
        input_shape=shape,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    atk = ProjectedGradientDescentPyTorch(
        clf,
        norm=np.inf,
        eps=eps,
        eps_step=2.5 * eps / steps,
        max_iter=steps,
        num_random_init=1,
        batch_size=batch,
        verbose=False,
    )

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(atk.generate(x=x.numpy(), y=y.numpy()))

    return run


def pgd_attacks(model: nn.Module, shape: tuple[int, ...], args: argparse.Namespace):
    """name -> function (x, y) -> x_adv, for each library."""
    import torchattacks

    eps, k = args.eps, args.k
    ours = attacks.create("pgd", model, eps=eps, steps=k, num_classes=10)
    ta = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / k, steps=k, random_start=True)
    return {
        "sparta": lambda x, y: ours(x, y).x_adv,
        "torchattacks": lambda x, y: ta(x, y),
        "art": art_pgd(model, shape, eps, k, args.pgd_batch),
        "hand": lambda x, y: hand_pgd(model, x, y, eps, k),
    }


def pgd_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    train = sdata.load("fashion-mnist", "train")
    test = sdata.load("fashion-mnist", "test")
    rows = []
    for name in args.pgd_models:
        model = trained(name, train, args.epochs)
        for p in model.parameters():
            p.requires_grad_(False)
        fns = pgd_attacks(model, tuple(test.info.input_shape), args)
        x, y = test.x[: args.pgd_batch], test.y[: args.pgd_batch]
        torch.manual_seed(0)
        med = medians(
            interleaved({k: (lambda f=f, x=x, y=y: f(x, y)) for k, f in fns.items()}, args.repeats)
        )
        xs, ys = test.x[: args.n_pgd], test.y[: args.n_pgd]
        robust = {}
        with torch.no_grad():
            clean = float((model(xs).argmax(1) == ys).float().mean())
        for k, f in fns.items():
            torch.manual_seed(0)
            correct = 0
            for i in range(0, len(ys), args.pgd_batch):
                xb, yb = xs[i : i + args.pgd_batch], ys[i : i + args.pgd_batch]
                x_adv = f(xb, yb)
                assert float((x_adv - xb).abs().max()) <= args.eps + 1e-6, k
                with torch.no_grad():
                    correct += int((model(x_adv).argmax(1) == yb).sum())
            robust[k] = correct / len(ys)
        row = {
            "model": name,
            "eps": args.eps,
            "k": args.k,
            "batch": args.pgd_batch,
            "n": len(ys),
            "clean_acc": clean,
            "robust_acc": robust,
            "cpu_s": {k: v["cpu"] for k, v in med.items()},
            "wall_s": {k: v["wall"] for k, v in med.items()},
        }
        row["over_hand"] = {k: v / row["cpu_s"]["hand"] for k, v in row["cpu_s"].items()}
        rows.append(row)
        print(
            f"{name} PGD-{args.k}: "
            + ", ".join(
                f"{k} {row['cpu_s'][k] * 1e3:.1f} ms ({row['over_hand'][k]:.3f}x hand, "
                f"robust {robust[k]:.3f})"
                for k in fns
            )
        )
    return rows


# ------------------------------------------------------------------ AutoAttack
def autoattack_part(args: argparse.Namespace) -> dict[str, Any]:
    import torchattacks

    train = sdata.load("fashion-mnist", "train")
    test = sdata.load("fashion-mnist", "test")
    model = trained(args.aa_model, train, args.epochs)
    x, y = test.x[: args.n_aa], test.y[: args.n_aa]
    eps = args.aa_eps
    results: dict[str, dict[str, list[float]]] = {"sparta": {}, "torchattacks": {}}

    steps = args.aa_steps

    def sparta_run() -> float:
        rep = attacks.evaluate(
            model, (x, y), eps=eps, suite="standard", batch_size=len(y), steps=steps
        )
        results["sparta"].setdefault("by_attack_s", []).append(rep.attack_time_s)
        return rep.robust_acc

    def ta_run() -> float:
        aa = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0)
        if steps is not None:  # its APGD, APGD-T and FAB default to 10 steps
            for atk in aa._autoattack.attacks:
                if hasattr(atk, "steps"):
                    atk.steps = steps
        x_adv = aa(x, y)
        with torch.no_grad():
            return float((model(x_adv).argmax(1) == y).float().mean())

    runs = {"sparta": sparta_run, "torchattacks": ta_run}
    times: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": []} for k in runs}
    for r in range(args.aa_repeats):
        for k in runs if r % 2 == 0 else reversed(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            acc = runs[k]()
            times[k]["cpu"].append(time.process_time() - cpu)
            times[k]["wall"].append(time.perf_counter() - wall)
            results[k].setdefault("robust_acc", []).append(acc)
    med = medians(times)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    out = {
        "model": args.aa_model,
        "eps": eps,
        "steps": steps,
        "n": len(y),
        "clean_acc": clean,
        "robust_acc": {k: v["robust_acc"][0] for k, v in results.items()},
        "runs": results,
        "cpu_s": {k: v["cpu"] for k, v in med.items()},
        "wall_s": {k: v["wall"] for k, v in med.items()},
        "times": times,
    }
    out["sparta_over_torchattacks"] = out["cpu_s"]["sparta"] / out["cpu_s"]["torchattacks"]
    print(
        f"AutoAttack standard, {args.aa_model}, eps {eps:g}, n {len(y)}: robust acc sparta "
        f"{out['robust_acc']['sparta']:.3f}, torchattacks {out['robust_acc']['torchattacks']:.3f}; "
        f"CPU s sparta {out['cpu_s']['sparta']:.1f}, torchattacks "
        f"{out['cpu_s']['torchattacks']:.1f} ({out['sparta_over_torchattacks']:.3f}x)"
    )
    return out


# ------------------------------------------------------------------ tables
def tables(result: dict[str, Any]) -> str:
    lines = []
    result = {k: v["result"] for k, v in result.items()}
    if "prune" in result:
        lines += [
            "| model | same shapes | params dense / pruned | MACs dense / pruned (TP count) "
            "| ms dense | ms sparta | ms Torch-Pruning | sparta / TP |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in result["prune"]:
            lines.append(
                f"| {r['model']} | {'yes' if r['same_shapes'] else 'no'} "
                f"| {r['dense']['tp_params']:,} / {r['sparta']['tp_params']:,} "
                f"(TP {r['tp']['tp_params']:,}) "
                f"| {r['dense']['tp_macs']:,} / {r['sparta']['tp_macs']:,} "
                f"(TP {r['tp']['tp_macs']:,}) "
                f"| {r['cpu_s']['dense'] * 1e3:.1f} | {r['cpu_s']['sparta'] * 1e3:.1f} "
                f"| {r['cpu_s']['tp'] * 1e3:.1f} | {r['sparta_over_tp']:.2f} |"
            )
        lines.append("")
    if "step" in result:
        s = result["step"]
        lines += [
            "| masked step (LeNet-300-100, 90%) | ms |",
            "|---|---|",
            f"| dense | {s['step_s']['dense'] * 1e3:.3f} |",
            f"| sparta | {s['step_s']['sparta'] * 1e3:.3f} |",
            f"| torch.nn.utils.prune | {s['step_s']['torch_prune'] * 1e3:.3f} |",
            f"| sparta / torch.nn.utils.prune | {s['sparta_over_torch_prune']:.2f} |",
            "",
        ]
    if "pgd" in result:
        lines += [
            "| model | library | ms per batch of 250 | x hand loop | robust acc |",
            "|---|---|---|---|---|",
        ]
        for r in result["pgd"]:
            for k in r["cpu_s"]:
                lines.append(
                    f"| {r['model']} | {k} | {r['cpu_s'][k] * 1e3:.1f} "
                    f"| {r['over_hand'][k]:.3f} | {r['robust_acc'][k]:.3f} |"
                )
        lines.append("")
    if "autoattack" in result:
        a = result["autoattack"]
        lines += [
            "| standard suite | robust acc | CPU s |",
            "|---|---|---|",
            f"| sparta | {a['robust_acc']['sparta']:.3f} | {a['cpu_s']['sparta']:.1f} |",
            f"| torchattacks AutoAttack | {a['robust_acc']['torchattacks']:.3f} "
            f"| {a['cpu_s']['torchattacks']:.1f} |",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--repeats", type=int, default=11, help="interleaved repeats")
    p.add_argument("--prune-models", nargs="+", default=["lenet5", "conv4", "resnet20"])
    p.add_argument("--ratio", type=float, default=0.5, help="channels removed per layer")
    p.add_argument("--batch", type=int, default=256, help="inference batch")
    p.add_argument("--train-steps", type=int, default=50, help="masked steps per repeat")
    p.add_argument("--pgd-models", nargs="+", default=["lenet300", "lenet5"])
    p.add_argument("--epochs", type=int, default=1, help="training epochs of attacked models")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--k", type=int, default=10, help="PGD steps")
    p.add_argument("--pgd-batch", type=int, default=250)
    p.add_argument("--n-pgd", type=int, default=1000, help="test images for robust accuracy")
    p.add_argument("--aa-model", default="lenet300")
    p.add_argument("--aa-eps", type=float, default=0.03)
    p.add_argument("--n-aa", type=int, default=500)
    p.add_argument("--aa-repeats", type=int, default=2)
    p.add_argument(
        "--aa-steps",
        type=int,
        help="iterations of both suites' gradient attacks (default: each library's own: "
        "sparta 100 as the reference AutoAttack, torchattacks' port 10)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "peers.json"
    base = {"versions": versions(), "threads": torch.get_num_threads()}
    print(base["versions"])
    runs = {"prune": prune_part, "step": step_part, "pgd": pgd_part, "autoattack": autoattack_part}
    for part in args.parts:
        save(path, part, {**base, "args": vars(args), "result": runs[part](args)})
    print(tables(json.loads(path.read_text())))
    print(f"results: {path}")


def step_part(args: argparse.Namespace) -> dict[str, Any]:
    return train_steps(args.repeats, args.train_steps, 128)


def save(path: Path, part: str, entry: dict[str, Any]) -> None:
    """Put one part's result into ``path`` (kept: the other parts' latest results), under a
    lock, so parts can run in separate processes."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = json.loads(path.read_text()) if path.exists() else {}
        result[part] = entry
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
