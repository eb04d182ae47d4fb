"""Sparsity: masks as buffers; criteria, structures and scopes that turn scores into masks;
schedules (one-shot, gradual, lottery tickets), dynamic sparse training, and export."""

from sparta.sparsity.allocation import allocate, erk, uniform
from sparta.sparsity.channels import channel_masks, channel_scores, prune_channels
from sparta.sparsity.criteria import criterion_names, register_criterion, score
from sparta.sparsity.dst import SET, DynamicSparsity, RigL, create_dst
from sparta.sparsity.export import compact, compact_report, sparse_size_bytes, to_sparse
from sparta.sparsity.groups import ChannelGroup, channel_groups
from sparta.sparsity.handle import MaskCallback, SparsityHandle
from sparta.sparsity.lottery import LotteryConfig, LotteryResult, lottery
from sparta.sparsity.masks import (
    apply_masks,
    attach,
    detach_masks,
    enforce,
    mask_gradients,
    masks_of,
    named_masks,
    prunable_parameters,
)
from sparta.sparsity.pruning import prune
from sparta.sparsity.report import format_report, report
from sparta.sparsity.schedules import GradualPruning, cubic_sparsity
from sparta.sparsity.structures import parse_structure
from sparta.sparsity.topk import global_masks, keep_top, layer_masks

__all__ = [
    "SET",
    "ChannelGroup",
    "DynamicSparsity",
    "GradualPruning",
    "LotteryConfig",
    "LotteryResult",
    "MaskCallback",
    "RigL",
    "SparsityHandle",
    "allocate",
    "apply_masks",
    "attach",
    "channel_groups",
    "channel_masks",
    "channel_scores",
    "compact",
    "compact_report",
    "create_dst",
    "criterion_names",
    "cubic_sparsity",
    "detach_masks",
    "enforce",
    "erk",
    "format_report",
    "global_masks",
    "keep_top",
    "layer_masks",
    "lottery",
    "mask_gradients",
    "masks_of",
    "named_masks",
    "prunable_parameters",
    "prune",
    "prune_channels",
    "register_criterion",
    "report",
    "score",
    "sparse_size_bytes",
    "to_sparse",
    "uniform",
    "parse_structure",
]
