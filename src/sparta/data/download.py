"""Checked downloads: stream to a temp file, verify its checksum, rename atomically."""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm`` is any :mod:`hashlib` name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _matches(path: Path, sha256: str | None, md5: str | None) -> bool:
    if sha256 is not None and file_digest(path, "sha256") != sha256.lower():
        return False
    return md5 is None or file_digest(path, "md5") == md5.lower()


def fetch(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The bytes go to a temporary file beside ``dest``, are hashed on the way, and the
    file is renamed onto ``dest`` only when the checksum (``sha256`` preferred, else
    ``md5``) matches; on a mismatch the temporary file is deleted and ``ValueError``
    names the URL with the expected and actual digests. A ``dest`` that already exists
    with the right checksum is kept without downloading.
    """
    dest = Path(dest)
    if dest.exists() and (sha256 or md5) and _matches(dest, sha256, md5):
        log.info("%s already present and verified", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        log.info("downloading %s -> %s", url, dest)
        req = urllib.request.Request(url, headers={"User-Agent": "sparta"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                out.write(chunk)
                h_sha.update(chunk)
                h_md5.update(chunk)
        for algo, want, got in (("sha256", sha256, h_sha), ("md5", md5, h_md5)):
            if want is not None and got.hexdigest() != want.lower():
                raise ValueError(
                    f"checksum mismatch for {url}: expected {algo} {want.lower()}, "
                    f"got {got.hexdigest()}; the download was deleted"
                )
        if sha256 is None and md5 is None:
            log.warning("%s has no known checksum; saved unverified", url)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_any(
    urls: Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """:func:`fetch` from the first of several mirrors that works.

    Raises ``OSError`` listing every mirror's failure when none gives a verified file.
    """
    errors = []
    for url in urls:
        try:
            return fetch(url, dest, sha256=sha256, md5=md5, timeout=timeout)
        except (OSError, ValueError, urllib.error.URLError) as e:
            log.warning("mirror %s failed: %s", url, e)
            errors.append(f"  {url}: {e}")
    raise OSError(f"could not download {Path(dest).name} from any mirror:\n" + "\n".join(errors))


def extract_tar(archive: str | Path, dest_dir: str | Path) -> None:
    """Unpack a tar archive into ``dest_dir``, refusing links and paths outside it."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest_dir, filter="data")
            return
        root = Path(dest_dir).resolve()  # Python without extraction filters
        for m in tar.getmembers():
            target = (root / m.name).resolve()
            if not (m.isfile() or m.isdir()) or not target.is_relative_to(root):
                raise ValueError(f"refusing unsafe member {m.name!r} in {archive}")
        tar.extractall(dest_dir)
