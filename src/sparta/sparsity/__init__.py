"""Sparsity: masks as buffers; one pruner with four independent axes (score: any criterion;
structure: unstructured, N:M, block, channel; distribution: global, uniform, erk; schedule:
one-shot, gradual, iterative with rewinding, dynamic), and export."""

from sparta.sparsity.allocation import DISTRIBUTIONS, allocate, check_distribution, erk, uniform
from sparta.sparsity.anytime import AnytimeConfig, progressive, run_anytime
from sparta.sparsity.bip import BiPConfig, BiPHandle, bip
from sparta.sparsity.channels import channel_masks, channel_scores, prune_channels
from sparta.sparsity.criteria import criterion_names, register_criterion, score
from sparta.sparsity.dst import SET, DynamicSparsity, RigL, create_dst
from sparta.sparsity.dst.sup_tickets import SupTickets
from sparta.sparsity.export import (
    choose_inference,
    compact,
    compact_report,
    fold_batchnorm,
    for_inference,
    sparse_size_bytes,
    to_sparse,
)
from sparta.sparsity.groups import ChannelGroup, channel_groups
from sparta.sparsity.handle import MaskCallback, SparsityHandle
from sparta.sparsity.hydra import HydraOptions, HydraResult, hydra
from sparta.sparsity.lottery import LotteryConfig, LotteryResult, imp, imp_masks, lottery
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
from sparta.sparsity.pools import PoolConfig, PoolResult, pool_run, pool_tickets
from sparta.sparsity.pruning import prune, select_masks
from sparta.sparsity.report import format_report, report
from sparta.sparsity.schedules import GradualPruning, app_sparsities, cubic_sparsity
from sparta.sparsity.scores import ScoredModel, init_scores, signed_constant_
from sparta.sparsity.structures import parse_structure
from sparta.sparsity.supermask import edge_popup, supermask
from sparta.sparsity.topk import global_masks, keep_top, layer_masks

__all__ = [
    "DISTRIBUTIONS",
    "SET",
    "ScoredModel",
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
    "check_distribution",
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
    "imp",
    "imp_masks",
    "init_scores",
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
    "select_masks",
    "signed_constant_",
    "sparse_size_bytes",
    "to_sparse",
    "uniform",
    "parse_structure",
    "BiPConfig",
    "BiPHandle",
    "bip",
    "HydraOptions",
    "HydraResult",
    "hydra",
    "edge_popup",
    "supermask",
    "PoolConfig",
    "PoolResult",
    "pool_run",
    "pool_tickets",
    "SupTickets",
    "app_sparsities",
    "AnytimeConfig",
    "progressive",
    "run_anytime",
    "choose_inference",
    "fold_batchnorm",
    "for_inference",
]
