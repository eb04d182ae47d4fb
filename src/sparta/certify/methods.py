"""The registry of certification methods: ``sparta certify --method`` and ``sparta list
certify`` read it. ``meta['family']``: ``bound`` (sound, incomplete: ibp, crown,
alpha-crown; the object is ``bounds`` with that method), ``complete`` (bab; ``verify``) or
``smoothing`` (randomized smoothing; ``certify_dataset``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sparta.registry import Registry

CERTIFY: Registry[Callable[..., Any]] = Registry(
    "certify", populate="sparta.certify", label="certification method"
)
FAMILIES = ("bound", "complete", "smoothing")


def register_certify_method(
    name: str, fn: Callable[..., Any], family: str, summary: str, aliases: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """Register ``fn`` as certification method ``name`` of ``family`` (one of FAMILIES)."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not allowed; expected one of {FAMILIES}")
    CERTIFY.add(name, fn, aliases=aliases, family=family, summary=summary)
    return fn
