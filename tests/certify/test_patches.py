"""Patches-mode CROWN: equal to the dense back-substitution, sound, batch-independent."""

import pytest
import torch
from torch import nn

from sparta.certify import bounds, crown, patches
from sparta.certify.domain import InputDomain
from sparta.certify.graph import trace
from sparta.certify.ibp import interval, spec_matrix
from sparta.certify.patches import Patches, widest_window
from sparta.models import Normalize

from .helpers import check_sound, pgd_extremes, randomize_bn, samples, small_model

EPS = 0.02


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input: a residual join of two patch windows."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + x)


def odd_convs() -> nn.Module:
    """Stride 2, dilation 2, groups 2, no bias, BN, residual, MaxPool 2 and 3."""
    return nn.Sequential(
        Normalize([0.5, 0.4], [0.3, 0.2]),
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, bias=False),
        nn.ReLU(),
        Block(4),
        nn.Conv2d(4, 6, 2),
        nn.ReLU(),
        nn.MaxPool2d(3),
        nn.Conv2d(6, 6, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


def nets():
    torch.manual_seed(0)
    odd = randomize_bn(odd_convs().eval())
    x = torch.rand(3, 2, 20, 20)
    return {
        "conv": (*small_model("conv2", (1, 12, 12), 0.1), None),
        "conv+pool": (*small_model("lenet5", (1, 16, 16), 0.5), None),
        "bn+residual": (*small_model("resnet20", (1, 12, 12), 0.25), None),
        "strides+groups": (odd, None, (x, torch.tensor([0, 1, 2]))),
    }


NETS = nets()


def problem(name: str):
    model, ds, xy = NETS[name]
    return (model, *(xy if xy is not None else (ds.x[:3], ds.y[:3])))


def crown_bounds(model, x, y, use_patches: bool, monkeypatch):
    monkeypatch.setattr(crown, "PATCHES", use_patches)
    return bounds(model, x, EPS, method="crown", y=y)


@pytest.mark.parametrize("name", list(NETS))
def test_patches_equal_dense_crown(name, monkeypatch):
    model, x, y = problem(name)
    monkeypatch.setattr(crown, "PER_EXAMPLE", False)  # the dense path's rows (see below)
    found = {p: crown_bounds(model, x, y, p, monkeypatch) for p in (True, False)}
    p, d = found[True], found[False]
    for a, b in ((p.lower, d.lower), (p.upper, d.upper), (p.margin_lower, d.margin_lower)):
        assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())
    for k, (lo, up) in p.preact.items():
        assert torch.allclose(lo, d.preact[k][0], atol=1e-5, rtol=0), k
        assert torch.allclose(up, d.preact[k][1], atol=1e-5, rtol=0), k
    assert (p.upper - p.lower).min() > 0  # not a degenerate problem


@pytest.mark.parametrize("name", list(NETS))
def test_patches_bounds_are_sound(name, monkeypatch):
    model, x, y = problem(name)
    b = crown_bounds(model, x, y, True, monkeypatch)
    check_sound(model, samples(x, EPS, 400, seed=2), y, b)
    check_sound(model, pgd_extremes(model, x, EPS, steps=5), y, b)


def test_patches_are_used_on_feature_maps(monkeypatch):
    """The rows of a conv output start as 1x1 windows and stay patches through conv/ReLU/pool
    (the receptive field of LeNet-5's conv2 on 28x28 is 14x14 input pixels, not 28x28)."""
    model, ds = small_model("lenet5", (1, 28, 28), 0.5)
    graph = trace(model, (1, 28, 28))
    assert widest_window(graph, "conv2") < 3 * 28 * 28  # 3 channels of conv1, 10x10 window
    seen = []
    original = Patches.windows

    def spy(self, t):
        seen.append(self.size)
        return original(self, t)

    monkeypatch.setattr(Patches, "windows", spy)
    bounds(model, ds.x[:2], EPS, method="crown")
    assert (10, 10) in seen  # relu1's window of a conv2 row: (5 - 1) * 2 + 2 = 10


def test_unit_rows_and_dense_round_trip():
    idx = torch.tensor([0, 5, 13])  # (c, h, w) = (0,0,0), (0,1,1), (1,0,1) of a (2, 3, 4) map
    p = Patches.unit(idx, (2, 3, 4), torch.float32)
    eye = torch.eye(24)[idx]
    assert torch.equal(p.dense().reshape(6, 24), torch.cat([eye, -eye]))
    t = torch.arange(24.0).view(1, 2, 3, 4)
    assert torch.equal(p.windows(t)[:3, 0, :, 0, 0], torch.tensor([[0.0, 12], [5, 17], [1, 13]]))
    assert torch.equal(p.dot(t), torch.tensor([[0.0], [5], [13], [0], [-5], [-13]]))


