"""One small registry for every kind of named thing (datasets, models, criteria, attacks, ...).

Names are case-insensitive and ``_`` is read as ``-``; the canonical form uses ``-``. A
registry knows the module whose import fills it, so :func:`kinds` / :func:`get_registry`
and ``sparta list`` work without importing every pillar up front.

>>> ATTACKS = Registry("attacks", populate="sparta.attacks")
>>> @ATTACKS.register("pgd", aliases=("pgd-linf",), family="white-box")
... class PGD: ...
>>> ATTACKS.get("PGD_linf").obj is PGD
True
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def canonical(name: str) -> str:
    """The one spelling of a name: stripped, lower case, ``_`` as ``-``."""
    return str(name).strip().lower().replace("_", "-")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its canonical name, aliases and free-form metadata."""

    name: str
    obj: T
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        """``meta['summary']`` or the first line of the object's docstring."""
        summary = self.meta.get("summary")
        if summary:
            return str(summary)
        return (inspect.getdoc(self.obj) or "").split("\n")[0]


class Registry(Generic[T]):
    """Named objects of one kind; ``register`` is a decorator, lookups raise ``ValueError``."""

    def __init__(
        self,
        kind: str,
        populate: str | tuple[str, ...] | None = None,
        label: str | None = None,
    ) -> None:
        """``populate``: module(s) whose import registers the built-in entries; ``label``:
        the singular noun of error messages ("dataset 'x' is not known"; default ``kind``)."""
        self.kind = kind
        self.populate = (populate,) if isinstance(populate, str) else tuple(populate or ())
        self.label = label or kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        _ALL[kind] = self

    def _fill(self) -> None:
        for module in self.populate:
            importlib.import_module(module)

    def register(
        self, name: str, *, aliases: tuple[str, ...] | list[str] = (), **meta: Any
    ) -> Callable[[T], T]:
        """Decorator registering its argument under ``name`` (and ``aliases``) with ``meta``.

        Registering a taken name raises, unless it is the same object again (a module that
        is imported twice under two names registers twice).
        """

        def decorate(obj: T) -> T:
            self.add(name, obj, aliases=aliases, **meta)
            return obj

        return decorate

    def add(
        self, name: str, obj: T, *, aliases: tuple[str, ...] | list[str] = (), **meta: Any
    ) -> Entry[T]:
        """Register ``obj`` (the non-decorator form of :meth:`register`)."""
        key = canonical(name)
        alias_keys = tuple(canonical(a) for a in aliases if canonical(a) != key)
        old = self._entries.get(key)
        if old is not None and _same(old.obj, obj):
            return old
        for n in (key, *alias_keys):
            if n in self._entries or n in self._aliases:
                raise ValueError(f"{self.label} name {n!r} is already registered")
        entry = Entry(key, obj, alias_keys, dict(meta))
        self._entries[key] = entry
        for a in alias_keys:
            self._aliases[a] = key
        return entry

    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` or one of its aliases; unknown names raise."""
        key = canonical(name)
        if key not in self._entries and key not in self._aliases:
            self._fill()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise ValueError(
                f"{self.label} {name!r} is not known; allowed: {', '.join(self.names())}"
            )
        return key

    def get(self, name: str) -> Entry[T]:
        """The entry of ``name``; an unknown name is a ValueError listing the known ones."""
        return self._entries[self.resolve(name)]

    def __getitem__(self, name: str) -> T:
        return self.get(name).obj

    def __contains__(self, name: object) -> bool:
        try:
            self.resolve(str(name))
        except ValueError:
            return False
        return True

    def names(self, pattern: str | None = "*", **meta: Any) -> list[str]:
        """Canonical names matching a shell pattern (also matched against aliases), sorted;
        ``meta`` keeps only entries whose metadata has those values (``black_box=True``)."""
        return [e.name for e in self.entries(pattern, **meta)]

    def entries(self, pattern: str | None = "*", **meta: Any) -> list[Entry[T]]:
        """Entries whose name or an alias matches ``pattern`` (None: all) and whose
        metadata has the values in ``meta``, sorted by name."""
        self._fill()
        pat = canonical("*" if pattern is None else pattern)
        return [
            e
            for name, e in sorted(self._entries.items())
            if any(fnmatch.fnmatchcase(n, pat) for n in (name, *e.aliases))
            and all(e.meta.get(k) == v for k, v in meta.items())
        ]

    def aliases(self, pattern: str | None = "*", **meta: Any) -> list[str]:
        """Every name that resolves (canonical names and aliases) of the matching entries."""
        return sorted(n for e in self.entries(pattern, **meta) for n in (e.name, *e.aliases))

    def remove(self, name: str) -> Entry[T]:
        """Unregister ``name`` with its aliases (for tests that register temporary entries)."""
        entry = self._entries.pop(self.resolve(name))
        for a in entry.aliases:
            self._aliases.pop(a, None)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._fill()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    key = ("__module__", "__qualname__")
    return all(hasattr(x, k) for x in (a, b) for k in key) and all(
        getattr(a, k) == getattr(b, k) for k in key
    )


_ALL: dict[str, Registry[Any]] = {}

#: kind -> module whose import creates and fills that kind's registry
KINDS: dict[str, str] = {
    "datasets": "sparta.data",
    "models": "sparta.models",
    "criteria": "sparta.sparsity.criteria",
    "attacks": "sparta.attacks",
    "dst": "sparta.sparsity.dst",
    "certify": "sparta.certify",
    "objectives": "sparta.train.objectives",
    "unlearn": "sparta.unlearn.methods",
    "variants": "sparta.experiments.card.variants",
    "pillars": "sparta.experiments.card.pillars",
}


def kinds() -> list[str]:
    """Every kind of registry that ``sparta list`` can print: those of :data:`KINDS` and any
    other registry that names the module filling it (ad-hoc registries without one are not
    listed, though :func:`get_registry` finds them)."""
    return sorted(set(KINDS) | {k for k, r in _ALL.items() if r.populate})


def get_registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (importing the module that defines it); unknown kinds raise."""
    key = canonical(kind)
    if key not in _ALL and key in KINDS:
        importlib.import_module(KINDS[key])
    if key not in _ALL:
        raise ValueError(f"registry {kind!r} is not known; allowed: {', '.join(kinds())}")
    return _ALL[key]
