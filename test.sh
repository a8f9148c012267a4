#!/usr/bin/env bash
# Installs everything the tests need (into .venv) and runs the whole suite:
# ruff, mypy --strict, then pytest. Works from a fresh clone with only Python 3.11+.
# The editable install compiles the hot modules with mypyc in place when a C
# compiler is there (a reinstall skips it when no compiled source changed);
# TCPLAB_PURE_PYTHON=1 ./test.sh installs and tests pure Python instead.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# System packages (chromium for the browser test, curl for the TUN tests, a C
# compiler for the compiled build): each tools/install-*.sh installs what is
# missing, quietly. First, so that the install below can compile.
for script in tools/install-*.sh; do
  if [ -e "$script" ]; then bash "$script"; fi
done
.venv/bin/python -m pip install -q -e '.[test]'
echo "== $(.venv/bin/tcplab --version)"
echo "== ruff"
.venv/bin/ruff check src tests benchmarks
echo "== mypy --strict"
.venv/bin/mypy --strict src/tcplab
echo "== pytest"
.venv/bin/pytest -q "$@"
