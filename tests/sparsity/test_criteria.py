import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import DatasetInfo, ImageDataset
from sparta.sparsity.criteria import (
    CRITERIA,
    criterion,
    criterion_names,
    register_criterion,
    score,
)
from sparta.sparsity.criteria.common import loss_grads
from sparta.sparsity.masks import prunable_parameters
from sparta.sparsity.pruning import prune

INFO = DatasetInfo("toy", (1, 1, 3), 2, (0.0,), (1.0,))


def _data(n: int = 6, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.rand(n, 1, 1, 3, generator=g), torch.arange(n) % 2, INFO)


def _two_layer(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)
    )


def _conv_bn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )


def test_registry_names_and_errors():
    assert criterion_names() == ["grasp", "magnitude", "random", "snip", "synflow", "taylor"]
    model = _two_layer()
    params = prunable_parameters(model)
    with pytest.raises(
        ValueError,
        match="'nope' is not known; allowed: bn-scale, grasp, l1, l2, magnitude, random, snip",
    ):
        score("nope", model, params)
    with pytest.raises(ValueError, match="'l1' scores whole channels only"):
        score("l1", model, params)
    with pytest.raises(ValueError, match="'snip' needs data"):
        score("snip", model, params)
    with pytest.raises(ValueError, match="already registered"):
        register_criterion("magnitude", needs_data=False)(lambda *a, **k: {})


def test_channel_criteria_are_registered_with_aliases():
    assert criterion_names("channel") == [
        "bn-scale",
        *["grasp", "l1", "l2", "magnitude", "random", "snip", "synflow", "taylor"],
    ]
    assert CRITERIA.names(structure="channel") == ["bn-scale", "l1", "l2"]
    assert criterion("BN").name == "bn-scale" and criterion("bn_scale").channel is not None
    assert criterion("random").channel is not None and criterion("magnitude").channel is None
    assert CRITERIA.get("l1").doc.startswith("L1 norm")


def test_snip_equals_hand_computed_w_times_grad():
    model, data = _two_layer(), _data()
    w1, w2 = model[1].weight.detach(), model[3].weight.detach()
    x, y = data.x.flatten(1), data.y
    h = (x @ w1.T).clamp(min=0)
    p = torch.softmax(h @ w2.T, dim=1)
    dz = (p - F.one_hot(y, 2).float()) / len(y)  # d mean-CE / d logits
    g2 = dz.T @ h
    g1 = ((dz @ w2) * (h > 0)).T @ x
    scores = score("snip", model, prunable_parameters(model), data, batch_size=len(data))
    assert torch.allclose(scores["1.weight"], (w1 * g1).abs(), atol=1e-6)
    assert torch.allclose(scores["3.weight"], (w2 * g2).abs(), atol=1e-6)


def test_taylor_averages_per_batch_abs_and_equals_snip_for_one_batch():
    model, data = _two_layer(), _data(8)
    params = prunable_parameters(model)
    one = score("taylor", model, params, data, batches=1, batch_size=8)
    assert all(
        torch.allclose(one[n], s)
        for n, s in score("snip", model, params, data, batch_size=8).items()
    )
    two = score("taylor", model, params, data, batches=2, batch_size=4, seed=3)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    expect = {n: torch.zeros_like(p) for n, p in params.items()}
    for idx in (order[:4], order[4:]):
        grads = loss_grads(model, params, data.x[idx], data.y[idx])
        for (n, p), g in zip(params.items(), grads, strict=True):
            expect[n] += (p.detach() * g).abs() / 2
    assert all(torch.allclose(two[n], expect[n], atol=1e-7) for n in params)


