"""Bound speed: IBP, CROWN and alpha-CROWN on LeNet-300-100 (Fashion-MNIST), vs auto_LiRPA.

LeNet-300-100 is trained for ``--epochs`` epochs (Adam, lr 1e-3, batch 128) unless ``--ckpt``
names a run folder; then the first ``--n`` test images are bounded at Linf ``--eps`` (∩ [0,1])
in batches of ``--batch``: logit bounds and margin bounds ``z_y - z_j`` (one call per batch,
``sparta.certify.bounds(..., y=labels)``). Reported: images per second (median of
``--repeats`` interleaved passes over all batches, after a warm-up), verified counts (margin
lower bound > 0 for every j != y, among clean-correct images).

When ``auto_LiRPA`` is importable (0.7.1 from github:Verified-Intelligence/auto_LiRPA, e.g.
its source on ``PYTHONPATH`` with ``appdirs`` and ``graphviz`` installed beside it, or
``pip install --no-deps`` into a separate venv), the same problems are bounded with
``BoundedModule.compute_bounds`` (``method="IBP"``/``"CROWN"``; logit and margin rows in one
``C``, one call per batch as ours): max |difference| of the bounds (goal <= 1e-4) and time
ratio (auto_LiRPA time / ours; goal >= 1), timed after ours in the same process. Otherwise the
comparison is skipped with a message. Writes ``benchmarks/results/certify_speed.json``::

    python benchmarks/certify_speed.py                      # full settings
    python benchmarks/certify_speed.py --n 100 --epochs 1 --repeats 1 --results /tmp/x  # smoke
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

import sparta
from sparta import data as sdata
from sparta import models
from sparta.certify import bounds

RESULTS = Path(__file__).parent / "results"
METHODS = ("ibp", "crown", "alpha-crown")


def trained_model(args: argparse.Namespace) -> torch.nn.Module:
    if args.ckpt:
        return sparta.load(args.ckpt).eval()
    train = sdata.load("fashion-mnist", "train")
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        for idx in torch.randperm(len(train.y), generator=g).split(128):
            loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def ours(model, batches, eps: float, method: str) -> list:
    with torch.no_grad():
        return [bounds(model, x, eps, method=method, y=y) for x, y in batches]


def lirpa(model, batches, eps: float, method: str) -> list | None:
    """auto_LiRPA's (lower, upper, margin_lower) per batch, or None when not importable."""
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    except ImportError:
        return None
    x0 = batches[0][0]
    bm = BoundedModule(model, torch.zeros_like(x0), device="cpu", verbose=0)
    out = []
    for x, y in batches:
        k = 10
        eye = torch.eye(k)
        c = torch.cat([eye.expand(len(y), k, k), eye[y].unsqueeze(1) - eye.unsqueeze(0)], 1)
        ptb = PerturbationLpNorm(
            norm=float("inf"), eps=eps, x_L=(x - eps).clamp(0, 1), x_U=(x + eps).clamp(0, 1)
        )
        bx = BoundedTensor(x, ptb)
        with torch.no_grad():  # one call, as ours: logit rows and margin rows through C
            lo, up = bm.compute_bounds(x=(bx,), C=c, method=method)
        lo, up, m_lo = lo[:, :k], up[:, :k], lo[:, k:]
        out.append((lo, up, m_lo))
    return out


def timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    res = fn()
    return time.perf_counter() - start, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="run folder of a trained lenet300 (default: train one)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--eps", type=float, default=0.01)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = trained_model(args)
    for q in model.parameters():
        q.requires_grad_(False)
    test = sdata.load("fashion-mnist", "test")
    x_all, y_all = test.x[: args.n], test.y[: args.n]
    batches = list(zip(x_all.split(args.batch), y_all.split(args.batch), strict=True))
    with torch.no_grad():
        correct = model(x_all).argmax(1) == y_all
    result: dict[str, Any] = {
        "model": "lenet300",
        "dataset": "fashion-mnist",
        "n": len(y_all),
        "batch": args.batch,
        "eps": args.eps,
        "clean_correct": int(correct.sum()),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    found: dict[str, list] = {}
    for m in METHODS:  # warm-up
        found[m] = ours(model, batches[:1], args.eps, m)
    for _ in range(args.repeats):
        for m in METHODS:
            t, found[m] = timed(lambda m=m: ours(model, batches, args.eps, m))
            times[m].append(t)
    for m in METHODS:
        med = statistics.median(times[m])
        key = m.replace("-", "_")
        result[f"{key}_images_per_s"] = len(y_all) / med
        result[f"{key}_ms_per_image"] = 1000 * med / len(y_all)
        # verified among clean-correct images
        ok = torch.cat([b.verified for b in found[m]]) & correct
        result[f"{key}_verified"] = int(ok.sum())
    try:
        import auto_LiRPA

        result["auto_lirpa_version"] = getattr(auto_LiRPA, "__version__", "unknown")
    except ImportError:
        print("auto_LiRPA is not importable: skipping the side-by-side comparison")
        result["auto_lirpa"] = "not importable; comparison skipped"
    if "auto_lirpa_version" in result:
        for m, lm in (("ibp", "IBP"), ("crown", "CROWN")):
            lirpa(model, batches[:1], args.eps, lm)  # warm-up
            lt = []
            for _ in range(args.repeats):
                t, theirs = timed(lambda lm=lm: lirpa(model, batches, args.eps, lm))
                lt.append(t)
            diff = 0.0
            verified_theirs = 0
            for b, (lo, up, m_lo), (_, y) in zip(found[m], theirs, batches, strict=True):
                theirs_m = m_lo.view(len(y), -1)  # row y of C is zero, as ours
                diff = max(
                    diff, float((b.lower - lo).abs().max()), float((b.upper - up).abs().max())
                )
                diff = max(diff, float((b.margin_lower - theirs_m).abs().max()))
                is_y = torch.zeros_like(theirs_m, dtype=torch.bool)
                is_y[torch.arange(len(y)), y] = True
                verified_theirs += int(((theirs_m > 0) | is_y).all(1).sum())
            key = m.replace("-", "_")
            result[f"auto_lirpa_{key}_ms_per_image"] = 1000 * statistics.median(lt) / len(y_all)
            result[f"auto_lirpa_{key}_max_abs_diff"] = diff
            result[f"auto_lirpa_{key}_time_ratio"] = statistics.median(lt) / statistics.median(
                times[m]
            )
            result[f"auto_lirpa_{key}_verified_all"] = verified_theirs
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "certify_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
