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


_WRITER = """
import sys, torch, sparta
from sparta import models
from sparta.data import DatasetInfo
from sparta.io import model_meta, write_checkpoint
from sparta.runs import Run
info = DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.286,), (0.353,))
run = Run(sys.argv[1])
run.path.mkdir(parents=True, exist_ok=True)
nets = [models.create("lenet300", dataset=info, width=w) for w in (1.0, 2.0)]
for step in range(10**6):
    net = nets[step % 2]  # alternate shapes: new tensors under an old sidecar cannot load
    write_checkpoint(run.checkpoint_dir / f"epoch_{step:04d}.safetensors",
                     {**net.state_dict(), "rng.torch": torch.get_rng_state()},
                     {**model_meta(net), "epoch": step})
    for old in sorted(run.checkpoint_dir.glob("epoch_*.safetensors"))[:-2]:
        old.with_suffix(".json").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    sparta.save(net, run.file("best.safetensors"), epoch=step)
    sparta.save(net, run.path, epoch=step)
    run.write_config({"step": step, "pad": "x" * 10000})
    run.write_summary({"step": step, "pad": list(range(5000))})
    run.log({"epoch": step})
    run.truncate_metrics(lambda r: True)
    if step == 1:
        print("ready", flush=True)
"""


def test_a_kill_during_writes_always_leaves_a_folder_that_loads_and_resumes(tmp_path):
    """SIGKILL a real process that rewrites checkpoints, the final and best models, config,
    summary and metrics in a loop, at random moments: every file it left reads back."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from sparta.io import restore_model
    from sparta.runs import Run
    from tests.killed_run import ENV

    rng = random.Random(0)
    for i in range(6):
        folder = tmp_path / f"run{i}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(folder)], env=ENV, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        run = Run(folder)
        model = sparta.load(folder)  # model.safetensors, else best, else newest checkpoint
        assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)
        for name in ("model.safetensors", "best.safetensors"):
            if (folder / name).with_suffix(".json").is_file():
                sparta.load(folder / name)
        newest = latest_checkpoint(run.checkpoint_dir)
        assert newest is not None
        tensors, meta = read_checkpoint(newest)
        restore_model(models.from_spec(meta["model"]), tensors, meta)  # what resume does
        assert "rng.torch" in tensors
        assert isinstance(run.read_config()["step"], int)
        assert isinstance(run.read_summary()["step"], int)
        assert all("epoch" in r for r in run.metrics())
