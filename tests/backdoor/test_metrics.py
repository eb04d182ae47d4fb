"""ASR counts triggered non-target images classified as the target, and nothing else."""

import pytest
import torch
from torch import nn

from sparta.backdoor import PatchTrigger, asr, backdoor_metrics, poison
from sparta.data import DatasetInfo, ImageDataset
from tests.data.helpers import TORCH_FORMS, torch_form

INFO = DatasetInfo("toy", (1, 4, 4), 3, (0.5,), (0.5,))


class Stub(nn.Module):
    """Predicts 2 when the bottom-right pixel is white, else the label written in pixel (0,0)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # predict() reads the device from it

    def forward(self, x):
        label = (x[:, 0, 0, 0] * 10).round().long()
        out = nn.functional.one_hot(label, 3).float()
        out[x[:, 0, 3, 3] == 1.0] = torch.tensor([0.0, 0.0, 1.0])
        return out


def test_asr_ignores_target_class_images():
    x = torch.zeros(6, 1, 4, 4)
    x[:, 0, 0, 0] = torch.tensor([0, 1, 2, 0, 1, 2]) / 10
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    ds = ImageDataset(x, y, INFO)
    trig = PatchTrigger(size=1, pos="br")
    assert asr(Stub(), ds, trig, target=2) == 1.0  # 4 non-target images, all flipped
    # a trigger the stub ignores: non-target images keep their class -> ASR 0,
    # although the 2 target-class images are "classified as the target"
    assert asr(Stub(), ds, PatchTrigger(size=1, pos=(1, 1)), 2) == 0.0
    m = backdoor_metrics(Stub(), ds, trig, 2)
    assert m["test_acc"] == 1.0 and m["asr"] == 1.0


def test_asr_hand_computed_partial():
    x = torch.zeros(5, 1, 4, 4)
    y = torch.tensor([0, 0, 1, 1, 2])
    x[:, 0, 0, 0] = y / 10
    x[0, 0, 2, 2] = 1.0  # marks image 0 as "immune"

    class Partial(Stub):
        def forward(self, x):
            out = super().forward(x)
            immune = x[:, 0, 2, 2] == 1.0
            out[immune] = torch.tensor([1.0, 0.0, 0.0])
            return out

    assert asr(Partial(), ImageDataset(x, y, INFO), PatchTrigger(1, "br"), target=2) == 3 / 4


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_asr_and_poison_take_a_torch_dataset_or_loader(kind):
    x = torch.zeros(6, 1, 4, 4)
    x[:, 0, 0, 0] = torch.tensor([0, 1, 2, 0, 1, 2]) / 10
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = torch_form(ImageDataset(x, y, INFO), kind)
    trig = PatchTrigger(size=1, pos="br")
    assert asr(Stub(), plain, trig, target=2) == 1.0
    assert backdoor_metrics(Stub(), plain, trig, 2) == {"test_acc": 1.0, "asr": 1.0}
    p = poison(plain, "badnets:ratio=0.5,target=2,size=1")
    assert len(p.positions) == 2 and (p.data.y[p.positions] == 2).all()
