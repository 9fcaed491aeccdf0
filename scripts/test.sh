#!/usr/bin/env bash
# The test command: ruff and mypy on installer/ and stacks/, then unit + stacks + playbooks + lab
# tiers (e2e tests skip with their reason). The lab tier needs root; without it those tests skip
# and say why. pytest runs last so its summary line is the last line printed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "[test] ruff check installer stacks"
.venv/bin/ruff check -q installer stacks
echo "[test] mypy installer stacks"
.venv/bin/mypy installer stacks
exec .venv/bin/pytest tests -ra "$@"
