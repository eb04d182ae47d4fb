import copy
import json

import pytest
import torch

import sparta
from sparta import models
from sparta.data import DatasetInfo
from sparta.io import latest_checkpoint, read_checkpoint, resolve

INFO = DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.286,), (0.353,))


@pytest.mark.parametrize("name", ["lenet300", "lenet5", "resnet20"])
def test_save_load_round_trip_rebuilds_identical_model(tmp_path, name):
    torch.manual_seed(0)
    model = models.create(name, dataset=INFO, width=0.5).eval()
    path = sparta.save(model, tmp_path / "m.safetensors", note="hello", epoch=3)
    loaded = sparta.load(path)
    assert not loaded.training
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert loaded.sparta_checkpoint["metadata"] == {"note": "hello", "epoch": 3}
    assert models.spec_of(loaded) == models.spec_of(model)


def test_save_to_folder_and_load_from_folder(tmp_path):
    model = models.create("lenet300", dataset=INFO)
    sparta.save(model, tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "model.json").is_file()
    assert resolve(tmp_path) == tmp_path / "model.safetensors"
    sparta.load(tmp_path)


def test_corrupt_or_missing_files_are_clear_errors(tmp_path):
    model = models.create("lenet300", dataset=INFO)
    path = sparta.save(model, tmp_path / "m.safetensors")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        sparta.load(tmp_path / "nothing-here")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        sparta.load(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint in run folder"):
        sparta.load(empty)


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    path = sparta.save(models.create("lenet300", dataset=INFO), tmp_path / "m.safetensors")
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["model"]["width"] = 2.0  # the sidecar now describes another shape
    side.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        sparta.load(path)
    meta["format"] = "other"
    side.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not a sparta checkpoint"):
        read_checkpoint(path)


def test_latest_checkpoint_picks_highest_epoch(tmp_path):
    model = models.create("lenet300", dataset=INFO)
    for e in (2, 10, 1):
        sparta.save(model, tmp_path / f"epoch_{e:04d}.safetensors")
    assert latest_checkpoint(tmp_path).name == "epoch_0010.safetensors"
    assert latest_checkpoint(tmp_path / "missing") is None


def test_loaded_model_survives_deepcopy(tmp_path):
    model = models.create("lenet5", dataset=INFO)
    loaded = sparta.load(sparta.save(model, tmp_path / "m.safetensors"))
    clone = copy.deepcopy(loaded)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(clone(x), loaded(x))


def test_a_model_from_an_import_path_reloads_from_its_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "my_io_models.py").write_text(
        "from torch import nn\n"
        "def make_net(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[1] * input_shape[2], 7),\n"
        "                         nn.ReLU(), nn.Linear(7, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    info = DatasetInfo("toy", (1, 3, 3), 4, (0.5,), (0.25,))
    net = models.create("my_io_models:make_net", dataset=info)
    sparta.save(net, tmp_path / "run")
    back = sparta.load(tmp_path / "run")
    pairs = zip(net.state_dict().values(), back.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert models.spec_of(back)["name"] == "my_io_models:make_net"


def test_saving_an_unregistered_module_says_how_to_make_it_reloadable(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="register_model") as err:
        sparta.save(net, tmp_path / "x.safetensors")
    assert "my_pkg.models:make_net" in str(err.value)
    assert not (tmp_path / "x.safetensors").exists()
