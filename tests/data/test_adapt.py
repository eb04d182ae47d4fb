"""Your own data: any (x, y) Dataset or DataLoader, an image folder, an import path."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from sparta import data
from sparta.data import ImageDataset, as_dataset, image_folder


def _tensors(n=12, classes=3):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 5, 5, generator=g), torch.arange(n) % classes


def test_image_dataset_passes_through_unchanged():
    ds = data.load("synthetic", "train", n=8, shape=(1, 4, 4), num_classes=2)
    assert as_dataset(ds) is ds


@pytest.mark.parametrize("wrap", ["pair", "tensor_dataset", "loader", "shuffled_loader"])
def test_any_dataset_or_loader_becomes_an_image_dataset(wrap):
    x, y = _tensors()
    obj = {
        "pair": (x, y),
        "tensor_dataset": TensorDataset(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=5),
        "shuffled_loader": DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True),
    }[wrap]
    ds = as_dataset(obj, split="test")
    assert isinstance(ds, ImageDataset) and ds.split == "test"
    order = torch.argsort(ds.x.flatten(1)[:, 0]) if wrap == "shuffled_loader" else slice(None)
    ref = torch.argsort(x.flatten(1)[:, 0]) if wrap == "shuffled_loader" else slice(None)
    assert torch.equal(ds.x[order], x[ref]) and torch.equal(ds.y[order], y[ref])
    assert ds.num_classes == 3 and ds.input_shape == (1, 5, 5)
    assert ds.mean == pytest.approx((float(x.mean()),)) and ds.std[0] == pytest.approx(
        float(x.std(unbiased=False)), rel=1e-5
    )


class _PilDataset(Dataset):
    """Grey PIL images (uint8) and int labels, with torchvision-style ``classes``."""

    classes = ["a", "b", "c", "d"]

    def __init__(self) -> None:
        self.images = [np.full((3, 4), 51 * i, dtype=np.uint8) for i in range(5)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return Image.fromarray(self.images[i]), i % 2


def test_pil_and_uint8_samples_are_scaled_and_classes_read():
    ds = as_dataset(_PilDataset())
    assert ds.x.shape == (5, 1, 3, 4) and ds.x.dtype == torch.float32
    assert ds.x[:, 0, 0, 0].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert ds.num_classes == 4 and ds.classes == ("a", "b", "c", "d")  # from .classes
    u8 = as_dataset((torch.full((2, 3, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1])))
    assert float(u8.x.max()) == 1.0
    hw = as_dataset(TensorDataset(torch.rand(4, 6, 6), torch.tensor([0, 1, 0, 1])))
    assert hw.input_shape == (1, 6, 6)  # H x W samples get one channel


def test_bad_data_is_a_clear_error():
    x, y = _tensors()
    with pytest.raises(ValueError, match=r"pixel space \[0, 1\]"):
        as_dataset(TensorDataset(x * 2 - 1, y))
    with pytest.raises(ValueError, match=r"\(x, y\) pairs"):
        as_dataset(TensorDataset(x))
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        as_dataset((x, y), num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        as_dataset(TensorDataset(x[:0], y[:0]))
    with pytest.raises(ValueError, match="expected data"):
        as_dataset("fashion-mnist")


# ------------------------------------------------------------------ image folders
def _write_folder(root, classes=("cat", "dog"), per_class=5, size=6, rgb=False):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            value = 40 * c + 10 * i
            arr = np.full((size, size, 3) if rgb else (size, size), value, dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")


def test_image_folder_splits_each_class_by_seed(tmp_path):
    _write_folder(tmp_path / "imgs")
    train = image_folder(tmp_path / "imgs", "train")
    test = image_folder(tmp_path / "imgs", "test")
    assert train.classes == ("cat", "dog") and train.num_classes == 2
    assert train.input_shape == (1, 6, 6) and len(train) == 8 and len(test) == 2
    assert test.y.tolist() == [0, 1]  # one of five per class is held out
    values = sorted(round(float(v) * 255) for v in torch.cat([train.x, test.x])[:, 0, 0, 0])
    assert values == [0, 10, 20, 30, 40, 40, 50, 60, 70, 80]  # disjoint and complete
    assert test.info == train.info  # every split carries the train part's metadata
    assert train.name == f"folder:{tmp_path / 'imgs'}"


def test_image_folder_with_train_and_test_folders_and_the_load_form(tmp_path):
    _write_folder(tmp_path / "d" / "train", per_class=3, rgb=True)
    _write_folder(tmp_path / "d" / "test", per_class=2, rgb=True)
    spec = f"folder:{tmp_path / 'd'}"
    train, test = data.load(spec, "train"), data.load(spec, "test")
    assert (len(train), len(test)) == (6, 4) and train.input_shape == (3, 6, 6)
    assert data.info(spec).num_classes == 2
    resized = data.load(spec, "test", size=4)
    assert resized.input_shape == (3, 4, 4)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        image_folder(tmp_path / "empty")
    _write_folder(tmp_path / "mixed", classes=("a",), per_class=2)
    for name in ("y.png", "z.png"):  # train holds 3 of these 4: both sizes
        Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(tmp_path / "mixed" / "a" / name)
    with pytest.raises(ValueError, match="different sizes"):
        image_folder(tmp_path / "mixed")


# ------------------------------------------------------------------ import paths
@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    """A module ``my_data_mod`` on sys.path with loaders of several return styles."""
    (tmp_path / "my_data_mod.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def _part(n, seed):\n"
        "    g = torch.Generator().manual_seed(seed)\n"
        "    return TensorDataset(torch.rand(n, 1, 4, 4, generator=g), torch.arange(n) % 3)\n"
        "def load(split):\n"
        "    return _part(9 if split == 'train' else 6, 0 if split == 'train' else 1)\n"
        "def splits():\n"
        "    return {'train': _part(9, 0), 'test': _part(6, 1)}\n"
        "def pair():\n"
        "    return _part(9, 0), _part(6, 1)\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_data_mod"
    sys.modules.pop("my_data_mod", None)


@pytest.mark.parametrize("fn", ["load", "splits", "pair"])
def test_import_path_loads_a_users_dataset(user_module, fn):
    spec = f"{user_module}:{fn}"
    train, test = data.load(spec, "train"), data.load(spec, "test")
    assert (len(train), len(test)) == (9, 6) and train.num_classes == 3
    assert train.name == spec and test.name == spec  # recorded as given, so a run reloads it
    assert data.info(spec).input_shape == (1, 4, 4)


def test_import_path_errors(user_module):
    with pytest.raises(ValueError, match="cannot import module 'no_such_mod_xyz'"):
        data.load("no_such_mod_xyz:load")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        data.load(f"{user_module}:nope")
    with pytest.raises(ValueError, match="is not callable"):
        data.load(f"{user_module}:NOT_CALLABLE")
    with pytest.raises(ValueError, match="unknown split"):
        data.load(f"{user_module}:load", "dev")


def test_cli_trains_a_users_model_on_an_image_folder_and_reloads_it(tmp_path, monkeypatch):
    import sparta
    from sparta.cli import main

    _write_folder(tmp_path / "imgs", per_class=6)
    (tmp_path / "my_cli_nets.py").write_text(
        "from torch import nn\n"
        "def make_net(num_classes, input_shape):\n"
        "    c, h, w = input_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = f"folder:{tmp_path / 'imgs'}"
    argv = ["--quiet", "train", "--dataset", spec, "--model", "my_cli_nets:make_net"]
    argv += ["--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "runs"), "--name", "u"]
    assert main(argv) == 0
    config = (tmp_path / "runs" / "u" / "config.yaml").read_text()
    assert f"dataset: {spec}" in config and "model: my_cli_nets:make_net" in config
    model = sparta.load(tmp_path / "runs" / "u")  # rebuilt from the recorded import path
    assert model(data.load(spec, "test").x).shape == (2, 2)
    sys.modules.pop("my_cli_nets", None)
