"""The training engine: one fit loop, objectives, callbacks, checkpoints, distributed."""

from sparta.train.api import Splits, TrainResult, load_splits, train
from sparta.train.callbacks import BestCheckpoint, Callback, EarlyStopping, TensorBoardLogger
from sparta.train.config import TrainConfig
from sparta.train.deepzero import DeepZero
from sparta.train.evaluate import eval_mode, evaluate, evaluate_corruptions, frozen, predict
from sparta.train.loop import Trainer, make_optimizer
from sparta.train.objectives import (
    CrossEntropy,
    Objective,
    create_objective,
    objective_names,
    register_objective,
)
from sparta.train.schedule import lr_factor

__all__ = [
    "BestCheckpoint",
    "Callback",
    "CrossEntropy",
    "DeepZero",
    "EarlyStopping",
    "Objective",
    "Splits",
    "TensorBoardLogger",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "create_objective",
    "eval_mode",
    "evaluate",
    "evaluate_corruptions",
    "frozen",
    "load_splits",
    "lr_factor",
    "make_optimizer",
    "objective_names",
    "predict",
    "register_objective",
    "train",
]
