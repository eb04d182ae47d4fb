import importlib.util
import math

import pytest
import torch

from sparta import data as sdata
from sparta import models
from sparta.runs import Run
from sparta.train import BestCheckpoint, EarlyStopping, TensorBoardLogger, TrainConfig, Trainer


class _FakeTrainer:
    def __init__(self, run=None):
        self.should_stop = False
        self.run = run
        self.is_main = True
        self.model = torch.nn.Linear(2, 2)


def test_early_stopping_waits_patience_epochs():
    cb = EarlyStopping("val_loss", patience=2)
    t = _FakeTrainer()
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7], start=1):
        cb.on_epoch_end(t, {"epoch": epoch, "val_loss": loss})
        assert t.should_stop == (epoch == 4)


def test_early_stopping_rejects_bad_patience():
    with pytest.raises(ValueError, match="patience=0"):
        EarlyStopping(patience=0)


def test_best_checkpoint_tracks_max_and_saves(tmp_path, monkeypatch):
    import sparta.train.callbacks as cbs

    saved = []
    monkeypatch.setattr(cbs, "save", lambda model, path, **meta: saved.append(meta["epoch"]))
    run = Run.create({}, "t", root=tmp_path)
    cb = BestCheckpoint("val_acc")
    t = _FakeTrainer(run)
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.8], start=1):
        m = {"epoch": epoch, "val_acc": acc}
        cb.on_epoch_end(t, m)
    assert saved == [1, 2, 4] and cb.best == 0.8 and m["best_val_acc"] == 0.8
    with pytest.raises(ValueError, match="'val_acc' is not among"):
        cb.on_epoch_end(t, {"epoch": 5, "train_acc": 1.0})


def test_best_checkpoint_on_loss_minimises():
    cb = BestCheckpoint("val_loss")
    assert cb.best == math.inf
    cb.on_epoch_end(_FakeTrainer(), {"epoch": 1, "val_loss": 2.0})
    cb.on_epoch_end(_FakeTrainer(), {"epoch": 2, "val_loss": 3.0})
    assert cb.best == 2.0 and cb.best_epoch == 1


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is not None, reason="tensorboard installed"
)
def test_tensorboard_without_package_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="tensorboard package"):
        TensorBoardLogger(str(tmp_path))


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed"
)
def test_tensorboard_writes_events(tmp_path):
    data = sdata.load("synthetic", "train", n=64, shape=(1, 8, 8), num_classes=4)
    model = models.create("lenet300", dataset=data.info, width=0.25)
    cfg = TrainConfig(epochs=1, batch_size=32, val_fraction=0)
    Trainer(model, data, cfg, callbacks=[TensorBoardLogger(str(tmp_path))], quiet=True).fit()
    assert list(tmp_path.glob("events.out.tfevents.*"))
