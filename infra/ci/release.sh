#!/usr/bin/env bash
# What .github/workflows/release.yml runs on each push to main (and what a person can run locally):
# register/update the deployments on the team's Prefect API, run `release` for this commit, wait for
# the terminal state, write the decision into the job summary. Exit 0 promoted/registered,
# 1 rejected or rolled back, 2 the run failed, crashed or timed out (the job fails on both).
#
# Env: PREFECT_API_URL (required), PREFECT_API_KEY (Prefect Cloud), SLIPWAY_COMMIT (default: HEAD),
#      SLIPWAY_DATA_URI (data location on the worker; empty = the newest batch in batches.location),
#      SLIPWAY_SUMMARY_FILE (e.g. $GITHUB_STEP_SUMMARY), SLIPWAY_RELEASE_TIMEOUT_S (default 3600),
#      SLIPWAY_CONFIG_PATH (slipway.yaml path on the worker; default slipway.yaml),
#      SLIPWAY_REPO_DIR (the worker's checkout; required on GitHub Actions, default here: this checkout),
#      SLIPWAY_MLFLOW_TRACKING_URI (only for the MLflow link in the summary).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
: "${PREFECT_API_URL:?PREFECT_API_URL is not set: add it as a repository/environment secret}"
commit=${SLIPWAY_COMMIT:-$(git rev-parse HEAD)}
# The deployments run flows from a checkout on the WORKER (prefect.yaml pull step); this runner's own
# path would be wrong there, so CI must name it. Locally it defaults to this checkout.
if [ "${GITHUB_ACTIONS:-}" = "true" ] && [ -z "${SLIPWAY_REPO_DIR:-}" ]; then
  echo "::error::SLIPWAY_REPO_DIR is empty: set the repository variable SLIPWAY_WORKER_REPO_DIR to the worker's checkout path" >&2
  exit 2
fi

echo "== registering deployments on $PREFECT_API_URL"
SLIPWAY_COMMIT=$commit bash infra/dev/deploy.sh

args=(--commit "$commit" --timeout "${SLIPWAY_RELEASE_TIMEOUT_S:-3600}"
      --idempotency-key "release-$commit-${GITHUB_RUN_ID:-local}-${GITHUB_RUN_ATTEMPT:-1}")
[ -n "${SLIPWAY_CONFIG_PATH:-}" ] && args+=(--config-path "$SLIPWAY_CONFIG_PATH")
[ -n "${SLIPWAY_DATA_URI:-}" ] && args+=(--data "$SLIPWAY_DATA_URI")
[ -n "${SLIPWAY_SUMMARY_FILE:-}" ] && args+=(--summary "$SLIPWAY_SUMMARY_FILE")
[ -n "${SLIPWAY_RELEASE_POLL_S:-}" ] && args+=(--poll "$SLIPWAY_RELEASE_POLL_S")
echo "== running release/release for $commit"
"$BIN/slipway" remote release "${args[@]}"
