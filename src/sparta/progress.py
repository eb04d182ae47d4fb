"""Progress bars: one helper, :func:`bar`, for every loop that can take more than a few seconds.

A bar shows (with an ETA) only when stderr is a terminal, the library-wide switch is off
(:func:`set_quiet`, which the CLI's ``--quiet`` sets) and this process is rank 0 of a
``torchrun`` job; otherwise :func:`bar` returns a disabled tqdm that iterates silently.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool = True) -> bool:
    """Silence (or re-enable) every progress bar of the library; returns the previous setting."""
    global _QUIET
    previous, _QUIET = _QUIET, bool(quiet)
    return previous


def is_quiet() -> bool:
    """Whether :func:`set_quiet` silenced the bars."""
    return _QUIET


def enabled(quiet: bool = False) -> bool:
    """Whether a bar would show now: a terminal, not silenced (here or library-wide), rank 0."""
    rank = os.environ.get("RANK", "0")
    return not (quiet or _QUIET or not sys.stderr.isatty() or rank not in ("", "0"))


def bar(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str | None = None,
    *,
    quiet: bool = False,
    leave: bool = False,
    unit: str = "it",
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), disabled unless
    :func:`enabled`; ``quiet=True`` disables it for this call only."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        leave=leave,
        unit=unit,
        disable=not enabled(quiet),
        dynamic_ncols=True,
        **kwargs,
    )
