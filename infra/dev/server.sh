#!/usr/bin/env bash
# `make server`: a Prefect server with its UI and an MLflow tracking server, as a team runs them.
# Prefect: SQLite under $SLIPWAY_SERVER_HOME by default; PostgreSQL when PREFECT_API_DATABASE_CONNECTION_URL
# is set (postgresql+asyncpg://user:pass@host:5432/prefect). MLflow: SQLite + artifacts served over HTTP,
# or MLFLOW_BACKEND_STORE_URI (postgresql://...) / MLFLOW_ARTIFACTS_DESTINATION (s3://...): infra/dev/mlflow-server.sh.
# Foreground; Ctrl-C (SIGINT/SIGTERM) stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
HOST=${SLIPWAY_SERVER_HOST:-127.0.0.1}
PREFECT_PORT=${SLIPWAY_PREFECT_PORT:-4200}
MLFLOW_PORT=${SLIPWAY_MLFLOW_PORT:-5001}
STATE=$(realpath -m "${SLIPWAY_SERVER_HOME:-.slipway/server}")
mkdir -p "$STATE/prefect" "$STATE/mlflow"

export PREFECT_HOME="$STATE/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_UI_API_URL="http://$HOST:$PREFECT_PORT/api"
backend=${MLFLOW_BACKEND_STORE_URI:-sqlite:///$STATE/mlflow/mlflow.db}
MLFLOW="$BIN/mlflow" setsid bash infra/dev/mlflow-server.sh --host "$HOST" --port "$MLFLOW_PORT" --state "$STATE/mlflow" \
  > "$STATE/mlflow/server.log" 2>&1 &
mlflow_pid=$!
# its own process group: stopping the server stops MLflow's workers too
trap 'kill -TERM -- -$mlflow_pid 2>/dev/null; wait $mlflow_pid 2>/dev/null || true' EXIT

db=${PREFECT_API_DATABASE_CONNECTION_URL:+PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL)}
cat <<INFO
== Slipway servers
   Prefect UI + API : http://$HOST:$PREFECT_PORT        (API http://$HOST:$PREFECT_PORT/api; DB: ${db:-SQLite in $PREFECT_HOME})
   MLflow UI        : http://$HOST:$MLFLOW_PORT        (backend ${backend%%://*}, log $STATE/mlflow/server.log)
   In other shells  : export PREFECT_API_URL=http://$HOST:$PREFECT_PORT/api SLIPWAY_MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT
                      make worker   # a process worker for the slipway-process pool
                      make deploy   # register release, retrain (cron), rollback, optimize-gpu*
INFO
"$BIN/prefect" server start --host "$HOST" --port "$PREFECT_PORT"
