#!/usr/bin/env bash
# Sets up everything `make demo` and `make test` need on a fresh machine: a virtual
# environment with pinned packages, and (as root, when missing) Debian's chromium for the
# browser tests and espeak-ng for spoken words in synthetic clips.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip
# torch / torchvision first, pinned (DESIGN.md: these two install together from local files here;
# transformers' Qwen2.5-VL video processor needs torchvision).
"$PIP" install -q torch==2.14.1 torchvision==0.29.1
"$PIP" install -q -r requirements/lock.txt
# lmms-eval (tests of the R-AVST lmms-eval tasks) without its own pins: see requirements/lmms-nodeps.txt
"$PIP" install -q --no-deps -r requirements/lmms-nodeps.txt
"$PIP" install -q --no-deps -e .

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      log "WARNING: could not install ${missing[*]}; browser tests and spoken words will be skipped"
    fi
  fi
else
  log "not root: skipping Debian packages (chromium, espeak-ng); the tests that need them skip"
fi
log "done"
