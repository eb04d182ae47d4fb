"""Fixtures for the data tests: an isolated data environment and tiny fake dataset files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparta.data import registry


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """HOME, $SPARTA_DATA and the system dataset folder all point into ``tmp_path``."""
    home, env, system = tmp_path / "home", tmp_path / "env", tmp_path / "system"
    for d in (home, env, system):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SPARTA_DATA", str(env))
    monkeypatch.setattr(registry, "SYSTEM_DIR", system)
    return {"home": home, "env": env, "system": system, "tmp": tmp_path}
