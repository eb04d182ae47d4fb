"""Shared pieces of the attack tests: tiny models, a linear classifier with a known minimal
adversarial distance, every attack module imported, and a small model trained on digits."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import sparta.attacks
from sparta.attacks import base

#: cheap settings offered to every attack (each gets only the options its signature takes)
FAST_OPTIONS = {
    "steps": 5,
    "restarts": 1,
    "n_target_classes": 2,
    "queries": 30,
    "max_queries": 30,
    "n_queries": 30,
    "samples": 2,
    "n_samples": 2,
    "q": 2,
}


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one thread (the machine is shared; tiny models gain nothing from
    more), restoring the setting afterwards. Import it into a test module to use it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def import_all_attacks() -> list[str]:
    """Import every module of ``sparta.attacks`` (so all attacks register); the names of the
    library's attacks (test doubles other test modules register are left out)."""
    for mod in pkgutil.iter_modules(sparta.attacks.__path__):
        importlib.import_module(f"sparta.attacks.{mod.name}")
    return [n for n in base.names() if base._ATTACKS[n].__module__.startswith("sparta.")]


def fast_options(name: str) -> dict:
    """The cheap options an attack's ``__init__`` takes (up its class chain, for the ones that
    pass ``**options`` on to a parent)."""
    params: set[str] = set()
    for cls in base._ATTACKS[name].__mro__:
        if "__init__" in vars(cls):
            sig = inspect.signature(cls.__init__).parameters
            params |= set(sig)
            if not any(p.kind is p.VAR_KEYWORD for p in sig.values()):
                break
    return {k: v for k, v in FAST_OPTIONS.items() if k in params}


def mlp(seed: int, classes: int = 5, dropout: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers, nn.Linear(16, classes))


def cnn(seed: int, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, classes))


def linear_problem(norm: str, eps: float, ratios: list[float], seed: int = 0):
    """A 2-logit linear model ``z_1 - z_0 = w . x + b`` on 1x4x4 inputs and, for each ratio
    ``rho``, an input whose minimal adversarial distance is ``eps / rho`` (Linf:
    ``|w.x + b| / ||w||_1``, L2: ``|w.x + b| / ||w||_2``), far enough from the box's faces that
    the box never binds. Returns ``(model, x, y, distances)``."""
    g = torch.Generator().manual_seed(seed)
    d = 16
    w = torch.randn(d, generator=g)
    dual = w.abs().sum() if norm == "linf" else w.norm()
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[1] = w
        lin.bias.copy_(torch.tensor([0.0, -float(w.sum()) * 0.5]))  # boundary through 0.5
    model = nn.Sequential(nn.Flatten(), lin)
    dists = torch.tensor([eps / r for r in ratios])
    signs = torch.where(torch.arange(len(ratios)) % 2 == 0, 1.0, -1.0)
    base_x = 0.5 + 0.05 * (2 * torch.rand(len(ratios), d, generator=g) - 1)
    margin = (base_x - 0.5) @ w
    want = signs * dists * dual
    x = base_x + ((want - margin) / w.norm() ** 2)[:, None] * w
    y = (signs > 0).long()
    # the optimal perturbation moves every coordinate by at most the distance (Linf) or
    # |w_i| / ||w||_2 times it (L2): keep all of that inside [0, 1]
    assert float(x.min() - dists.max()) > 0 and float(x.max() + dists.max()) < 1
    return model, x.view(-1, 1, 4, 4), y, dists


@functools.lru_cache(maxsize=1)
def digits_model():
    """A small MLP trained for a few epochs on the 8x8 digits (a few seconds on one core);
    returns ``(model, x_test[:200], y_test[:200])``."""
    from sparta import data, models
    from sparta.train import TrainConfig, Trainer

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    train = data.load("digits", "train")
    test = data.load("digits", "test")
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.25)
    cfg = TrainConfig(dataset="digits", epochs=6, batch_size=32, lr=0.05, val_fraction=0.0, seed=0)
    Trainer(model, train, cfg, quiet=True).fit()
    torch.set_num_threads(n)
    model.eval()
    return model, test.x[:200], test.y[:200]