def test_pool_bounds_do_not_depend_on_the_batch():
    """A MaxPool's relaxation reads the bounds of stable neurons too, so every neuron feeding
    it is tightened, whatever the other examples of the batch (auto_LiRPA's sparse rows
    depend on them)."""
    model, x, y = problem("conv+pool")
    together = bounds(model, x, EPS, method="crown", y=y).margin_lower
    alone = torch.cat([bounds(model, x[i : i + 1], EPS, method="crown", y=y[i : i + 1]).margin_lower
                       for i in range(len(y))])  # fmt: skip
    assert torch.allclose(together, alone, atol=1e-5, rtol=0)


def alpha_bounds(name: str, use_patches: bool, monkeypatch, steps: int = 3):
    model, x, y = problem(name)
    monkeypatch.setattr(crown, "PATCHES", use_patches)
    return model, x, y, bounds(model, x, EPS, method="alpha-crown", y=y, alpha_steps=steps)


@pytest.mark.parametrize("name", ["conv+pool", "bn+residual", "strides+groups"])
def test_window_slopes_equal_dense_slopes(name):
    """Slopes of a feature map's rows kept on each row's patches window give the bound, and
    the gradient, of dense slopes (one per row and neuron of the map): off a row's receptive
    field a slope has no effect (zero gradient). Checked at CROWN's slopes, the start of
    alpha-CROWN (Adam then moves both alike, elementwise)."""
    model, x, y = problem(name)
    graph = trace(model, tuple(x.shape[1:]))
    dom = InputDomain(x, EPS)
    base = crown.intermediate_bounds(graph, dom, interval(graph, dom))
    spec = spec_matrix(y, 4 if name != "strides+groups" else 5).transpose(0, 1)
    targets = [n for n in crown.refined_nodes(graph, dom) if base[n][0].dim() == 4]
    idx = {n: crown.unstable_index(*base[n]) for n in crown.refined_nodes(graph, dom)}
    found = {}
    for mode in ("windows", "dense"):
        alphas, params = {}, []
        for t in targets:
            geo = crown._row_windows(graph, dom, t, idx[t], base)
            for r, g in geo.items():
                init = crown.relu_relaxation(*base[graph.by_name[r].inputs[0]])[0]
                if mode == "windows":
                    k = g.windows(init).clone().requires_grad_(True)
                    alphas.setdefault(t, {})[r] = Patches(k, g.oh, g.ow, g.shape)
                else:
                    k = init.expand(g.k.shape[0], *init.shape).clone().requires_grad_(True)
                    alphas.setdefault(t, {})[r] = k
                params.append((g, k))
        assert params, "no feature-map rows reach a ReLU as patches"
        inter = crown.intermediate_bounds(graph, dom, base, alphas=alphas, idx=idx)
        low, _ = crown.output_bounds(graph, dom, spec, inter)
        grads = torch.autograd.grad(low.sum(), [k for _, k in params])
        found[mode] = low.detach(), [(g, d) for (g, _), d in zip(params, grads, strict=True)]
    (low_w, grads_w), (low_d, grads_d) = found["windows"], found["dense"]
    assert torch.allclose(low_w, low_d, atol=1e-5, rtol=0)
    nonzero = False
    for (g, gw), (_, gd) in zip(grads_w, grads_d, strict=True):
        on_windows = Patches(gw, g.oh, g.ow, g.shape).dense()
        assert torch.allclose(on_windows, gd, atol=1e-6, rtol=0), float(
            (on_windows - gd).abs().max()
        )
        nonzero |= bool(gw.abs().sum() > 0)
    assert nonzero


@pytest.mark.parametrize("name", list(NETS))
def test_alpha_with_window_slopes_is_sound_and_never_looser_than_crown(name, monkeypatch):
    model, x, y, a = alpha_bounds(name, True, monkeypatch, steps=5)
    c = crown_bounds(model, x, y, True, monkeypatch)
    check_sound(model, samples(x, EPS, 400, seed=4), y, a)
    check_sound(model, pgd_extremes(model, x, EPS, steps=5), y, a)
    assert (a.margin_lower >= c.margin_lower - 1e-6).all()
    assert (a.lower >= c.lower - 1e-6).all() and (a.upper <= c.upper + 1e-6).all()
    for k, (lo, up) in a.preact.items():
        assert (lo >= c.preact[k][0] - 1e-6).all() and (up <= c.preact[k][1] + 1e-6).all()


