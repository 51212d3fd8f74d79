#!/usr/bin/env bash
# The test suite: everything but the `serial` tests in parallel (pytest-xdist, a process per core up to
# four), then the `serial` ones alone. Extra arguments (paths, -k, ...) go to both passes; a pass that
# selects nothing (pytest's exit status 5) is not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
pass() {
  .venv/bin/python -m pytest -q "$@"
  local status=$?
  [ "$status" -eq 5 ] && return 0
  return "$status"
}
pass -n auto --maxprocesses 4 -m "not serial" "$@" || exit $?
pass -m serial "$@"
