#!/usr/bin/env bash
# Set up a fresh machine for harness: a virtual environment in .venv with the CPU build of
# torch, harness itself (editable) with its test extras, and Debian's Chromium for the
# leaderboard's browser test. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: an unpinned torch pulled in by a dependency would be a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
"${pip[@]}" -e '.[test]'

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: Debian's chromium is missing and cannot be installed here (needs root and apt-get);" \
         "the browser test needs it" >&2
  fi
fi
