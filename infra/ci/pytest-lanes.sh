#!/usr/bin/env bash
# `make test`'s pytest over every tier in two lanes at once (2 cores; most tests wait on servers, canary
# windows and subprocesses rather than compute): lane 1 is tests/integration except Kubernetes, lane 2 is
# unit, contract, Kubernetes integration, gpu and e2e. Lane 2 prints as it runs; lane 1's output follows it.
# Exits non-zero when either lane failed. Extra arguments go to both pytest runs.
# Usage: infra/ci/pytest-lanes.sh PYTEST [ARGS...]   (PYTEST_LANES=1 runs one pytest over everything)
set -uo pipefail
pytest=$1
shift
if [ "${PYTEST_LANES:-2}" = 1 ]; then
  exec "$pytest" "$@"
fi
log=$(mktemp "${TMPDIR:-/tmp}/slipway-lane1.XXXXXX.log")
"$pytest" tests/integration --ignore=tests/integration/k8s -p no:cacheprovider "$@" >"$log" 2>&1 &
lane1=$!
trap 'kill "$lane1" 2>/dev/null' INT TERM
"$pytest" tests/unit tests/contract tests/integration/k8s tests/gpu tests/e2e -p no:cacheprovider "$@"
status2=$?
wait "$lane1"
status1=$?
echo
echo "==================== lane 1: tests/integration (without k8s), exit $status1 ===================="
cat "$log"
rm -f "$log"
echo "== lanes: integration exit $status1; unit, contract, k8s, gpu, e2e exit $status2"
[ "$status1" -eq 0 ] && [ "$status2" -eq 0 ]
