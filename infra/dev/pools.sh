#!/usr/bin/env bash
# Create Slipway's work pools on the API in PREFECT_API_URL when missing (never overwrites a team's
# edited base job template). Pools: slipway-process or slipway-k8s (release, retrain, rollback: prefect.yaml's
# SLIPWAY_WORK_POOL; the k8s one from infra/work-pools/kubernetes.json), slipway-gpu-process and slipway-gpu-k8s
# (TensorRT; the k8s one from infra/work-pools/gpu-kubernetes.json).
set -euo pipefail
BIN=${BIN:-.venv/bin}
: "${PREFECT_API_URL:?set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api; make server prints it)}"
ensure() {  # name, then `prefect work-pool create` arguments; safe when two callers race
  local name=$1 out; shift
  if "$BIN/prefect" work-pool inspect "$name" >/dev/null 2>&1; then
    echo "work pool $name: exists"
  elif out=$("$BIN/prefect" work-pool create "$name" "$@" 2>&1); then
    echo "work pool $name: created"
  elif "$BIN/prefect" work-pool inspect "$name" >/dev/null 2>&1; then
    echo "work pool $name: exists (created concurrently)"
  else
    echo "work pool $name: cannot be created on $PREFECT_API_URL:" >&2
    echo "$out" >&2
    return 1
  fi
}
ensure slipway-process --type process
ensure slipway-k8s --type kubernetes --base-job-template infra/work-pools/kubernetes.json
ensure slipway-gpu-process --type process
ensure slipway-gpu-k8s --type kubernetes --base-job-template infra/work-pools/gpu-kubernetes.json
