#!/usr/bin/env bash
# Install Debian's headless-capable chromium (used by the report-card browser tests and
# scripts/card-screenshot.py) when it is missing. Playwright drives it; no browser download.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium missing: installing the Debian package chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
         && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
    || echo "could not install chromium; the browser tests of the report card will be skipped"
else
  echo "chromium missing: run 'sudo apt-get install chromium' for the report card's browser tests"
fi
exit 0
