import math

import pytest
import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.runs import Run
from sparta.train import Callback, TrainConfig, Trainer, evaluate
from tests.data.helpers import TORCH_FORMS, torch_form


def _data(n=512, seed=0):
    return sdata.load("synthetic", "train", n=n, shape=(1, 8, 8), num_classes=4, seed=seed)


def _fit(cfg, data, run=None, resume=False, callbacks=()):
    torch.manual_seed(cfg.seed)
    info = data.info if hasattr(data, "info") else _data().info
    model = models.create("lenet300", dataset=info, width=0.25)
    trainer = Trainer(model, data, cfg, callbacks=callbacks, run=run, quiet=True)
    trainer.fit(resume=resume)
    return trainer


def _cfg(**kw):
    base = dict(dataset="synthetic", epochs=3, batch_size=64, lr=0.05, val_fraction=0.0)
    return TrainConfig(**{**base, **kw})


def test_training_learns_the_synthetic_task():
    data = _data()
    trainer = _fit(_cfg(epochs=4), data)
    before = evaluate(models.create("lenet300", dataset=data.info, width=0.25), data)["acc"]
    after = evaluate(trainer.model, data)["acc"]
    assert after > 0.9 > before + 0.3
    assert trainer.history[-1]["train_loss"] < trainer.history[0]["train_loss"]
    assert trainer.step == 4 * 8


def test_same_seed_gives_bit_identical_weights_and_other_seed_does_not():
    data = _data()
    for opt in ("sgd", "adamw"):
        a = _fit(_cfg(optimizer=opt, augment="flip"), data).model.state_dict()
        b = _fit(_cfg(optimizer=opt, augment="flip"), data).model.state_dict()
        c = _fit(_cfg(optimizer=opt, augment="flip", seed=1), data).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)


class _Recorder(Callback):
    name = "recorder"

    def __init__(self):
        self.events = []

    def on_fit_start(self, t):
        self.events.append("fit_start")

    def after_backward(self, t):
        assert all(p.grad is not None for p in t.model.parameters())
        self.events.append("backward")

    def after_step(self, t):
        self.events.append("step")

    def on_epoch_end(self, t, metrics):
        metrics["custom"] = 1.0
        self.events.append("epoch_end")

    def on_fit_end(self, t):
        self.events.append("fit_end")


def test_callback_hooks_run_in_order_and_can_add_metrics():
    rec = _Recorder()
    trainer = _fit(_cfg(epochs=2), _data(n=128), callbacks=[rec])
    assert rec.events[0] == "fit_start" and rec.events[-1] == "fit_end"
    assert rec.events.count("backward") == rec.events.count("step") == 4
    assert rec.events[1:3] == ["backward", "step"]
    assert all(h["custom"] == 1.0 for h in trainer.history)


class _Stopper(Callback):
    def on_epoch_end(self, t, metrics):
        t.should_stop = True


def test_callback_can_stop_training():
    trainer = _fit(_cfg(epochs=5), _data(n=128), callbacks=[_Stopper()])
    assert trainer.epoch == 1


def test_resume_in_process_matches_uninterrupted(tmp_path):
    data = _data(n=256)
    full = _fit(_cfg(epochs=3, optimizer="adamw"), data).model.state_dict()
    run = Run.create({"x": 1}, "train", root=tmp_path)
    _fit(_cfg(epochs=3, optimizer="adamw"), data, run=run, callbacks=[_Stopper()])
    resumed = _fit(_cfg(epochs=3, optimizer="adamw"), data, run=run, resume=True)
    assert resumed.epoch == 3
    assert all(torch.equal(full[k], resumed.model.state_dict()[k]) for k in full)
    epochs = [r["epoch"] for r in run.metrics()]
    assert epochs == [1, 2, 3]
    # only the newest keep_checkpoints=2 epoch checkpoints remain
    assert sorted(p.name for p in run.checkpoint_dir.glob("*.safetensors")) == [
        "epoch_0002.safetensors",
        "epoch_0003.safetensors",
    ]


def test_grad_clip_bounds_the_update():
    data = _data(n=64)
    cfg = _cfg(
        epochs=1,
        batch_size=64,
        lr=1.0,
        momentum=0.0,
        weight_decay=0.0,
        grad_clip=1e-3,
        schedule="constant",
    )
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=data.info, width=0.25)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    Trainer(model, data, cfg, quiet=True).fit()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 1e-3 * 1.0001


def test_evaluate_restores_mode_and_counts_exactly():
    data = _data(n=10)

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(len(x), 4)
            out[:, 0] = 1.0  # always predicts class 0
            return out + 0 * self.w

    m = Fixed().train()
    res = evaluate(m, data, batch_size=3)
    assert m.training
    hits = int((data.y == 0).sum())
    assert res["acc"] == hits / 10
    e = math.e
    want = (hits * -math.log(e / (e + 3)) + (10 - hits) * -math.log(1 / (e + 3))) / 10
    assert res["loss"] == pytest.approx(want, rel=1e-6)
    assert res["n"] == 10


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_trainer_and_evaluate_take_a_torch_dataset_or_loader(kind):
    data, cfg = _data(n=128), _cfg(epochs=2)
    ref, got = _fit(cfg, data), _fit(cfg, torch_form(data, kind))
    for a, b in zip(ref.model.parameters(), got.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the same training, bit for bit
    assert evaluate(got.model, torch_form(data, kind)) == evaluate(ref.model, data)


def test_train_takes_splits_of_torch_datasets_and_loaders():
    from sparta.train import Splits, train

    data = _data(n=128)
    test = sdata.load("synthetic", "test", n=40, shape=(1, 8, 8), num_classes=4)
    splits = Splits(torch_form(data, "dataset"), None, torch_form(test, "loader"))
    res = train(_cfg(epochs=1, model="lenet300", width=0.25), splits=splits, write_run=False)
    assert res.summary["test_acc"] == evaluate(res.model, test)["acc"]
    spec = models.spec_of(res.model)["dataset"]  # metadata measured from the data
    assert spec["input_shape"] == [1, 8, 8] and spec["num_classes"] == 4
    assert spec["mean"] == pytest.approx([float(data.x.mean())], rel=1e-5)
