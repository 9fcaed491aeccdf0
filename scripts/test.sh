#!/usr/bin/env bash
# The test command: ruff and mypy on installer/ and stacks/, then unit + stacks + playbooks + lab
# tiers (e2e tests skip with their reason). The lab tier needs root; without it those tests skip
# and say why. pytest runs last so its summary line is the last line printed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# tf-serving's model lister runs in the channel's busybox image; its tests also run it with busybox's
# own shell and applets alone on PATH, and skip that variant (saying why) where busybox is absent.
if ! command -v busybox >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test] installing busybox"
  { apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y install busybox; } >/dev/null || true
fi
# TF Serving's own ModelServerConfig message parses the lister's output (the package's protos only:
# --no-deps keeps TensorFlow out; protobuf is already here through pulumi).
.venv/bin/python -m pip install -q --no-deps tensorflow-serving-api==2.21.0 2>&1 | grep -v '^WARNING: Location' || true
echo "[test] ruff check installer stacks"
.venv/bin/ruff check -q installer stacks
echo "[test] mypy installer stacks"
.venv/bin/mypy installer stacks
# --durations: the slowest tests are named in every run, so the 40-minute budget is watched where it is spent.
exec .venv/bin/pytest tests -ra --durations=30 "$@"
