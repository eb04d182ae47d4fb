import logging

import pytest
import torch
from torch import nn

import sparta.sparsity.pruning as prune_module
from sparta import data as sdata
from sparta import models
from sparta.sparsity.allocation import erk
from sparta.sparsity.masks import masks_of, prunable_parameters
from sparta.sparsity.pruning import prune
from sparta.sparsity.structures import parse_structure
from sparta.sparsity.topk import n_keep
from tests.data.helpers import TORCH_FORMS, torch_form

CRITERIA = ["random", "magnitude", "snip", "grasp", "synflow", "taylor"]
SPARSITY = 0.8


@pytest.fixture(scope="module")
def data():
    return sdata.load("synthetic", "train", n=64, shape=(1, 8, 8), num_classes=4, seed=0)


# lenet300 at width 0.32 has 96/32 hidden units so that N:M and 4x4 blocks fit its
# hidden layers (at width 0.25 its 75 and 25 units fit neither)
MODELS = [("lenet300", 0.32), ("lenet5", 1.0), ("conv2", 0.25)]


def _fresh(name: str, width: float, info) -> nn.Module:
    torch.manual_seed(0)
    return models.create(name, dataset=info, width=width)


def _misfits(model: nn.Module, structure: str) -> list[str]:
    """Layers the pattern does not fit (first convs with 1 input channel, 6-channel convs)."""
    st, out = parse_structure(structure), []
    for n, p in prunable_parameters(model).items():
        try:
            st.check({n: p.shape})
        except ValueError:
            out.append(n)
    return out


def _assert_exact(masks, structure: str, scope: str) -> None:
    st = parse_structure(structure)
    size = st.block**2 if st.kind == "block" else 1
    units = {n: m.numel() // size for n, m in masks.items()}
    kept = {n: int(m.sum()) // size for n, m in masks.items()}
    if st.kind == "nm":
        assert all(kept[n] * 2 == units[n] for n in masks)
    elif scope == "global":
        assert sum(kept.values()) == n_keep(sum(units.values()), 1 - SPARSITY)
    else:
        shapes = {n: m.shape for n, m in masks.items()}
        dens = erk(shapes, SPARSITY) if scope == "erk" else dict.fromkeys(masks, 1 - SPARSITY)
        assert kept == {n: n_keep(units[n], dens[n]) for n in masks}


@pytest.mark.parametrize("model_name,width", MODELS)
@pytest.mark.parametrize("method", CRITERIA)
def test_exact_sparsity_for_every_structure_and_scope(model_name, width, method, data):
    opts = {"batch_size": 32} if method in ("snip", "grasp", "taylor") else {}
    for structure in ("unstructured", "nm:2:4", "block:4"):
        for scope in ("global", "layer", "erk"):
            model = _fresh(model_name, width, data.info)
            exclude = _misfits(model, structure)
            h = prune(model, method, SPARSITY, structure, scope, data=data, exclude=exclude, **opts)
            masks = h.masks
            assert set(masks) == set(prunable_parameters(model)) - set(exclude)
            _assert_exact(masks, structure, scope)
            for n, p in prunable_parameters(model, exclude=exclude).items():
                assert bool((p[~masks[n]] == 0).all())


def test_global_magnitude_matches_torch_global_unstructured():
    import torch.nn.utils.prune as tprune

    info = sdata.info("fashion-mnist")
    ours, theirs = _fresh("lenet5", 1.0, info), _fresh("lenet5", 1.0, info)
    prune(ours, "magnitude", 0.83, scope="global")
    pairs = [(m, "weight") for m in theirs.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.83)
    for name, mask in masks_of(ours).items():
        module = theirs.get_submodule(name.rpartition(".")[0])
        assert torch.equal(mask, module.weight_mask.bool()), name


def test_synflow_runs_the_exponential_schedule(monkeypatch, data):
    seen = []
    real = prune_module.select

    def spy(structure, scores, sparsity, scope):
        seen.append(sparsity)
        return real(structure, scores, sparsity, scope)

    monkeypatch.setattr(prune_module, "select", spy)
    prune(_fresh("lenet300", 0.32, data.info), "synflow", 0.9, rounds=5)
    assert seen == pytest.approx([1 - 0.1 ** (k / 5) for k in range(1, 6)])
    assert seen[-1] == 0.9
    seen.clear()
    prune(_fresh("lenet300", 0.32, data.info), "synflow", 0.9)
    assert len(seen) == 100


def test_iterative_synflow_differs_from_one_shot_and_avoids_collapse(data):
    iterative = prune(_fresh("conv2", 0.25, data.info), "synflow", 0.99)
    one_shot = prune(_fresh("conv2", 0.25, data.info), "synflow", 0.99, rounds=1)
    assert any(not torch.equal(iterative.masks[n], one_shot.masks[n]) for n in iterative.masks)
    assert all(bool(m.any()) for m in iterative.masks.values())


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"method": "nope"}, "'nope' is not known"),
        ({"structure": "nm:3:2"}, "N=3 > M=2"),
        ({"structure": "block:5"}, "block size 5 does not divide"),
        ({"scope": "row"}, "distribution='row'"),
        ({"distribution": "row"}, "distribution='row'"),
        ({"sparsity": 1.0}, "sparsity=1.0"),
        ({"include": "conv9.*"}, "conv9"),
        ({"exclude": ["*"]}, "nothing prunable"),
        ({"rounds": 3}, "one-shot"),
        ({"method": "snip"}, "needs data"),
    ],
)
def test_errors(kwargs, needle):
    model = _fresh("lenet5", 1.0, sdata.info("fashion-mnist"))
    with pytest.raises(ValueError, match=needle):
        prune(model, **kwargs)


