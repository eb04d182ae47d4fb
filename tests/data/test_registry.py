"""The dataset registry and the file-free datasets (synthetic, digits)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparta import data
from sparta.data import DatasetInfo, ImageDataset, registry
from sparta.data.digits import split_positions

from .helpers import make_mnist_like

BUILTIN = ["cifar10", "cifar100", "digits", "fashion-mnist", "mnist", "synthetic"]


def test_names() -> None:
    assert set(BUILTIN) <= set(data.names())
    assert data.names() == sorted(data.names())


def test_unknown_name_split_and_option() -> None:
    with pytest.raises(ValueError, match=r"dataset 'nope' is not known; allowed: .*fashion-mnist"):
        data.load("nope")
    with pytest.raises(ValueError, match="dataset 'nope' is not known"):
        data.info("nope")
    assert data.info("Fashion_MNIST") is data.info("fashion-mnist")
    with pytest.raises(ValueError, match=r"unknown split 'val'.*allowed: train, test"):
        data.load("synthetic", "val")
    with pytest.raises(ValueError, match=r"no option 'shape'; allowed: none"):
        data.load("digits", shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"no option 'colour'; allowed: shape, num_classes"):
        data.info("synthetic", colour=True)


def test_info_without_loading() -> None:
    fm = data.info("fashion-mnist")
    assert fm.input_shape == (1, 28, 28) and fm.num_classes == 10
    assert fm.classes[0] == "T-shirt/top" and fm.classes[-1] == "Ankle boot"
    assert fm.mean == (0.2860,) and fm.std == (0.3530,)
    assert data.info("mnist").mean == (0.1307,)
    assert data.info("cifar100").num_classes == 100 and len(data.info("cifar10").mean) == 3
    s = data.info("synthetic", shape=(3, 16, 12), num_classes=4)
    assert s.input_shape == (3, 16, 12) and s.num_classes == 4 and len(s.mean) == 3
    assert data.info("synthetic").input_shape == (1, 28, 28)


def test_register_and_load_custom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.DATASETS, "_entries", dict(registry.DATASETS._entries))
    info = DatasetInfo("ones", (1, 2, 2), 2, (1.0,), (0.0,))

    @data.register_dataset("ones", info=info)
    def load_ones(split: str, root: str | None, download: bool, n: int = 3) -> ImageDataset:
        return ImageDataset(torch.ones(n, 1, 2, 2), torch.zeros(n, dtype=torch.long), info, split)

    assert "ones" in data.names() and data.info("ones") is info
    ds = data.load("ones", "test", n=5)
    assert len(ds) == 5 and ds.split == "test"
    assert {"name": "ones", "found": True, "path": None, "searched": [], "source": ""} in (
        data.available()
    )

    def other(split: str, root: str | None, download: bool) -> ImageDataset:
        raise AssertionError

    with pytest.raises(ValueError, match="'ones' is already registered"):
        data.register_dataset("ones", info=info)(other)


def test_search_dirs_and_available(data_env: dict[str, Path]) -> None:
    root = data_env["tmp"] / "r"
    assert registry.search_dirs("mnist", root) == [
        root,
        root / "mnist",
        data_env["env"] / "mnist",
        data_env["env"],
        data_env["home"] / ".cache" / "sparta" / "mnist",
        data_env["system"] / "mnist",
    ]
    by_name = {a["name"]: a for a in data.available()}
    assert set(BUILTIN) <= set(by_name)
    assert by_name["mnist"]["found"] is False and by_name["mnist"]["path"] is None
    assert by_name["mnist"]["searched"] == [str(p) for p in registry.search_dirs("mnist")]
    assert by_name["synthetic"]["found"] and by_name["digits"]["found"]
    make_mnist_like(data_env["system"] / "mnist", n_train=2, n_test=2)
    by_name = {a["name"]: a for a in data.available()}
    assert by_name["mnist"]["found"] and by_name["mnist"]["path"] == str(
        data_env["system"] / "mnist"
    )


def test_synthetic_shapes_ranges_and_seeds() -> None:
    a = data.load("synthetic", shape=(3, 12, 10), num_classes=4, n=40, seed=7)
    assert a.x.shape == (40, 3, 12, 10) and a.x.dtype == torch.float32
    assert a.y.dtype == torch.int64 and torch.bincount(a.y).tolist() == [10] * 4
    assert float(a.x.min()) >= 0.0 and float(a.x.max()) <= 1.0
    assert a.info == data.info("synthetic", shape=(3, 12, 10), num_classes=4, n=40, seed=7)
    b = data.load("synthetic", shape=(3, 12, 10), num_classes=4, n=40, seed=7)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    c = data.load("synthetic", shape=(3, 12, 10), num_classes=4, n=40, seed=8)
    assert not torch.equal(a.x, c.x)
    test = data.load("synthetic", "test", shape=(3, 12, 10), num_classes=4, n=40, seed=7)
    assert not torch.equal(a.x, test.x)
    assert (len(data.load("synthetic")), len(data.load("synthetic", "test"))) == (1024, 256)
    with pytest.raises(ValueError, match="shape must be"):
        data.load("synthetic", shape=(28, 28))
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        data.info("synthetic", num_classes=1)


def test_synthetic_is_learnable() -> None:
    train = data.load("synthetic", shape=(1, 8, 8), n=512)
    test = data.load("synthetic", "test", shape=(1, 8, 8), n=256)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        first = float(loss_fn(model(train.x), train.y))
    for _ in range(5):
        for xb, yb in train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        assert float(loss_fn(model(train.x), train.y)) < 0.5 * first
        acc = float((model(test.x).argmax(1) == test.y).float().mean())
    assert acc > 0.5  # chance is 0.1; templates are shared by both splits, so it generalises


def test_digits_split_is_disjoint_covering_and_faithful() -> None:
    train, test = data.load("digits"), data.load("digits", "test")
    assert train.x.shape == (1438, 1, 8, 8) and test.x.shape == (359, 1, 8, 8)
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    tr, te = split_positions(1797, "train"), split_positions(1797, "test")
    assert not set(tr.tolist()) & set(te.tolist())
    assert sorted(tr.tolist() + te.tolist()) == list(range(1797))
    from sklearn.datasets import load_digits

    d = load_digits()
    assert torch.equal(test.x[:, 0] * 16, torch.from_numpy(d.images[te.numpy()]).float())
    assert test.y.tolist() == d.target[te.numpy()].tolist()
    assert set(train.y.tolist()) == set(range(10)) == set(test.y.tolist())
    assert abs(float(train.x.mean()) - train.mean[0]) < 1e-3
    assert torch.equal(data.load("digits").x, train.x)