def _flat_loss(model: nn.Module, x, y, temperature: float):
    shapes = [p.shape for p in model.parameters()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        ws, i = [], 0
        for s in shapes:
            ws.append(flat[i : i + s.numel()].view(s))
            i += s.numel()
        h = (x.flatten(1) @ ws[0].T).clamp(min=0)
        return F.cross_entropy(h @ ws[1].T / temperature, y)

    return loss


def test_grasp_is_w_times_hessian_gradient_and_prunes_the_largest_minus_w_hg():
    model, data = _two_layer(1), _data(8)
    params = prunable_parameters(model)
    scores = score("grasp", model, params, data, batches=1, batch_size=8, temperature=5.0)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    fn = _flat_loss(model, data.x, data.y, 5.0)
    g = torch.autograd.functional.jacobian(fn, flat)
    hg = torch.autograd.functional.hessian(fn, flat) @ g
    ours = torch.cat([scores[n].flatten() for n in params])
    assert torch.allclose(ours, flat * hg, atol=1e-9, rtol=1e-4)
    # GraSP (Sec. 4, Alg. 1) removes the weights with the LARGEST S = -w * Hg
    prune(model, "grasp", 0.5, data=data, batches=1, batch_size=8, temperature=5.0)
    kept = torch.cat([model[1].weight_mask.flatten(), model[3].weight_mask.flatten()])
    s = -(flat * hg)
    assert float(s[kept].max()) <= float(s[~kept].min())


def test_synflow_hand_computed_on_linear_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    w1, w2 = model[0].weight.detach().clone(), model[1].weight.detach().clone()
    scores = score("synflow", model, prunable_parameters(model), input_shape=(3,))
    # R = 1' |W2| |W1| 1: dR/dW1[i, j] = sum_k |W2[k, i]|, dR/dW2[k, i] = sum_j |W1[i, j]|
    s1 = w1.abs() * w2.abs().sum(0)[:, None]
    s2 = w2.abs() * w1.abs().sum(1)[None, :]
    top = torch.cat([s1.flatten(), s2.flatten()]).max()
    assert torch.allclose(scores["0.weight"], s1 / top) and torch.allclose(
        scores["1.weight"], s2 / top
    )
    assert torch.equal(model[0].weight, w1) and torch.equal(model[1].weight, w2)  # signs kept


def test_synflow_double_precision_survives_a_deep_net():
    torch.manual_seed(0)
    layers = [nn.Linear(64, 64, bias=False) for _ in range(30)]
    for lin in layers:
        nn.init.normal_(lin.weight, std=1.0)  # each layer multiplies R by ~50: 50^30 >> 3e38
    model = nn.Sequential(*layers)
    params = prunable_parameters(model)
    single = score("synflow", model, params, input_shape=(64,), double=False)
    assert not all(bool(torch.isfinite(s).all()) for s in single.values())
    double = score("synflow", model, params, input_shape=(64,))
    assert all(bool(torch.isfinite(s).all()) and float(s.max()) > 0 for s in double.values())


def test_random_is_seeded():
    model = _two_layer()
    params = prunable_parameters(model)
    a, b = score("random", model, params, seed=1), score("random", model, params, seed=1)
    c = score("random", model, params, seed=2)
    assert all(torch.equal(a[n], b[n]) for n in a) and not torch.equal(a["1.weight"], c["1.weight"])


@pytest.mark.parametrize("name", ["random", "magnitude", "snip", "grasp", "synflow", "taylor"])
@pytest.mark.parametrize("train_mode", [False, True])
def test_criteria_restore_mode_flags_weights_buffers_and_grads(name, train_mode):
    model = _conv_bn()
    data = ImageDataset(
        torch.rand(16, 1, 4, 4),
        torch.arange(16) % 3,
        DatasetInfo("t", (1, 4, 4), 3, (0.0,), (1.0,)),
    )
    model.train()
    model[1].eval()  # a mixed state must come back exactly
    model[0].weight.requires_grad_(False)
    model[4].bias.grad = torch.full_like(model[4].bias, 7.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    opts = {"input_shape": (1, 4, 4)} if name == "synflow" else {}
    if name in ("snip", "grasp", "taylor"):
        opts = {"batch_size": 8, "train_mode": train_mode}
    scores = score(name, model, prunable_parameters(model), data, **opts)
    assert set(scores) == {"0.weight", "4.weight"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == modes
    assert not model[0].weight.requires_grad and model[4].weight.requires_grad
    assert model[0].weight.grad is None and torch.equal(model[4].bias.grad, torch.full((3,), 7.0))