def test_nm_fixes_sparsity_and_include_selects_params(data):
    model = _fresh("lenet300", 0.32, data.info)
    h = prune(model, "magnitude", 0.9, "nm:2:4", include="fc[12].weight")
    assert set(h.masks) == {"fc1.weight", "fc2.weight"} and h.sparsity() == 0.5


def test_layer_collapse_is_logged(data, caplog):
    model = _fresh("lenet300", 1.0, data.info)
    with caplog.at_level(logging.WARNING):
        prune(model, "magnitude", 0.9, "block:4", exclude=["fc3.weight"])
    assert "fc2.weight is pruned entirely" in caplog.text


def test_channel_structure_delegates_to_channels(monkeypatch, data):
    channels = pytest.importorskip("sparta.sparsity.channels")
    model = _fresh("lenet300", 0.32, data.info)
    calls = []

    def fake(model, sparsity, method, scope, data, **opts):
        calls.append((sparsity, method, scope))
        mask = torch.zeros(model.fc1.weight.shape, dtype=torch.bool)
        mask[:10] = True
        return {"fc1.weight": mask}

    monkeypatch.setattr(channels, "channel_masks", fake)
    h = prune(model, "l1", 0.5, "channel", "layer", data=data)
    assert calls == [(0.5, "l1", "uniform")]  # "layer" is an alias of "uniform"
    assert bool((model.fc1.weight[10:] == 0).all()) and set(h.masks) == {"fc1.weight"}


def test_channel_structure_end_to_end(data):
    model = _fresh("conv2", 0.25, data.info)
    h = prune(model, "l1", 0.5, "channel", "global", data=data)
    assert h.masks and 0 < h.sparsity() < 1


def test_channel_pruning_reports_channel_and_weight_sparsity_separately(data):
    model = _fresh("conv2", 0.25, data.info)
    h = prune(model, "l1", 0.5, "channel", "uniform", data=data)
    assert h.channel_sparsity() == pytest.approx(0.5, abs=0.05)
    weights = {
        n: p
        for n, p in model.named_parameters()
        if n in h.masks
        and isinstance(model.get_submodule(n.rpartition(".")[0]), (nn.Conv2d, nn.Linear))
        and n.endswith("weight")
    }
    zeros = sum(int((p == 0).sum()) for p in weights.values())
    assert h.weight_sparsity() == zeros / sum(p.numel() for p in weights.values())
    assert h.weight_sparsity() != h.channel_sparsity()
    assert 0 < h.weight_sparsity() < 1 and 0 < h.sparsity() < 1
    unstructured = prune(_fresh("conv2", 0.25, data.info), "magnitude", 0.5)
    assert unstructured.weight_sparsity() == unstructured.sparsity() == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_data_criteria_take_a_torch_dataset_or_loader(kind, data):
    masks = {}
    for form in (data, torch_form(data, kind)):
        model = _fresh("lenet300", 0.32, data.info)
        prune(model, "snip", SPARSITY, data=form, seed=0)
        masks[form is data] = {k: m.clone() for k, m in masks_of(model).items()}
    assert masks[True].keys() == masks[False].keys()
    assert all(torch.equal(masks[True][k], masks[False][k]) for k in masks[True])
