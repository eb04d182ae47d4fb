"""Tiny synthetic data and models for the unlearning tests."""

import pytest
import torch

from sparta import data as sdata
from sparta import models
from sparta.train import TrainConfig, Trainer

SHAPE = (1, 8, 8)


def tiny_data(n_train=240, n_test=120, noise=0.5, classes=4):
    train = sdata.load(
        "synthetic", "train", n=n_train, shape=SHAPE, num_classes=classes, noise=noise
    )
    test = sdata.load("synthetic", "test", n=n_test, shape=SHAPE, num_classes=classes, noise=noise)
    return train, test


def fit(model, data, epochs, lr=0.05, batch_size=32, **kw):
    cfg = TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, val_fraction=0.0, best_metric="", **kw
    )
    Trainer(model, data, cfg, quiet=True).fit()
    return cfg


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained on synthetic 8x8 images: (model, train, test, config)."""
    torch.manual_seed(0)
    train, test = tiny_data()
    model = models.create("lenet300", train, width=0.25)
    cfg = fit(model, train, epochs=8)
    return model, train, test, cfg
