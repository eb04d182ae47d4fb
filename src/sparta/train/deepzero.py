"""DeepZero (Chen et al., ICLR 2024, 2310.02025): training from loss values only.

A zeroth-order (ZO) step replaces forward + backward with a gradient *estimate* built from
forward passes (queries) of the loss, written into ``p.grad``; the trainer's usual optimizer
step follows, so SGD, momentum, schedules, masks, checkpoints and ``--resume`` keep working.
The paper's pieces, each switchable so that its effect can be measured:

- the estimator (Sec. 3): CGE, ``g_i = (l(theta + mu e_i) - l(theta)) / mu`` per coordinate,
  or RGE over random directions (:func:`sparta.train.zo.cge` / :func:`~sparta.train.zo.rge`);
- sparse CGE (Sec. 4): only a random subset of each layer's weight coordinates is estimated
  (the weights stay dense; the other coordinates get a zero gradient), the subset redrawn
  every ``reshuffle`` epochs; its per-layer size comes from the layer-wise ratios of
  **ZO-GraSP**, GraSP's score ``-theta * (H g)`` with ``H g`` itself a finite difference of
  two RGE gradients, pruned globally at init (or from uniform ratios, to measure ZO-GraSP);
- feature reuse (Sec. 5): for a coordinate of layer ``l`` of a sequential model the
  activations entering layer ``l`` are computed once per step and the perturbed forwards
  start there; batched forwards evaluate many perturbed copies of a layer in one
  ``torch.func.vmap`` call;
- forward parallelism (Sec. 5): the batched calls of a step are dealt round-robin to the
  ``torch.distributed`` ranks, each evaluates its share, and one ``all_reduce`` assembles
  the estimate (every coordinate has exactly one owner, so CGE equals one process's).

Every query (one loss evaluation at one parameter vector on the batch) is counted:
:attr:`DeepZero.queries` after each step (the trainer logs it per step in metrics.jsonl).
Constants from the paper (Sec. 4: 90% gradient sparsity) and its reference code's defaults
(OPTML-Group/DeepZero: ``mu = 5e-3``, the mask reshuffled every 5 epochs, ZO-GraSP from 25
examples per class and 192 RGE directions, lr 0.1 with SGD momentum 0.9 and cosine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from sparta.options import Options, option, require, require_defaults
from sparta.train.distributed import DistInfo
from sparta.train.zo import Oracle, cge, rge

log = logging.getLogger(__name__)

ESTIMATORS = ("cge", "rge")
RATIOS = ("zo-grasp", "uniform")


@dataclass
class ZOOptions(Options):
    """Zeroth-order training options of ``sparta train`` (recorded in config.yaml)."""

    zo: str = option("", "zeroth-order training (DeepZero): estimator cge or rge ('': off)")
    zo_mu: float = option(5e-3, "finite-difference step mu (paper: 5e-3)")
    zo_q: int = option(192, "RGE directions per step")
    zo_sparsity: float = option(
        0.9, "share of weight coordinates NOT estimated per step (0: dense)"
    )
    zo_ratios: str = option("zo-grasp", "layer-wise ratios of the sparse mask", choices=RATIOS)
    zo_reshuffle: int = option(5, "redraw the sparse coordinate mask every this many epochs")
    zo_reuse: bool = option(True, "feature reuse: perturbed forwards start at the perturbed layer")
    zo_batch: int = option(64, "perturbed forwards per batched call (1: one call per query)")
    zo_grasp_q: int = option(192, "RGE directions of each of ZO-GraSP's two gradients")
    zo_grasp_per_class: int = option(25, "examples per class of ZO-GraSP's batch")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.zo in ("", *ESTIMATORS), "zo", self.zo, f"one of {ESTIMATORS} or ''")
        require(self.zo_mu > 0, "zo_mu", self.zo_mu, "a number > 0")
        require(self.zo_q >= 1, "zo_q", self.zo_q, "an integer >= 1")
        require(0 <= self.zo_sparsity < 1, "zo_sparsity", self.zo_sparsity, "a number in [0, 1)")
        require(self.zo_ratios in RATIOS, "zo_ratios", self.zo_ratios, f"one of {RATIOS}")
        require(self.zo_reshuffle >= 1, "zo_reshuffle", self.zo_reshuffle, "an integer >= 1")
        require(self.zo_batch >= 1, "zo_batch", self.zo_batch, "an integer >= 1")
        require(self.zo_grasp_q >= 1, "zo_grasp_q", self.zo_grasp_q, "an integer >= 1")
        require(
            self.zo_grasp_per_class >= 1,
            "zo_grasp_per_class",
            self.zo_grasp_per_class,
            "an integer >= 1",
        )
        if not self.zo:
            names = [f.name for f in fields(self) if f.name != "zo"]
            require_defaults(self, names, "zo", ESTIMATORS)


def sequential_layers(model: nn.Module) -> list[nn.Module] | None:
    """The children of ``model`` when it is a plain chain (``nn.Sequential`` without batch
    norm, whose running statistics a batched forward could not update), else ``None``."""
    if type(model).forward is not nn.Sequential.forward:
        return None
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None
    return list(model.children())


def _mix(*values: int) -> int:
    """A seed from integers (a pure function, so a resumed run redraws the same)."""
    out = 0x9E3779B9
    for v in values:
        out = (out * 1_000_003 + int(v) + 12345) % (2**63 - 1)
    return out


class DeepZero:
    """The zeroth-order objective: ``step`` fills ``p.grad`` of every trainable parameter
    with a ZO estimate of the cross-entropy's gradient, from forward passes only.

    ``estimator`` "cge" or "rge"; ``mu`` the finite-difference step; ``q`` RGE directions;
    ``sparsity`` the share of each weight tensor's coordinates left out per step (Sec. 4;
    biases and other parameters are always estimated in full); ``ratios`` "zo-grasp" or
    "uniform" layer-wise densities; ``reshuffle`` epochs between mask redraws; ``reuse``
    feature reuse; ``batch`` perturbed forwards per call; ``grasp_q``/``grasp_per_class``
    ZO-GraSP's budget. Called as a plain objective (``obj(model, x, y)``) it is the
    cross-entropy, so evaluation code treats it as any other.
    """

    zeroth_order = True

    def __init__(
        self,
        estimator: str = "cge",
        mu: float = 5e-3,
        q: int = 192,
        sparsity: float = 0.9,
        ratios: str = "zo-grasp",
        reshuffle: int = 5,
        reuse: bool = True,
        batch: int = 64,
        grasp_q: int = 192,
        grasp_per_class: int = 25,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ) -> None:
        ZOOptions(  # one place validates the values, with the flags' names
            zo=estimator,
            zo_mu=mu,
            zo_q=q,
            zo_sparsity=sparsity,
            zo_ratios=ratios,
            zo_reshuffle=reshuffle,
            zo_batch=batch,
            zo_grasp_q=grasp_q,
            zo_grasp_per_class=grasp_per_class,
        )
        if not estimator:
            raise ValueError("estimator='' is not allowed; expected one of ('cge', 'rge')")
        self.estimator, self.mu, self.q = estimator, float(mu), int(q)
        self.sparsity, self.ratios_kind, self.reshuffle = float(sparsity), ratios, int(reshuffle)
        self.reuse, self.batch = bool(reuse), int(batch)
        self.grasp_q, self.grasp_per_class = int(grasp_q), int(grasp_per_class)
        self.label_smoothing, self.seed = float(label_smoothing), int(seed)
        #: layer-wise densities of the weight tensors (fixed at the first step, then resumed)
        self.ratios: dict[str, float] | None = None
        self.queries = 0  # of the last step
        self.total_queries = 0
        self._noted = False

    @classmethod
    def from_options(cls, opts: ZOOptions, label_smoothing: float = 0.0, seed: int = 0) -> DeepZero:
        """The objective that ``sparta train --zo ...`` options describe."""
        return cls(
            opts.zo,
            opts.zo_mu,
            opts.zo_q,
            opts.zo_sparsity,
            opts.zo_ratios,
            opts.zo_reshuffle,
            opts.zo_reuse,
            opts.zo_batch,
            opts.zo_grasp_q,
            opts.zo_grasp_per_class,
            label_smoothing,
            seed,
        )

    # ------------------------------------------------------------------ objective API
    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example cross-entropy (the function whose values are queried)."""
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return self.loss(logits, y).mean(), logits

    def state_dict(self) -> dict[str, Any]:
        return {"ratios": self.ratios, "total_queries": self.total_queries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ratios = state.get("ratios")
        self.total_queries = int(state.get("total_queries", 0))

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def step(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        epoch: int = 0,
        step: int = 0,
        data: Any = None,
        dist: DistInfo | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimate the gradient of the batch loss at ``model``'s parameters into ``p.grad``
        (forward passes only); return the batch loss and logits. ``epoch`` picks the sparse
        mask's period, ``step`` seeds RGE, ``data`` (a dataset with ``x``, ``y``) feeds
        ZO-GraSP at the first call, ``dist`` splits the queries over ranks."""
        dist = dist or DistInfo()
        queries = 0
        if self.ratios is None:
            queries += self._init_ratios(model, data, x, y)
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        layers = sequential_layers(model) if self.estimator == "cge" else None
        if self.estimator == "cge" and layers is None and not self._noted:
            self._noted = True
            log.info(
                "zo: %s is not a plain nn.Sequential (or has batch norm): no feature reuse, "
                "one full forward per query",
                type(model).__name__,
            )
        acts = [x]
        if layers is not None:
            for m in layers:
                acts.append(m(acts[-1]))
            logits = acts[-1]
        else:
            logits = model(x)
        fx_vec = self.loss(logits, y).mean().view(1)  # one query: the base value
        queries += 1
        # the perturbed forwards must not move running statistics: restored below
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        coords = self.coordinates(model, epoch)
        share = _Share(dist)
        if self.estimator == "cge":
            grads = self._cge(model, params, coords, layers, acts, x, y, fx_vec, share)
            queries += sum(len(c) for c in coords.values())
        else:
            grads = self._rge(model, params, coords, x, y, fx_vec, share, step)
            queries += self.q
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
        for name, p in params.items():
            p.grad = grads[name].view_as(p).to(p.dtype)
        self.queries = queries
        self.total_queries += queries
        return fx_vec[0], logits

    # ------------------------------------------------------------------ the mask
    def coordinates(self, model: nn.Module, epoch: int) -> dict[str, torch.Tensor]:
        """The flat coordinate indices estimated per parameter in ``epoch``: a random subset
        of each weight tensor (its layer's density), redrawn every ``reshuffle`` epochs
        (Sec. 4), all coordinates of the other parameters; a pure function of
        (seed, period), so a resumed run draws the same mask."""
        period = epoch // self.reshuffle
        out = {}
        for i, (name, p) in enumerate(
            (n, p) for n, p in model.named_parameters() if p.requires_grad
        ):
            n = p.numel()
            density = (self.ratios or {}).get(name)
            if density is None or density >= 1:
                out[name] = torch.arange(n)
                continue
            k = max(1, round(density * n))  # a layer keeps >= 1 coordinate: it stays trainable
            g = torch.Generator().manual_seed(_mix(self.seed, period, i))
            out[name] = torch.randperm(n, generator=g)[:k].sort().values
        return out

    def _init_ratios(self, model: nn.Module, data: Any, x: torch.Tensor, y: torch.Tensor) -> int:
        """Fix the layer-wise densities (ZO-GraSP or uniform); return the queries spent."""
        weights = weight_names(model)
        if self.sparsity == 0:
            self.ratios = {}
            return 0
        if self.ratios_kind == "uniform":
            self.ratios = {n: 1 - self.sparsity for n in weights}
            return 0
        gx, gy = _class_balanced(data, self.grasp_per_class, self.seed, x, y)
        scores, queries = zo_grasp_scores(
            model, gx.to(x.device, x.dtype), gy.to(x.device), self.mu, self.grasp_q, self.seed
        )
        self.ratios = layer_ratios(scores, self.sparsity)
        log.info(
            "zo-grasp layer densities: %s",
            " ".join(f"{n}={r:.3f}" for n, r in self.ratios.items()),
        )
        return queries

    # ------------------------------------------------------------------ the estimators
    def _cge(
        self,
        model: nn.Module,
        params: dict[str, nn.Parameter],
        coords: dict[str, torch.Tensor],
        layers: list[nn.Module] | None,
        acts: list[torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        fx: torch.Tensor,
        share: _Share,
    ) -> dict[str, torch.Tensor]:
        owner = _owners(model, layers)
        grads = {}
        for name, p in params.items():
            if layers is not None:
                index, local = owner[name]
                f = self._layer_oracle(layers, index, local, acts, x, y)
            else:
                f = self._model_oracle(model, {name: p}, x, y)
            flat = p.detach().reshape(1, -1)
            grads[name] = cge(share.wrap(f, fx), flat, self.mu, coords[name], fx, self.batch)[0]
        return share.reduce(grads)

    def _rge(
        self,
        model: nn.Module,
        params: dict[str, nn.Parameter],
        coords: dict[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        fx: torch.Tensor,
        share: _Share,
        step: int,
    ) -> dict[str, torch.Tensor]:
        # the directions live on the active coordinates only (sparse RGE when masked)
        names = list(params)
        sizes = [len(coords[n]) for n in names]
        theta = torch.cat([params[n].detach().flatten()[coords[n].to(x.device)] for n in names])

        batched = sequential_layers(model) is not None  # no batch norm to update per copy

        def f(z: torch.Tensor) -> torch.Tensor:  # (M, 1, D) -> (M, 1)
            m, new = len(z), {}
            for n, part in zip(names, z[:, 0].split(sizes, dim=1), strict=True):
                flat = params[n].detach().flatten().expand(m, -1).clone()
                flat[:, coords[n].to(x.device)] = part
                new[n] = flat.view(m, *params[n].shape)
            if batched:  # all M perturbed models in one vmap call
                logits = vmap(lambda p: functional_call(model, p, (x,)))(new)
                return self.loss(logits.flatten(0, 1), y.repeat(m)).view(m, -1).mean(1, True)
            out = [
                self.loss(functional_call(model, {n: v[i] for n, v in new.items()}, (x,)), y)
                for i in range(m)
            ]
            return torch.stack([o.mean() for o in out]).view(-1, 1)

        gen = torch.Generator().manual_seed(_mix(self.seed, step, 7))
        est = rge(share.wrap(f, fx), theta[None], self.q, self.mu, gen, fx=fx, batch=self.batch)
        est = share.reduce({"all": est[0]})["all"]
        grads = {}
        for n, part in zip(names, est.split(sizes), strict=True):
            g = torch.zeros(params[n].numel(), dtype=est.dtype, device=est.device)
            g[coords[n].to(est.device)] = part
            grads[n] = g
        return grads

    def _layer_oracle(
        self,
        layers: list[nn.Module],
        index: int,
        local: str,
        acts: list[torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> Oracle:
        """``f(Z)``: the loss with parameter ``local`` of ``layers[index]`` set to each row of
        ``Z`` (``(M, 1, n)``): the layers before it are skipped (their output ``acts[index]``
        is reused) or, without reuse, recomputed for every copy as a full forward would."""
        layer, shape = layers[index], layers[index].get_parameter(local).shape

        def f(z: torch.Tensor) -> torch.Tensor:
            m = len(z)
            w = z.reshape(m, *shape)
            if self.reuse:
                h, h_dim = acts[index], None
            else:
                h = x.repeat(m, *([1] * (x.dim() - 1)))
                for prev in layers[:index]:
                    h = prev(h)
                h, h_dim = h.view(m, len(x), *h.shape[1:]), 0
            out = vmap(
                lambda wi, hi: functional_call(layer, {local: wi}, (hi,)), in_dims=(0, h_dim)
            )(w, h)
            out = out.flatten(0, 1)
            for nxt in layers[index + 1 :]:
                out = nxt(out)
            return self.loss(out, y.repeat(m)).view(m, -1).mean(1, keepdim=True)

        return f

    def _model_oracle(
        self, model: nn.Module, param: dict[str, nn.Parameter], x: torch.Tensor, y: torch.Tensor
    ) -> Oracle:
        """``f(Z)``: one full forward of ``model`` per row of ``Z`` (any architecture)."""
        ((name, p),) = param.items()

        def f(z: torch.Tensor) -> torch.Tensor:
            out = [
                self.loss(functional_call(model, {name: row.view_as(p)}, (x,)), y).mean()
                for row in z[:, 0]
            ]
            return torch.stack(out).view(-1, 1)

        return f


class _Share:
    """Deals the batched oracle calls of a step round-robin to the ranks: a call another
    rank owns returns ``f(x)`` (a zero difference) without a forward; :meth:`reduce` sums
    the ranks' estimates (every coordinate has one owner, the others add exact zeros)."""

    def __init__(self, dist: DistInfo) -> None:
        self.dist, self.calls = dist, 0

    def wrap(self, f: Oracle, fx: torch.Tensor) -> Oracle:
        if not self.dist.enabled:
            return f

        def mine(z: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if (self.calls - 1) % self.dist.world_size == self.dist.rank:
                return f(z)
            return fx.expand(len(z), -1).clone()

        return mine

    def reduce(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.dist.enabled:
            return grads
        import torch.distributed as tdist

        names = list(grads)
        flat = torch.cat([grads[n].flatten() for n in names])
        tdist.all_reduce(flat)
        return dict(zip(names, flat.split([grads[n].numel() for n in names]), strict=True))


def _owners(model: nn.Module, layers: list[nn.Module] | None) -> dict[str, tuple[int, str]]:
    """Parameter name -> (index of the layer holding it, its name inside that layer)."""
    if layers is None:
        return {}
    out = {}
    for i, layer in enumerate(layers):
        prefix = next(n for n, m in model.named_children() if m is layer)
        for local, _ in layer.named_parameters():
            out[f"{prefix}.{local}"] = (i, local)
    return out


def weight_names(model: nn.Module) -> list[str]:
    """The trainable weight tensors of Conv and Linear layers: the coordinates that the
    sparse mask thins (as the paper's ZO-GraSP and reference code do)."""
    return [
        f"{mod_name}.weight" if mod_name else "weight"
        for mod_name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and m.weight.requires_grad
    ]


def _class_balanced(
    data: Any, per_class: int, seed: int, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` examples of every class of ``data`` (seeded), as GraSP's batch; the
    current batch when no dataset is given."""
    if data is None:
        return x, y
    g = torch.Generator().manual_seed(_mix(seed, 25))
    order = torch.randperm(len(data.y), generator=g)
    ys = data.y[order]
    picked = torch.cat([order[ys == c][:per_class] for c in torch.unique(ys)])
    return data.x[picked], data.y[picked]


def zo_grasp_scores(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mu: float = 5e-3,
    q: int = 192,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], int]:
    """ZO-GraSP (Sec. 4): GraSP's score ``-theta * (H g)`` of every Conv/Linear weight, with
    ``g`` an RGE gradient and ``H g ~ (g(theta + mu g) - g(theta)) / mu`` from a second RGE
    at the moved point. Both RGEs use the same ``q`` directions (common random numbers: the
    difference then carries the curvature, not two independent noises). Returns the scores
    and the queries spent (``2 (q + 1)``)."""
    names = weight_names(model)
    params = dict(model.named_parameters())
    sizes = [params[n].numel() for n in names]
    theta = torch.cat([params[n].detach().flatten() for n in names])

    def loss_at(z: torch.Tensor) -> torch.Tensor:  # (M, 1, D) -> (M, 1)
        out = []
        for row in z[:, 0]:
            new = {
                n: part.view_as(params[n]) for n, part in zip(names, row.split(sizes), strict=True)
            }
            out.append(F.cross_entropy(functional_call(model, new, (x,)), y))
        return torch.stack(out).view(-1, 1)

    with torch.no_grad():
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        g0 = rge(loss_at, theta[None], q, mu, torch.Generator().manual_seed(_mix(seed, 1)))
        g1 = rge(
            loss_at, theta[None] + mu * g0, q, mu, torch.Generator().manual_seed(_mix(seed, 1))
        )
        for n, b in model.named_buffers():
            b.copy_(buffers[n])
    hg = ((g1 - g0) / mu)[0]
    scores = (-theta * hg).split(sizes)
    out = {n: s.view_as(params[n]) for n, s in zip(names, scores, strict=True)}
    return out, 2 * (q + 1)


def layer_ratios(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, float]:
    """Layer-wise densities of a global prune that keeps the ``1 - sparsity`` share of all
    coordinates with the largest ``|score|`` (the reference code's global L1 prune on the
    ZO-GraSP scores)."""
    flat = torch.cat([s.abs().flatten() for s in scores.values()])
    keep = max(1, round((1 - sparsity) * flat.numel()))
    threshold = flat.topk(keep).values[-1]
    out = {}
    for n, s in scores.items():
        out[n] = float((s.abs() >= threshold).float().mean())
    return out
