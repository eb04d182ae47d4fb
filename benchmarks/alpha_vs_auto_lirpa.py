"""alpha-CROWN side by side with auto_LiRPA's at equal iterations (issue 15).

auto_LiRPA is not installed with sparta: pass the folder that holds its ``auto_LiRPA`` package
(a checkout of github.com/Verified-Intelligence/auto_LiRPA) with ``--auto-lirpa`` (more
folders, e.g. for its ``appdirs``/``graphviz`` imports, with ``--path``). Both bound the margins
``z_y - z_j`` (j != y) of the LeNet-300-100 saved by ``benchmarks/beta_crown.py
--model-cache`` over the Linf ball (eps 0.02) ∩ [0, 1] on the first ``--n`` of its 200 test
images: CROWN, then alpha-CROWN with auto_LiRPA's defaults (20 Adam iterations, lr_alpha 0.5,
decay 0.98; intermediate bounds re-optimised). CPU times (process time) are measured in one
process, interleaved. Writes ``alpha_vs_auto_lirpa.json`` to ``--results``.

    python benchmarks/alpha_vs_auto_lirpa.py --auto-lirpa /path/to/auto_LiRPA-checkout \\
        --model /tmp/bc_lenet300.pt --n 100 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sparta import data, models
from sparta.certify.crown import intermediate_bounds, optimize_bounds, output_bounds
from sparta.certify.domain import InputDomain
from sparta.certify.graph import trace
from sparta.certify.ibp import interval

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--auto-lirpa", required=True, help="folder holding the auto_LiRPA package")
    p.add_argument("--path", nargs="*", default=[], help="more folders for its imports")
    p.add_argument("--model", required=True, help="state_dict of the LeNet-300-100")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path[:0] = [args.auto_lirpa, *args.path]
    from auto_LiRPA import BoundedModule, BoundedTensor
    from auto_LiRPA.perturbations import PerturbationLpNorm

    test = data.load("fashion-mnist", "test").take(200, seed=0)  # beta_crown.py's subset
    model = models.create("lenet300", dataset=test.info)
    model.load_state_dict(torch.load(args.model))
    model.eval()
    x, y, eps = test.x[: args.n], test.y[: args.n].long(), args.eps
    n, k = len(y), 10
    keep = torch.ones(n, k, dtype=torch.bool)
    keep[torch.arange(n), y] = False
    c = (torch.eye(k)[y].unsqueeze(1) - torch.eye(k).unsqueeze(0))[keep].view(n, k - 1, k)
    times: dict[str, float] = {}

    def timed(key, fn):
        start = time.process_time()
        out = fn()
        times[key] = time.process_time() - start
        return out

    bm = BoundedModule(model, torch.zeros(1, *x.shape[1:]))
    ptb = PerturbationLpNorm(
        norm=float("inf"), x_L=(x - eps).clamp(0, 1), x_U=(x + eps).clamp(0, 1)
    )
    bx = BoundedTensor(x, ptb)
    theirs = {
        "crown": timed("auto_lirpa_crown", lambda: bm.compute_bounds(
            x=(bx,), C=c, method="CROWN", bound_upper=False)[0].detach()),
    }  # fmt: skip
    bm.set_bound_opts({"optimize_bound_args": {"iteration": 20, "lr_alpha": 0.5}})
    theirs["alpha"] = timed("auto_lirpa_alpha", lambda: bm.compute_bounds(
        x=(bx,), C=c, method="alpha-CROWN", bound_upper=False)[0].detach())  # fmt: skip
    graph = trace(model, tuple(x.shape[1:]))
    dom = InputDomain(x, eps)
    spec = c.transpose(0, 1)

    def crown():
        with torch.no_grad():
            inter = intermediate_bounds(graph, dom, interval(graph, dom))
            return output_bounds(graph, dom, spec, inter)[0], inter

    ours_crown, inter = timed("sparta_crown", crown)
    ours_alpha = timed("sparta_alpha", lambda: optimize_bounds(graph, dom, spec, inter)[0])
    times["sparta_alpha"] += times["sparta_crown"]
    ours = {"crown": ours_crown.t(), "alpha": ours_alpha.t()}
    diff = ours["alpha"] - theirs["alpha"]
    res = {
        "n": n,
        "eps": eps,
        "torch": torch.__version__,
        "crown_max_abs_diff": float((ours["crown"] - theirs["crown"]).abs().max()),
        "auto_lirpa_mean_gain": float((theirs["alpha"] - theirs["crown"]).mean()),
        "sparta_mean_gain": float((ours["alpha"] - ours["crown"]).mean()),
        "sparta_minus_auto_lirpa": {
            "mean": float(diff.mean()),
            "min": float(diff.min()),
            "max": float(diff.max()),
            "share_tighter": float((diff > 1e-5).float().mean()),
            "share_looser": float((diff < -1e-5).float().mean()),
        },
        "cpu_time_s": times,
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "alpha_vs_auto_lirpa.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
