"""Attack speed: our PGD-k vs the bare minimum, and adversarial-training epoch cost.

1. PGD-k throughput (LeNet-300-100 and LeNet-5 trained ``--epochs`` epochs on Fashion-MNIST,
   batch 250 of test images, Linf eps 0.1, 0.03 and 0.01): our
   ``sparta.attacks.create("pgd", ...)`` against a hand-written loop of exactly k
   forward+backward passes (random start, sign step, projection, parameters frozen, eval
   mode) that returns its last iterate and decides nothing. Ratio = our time / hand time
   (goal <= 1.00: no overhead; issue 16), medians over interleaved repeats (shuffled order,
   after a warm-up) of the process's CPU time on one thread -- on a shared, loaded machine
   the wall time mostly measures the wait for a core; its ratio is reported beside it. Also
   reported: the share of the batch each one fools (ours: its success flags; the hand loop's
   last iterate: one forward outside the timing), so a speed-up cannot hide a weaker attack.
2. One training epoch on a subset with PGD-AT (10 steps), TRADES (10 steps) and Fast-AT,
   as a multiple of a standard epoch (medians over interleaved repeats).

Writes ``benchmarks/results/attack_speed.json``:

    python benchmarks/attack_speed.py                       # full settings
    python benchmarks/attack_speed.py --repeats 2 --epochs 0 --epoch-repeats 0 \
        --results /tmp/x                                    # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import sparta.attacks.whitebox  # noqa: F401  (registers pgd)
import sparta.defenses  # noqa: F401  (registers the training objectives)
from sparta import data as sdata
from sparta import models
from sparta.attacks import create
from sparta.train import TrainConfig, Trainer, create_objective

RESULTS = Path(__file__).parent / "results"


def hand_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, k: int):
    """The bare minimum: k forward+backward passes, sign step, projection."""
    alpha = 2.5 * eps / k
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(k):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps)
        x_adv = x_adv.clamp(0, 1)
    return x_adv


def trained(name: str, train: sdata.ImageDataset, epochs: int) -> torch.nn.Module:
    """``name`` trained ``epochs`` epochs (Adam, lr 1e-3, batch 128, seed 0), in eval mode."""
    torch.manual_seed(0)
    model = models.create(name, dataset=train.info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(train.y), generator=g).split(128):
            loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def time_it(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict[str, Any], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU (process) times of each function over ``repeats`` rounds, after one
    warm-up round; the order within a round is shuffled (seeded), so no function always
    runs after the same one."""
    for fn in fns.values():
        fn()
    times = {k: {"wall": [], "cpu": []} for k in fns}
    order = random.Random(0)
    for _ in range(repeats):
        names = list(fns)
        order.shuffle(names)
        for k in names:
            wall, cpu = time.perf_counter(), time.process_time()
            fns[k]()
            times[k]["cpu"].append(time.process_time() - cpu)
            times[k]["wall"].append(time.perf_counter() - wall)
    return times


def pgd_throughput(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, args: argparse.Namespace
) -> dict[str, Any]:
    for p in model.parameters():
        p.requires_grad_(False)  # frozen, as our attack freezes it: no weight gradients
    ours = create("pgd", model, eps=eps, steps=args.k, num_classes=10)
    times = interleaved(
        {"ours": lambda: ours(x, y), "hand": lambda: hand_pgd(model, x, y, eps, args.k)},
        args.repeats,
    )
    med = {k: {c: statistics.median(v[c]) for c in v} for k, v in times.items()}
    torch.manual_seed(0)
    x_hand = hand_pgd(model, x, y, eps, args.k)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
        hand_fooled = float((model(x_hand).argmax(1) != y).float().mean())
    return {
        "eps": eps,
        "k": args.k,
        "batch": len(x),
        "clean_acc": clean,
        "ours_cpu_s": med["ours"]["cpu"],
        "hand_cpu_s": med["hand"]["cpu"],
        "ratio": med["ours"]["cpu"] / med["hand"]["cpu"],
        "ours_wall_s": med["ours"]["wall"],
        "hand_wall_s": med["hand"]["wall"],
        "wall_ratio": med["ours"]["wall"] / med["hand"]["wall"],
        "goal": 1.0,
        "ours_fooled": float(ours(x, y).success.float().mean()),
        "hand_fooled": hand_fooled,
        "times_s": times,
    }


def epoch_costs(args: argparse.Namespace, train: sdata.ImageDataset) -> dict[str, Any]:
    data = train.take(min(args.subset, len(train)), seed=0)
    objectives = {
        "standard": None,
        "pgd-at": lambda: create_objective("pgd-at", eps=args.eps[0], steps=10),
        "trades": lambda: create_objective("trades", eps=args.eps[0], steps=10),
        "fast": lambda: create_objective("fast", eps=args.eps[0]),
    }
    times: dict[str, list[float]] = {k: [] for k in objectives}
    cfg = TrainConfig(model="lenet5", epochs=1, batch_size=128, lr=0.01, val_fraction=0)
    for rep in range(args.epoch_repeats + 1):  # repeat 0 is a warm-up, not recorded
        for name, make in objectives.items():
            torch.manual_seed(0)
            model = models.create("lenet5", dataset=data.info)
            trainer = Trainer(model, data, cfg, objective=make() if make else None, quiet=True)
            t = time_it(trainer.train_epoch)
            if rep:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "subset": len(data),
        "epoch_s": med,
        "multiple_of_standard": {k: v / med["standard"] for k, v in med.items()},
        "all_s": times,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lenet300", "lenet5"])
    p.add_argument("--k", type=int, default=10, help="PGD steps")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.03, 0.01])
    p.add_argument("--epochs", type=int, default=1, help="training epochs of each model")
    p.add_argument("--repeats", type=int, default=41, help="interleaved PGD repeats")
    p.add_argument("--subset", type=int, default=4096, help="training images per epoch")
    p.add_argument("--epoch-repeats", type=int, default=3, help="0: skip the epoch costs")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    test = sdata.load("fashion-mnist", "test")
    train = sdata.load("fashion-mnist", "train")
    x, y = test.x[: args.batch], test.y[: args.batch]
    pgd = []
    for name in args.models:
        model = trained(name, train, args.epochs)
        for eps in args.eps:
            row = {"model": name, **pgd_throughput(model, x, y, eps, args)}
            pgd.append(row)
            print(
                f"{name} PGD-{row['k']} eps {eps:g}: CPU ours {row['ours_cpu_s'] * 1e3:.1f} ms, "
                f"hand {row['hand_cpu_s'] * 1e3:.1f} ms, ratio {row['ratio']:.3f} (goal <= 1.00), "
                f"wall ratio {row['wall_ratio']:.3f}; "
                f"fooled: ours {row['ours_fooled']:.3f}, hand {row['hand_fooled']:.3f}"
            )
    result: dict[str, Any] = {
        "pgd": pgd,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    if args.epoch_repeats:
        result["adv_epoch"] = epoch_costs(args, train)
        for k, v in result["adv_epoch"]["multiple_of_standard"].items():
            print(f"epoch {k}: {v:.2f}x standard")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attack_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out / 'attack_speed.json'}")


if __name__ == "__main__":
    main()
