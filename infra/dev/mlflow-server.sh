#!/usr/bin/env bash
# Start an MLflow tracking server for a team (SQLite + local artifacts by default).
# Clients then use it by config alone:  export MLFLOW_TRACKING_URI=http://HOST:PORT
#
#   infra/dev/mlflow-server.sh [--port 5000] [--host 127.0.0.1] [--state DIR] [--allowed-hosts LIST]
#
# Job execution is off (it starts 7 consumer processes, ~1.5 GB, and slows start-up 2-3x).
# Behind a Kubernetes Service, list its DNS names in --allowed-hosts or MLflow answers 403.
set -euo pipefail
port=5000 host=127.0.0.1 state=.slipway/mlflow-server allowed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --allowed-hosts) allowed=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$state"
state=$(cd "$state" && pwd)
# a team's database / bucket: MLFLOW_BACKEND_STORE_URI=postgresql://... MLFLOW_ARTIFACTS_DESTINATION=s3://...
args=(--backend-store-uri "${MLFLOW_BACKEND_STORE_URI:-sqlite:///$state/mlflow.db}"
      --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-file://$state/artifacts}"
      --host "$host" --port "$port" --workers 1)
[ -n "$allowed" ] && args+=(--allowed-hosts "$allowed")
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec "${MLFLOW:-mlflow}" server "${args[@]}"
