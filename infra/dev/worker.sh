#!/usr/bin/env bash
# `make worker`: a process worker for the default pool; it runs flows from this checkout (prefect.yaml's
# pull step) with this shell's environment (SLIPWAY_MLFLOW_TRACKING_URI, SLIPWAY_HOME, registry, ...).
set -euo pipefail
BIN=${BIN:-.venv/bin}
: "${PREFECT_API_URL:?set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api; make server prints it)}"
bash infra/dev/pools.sh >/dev/null
exec "$BIN/prefect" worker start --pool "${SLIPWAY_WORK_POOL:-slipway-process}" --name "${SLIPWAY_WORKER_NAME:-slipway-$(hostname)}"
