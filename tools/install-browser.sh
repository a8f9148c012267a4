#!/usr/bin/env bash
# Installs the headless browser that tests/render/test_html_browser.py drives:
# Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver).
# Quiet, idempotent, and never downloads a browser build of its own.  Does nothing
# when both are already there; without root or apt-get it says so and exits 0,
# and the browser test then skips (or fails, with TCPLAB_REQUIRE_BROWSER=1).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install chromium and chromium-driver by hand" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-browser: not root; install chromium and chromium-driver by hand" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
  echo "install-browser: apt-get failed:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
