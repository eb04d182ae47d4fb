"""HYDRA (2002.10509): scaled score init, straight-through gradient through the robust
objective, frozen weights, exact layer-wise sparsity, resume after a kill, the CLI."""

from __future__ import annotations

import copy
import json
import math
import signal
import subprocess
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparta.cli import main as cli
from sparta.models.utils import frozen
from sparta.sparsity import prune
from sparta.sparsity.hydra import HydraOptions, ThroughScores, hydra, hydra_scores, score_phase
from sparta.sparsity.masks import masks_of
from sparta.sparsity.scores import ScoredModel
from sparta.sparsity.topk import n_keep
from sparta.train import TrainConfig, create_objective, load_splits, train
from tests.killed_run import ENV, SPARTA, same_weights

CFG = dict(dataset="digits", model="lenet300", batch_size=64, train_subset=600, test_subset=100)


@pytest.fixture(scope="module")
def dense() -> nn.Module:
    """A LeNet-300-100 trained briefly on digits (the pre-trained model HYDRA prunes)."""
    cfg = TrainConfig(**CFG, epochs=2, lr=0.1)
    return train(cfg, write_run=False, quiet=True).model


def test_scaled_init_is_hydra_eq5_and_the_first_mask_is_layerwise_magnitude(dense):
    scores = hydra_scores(dense)
    w = dense.fc2.weight.detach()
    expected = math.sqrt(6.0 / 300) * w.abs() / w.abs().max()
    assert torch.allclose(scores["fc2.weight"], expected)
    scored = ScoredModel(copy.deepcopy(dense), 0.9, init=scores, distribution="uniform")
    baseline = copy.deepcopy(dense)
    prune(baseline, "magnitude", 0.9, distribution="uniform")
    want = masks_of(baseline)
    got = scored.masks()
    assert got.keys() == want.keys()
    for name in got:
        assert torch.equal(got[name], want[name]), name


