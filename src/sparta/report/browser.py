"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for looking at
card.html as a person would: screenshots for the README and the page's browser tests.

Playwright is an optional extra (``pip install -e '.[browser]'``); no browser is downloaded:
the system's chromium is launched (``scripts/ensure-chromium.sh`` installs it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def find_chromium() -> str | None:
    """The system chromium's path (``$SPARTA_CHROMIUM`` first), or None when absent."""
    env = os.environ.get("SPARTA_CHROMIUM")
    for path in ([env] if env else []) + list(CHROMIUM_CANDIDATES):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def browser_missing() -> str | None:
    """Why the browser checks cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[browser]')"
    if find_chromium() is None:
        return "chromium is not installed (scripts/ensure-chromium.sh installs Debian's package)"
    return None


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Playwright page in a fresh headless system chromium (own user-data-dir, no network
    services); ValueError when playwright or chromium is missing."""
    why = browser_missing()
    if why:
        raise ValueError(why)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="sparta-chromium-") as profile:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=find_chromium(),
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport={"width": width, "height": height},
            )
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()


def screenshot(
    html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1280,
    full_page: bool = True,
) -> Path:  # fmt: skip
    """Save a PNG screenshot of ``html_path`` (e.g. card.html) opened in headless chromium."""
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"no page to screenshot at {html_path}")
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with chromium_page(width=width) as page:
        page.goto(html_path.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(png_path), full_page=full_page)
    return png_path
