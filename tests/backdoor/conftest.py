"""One Trojaned model shared by the detection and recovery tests (trained once)."""

import pytest
import torch

from sparta import data, models
from sparta.backdoor import poison
from sparta.train import TrainConfig, Trainer


@pytest.fixture(scope="session")
def planted():
    """A digits MLP with a planted 3x3 patch to class 3, and its poisoned training set.
    Tests must not modify it (detect and recover work on copies or restore it)."""
    train = data.load("digits", "train")
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.5)
    poisoned = poison(train, "badnets:ratio=0.1,target=3,size=3").data
    cfg = TrainConfig(epochs=15, lr=0.05, batch_size=64, val_fraction=0, best_metric="")
    Trainer(model, poisoned, cfg, quiet=True).fit()
    return model, poisoned
