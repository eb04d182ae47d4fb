"""alpha-CROWN with a slope per (bounded node, ReLU), beta-CROWN on split sub-problems."""

import pytest
import torch
from torch import nn

from sparta.certify.crown import (
    intermediate_bounds,
    optimize_bounds,
    output_bounds,
    refined_nodes,
    relu_relaxation,
    unstable_index,
)
from sparta.certify.domain import InputDomain
from sparta.certify.graph import trace
from sparta.certify.ibp import interval, spec_matrix

from .helpers import ARCHS, TOL, samples, small_model

EPS = 0.03


def mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Three hidden layers with many unstable ReLUs at EPS."""
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5)).eval()
    x = torch.rand(3, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def setup(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS):
    graph = trace(model, tuple(x.shape[1:]))
    dom = InputDomain(x, eps)
    ibp = interval(graph, dom)
    k = ibp[graph.output][0].shape[1]
    return graph, dom, ibp, spec_matrix(y, k).transpose(0, 1)  # rows e_y - e_j


def test_first_gradient_wrt_slopes_is_nonzero():
    """The slopes start at CROWN's 0/1; the bound must still have a gradient there (issue 15:
    a clamp in the graph gives none on torch 2.14.1), for output and intermediate slopes."""
    model, x, y = mlp()
    graph, dom, ibp, spec = setup(model, x, y)
    crown = intermediate_bounds(graph, dom, ibp)
    relus = graph.relus()
    inits = {r.name: relu_relaxation(*crown[r.inputs[0]])[0] for r in relus}
    assert all(set(v.unique().tolist()) <= {0.0, 1.0} for v in inits.values())
    out_alpha = {k: v.expand(spec.shape[0], *v.shape).clone().requires_grad_(True) for k, v in
                 inits.items()}  # fmt: skip
    low, _ = output_bounds(graph, dom, spec, crown, out_alpha)
    grads = torch.autograd.grad(low.sum(), list(out_alpha.values()))
    for r, g in zip(relus, grads, strict=True):
        unstable = ((crown[r.inputs[0]][0] < 0) & (crown[r.inputs[0]][1] > 0)).expand_as(g)
        assert unstable.any() and g[unstable].abs().sum() > 0, r.name
        assert (g[~unstable] == 0).all()  # stable neurons: the slope is not used
    # intermediate slopes: the second hidden pre-activation's rows, through the output bound
    name = refined_nodes(graph, dom)[0]
    idx = {n: unstable_index(*crown[n]) for n in refined_nodes(graph, dom)}
    assert idx[name].numel() > 3
    first = relus[0].name
    al = inits[first].expand(2 * idx[name].numel(), *inits[first].shape).clone()
    al.requires_grad_(True)
    inter = intermediate_bounds(graph, dom, crown, alphas={name: {first: al}}, idx=idx)
    low, _ = output_bounds(graph, dom, spec, inter)
    (g,) = torch.autograd.grad(low.sum(), [al])
    assert g.abs().sum() > 0


def test_one_step_improves_on_crown():
    model, x, y = mlp()
    graph, dom, ibp, spec = setup(model, x, y)
    crown = intermediate_bounds(graph, dom, ibp)
    base, _ = output_bounds(graph, dom, spec, crown)
    low, _, _ = optimize_bounds(graph, dom, spec, crown, steps=1)
    assert (low >= base - 1e-6).all() and (low > base + 1e-4).any()


def test_intermediate_slopes_tighten_intermediate_and_output_bounds():
    model, x, y = mlp()
    graph, dom, ibp, spec = setup(model, x, y)
    crown = intermediate_bounds(graph, dom, ibp)
    out_only, fixed, _ = optimize_bounds(graph, dom, spec, crown, intermediate=False)
    full, inter, _ = optimize_bounds(graph, dom, spec, crown)
    for name in refined_nodes(graph, dom):  # fixed: CROWN's; optimised: inside, tighter somewhere
        assert torch.equal(fixed[name][0], crown[name][0])
        assert (inter[name][0] >= crown[name][0]).all() and (inter[name][1] <= crown[name][1]).all()
    last = refined_nodes(graph, dom)[-1]
    assert (inter[last][0] > crown[last][0] + 1e-4).any()
    assert (full.mean() > out_only.mean()) and (full >= out_only - 0.05).all()
    z = model(samples(x, EPS, 500, seed=3).flatten(0, 1)).view(500, len(x), -1).detach()
    margins = z.gather(2, y[None, :, None].expand(500, -1, 1)) - z  # (n, B, K)
    assert (margins >= full.t()[None] - TOL).all()


def _pre_activations(graph, x: torch.Tensor) -> dict[str, torch.Tensor]:
    vals = {graph.input.name: x}
    for n in graph.nodes[1:]:
        vals[n.name] = n.op.forward(*(vals[i] for i in n.inputs))
    return vals


def split_subproblem(graph, dom, ibp, anchor: torch.Tensor, per_layer: int = 3):
    """Split the first ``per_layer`` unstable neurons of every ReLU per example, each on the side
    ``anchor`` (B, *shape; a point of the ball) lies on: a non-empty sub-domain."""
    crown = intermediate_bounds(graph, dom, ibp)
    vals = _pre_activations(graph, anchor)
    ref, splits = {}, {}
    for r in graph.relus():
        name = r.inputs[0]
        lo, up = (t.clone().flatten(1) for t in crown[name])
        sign = torch.zeros_like(lo)
        z = vals[name].flatten(1)
        for b in range(lo.shape[0]):
            cand = ((lo[b] < 0) & (up[b] > 0) & (z[b].abs() > 1e-3)).nonzero().squeeze(1)
            for i in cand[:per_layer].tolist():
                sign[b, i] = 1.0 if z[b, i] > 0 else -1.0
        lo = torch.where(sign > 0, 0.0, lo)
        up = torch.where(sign < 0, 0.0, up)
        ref[name] = (lo.view_as(crown[name][0]), up.view_as(crown[name][1]))
        splits[name] = sign.view_as(crown[name][0])
    return intermediate_bounds(graph, dom, ibp, ref), splits


def in_subdomain(graph, points: torch.Tensor, splits: dict[str, torch.Tensor]) -> torch.Tensor:
    """(n, B) bool: the point satisfies every split constraint of its example."""
    n, b = points.shape[:2]
    vals = _pre_activations(graph, points.flatten(0, 1))
    ok = torch.ones(n * b, dtype=torch.bool)
    for name, s in splits.items():
        z = vals[name].flatten(1)
        s = s.flatten(1).repeat(n, 1)
        ok &= ((s * z) >= 0).all(1)
    return ok.view(n, b)


@pytest.fixture(scope="module", params=[("mlp", None, None), *ARCHS],
                ids=["mlp3"] + [a[0] for a in ARCHS])  # fmt: skip
def subproblem(request):
    name, shape, width = request.param
    if name == "mlp":
        model, x, y = mlp(1)
    else:
        model, ds = small_model(name, shape, width)
        x, y = ds.x[:2], ds.y[:2]
    graph, dom, ibp, spec = setup(model, x, y)
    anchor = samples(x, EPS, 2, seed=5)[1]
    bnds, splits = split_subproblem(graph, dom, ibp, anchor)
    steps = 20 if name in ("mlp", "lenet300") else 5  # conv nets: fewer steps, still sound
    alpha, _, _ = optimize_bounds(graph, dom, spec, bnds, steps=steps)
    beta, inter, _ = optimize_bounds(graph, dom, spec, bnds, splits, steps=steps)
    return model, graph, x, y, anchor, splits, alpha, beta, inter


def test_beta_is_sound_on_the_subdomain(subproblem):
    model, graph, x, y, anchor, splits, _, beta, inter = subproblem
    pts = torch.cat([anchor[None], samples(x, EPS, 4000, seed=2)])
    keep = in_subdomain(graph, pts, splits)
    assert keep[0].all() and keep[1:].any()  # the anchor, and some samples, are inside
    with torch.no_grad():
        z = model(pts.flatten(0, 1)).view(len(pts), len(x), -1)
        vals = _pre_activations(graph, pts.flatten(0, 1))
    margins = z.gather(2, y[None, :, None].expand(len(pts), -1, 1)) - z
    gap = (beta.t()[None] - margins).amax(2)  # > 0: a margin below its bound
    assert (gap[keep] <= TOL).all(), float(gap[keep].max())
    for name, (lo, up) in inter.items():  # intermediate bounds hold on the sub-domain too
        if name == graph.input.name or name not in vals:
            continue
        v = vals[name].view(len(pts), len(x), -1)
        inside = keep[:, :, None].expand_as(v)
        lo_f, up_f = lo.flatten(1)[None].expand_as(v), up.flatten(1)[None].expand_as(v)
        assert (v[inside] >= lo_f[inside] - TOL).all() and (v[inside] <= up_f[inside] + TOL).all()


def test_beta_never_looser_than_alpha_on_the_subproblem(subproblem):
    *_, alpha, beta, _ = subproblem
    assert (beta >= alpha - 1e-5).all(), float((alpha - beta).max())


def test_alpha_crown_in_chunks_is_sound_and_never_looser_than_crown(monkeypatch):
    """A batch larger than alpha-CROWN's chunk is bounded a chunk at a time (LeNet-5 at batch
    100 needed about 20 GB at once): every image keeps its own, sound, CROWN-or-tighter bound."""
    from sparta.certify import api

    model, x, y = mlp()
    x, y = torch.cat([x, x.flip(0)]), torch.cat([y, y.flip(0)])
    graph = trace(model, tuple(x.shape[1:]), "alpha-crown")
    assert api.alpha_chunk(graph) >= len(x)  # one chunk by default at this size
    monkeypatch.setattr(api, "ALPHA_BUDGET", 1)
    assert api.alpha_chunk(graph) == 1
    calls = []
    real = api.optimize_bounds
    monkeypatch.setattr(api, "optimize_bounds", lambda *a, **k: calls.append(1) or real(*a, **k))
    chunked = api.bounds(model, x, EPS, method="alpha-crown", y=y, alpha_steps=5)
    crown = api.bounds(model, x, EPS, method="crown", y=y)
    assert len(calls) == len(x)
    assert chunked.lower.shape == crown.lower.shape and torch.equal(chunked.y, y)
    assert (chunked.margin_lower >= crown.margin_lower - TOL).all()
    assert (chunked.margin_lower > crown.margin_lower + 1e-4).any()
    for name, (lo, up) in chunked.preact.items():
        assert lo.shape == crown.preact[name][0].shape and (lo <= up + TOL).all()
    pts = samples(x, EPS, 200)  # (n, B, ...) points of the ball
    with torch.no_grad():
        out = torch.stack([model(p) for p in pts])
    assert (out >= chunked.lower - TOL).all() and (out <= chunked.upper + TOL).all()


def test_warm_started_beta_is_sound_and_keeps_its_start():
    """BaB's warm start (2103.06624 Sec. 3; alpha-beta-CROWN's children inherit the parent's
    slopes and multipliers): the child's bound from the parent's optimised slopes is sound on the
    sub-domain, never looser than CROWN's or than the bound at its start point, and the returned
    multipliers are >= 0 and 0 on every neuron that is not split."""
    model, x, y = mlp(1)
    graph, dom, ibp, spec = setup(model, x, y)
    crown = intermediate_bounds(graph, dom, ibp)
    parent: dict = {}
    optimize_bounds(graph, dom, spec, crown, steps=10, intermediate=False, warm=parent)
    assert parent["alpha"] and not parent["beta"]  # no split at the parent
    anchor = samples(x, EPS, 2, seed=5)[1]
    bnds, splits = split_subproblem(graph, dom, ibp, anchor)
    sign = {r.name: splits[r.inputs[0]] for r in graph.relus()}
    with torch.no_grad():
        crown_low, _ = output_bounds(graph, dom, spec, bnds)
        start, _ = output_bounds(graph, dom, spec, bnds, parent["alpha"])
    child = {"alpha": dict(parent["alpha"])}
    low, _, _ = optimize_bounds(
        graph, dom, spec, bnds, splits, steps=5, intermediate=False, warm=child
    )
    assert (low >= crown_low - 1e-5).all() and (low >= start - 1e-5).all()
    assert (low > start + 1e-4).any()  # the multipliers and slopes moved the bound
    for name, beta in child["beta"].items():
        assert (beta >= 0).all() and (beta[:, sign[name] == 0] == 0).all()
        assert (beta[:, sign[name] != 0] > 0).any()
    pts = torch.cat([anchor[None], samples(x, EPS, 4000, seed=2)])
    keep = in_subdomain(graph, pts, splits)
    assert keep[1:].any()
    with torch.no_grad():
        z = model(pts.flatten(0, 1)).view(len(pts), len(x), -1)
    margins = z.gather(2, y[None, :, None].expand(len(pts), -1, 1)) - z
    gap = (low.t()[None] - margins).amax(2)
    assert (gap[keep] <= TOL).all(), float(gap[keep].max())


def test_early_stop_ends_once_every_row_is_positive(monkeypatch):
    """``stop``: when CROWN already proves every row, no optimisation step runs."""
    from sparta.certify import crown as crown_mod

    model, x, y = mlp(0)
    x, y = x[1:2], y[1:2]
    graph, dom, ibp, spec = setup(model, x, y)
    spec = spec[torch.arange(spec.shape[0]) != y[0]]  # rows j != y
    bnds = intermediate_bounds(graph, dom, ibp)
    assert any(bool(((lo < 0) & (up > 0)).any()) for lo, up in bnds.values())  # slopes to fit
    calls = []
    real = crown_mod.output_bounds
    monkeypatch.setattr(
        crown_mod, "output_bounds", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    low, _, _ = optimize_bounds(graph, dom, spec, bnds, steps=5, intermediate=False, stop=True)
    assert (low > 0).all() and len(calls) == 1  # CROWN's pass only
    calls.clear()
    optimize_bounds(graph, dom, spec, bnds, steps=5, intermediate=False)
    assert len(calls) == 1 + 5 + 1  # CROWN, the steps, the final pass
