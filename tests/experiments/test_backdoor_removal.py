"""Backdoor removal by unlearning: the forget set is exactly the poisoned samples."""

import torch

from sparta import data, models
from sparta.backdoor import poison
from sparta.experiments.backdoor_removal import poisoned_setting, remove
from sparta.train import TrainConfig, Trainer
from sparta.unlearn import UnlearnOptions


def test_remove_forgets_the_poisoned_samples_on_a_copy():
    train = data.load("digits", "train").take(600, seed=0)
    test = data.load("digits", "test").take(200, seed=0)
    poisoned = poison(train, "badnets:ratio=0.1,target=3,size=3")
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.25)
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=64, val_fraction=0, best_metric="")
    Trainer(model, poisoned.data, cfg, quiet=True).fit()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    setting = poisoned_setting(poisoned, test)
    assert torch.equal(setting.forget_pos, poisoned.positions)
    assert len(setting.forget_pos) + len(setting.retain_pos) == len(poisoned.data)
    assert str(setting.spec) == f"poisoned:{len(poisoned.positions)}"

    opts = UnlearnOptions(epochs=1, batch_size=64, mia_max=100)
    res = remove(model, poisoned, test, "rl", opts, cfg)
    s = res.summary
    assert {"asr_before", "test_acc_before", "asr", "test_acc", "ua", "ra", "ta"} <= set(s)
    assert s["method"] == "rl" and s["n_forget"] == len(poisoned.positions)
    assert res.unlearn.setting.spec == setting.spec
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, res.model.state_dict()[k]) for k, v in before.items())
