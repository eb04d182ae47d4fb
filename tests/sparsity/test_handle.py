import copy

import pytest
import torch
import torch.nn.functional as F

import sparta
from sparta import data as sdata
from sparta import models
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import attach, masks_of, named_masks
from sparta.sparsity.pruning import prune
from sparta.train import Callback, TrainConfig, Trainer, make_optimizer

OPTIMIZERS = [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}),
    ("adam", {"lr": 1e-3, "weight_decay": 5e-4}),
    ("adamw", {"lr": 1e-3, "weight_decay": 1e-2}),
]


@pytest.fixture(scope="module")
def data():
    return sdata.load("synthetic", "train", n=800, shape=(1, 8, 8), num_classes=4, seed=0)


def _pruned(info):
    torch.manual_seed(0)
    model = models.create("lenet5", dataset=info)
    return model, prune(model, "random", 0.7)


def _pruned_entries(model) -> torch.Tensor:
    return torch.cat([p.detach()[~m].abs().flatten() for p, m in _pairs(model)])


def _pairs(model):
    params = dict(model.named_parameters())
    return [(params[n], m) for n, m in masks_of(model).items()]


class _Watch(Callback):
    """Runs after the masks callback: records the largest pruned magnitude after each step."""

    name = "watch"

    def __init__(self) -> None:
        self.worst, self.steps = 0.0, 0

    def after_step(self, trainer) -> None:
        self.worst = max(self.worst, float(_pruned_entries(trainer.model).max()))
        self.steps += 1


@pytest.mark.parametrize("opt,hp", OPTIMIZERS)
def test_zeros_stay_zero_with_the_engine(opt, hp, data):
    torch.manual_seed(0)
    model = models.create("lenet5", dataset=data.info)
    cfg = TrainConfig(epochs=1, batch_size=8, optimizer=opt, schedule="constant", **hp)
    optimizer = make_optimizer(model, cfg)
    for x, y in list(sdata.iterate(data.x, data.y, 8))[:3]:  # momentum on every entry
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    handle = prune(model, "random", 0.7)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    watch = _Watch()
    callbacks = [handle.callback(), watch]
    Trainer(model, data, cfg, callbacks=callbacks, optimizer=optimizer, quiet=True).fit()
    assert watch.steps == 100 and watch.worst == 0.0
    assert all(not torch.equal(p[m], before[n][m]) for n, p, m in _named(model))


def _named(model):
    params = dict(model.named_parameters())
    return [(n, params[n], m) for n, m in masks_of(model).items()]


def _plain_loop(model, opt: str, hp: dict, data, handle=None) -> float:
    kw = {k: v for k, v in hp.items() if k in ("lr", "weight_decay", "momentum")}
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt]
    optimizer = cls(model.parameters(), **kw)
    worst = 0.0
    for step, (x, y) in enumerate(sdata.iterate(data.x, data.y, 8)):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if handle is not None:
            handle.step()
        worst = max(worst, float(_pruned_entries(model).max()))
        if step == 99:
            break
    return worst


@pytest.mark.parametrize("opt,hp", OPTIMIZERS)
def test_zeros_stay_zero_in_a_plain_loop_with_step(opt, hp, data):
    model, handle = _pruned(data.info)
    assert _plain_loop(model, opt, hp, data, handle) == 0.0
    # without handle.step() the pruned weights move: the check above can fail
    model, _ = _pruned(data.info)
    assert _plain_loop(model, opt, hp, data) > 0.0


def test_masks_round_trip_save_load_deepcopy_state_dict(tmp_path, data):
    model, handle = _pruned(data.info)
    sparta.save(model, tmp_path / "m.safetensors")
    loaded = sparta.load(tmp_path / "m.safetensors")
    clone = copy.deepcopy(model)
    torch.manual_seed(1)
    other = models.create("lenet5", dataset=data.info)
    prune(other, "random", 0.3, seed=5)  # different masks, same buffer names
    other.load_state_dict(model.state_dict())
    for copy_ in (loaded, clone, other):
        got = masks_of(copy_)
        assert got.keys() == handle.masks.keys()
        assert all(torch.equal(got[n], m) for n, m in handle.masks.items())
        assert SparsityHandle(copy_).sparsity() == handle.sparsity()


def test_handle_masks_are_live_and_sparsity_counts_zeros(data):
    model, handle = _pruned(data.info)
    assert handle.masks["fc1.weight"] is model.fc1.weight_mask
    total = sum(m.numel() for m in handle.masks.values())
    assert handle.sparsity() == pytest.approx(1 - round(0.3 * total) / total, abs=1e-12)
    attach(model, {"fc1.weight": torch.ones_like(model.fc1.weight, dtype=torch.bool)})
    assert bool(handle.masks["fc1.weight"].all())  # the handle sees replaced buffers
    assert handle.callback().name == "masks" and "SparsityHandle(5 masked" in repr(handle)
    assert handle.report()["global"]["sparsity"] == pytest.approx(handle.sparsity())


def test_handle_constructor_attaches_masks(data):
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=data.info, width=0.25)
    mask = torch.zeros_like(model.fc3.weight, dtype=torch.bool)
    handle = SparsityHandle(model, {"fc3.weight": mask})
    assert handle.sparsity() == 1.0 and not bool(model.fc3.weight.any())


class _Drifting(torch.optim.SGD):
    """An optimizer that moves every weight, pruned or not (as a custom rule might)."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(1e-3)


def _masked_lenet(seed=0):
    torch.manual_seed(seed)
    data = sdata.load("synthetic", "train", n=128, shape=(1, 8, 8), num_classes=4)
    model = models.create("lenet300", dataset=data.info, width=0.25)
    handle = prune(model, "magnitude", 0.8)
    return data, model, handle


def test_mask_callback_needs_no_remask_for_sgd_and_keeps_zeros():
    data, model, handle = _masked_lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    # momentum built on every entry before the fit: on_fit_start must clear it
    model(data.x[:8]).sum().backward()
    opt.step()
    cb = handle.callback()
    cfg = TrainConfig(epochs=2, batch_size=32, val_fraction=0)
    Trainer(model, data, cfg, optimizer=opt, callbacks=[cb], quiet=True).fit()
    assert cb.remask_every_step is False
    assert all(not p.masked_select(~m).any() for _, p, m in named_masks(model))


def test_mask_callback_falls_back_to_remasking_when_the_optimizer_moves_pruned_weights():
    data, model, handle = _masked_lenet()
    opt = _Drifting(model.parameters(), lr=0.1)
    cb = handle.callback()
    cfg = TrainConfig(epochs=2, batch_size=32, val_fraction=0)
    trainer = Trainer(model, data, cfg, optimizer=opt, callbacks=[cb], quiet=True)
    trainer.fit()
    assert cb.remask_every_step is True
    assert cb.state_dict() == {"remask_every_step": True}
    assert all(not p.masked_select(~m).any() for _, p, m in named_masks(model))
