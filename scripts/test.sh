#!/usr/bin/env bash
# The test command: unit + stacks + playbooks + lab tiers (e2e tests skip with their reason).
# The lab tier needs root; without it those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/pytest tests -ra "$@"
