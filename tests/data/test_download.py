"""fetch: checked, atomic downloads (local file:// URLs only, never the network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from sparta.data.download import extract_tar, fetch, fetch_any, file_digest

PAYLOAD = b"sparta test payload\n" * 1000


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "src" / "file.bin"
    p.parent.mkdir()
    p.write_bytes(PAYLOAD)
    return p


def test_fetch_verifies_sha256_and_md5(src: Path, tmp_path: Path) -> None:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    dest = fetch(src.as_uri(), tmp_path / "out" / "a.bin", sha256=sha.upper())
    assert dest.read_bytes() == PAYLOAD
    assert fetch(src.as_uri(), tmp_path / "out" / "b.bin", md5=md5).read_bytes() == PAYLOAD
    assert file_digest(dest) == sha and file_digest(dest, "md5") == md5
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.bin", "b.bin"]


def test_mismatch_deletes_and_raises(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="checksum mismatch.*expected sha256 0{64}"):
        fetch(src.as_uri(), out / "a.bin", sha256="0" * 64)
    with pytest.raises(ValueError, match="expected md5"):
        fetch(src.as_uri(), out / "a.bin", md5="0" * 32)
    assert list(out.iterdir()) == []  # neither the file nor a temporary part is left


def test_verified_existing_file_is_kept(src: Path, tmp_path: Path) -> None:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    dest = fetch(src.as_uri(), tmp_path / "a.bin", sha256=sha)
    src.unlink()  # a second fetch would fail if it downloaded again
    assert fetch(src.as_uri(), dest, sha256=sha) == dest


def test_corrupt_existing_file_is_replaced(src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"garbage")
    fetch(src.as_uri(), dest, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD


def test_fetch_any_falls_back_to_next_mirror(src: Path, tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.bin").as_uri()
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    dest = fetch_any([missing, src.as_uri()], tmp_path / "a.bin", md5=md5)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(OSError, match="nowhere.bin"):
        fetch_any([missing], tmp_path / "b.bin", md5=md5)


def test_extract_tar_refuses_paths_outside(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises((tarfile.TarError, ValueError)):
        extract_tar(archive, out)
    assert not (tmp_path / "escaped.txt").exists()
