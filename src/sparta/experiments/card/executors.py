"""Where cells run: in this process, on a local process pool (spawn), or on Ray.

Every executor calls :func:`sparta.experiments.card.cells.run_cell` on plain dicts and
reports each finished cell to ``on_done``; no scheduling beyond that is done here.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from sparta.experiments.card.cells import run_cell

Done = Callable[[dict[str, Any], dict[str, Any]], None]
Start = Callable[[dict[str, Any]], None]


def run_local(tasks: list[dict[str, Any]], on_done: Done, on_start: Start | None = None) -> None:
    """Run the cells one after another in this process (``on_start`` names each first)."""
    for t in tasks:
        if on_start is not None:
            on_start(t)
        on_done(t, run_cell(t))


def run_pool(tasks: list[dict[str, Any]], on_done: Done, workers: int) -> None:
    """Run the cells on ``workers`` spawned processes, one torch thread each."""
    if not tasks:
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_cell, t, 1): t for t in tasks}
        for f in as_completed(futures):
            on_done(futures[f], f.result())


def ray_available() -> bool:
    """Whether Ray can be imported (the ``card`` extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run_ray(tasks: list[dict[str, Any]], on_done: Done, address: str = "") -> None:
    """Run the cells as Ray tasks (one CPU and one torch thread each) on the cluster at
    ``address``, or on a Ray started on this machine when ``address`` is empty."""
    if not tasks:
        return
    try:
        import ray
    except ImportError:
        raise ValueError(
            "executor='ray' needs Ray; install it with pip install 'sparta[card]'"
        ) from None
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_cell)
    refs = {remote.remote(t, 1): t for t in tasks}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for r in done:
            on_done(refs[r], ray.get(r))


def run_tasks(
    tasks: list[dict[str, Any]],
    on_done: Done,
    executor: str,
    workers: int,
    address: str,
    on_start: Start | None = None,
) -> None:
    """Dispatch to the executor the options name (``on_start`` is called in-process only)."""
    if executor == "ray":
        run_ray(tasks, on_done, address)
    elif workers > 0:
        run_pool(tasks, on_done, workers)
    else:
        run_local(tasks, on_done, on_start)
