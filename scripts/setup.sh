#!/usr/bin/env bash
# Set up a fresh machine for harness: a virtual environment in .venv with the CPU build of
# torch, harness itself (editable) with its test extras, Debian's Chromium for the
# leaderboard's browser test, and (from npm) the JavaScript and CSS libraries asv's published
# site needs to open offline. Safe to run again: it only adds what is missing.
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

# asv's published site (harness regress publish) loads jQuery, flot, bootstrap, ... from CDNs; the
# harness serves local copies instead, the npm packages harness.regress.publish.CDN_ASSETS names,
# installed here into .venv/share/harness/asv-www (npm --prefix). Nothing is fetched at run time.
asv_www=.venv/share/harness/asv-www
asv_assets=(env HARNESS_ASV_ASSETS="$asv_www" .venv/bin/python -m harness.regress.publish)
if [ -n "$("${asv_assets[@]}" --missing)" ]; then
  if command -v npm >/dev/null 2>&1; then
    mapfile -t asv_npm < <("${asv_assets[@]}" --all)
    npm install --prefix "$asv_www" --save-exact --no-audit --no-fund --no-update-notifier --loglevel=error \
      "${asv_npm[@]}" >/dev/null
    still_missing="$("${asv_assets[@]}" --missing)"
    if [ -n "$still_missing" ]; then
      echo "setup: npm installed into $asv_www but files of these are missing:" $still_missing >&2
      exit 1
    fi
  else
    echo "setup: npm is missing, so asv's site libraries (jQuery, flot, bootstrap) are not installed;" \
         "harness regress publish needs them to write a site that opens offline" >&2
  fi
fi
