"""WOT: the weights become w_0 + sum_j c_j d_j with c in [0, 1]; masks and optimizer reset."""

import pytest
import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.defenses import WOT, RobustValidation
from sparta.runs import Run
from sparta.sparsity.handle import MaskCallback
from sparta.sparsity.masks import attach
from sparta.train import BestCheckpoint, TrainConfig, Trainer, create_objective
from tests.data.helpers import TORCH_FORMS, torch_form


def _setup(masked=False, **wot_kw):
    torch.manual_seed(0)
    data = sdata.load("synthetic", "train", n=320, shape=(1, 6, 6), num_classes=4, seed=0)
    train, holdout = sdata.train_val_split(data, val_size=64, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))
    if masked:
        attach(model, {"1.weight": torch.rand(16, 36, generator=torch.Generator()) > 0.5})
    opts = {"k": 2, "interval": 2, "fit_steps": 3, "attack_steps": 2, **wot_kw}
    wot = WOT(holdout, 0.1, **opts)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, schedule="constant", val_fraction=0)
    cbs = [MaskCallback(), wot] if masked else [wot]
    obj = create_objective("pgd-at", eps=0.1, steps=2)
    return Trainer(model, train, cfg, objective=obj, callbacks=cbs, quiet=True), wot


@pytest.mark.parametrize("blocks", [1, 2])
def test_refine_sets_the_weighted_combination(blocks):
    trainer, wot = _setup(blocks=blocks)
    model = trainer.model
    params = list(model.parameters())
    points = []
    for _ in range(3):  # three recorded points: two segments
        points.append([p.detach().clone() for p in params])
        with torch.no_grad():
            for p in params:
                p.add_(0.05 * torch.randn_like(p))
    wot.points = points
    trainer.optimizer.state[params[0]]["momentum_buffer"] = torch.ones_like(params[0])
    c = wot.refine(trainer)
    assert c.shape == (2, blocks) and (c >= 0).all() and (c <= 1).all()
    # two blocks of about equal size: the 16x36 weight alone, then the rest (16 + 64 + 4)
    groups = torch.tensor([0, 1, 1, 1]) if blocks == 2 else torch.zeros(4, dtype=torch.long)
    for i, p in enumerate(params):
        g = int(groups[i])
        w = points[0][i] + c[0, g] * (points[1][i] - points[0][i])
        w = w + c[1, g] * (points[2][i] - points[1][i])
        assert torch.allclose(p.detach(), w.float(), atol=1e-6)
    assert len(trainer.optimizer.state) == 0  # momentum reset
    assert wot.refinements == 1 and len(wot.points) == 1  # the trajectory restarts


def test_wot_runs_in_training_with_masks_and_logs():
    trainer, wot = _setup(masked=True)
    history = trainer.fit()
    assert wot.refinements >= 2
    assert history[-1]["wot_refinements"] == wot.refinements
    assert 0 <= history[-1]["wot_coef_mean"] <= 1
    w, mask = trainer.model[1].weight, trainer.model[1].weight_mask
    assert (w[~mask] == 0).all()
    assert wot.state_dict()["refinements"] == wot.refinements


def test_bad_options():
    data = sdata.load("synthetic", "train", n=32, shape=(1, 6, 6), num_classes=4)
    for kw, needle in [
        ({"k": 0}, "k=0"),
        ({"interval": 0}, "interval=0"),
        ({"start": 1.0}, "start"),
    ]:
        with pytest.raises(ValueError, match=needle):
            WOT(data, 0.1, **kw)


def test_robust_validation_and_best_checkpoint(tmp_path):
    import sparta.attacks.whitebox  # noqa: F401  (registers pgd)

    torch.manual_seed(0)
    data = sdata.load("synthetic", "train", n=320, shape=(1, 6, 6), num_classes=4, seed=0)
    train, val = sdata.train_val_split(data, val_size=64, seed=0)
    model = models.create("lenet300", dataset=data.info, width=0.1)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="constant")
    run = Run.create(cfg.to_dict(), "train", root=tmp_path, name="r")
    cbs = [RobustValidation(val, 0.1, steps=3, n=50), BestCheckpoint("val_robust_acc")]
    hist = Trainer(model, train, cfg, val_data=val, callbacks=cbs, run=run, quiet=True).fit()
    assert all(0 <= h["val_robust_acc"] <= h["val_acc"] for h in hist)
    assert "best_val_robust_acc" in hist[-1] and (tmp_path / "r" / "best.safetensors").is_file()
    assert len(cbs[0].data) == 50


def test_killed_wot_run_resumes_to_identical_weights(tmp_path):
    """Kill a real ``--adv wot`` training process after its first epoch, in the middle of a
    WOT trajectory; --resume ends bit for bit where an uninterrupted run ends (the recorded
    points, WOT's generator and the objective's generator travel in the checkpoint)."""
    import json
    import subprocess

    from tests.killed_run import ENV, SPARTA, kill_after_first_epoch_and_resume, same_weights

    args = [
        *SPARTA,
        "train",
        *("--dataset", "digits", "--model", "lenet300", "--width", "0.25"),
        *("--epochs", "3", "--batch-size", "32", "--train-subset", "600", "--lr", "0.05"),
        *("--test-subset", "100", "--val-fraction", "0.2", "--optimizer", "sgd"),
        *("--adv", "wot", "--eps", "0.1", "--adv-steps", "2", "--wot-k", "2"),
        *("--wot-interval", "4", "--wot-fit-steps", "2", "--val-attack-steps", "1"),
        *("--val-n", "20", "--out", str(tmp_path)),
    ]
    subprocess.run([*args, "--name", "full"], check=True, env=ENV, capture_output=True)
    meta = json.loads((tmp_path / "full" / "checkpoints" / "epoch_0003.json").read_text())
    # 480 train examples / 32 = 15 steps an epoch: a refinement every 8 steps, so each epoch
    # ends inside a trajectory (points recorded, not yet refined)
    assert meta["callbacks"]["wot"]["refinements"] == 5
    assert meta["callbacks"]["wot"]["n_points"] >= 1
    rows = kill_after_first_epoch_and_resume(args, tmp_path, "killed")
    assert same_weights(tmp_path / "full", tmp_path / "killed")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert "train_robust_acc" in rows[-1] and "train_acc" not in rows[-1]
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert "train_robust_acc" in summary and "train_acc" not in summary


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_robust_validation_and_wot_take_a_torch_dataset_or_loader(kind):
    import sparta.attacks.whitebox  # noqa: F401  (registers pgd)

    data = sdata.load("synthetic", "train", n=64, shape=(1, 6, 6), num_classes=4, seed=0)
    plain = torch_form(data, kind)
    assert torch.equal(RobustValidation(plain, 0.1, steps=2).data.x, data.x)
    assert torch.equal(WOT(plain, 0.1, k=2).holdout.y, data.y)
