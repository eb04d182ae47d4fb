"""Typed options: dataclass fields carry their help text and choices, so one class is the
source of CLI flags, config-file keys, defaults and the run's recorded config."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T", bound="Options")


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with a default, help text and optional ``choices``."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise ``ValueError`` naming the option, its bad value and what is allowed."""
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


def require_defaults(opts: Any, names: Iterable[str], switch: str, allowed: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first option of ``names`` that differs from its default
    while ``--switch`` is off (it would be ignored silently), and the values ``switch`` takes."""
    fields = {f.name: f for f in dataclasses.fields(opts)}
    for name in names:
        value = getattr(opts, name)
        if value != fields[name].default:
            raise ValueError(
                f"{name}={value!r} is not allowed without --{switch}; "
                f"expected --{switch} one of {tuple(allowed)}"
            )


def check_unchanged(
    folder: Any,
    recorded: Mapping[str, Any],
    wanted: Mapping[str, Any],
    allowed: Collection[str] = (),
    hint: str = "drop them, or allow them with --override",
) -> None:
    """What a resumed run may not change: ValueError naming every option of ``wanted`` whose
    value differs from the one ``recorded`` in ``folder``'s config.yaml (options not recorded
    or in ``allowed`` are skipped), then ``hint``."""
    differ = [
        f"--{k.replace('_', '-')} {v!r} (recorded: {recorded[k]!r})"
        for k, v in wanted.items()
        if k in recorded and k not in allowed and recorded[k] != v
    ]
    if differ:
        raise ValueError(
            f"--resume continues {folder} with its recorded config.yaml, but "
            f"{'; '.join(differ)} differ; {hint}"
        )


class Options:
    """Mixin for option dataclasses: a dict round trip that rejects unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        """Build from a mapping; an unknown key is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
        return cls(**values)
