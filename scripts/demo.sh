#!/usr/bin/env bash
# The main job on the embedded default: 3 local lab hosts (podman + systemd), then kfinstall
# validates, plans and converges them. Needs root. Leaves the lab running: `kfinstall lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=${SITE:-$PWD/lab-site}
./scripts/setup.sh
KF=.venv/bin/kfinstall
$KF lab up --hosts 3 --out "$SITE"
$KF inventory validate -i "$SITE"
$KF plan -i "$SITE"
$KF up -i "$SITE" --only hosts --yes
