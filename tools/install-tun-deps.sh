#!/usr/bin/env bash
# Installs what tests/tun and `tcplab tun` need from Debian: curl (the kernel-side
# client in the namespace) and iproute2 (`ip netns`, `ip link`).  Quiet, idempotent:
# does nothing when both are there; without root or apt-get it says so and exits 0,
# and the TUN tests then skip (or fail, with TCPLAB_REQUIRE_TUN=1).
set -euo pipefail
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tun-deps: no apt-get here; install ${missing[*]} by hand" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-tun-deps: not root; install ${missing[*]} by hand" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-tun-deps: apt-get failed:" >&2
  tail -n 20 "$log" >&2
  exit 0
fi
