#!/usr/bin/env bash
# Installs the Debian packages the tests need, when they are missing:
#   chromium, chromium-driver  the HTML report's browser test (tests/render)
#   curl, iproute2             the kernel-side client and `ip netns` (tests/tun, tcplab tun)
#   fonts-wqy-microhei         a CJK font, so Chromium draws the Chinese pictures (--lang zh)
#                              with real glyphs when the browser test measures them
#   gcc, python3-dev           the compiled build (mypyc's C extensions, setup.py); without
#                              them tcplab installs and runs as pure Python
# Quiet and idempotent (one apt-get run for everything missing), never downloads a
# browser build of its own.  Without root or apt-get it says so and exits 0; the
# tests that need a package then skip (or fail, with TCPLAB_REQUIRE_BROWSER=1 /
# TCPLAB_REQUIRE_TUN=1, as CI sets them).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null; then
  missing+=(python3-dev)
fi
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh family 2>/dev/null)" ]; then
  missing+=(fonts-wqy-microhei)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install ${missing[*]} by hand" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-system-deps: not root; install ${missing[*]} by hand" >&2
    exit 0
  fi
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-system-deps: apt-get failed:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