def test_straight_through_gradient_of_the_scores_is_grad_w_eff_times_w():
    """One linear layer, cross-entropy: dL/dW_eff = (softmax(z) - onehot(y))^T x / B by
    hand, and HYDRA's score gradient is that times w (the top-k passes it straight through)."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    scored = ScoredModel(layer, 0.5, init=hydra_scores(layer, ["weight"]), params=["weight"])
    x, y = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    loss, _ = ThroughScores(create_objective("standard"))(scored, x, y)
    loss.backward()
    mask = scored.masks()["weight"]
    w = layer.weight.detach()
    z = x @ (w * mask).t() + layer.bias.detach()
    grad_w_eff = (F.softmax(z, 1) - F.one_hot(y, 3).float()).t() @ x / len(y)
    assert torch.allclose(scored.score_of("weight").grad, grad_w_eff * w, atol=1e-6)
    assert layer.weight.grad is None and layer.bias.grad is None  # frozen


def test_adversarial_objective_reaches_the_scores_and_never_the_weights(dense):
    scored = ScoredModel(copy.deepcopy(dense), 0.8, init=hydra_scores(dense))
    objective = ThroughScores(create_objective("pgd-at", eps=0.1, steps=2, seed=0))
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8)
    loss, logits = objective(scored, x, y)
    loss.backward()
    assert objective.robust_logits and logits.shape == (8, 10)
    for name, s in scored.named_scores().items():
        assert s.grad is not None and s.grad.abs().sum() > 0, name
        pruned_w = dict(scored.model.named_parameters())[name]
        assert pruned_w.grad is None and not pruned_w.requires_grad


def test_certified_objective_bounds_the_pruned_network(dense):
    """Through the scores, the IBP loss is the one of the network with the mask applied."""
    scored = ScoredModel(copy.deepcopy(dense), 0.9, init=hydra_scores(dense))
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    ibp = create_objective("ibp", eps=0.05, kappa=0.0)
    loss, _ = ThroughScores(ibp)(scored, x, y)
    masked = copy.deepcopy(dense)
    with torch.no_grad():
        for name, m in scored.masks().items():
            dict(masked.named_parameters())[name].mul_(m)
    want, _ = ibp(masked, x, y)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert all(s.grad is not None for s in scored.named_scores().values())


def test_frozen_skips_computed_weights_and_restores_flags():
    layer = nn.Linear(2, 2)
    with torch.nn.utils.stateless._reparametrize_module(layer, {"weight": layer.weight * 2}):
        with frozen(layer):
            assert not layer.bias.requires_grad
    assert layer.weight.requires_grad and layer.bias.requires_grad


def test_score_phase_keeps_every_weight_bit_identical_and_moves_the_mask(dense):
    model = copy.deepcopy(dense)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(**CFG, epochs=1)
    opts = HydraOptions(sparsity=0.9, objective="pgd-at", eps=0.05, attack_steps=2, score_epochs=2)
    start = ScoredModel(copy.deepcopy(dense), 0.9, init=hydra_scores(dense)).masks()
    scored, history = score_phase(model, opts, cfg, load_splits(cfg))
    assert len(history) == 2
    for k, v in scored.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    moved = sum(int((scored.masks()[n] != start[n]).sum()) for n in start)
    assert moved > 0  # the scores learned something the magnitude ranking did not say


def test_hydra_exact_layerwise_sparsity_and_pruned_weights_stay_zero(dense, tmp_path):
    cfg = TrainConfig(**CFG, epochs=2, lr=0.01)
    res = hydra(
        copy.deepcopy(dense),
        cfg,
        root=tmp_path,
        name="h",
        sparsity=0.95,
        objective="trades",
        eps=0.05,
        attack_steps=2,
        score_epochs=1,
    )
    masks = masks_of(res.model)
    params = dict(res.model.named_parameters())
    assert set(masks) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    for name, m in masks.items():
        assert int(m.sum()) == n_keep(m.numel(), 0.05), name  # every layer at the same k
        assert torch.all(params[name][~m] == 0), name
        assert torch.any(params[name][m] != 0), name
    assert res.summary["sparsity"] == pytest.approx(0.95, abs=1e-3)
    run = res.run.path
    assert (run / "score" / "summary.json").is_file() and (run / "model.safetensors").is_file()
    # the kept weights were fine-tuned: they differ from the pre-trained ones
    assert not torch.equal(params["fc1.weight"], dense.fc1.weight * masks["fc1.weight"])


def test_bad_options_name_the_value():
    with pytest.raises(ValueError, match="objective='fgsm'"):
        HydraOptions(objective="fgsm")
    with pytest.raises(ValueError, match="sparsity=1.0"):
        HydraOptions(sparsity=1.0)
    with pytest.raises(ValueError, match="score_epochs=0"):
        HydraOptions(score_epochs=0)


# ------------------------------------------------------------------ the CLI
SMALL = ["--train-subset", "400", "--test-subset", "100", "--batch-size", "32"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """``sparta train`` run folder ``dense`` (in process)."""
    out = tmp_path_factory.mktemp("hydra")
    code = cli(
        [
            "--quiet",
            "train",
            "--dataset",
            "digits",
            "--model",
            "lenet300",
            "--epochs",
            "2",
            *SMALL,
            "--out",
            str(out),
            "--name",
            "dense",
        ]
    )
    assert code == 0
    return out


def _hydra_args(out) -> list[str]:
    return [
        "hydra",
        "--ckpt",
        str(out / "dense"),
        "--sparsity",
        "0.9",
        "--eps",
        "0.05",
        "--attack-steps",
        "2",
        "--score-epochs",
        "2",
        "--epochs",
        "2",
        "--out",
        str(out),
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--objective", "fgsm"], "objective='fgsm'"),
        (["--sparsity", "1.5"], "sparsity=1.5"),
        (["--score-epochs", "0"], "score_epochs=0"),
        (["--ckpt", "nowhere"], "nowhere"),
    ],
)
def test_cli_bad_input_is_one_line_and_leaves_no_folder(pretrained, capsys, flags, message):
    assert cli(["--quiet", *_hydra_args(pretrained), *flags, "--name", "bad"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (pretrained / "bad").exists()


def _kill_when(args: list[str], marker) -> None:
    """Run the CLI in a fresh process and SIGKILL it as soon as ``marker`` exists."""
    proc = subprocess.Popen(
        [*SPARTA, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_in_each_phase_resumes_to_the_same_weights(pretrained):
    """Kill during score learning (after its first epoch checkpoint), resume and kill again
    during fine-tuning, resume: the pruned and the final model are bit-identical to an
    uninterrupted run's, and both phases are recorded."""
    args = _hydra_args(pretrained)
    subprocess.run([*SPARTA, *args, "--name", "whole"], check=True, env=ENV, capture_output=True)
    run = pretrained / "killed"
    _kill_when([*args, "--name", "killed"], run / "score" / "checkpoints" / "epoch_0001.json")
    assert not (run / "score" / "summary.json").exists(), "score phase not interrupted"
    _kill_when([*args, "--name", "killed", "--resume"], run / "checkpoints" / "epoch_0001.json")
    assert (run / "score" / "summary.json").exists() and not (run / "summary.json").exists()
    done = subprocess.run(
        [*SPARTA, *args, "--name", "killed", "--resume"], env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "sparsity=0.9000" in done.stdout
    whole = pretrained / "whole"
    assert same_weights(whole / "score", run / "score")
    assert same_weights(whole, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "epoch" in r] == [1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3) and summary["epochs"] == 2
    assert json.loads((run / "score" / "summary.json").read_text())["score_epochs"] == 2
