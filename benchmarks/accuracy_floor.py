"""Test accuracy on full Fashion-MNIST (floors: lenet300 >= 0.89, lenet5 >= 0.90).

Hyper-parameters are chosen on the held-out validation split (10% of train), never on
the test set; the test set is evaluated once at the end.

    python benchmarks/accuracy_floor.py [--models lenet300 lenet5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sparta.train import TrainConfig, train

RESULTS = Path(__file__).parent / "results"
RECIPES = {
    "lenet300": dict(epochs=20, lr=0.05, batch_size=128, weight_decay=5e-4),
    "lenet5": dict(epochs=15, lr=0.05, batch_size=128, weight_decay=5e-4),
}
FLOORS = {"lenet300": 0.89, "lenet5": 0.90}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(RECIPES))
    args = ap.parse_args()
    rows = []
    for name in args.models:
        cfg = TrainConfig(model=name, dataset="fashion-mnist", **RECIPES[name])
        res = train(cfg, root=RESULTS / "runs", name=f"accuracy-{name}", overwrite=True, quiet=True)
        s = res.summary
        rows.append(
            {
                "model": name,
                **RECIPES[name],
                "test_acc": s["test_acc"],
                "best_val_acc": s.get("best_val_acc"),
                "train_time_s": s["train_time_s"],
                "floor": FLOORS[name],
                "meets_floor": s["test_acc"] >= FLOORS[name],
            }
        )
        print(
            f"{name:<9} test_acc {s['test_acc']:.4f} (floor {FLOORS[name]}) "
            f"in {s['train_time_s']:.0f} s"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy_floor.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
