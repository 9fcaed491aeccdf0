#!/usr/bin/env bash
# Prepare this machine for kfinstall: a virtualenv in .venv with kfinstall and its test tools.
# Idempotent; safe to re-run. Host packages for lab hosts (podman, debootstrap, ...) are installed
# by `kfinstall lab up` itself, only when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "[setup] installing python3-venv"
  apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y install python3-venv >/dev/null
fi
command -v ssh >/dev/null || { apt-get -q update >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get -q -y install openssh-client >/dev/null; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e '.[test,dev]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/kfinstall --version