def test_intermediate_slopes_of_feature_maps_live_on_windows(monkeypatch):
    """The slopes alpha-CROWN optimises for the rows of LeNet-5's conv2 (28x28 input) are
    (rows, B, 6, 10, 10) windows of relu1's 6x28x28 map, not dense."""
    model, ds = small_model("lenet5", (1, 28, 28), 0.5)
    shapes = []
    real = torch.optim.Adam

    def spy(groups, *args, **kwargs):
        shapes.extend(tuple(t.shape) for g in groups for t in g["params"])
        return real(groups, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    c1 = model.conv1.out_channels
    count = {}
    for use_patches in (False, True):
        shapes.clear()
        monkeypatch.setattr(crown, "PATCHES", use_patches)
        b = bounds(model, ds.x[:2], EPS, method="alpha-crown", alpha_steps=1)
        assert torch.isfinite(b.lower).all()
        count[use_patches] = [
            sum(s[1:] == (2, c1, *hw) for s in shapes) for hw in ((28, 28), (10, 10))
        ]
    assert count[False][1] == 0 and count[True][1] == 1  # conv2's rows: windows of relu1
    assert count[True][0] == count[False][0] - 1  # the Linear layers' rows: dense slopes


@pytest.mark.parametrize("name", list(NETS))
def test_rows_per_example_equal_rows_per_neuron(name, monkeypatch):
    """CROWN's feature-map rows per (example, neuron) that needs them give the bounds of rows
    per neuron for the whole batch (the union), on every bound that matters."""
    model, x, y = problem(name)
    found = {}
    for per_example in (True, False):
        monkeypatch.setattr(crown, "PER_EXAMPLE", per_example)
        found[per_example] = crown_bounds(model, x, y, True, monkeypatch)
    p, u = found[True], found[False]
    for a, b in ((p.lower, u.lower), (p.upper, u.upper), (p.margin_lower, u.margin_lower)):
        assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())
    for k, (lo, up) in p.preact.items():  # where a neuron is unstable, equal bounds
        lo_u, up_u = u.preact[k]
        unstable = (lo_u < 0) & (up_u > 0)
        assert torch.allclose(lo[unstable], lo_u[unstable], atol=1e-5, rtol=0), k
        assert torch.allclose(up[unstable], up_u[unstable], atol=1e-5, rtol=0), k


def test_per_example_rows_read_and_write_their_own_example():
    idx, ex = torch.tensor([5, 13]), torch.tensor([1, 0])  # (0,1,1) of example 1, (1,0,1) of 0
    p = Patches.unit(idx, (2, 3, 4), torch.float32, ex, batch=2)
    d = p.dense()
    assert d.shape == (4, 2, 2, 3, 4)
    assert d[0, 1, 0, 1, 1] == 1 and d[1, 0, 1, 0, 1] == 1 and d[2, 1, 0, 1, 1] == -1
    assert d.abs().sum() == 4  # nothing on the other example
    t = torch.arange(48.0).view(2, 2, 3, 4)
    assert torch.equal(p.dot(t), torch.tensor([[24.0 + 5], [13], [-29], [-13]]))


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(6, 1, 5),  # LeNet-5's conv1, transposed: one output channel
        nn.Conv2d(3, 4, 3, stride=2),
        nn.Conv2d(4, 4, 3, dilation=2, groups=2),
    ],
)
def test_conv_back_as_matmul_equals_conv_and_its_weight_gradient(conv, monkeypatch):
    torch.manual_seed(0)
    flat = torch.randn(400, conv.out_channels, 2, 3)
    found = {}
    for numel in (10**6, 0):  # the matmul, then the transposed conv
        monkeypatch.setattr(patches, "MATRIX_NUMEL", numel)
        out = patches.conv_back(flat, conv)
        (g,) = torch.autograd.grad((out * out.detach().sin()).sum(), [conv.weight])
        found[numel] = out.detach(), g
    (m, gm), (c, gc) = found[10**6], found[0]
    assert m.shape == c.shape and torch.allclose(m, c, atol=1e-5, rtol=0)
    assert torch.allclose(gm, gc, atol=1e-3, rtol=1e-4), float((gm - gc).abs().max())
