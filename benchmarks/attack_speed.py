"""Attack speed: our PGD-k vs the bare minimum, and adversarial-training epoch cost.

1. PGD-k throughput (LeNet-5, batch 256, Fashion-MNIST test images, Linf eps 0.1): our
   ``sparta.attacks.create("pgd", ...)`` against a hand-written loop of exactly k
   forward+backward passes (random start, sign step, projection, parameters frozen, eval
   mode). Ratio = hand time / our time (goal >= 0.97: no overhead). Medians over
   interleaved repeats, after a warm-up.
2. One training epoch on a subset with PGD-AT (10 steps), TRADES (10 steps) and Fast-AT,
   as a multiple of a standard epoch (medians over interleaved repeats).

Writes ``benchmarks/results/attack_speed.json``. Run it on a quiet machine:

    python benchmarks/attack_speed.py                       # full settings
    python benchmarks/attack_speed.py --repeats 2 --subset 512 --results /tmp/x  # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
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


def time_it(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pgd_throughput(args: argparse.Namespace, test: sdata.ImageDataset) -> dict[str, Any]:
    torch.manual_seed(0)
    model = models.create("lenet5", dataset=test.info).eval()
    x, y = test.x[: args.batch], test.y[: args.batch]
    for p in model.parameters():
        p.requires_grad_(False)  # frozen, as our attack freezes it: no weight gradients
    ours = create("pgd", model, eps=args.eps, steps=args.k, num_classes=test.num_classes)

    def run_ours() -> None:
        ours(x, y)

    def run_hand() -> None:
        hand_pgd(model, x, y, args.eps, args.k)

    run_ours(), run_hand()  # warm-up
    t_ours, t_hand = [], []
    for _ in range(args.repeats):
        t_ours.append(time_it(run_ours))
        t_hand.append(time_it(run_hand))
    ours_med, hand_med = statistics.median(t_ours), statistics.median(t_hand)
    return {
        "k": args.k,
        "batch": args.batch,
        "ours_s": ours_med,
        "hand_s": hand_med,
        "ours_examples_per_s": args.batch / ours_med,
        "hand_examples_per_s": args.batch / hand_med,
        "ratio": hand_med / ours_med,
        "goal": 0.97,
        "ours_all_s": t_ours,
        "hand_all_s": t_hand,
    }


def epoch_costs(args: argparse.Namespace, train: sdata.ImageDataset) -> dict[str, Any]:
    data = train.take(min(args.subset, len(train)), seed=0)
    objectives = {
        "standard": None,
        "pgd-at": lambda: create_objective("pgd-at", eps=args.eps, steps=10),
        "trades": lambda: create_objective("trades", eps=args.eps, steps=10),
        "fast": lambda: create_objective("fast", eps=args.eps),
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
    p.add_argument("--k", type=int, default=10, help="PGD steps")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=15, help="interleaved PGD repeats")
    p.add_argument("--subset", type=int, default=4096, help="training images per epoch")
    p.add_argument("--epoch-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    test = sdata.load("fashion-mnist", "test")
    train = sdata.load("fashion-mnist", "train")
    result = {
        "pgd": pgd_throughput(args, test),
        "adv_epoch": epoch_costs(args, train),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attack_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    pgd = result["pgd"]
    print(
        f"PGD-{pgd['k']}: ours {pgd['ours_s']:.4f}s, hand {pgd['hand_s']:.4f}s, "
        f"ratio {pgd['ratio']:.3f} (goal >= 0.97)"
    )
    for k, v in result["adv_epoch"]["multiple_of_standard"].items():
        print(f"epoch {k}: {v:.2f}x standard")
    print(f"results: {out / 'attack_speed.json'}")


if __name__ == "__main__":
    main()
