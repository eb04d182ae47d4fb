#!/usr/bin/env python
"""Screenshot a report card (card.html) in headless chromium, e.g. for the README image:

python scripts/card-screenshot.py runs/card-xxxx/card.html docs/card.png [--width 1280]
"""

from __future__ import annotations

import argparse
import sys

from sparta.report.browser import screenshot


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html", help="the card.html to open")
    p.add_argument("png", help="where to write the screenshot")
    p.add_argument("--width", type=int, default=1280, help="viewport width in pixels")
    p.add_argument("--viewport-only", action="store_true", help="only the first screen")
    args = p.parse_args()
    try:
        path = screenshot(args.html, args.png, width=args.width, full_page=not args.viewport_only)
    except (ValueError, FileNotFoundError) as e:
        print(f"card-screenshot: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
