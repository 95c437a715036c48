#!/usr/bin/env bash
# `make deploy`: work pools (if missing), then every deployment of prefect.yaml, non-interactively,
# on the API in PREFECT_API_URL. Idempotent: re-running updates the deployments in place.
set -euo pipefail
BIN=${BIN:-.venv/bin}
: "${PREFECT_API_URL:?set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api; make server prints it)}"
bash infra/dev/pools.sh
# resolved into the deployments by `prefect deploy` ({{ $VAR }} in prefect.yaml)
export SLIPWAY_REPO_DIR=${SLIPWAY_REPO_DIR:-$(pwd)}
# where release, retrain and rollback run: slipway-process, or slipway-k8s (Kubernetes Jobs in SLIPWAY_FLOW_IMAGE)
export SLIPWAY_WORK_POOL=${SLIPWAY_WORK_POOL:-slipway-process}
export SLIPWAY_FLOW_IMAGE=${SLIPWAY_FLOW_IMAGE:-slipway:unset-set-SLIPWAY_FLOW_IMAGE}
export SLIPWAY_GPU_IMAGE=${SLIPWAY_GPU_IMAGE:-slipway-gpu:unset-set-SLIPWAY_GPU_IMAGE}
"$BIN/prefect" --no-prompt deploy --all
