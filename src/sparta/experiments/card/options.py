"""The report card's options: one dataclass, the source of flags, config keys and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparta.options import Options, option, require

EXECUTORS = ("local", "ray")
SUITES = ("fast", "standard")

DEFAULT_VARIANTS = (
    "dense",
    "oneshot",
    "gmp",
    "lottery",
    "rigl",
    "channel",
    "stability",
    "pgd-at",
    "pgd-at-gmp",
)
DEFAULT_SPARSITIES = (0.5, 0.8, 0.9, 0.95)


@dataclass
class CardOptions(Options):
    """Everything that determines a report card (and so its numbers)."""

    # input
    ckpt: str = option("", "trained dense model (.safetensors or run folder); '' trains one")
    dataset: str = option("fashion-mnist", "dataset name (ignored with --ckpt: its own dataset)")
    model: str = option("lenet5", "model name (ignored with --ckpt)")
    epochs: int = option(8, "epochs of the dense model (and of from-scratch variants)")
    lr: float = option(0.05, "learning rate of the dense model and the variants")
    batch_size: int = option(128, "training batch size")
    train_subset: int = option(0, "train on this many images only (0: all)")
    test_subset: int = option(0, "score accuracy/efficiency on this many test images (0: all)")
    seed: int = option(0, "card seed; each cell's seed derives from it and the cell's name")
    # what to build and score
    variants: list[str] = field(
        default_factory=lambda: list(DEFAULT_VARIANTS),
        metadata={"help": "variant recipes (see `sparta list variants`)"},
    )
    sparsities: list[float] = field(
        default_factory=lambda: list(DEFAULT_SPARSITIES),
        metadata={"help": "target sparsities in [0, 1) of the sparse variants"},
    )
    pillars: list[str] = field(
        default_factory=list,
        metadata={"help": "pillars to score (see `sparta list pillars`; empty: all)"},
    )
    metrics: list[str] = field(
        default_factory=list, metadata={"help": "metrics to show (empty: every metric)"}
    )
    # variant budgets
    finetune_epochs: int = option(2, "oneshot/channel/stability: fine-tuning epochs after pruning")
    gmp_epochs: int = option(4, "gmp / pgd-at-gmp: epochs of gradual pruning from the dense model")
    lottery_levels: int = option(
        2, "lottery: IMP levels (the rate is chosen to reach each sparsity)"
    )
    lottery_epochs: int = option(2, "lottery: training epochs per level")
    rigl_epochs: int = option(0, "rigl: epochs from scratch (0: --epochs)")
    adv_epochs: int = option(2, "pgd-at / pgd-at-gmp: PGD-AT epochs from the dense model")
    adv_steps: int = option(5, "PGD steps while adversarially training")
    zo_epochs: int = option(
        1, "deepzero: epochs of zeroth-order training from scratch (slow: ~1e3 queries a step)"
    )
    # pillar options
    eps: float = option(0.1, "robustness: L-inf budget in pixel units")
    suite: str = option("fast", "robustness: attack suite, fast or standard", choices=SUITES)
    robust_n: int = option(500, "robustness: test images attacked")
    cert_eps: float = option(0.01, "certification: L-inf budget of IBP and CROWN")
    cert_n: int = option(200, "certification: test images for IBP and CROWN")
    crown_n: int = option(20, "certification: test images for CROWN (the first of the IBP ones)")
    crown_cap_s: float = option(5.0, "certification: CROWN stops above this time per image")
    sigma: float = option(0.25, "certification: randomized smoothing noise level")
    radius: float = option(0.25, "certification: L2 radius of the smoothing certificate")
    smooth_n: int = option(50, "certification: test images certified by smoothing")
    smooth_samples: int = option(500, "certification: Monte-Carlo samples per image")
    unlearn_subset: int = option(5000, "unlearning: training images (10% of them forgotten)")
    unlearn_epochs: int = option(2, "unlearning: epochs of SalUn, FT and Retrain")
    backdoor_rounds: int = option(2, "backdoor: IMP rounds of the Trojan-ticket scan")
    backdoor_subset: int = option(2000, "backdoor: defender images of the scan")
    backdoor_recover_steps: int = option(50, "backdoor: trigger-recovery steps per label")
    latency_repeats: int = option(20, "efficiency: timed repeats per model and batch size")
    corruption_n: int = option(2000, "corruption: test images corrupted (0: all)")
    # execution
    workers: int = option(0, "local process pool size (0: run cells in this process)")
    executor: str = option("local", "where cells run: local or ray", choices=EXECUTORS)
    ray_address: str = option("", "Ray cluster address (''/local: start Ray on this machine)")

    def __post_init__(self) -> None:
        self.variants = [str(v) for v in self.variants]
        self.sparsities = [float(s) for s in self.sparsities]
        self.pillars = [str(p) for p in self.pillars]
        self.metrics = [str(m) for m in self.metrics]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed (no names here)."""
        for s in self.sparsities:
            require(0.0 <= s < 1.0, "sparsities", s, "numbers in [0, 1)")
        require(bool(self.variants), "variants", self.variants, "at least one variant")
        for name in (
            "epochs",
            "finetune_epochs",
            "gmp_epochs",
            "lottery_epochs",
            "rigl_epochs",
            "adv_epochs",
            "unlearn_epochs",
            "train_subset",
            "test_subset",
            "workers",
            "corruption_n",
        ):
            require(getattr(self, name) >= 0, name, getattr(self, name), "an integer >= 0")
        for name in (
            "batch_size",
            "lottery_levels",
            "adv_steps",
            "robust_n",
            "cert_n",
            "crown_n",
            "smooth_n",
            "smooth_samples",
            "unlearn_subset",
            "backdoor_rounds",
            "backdoor_subset",
            "backdoor_recover_steps",
            "latency_repeats",
        ):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        for name in ("lr", "sigma", "radius", "crown_cap_s"):
            require(getattr(self, name) > 0, name, getattr(self, name), "a number > 0")
        for name in ("eps", "cert_eps"):
            require(0 <= getattr(self, name) <= 1, name, getattr(self, name), "a number in [0, 1]")
        require(self.suite in SUITES, "suite", self.suite, f"one of {SUITES}")
        require(self.executor in EXECUTORS, "executor", self.executor, f"one of {EXECUTORS}")
        require(self.zo_epochs >= 1, "zo_epochs", self.zo_epochs, "an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["variants"], d["pillars"], d["metrics"] = (
            list(self.variants),
            list(self.pillars),
            list(self.metrics),
        )
        return d
