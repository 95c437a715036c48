#!/usr/bin/env bash
# `make test`'s pytest: one run over every tier (the default, PYTEST_LANES=1), or with PYTEST_LANES=2 two
# lanes at once: lane 1 is tests/integration except Kubernetes, lane 2 is unit, contract, Kubernetes
# integration, gpu and e2e. Lane 2 prints as it runs; lane 1's output follows it; non-zero when either failed.
# Measured on a 2-core CI machine: the lanes took 36 min instead of 51, but the CPU they share made healthy
# canaries fail their latency checks (p99 canary/stable 4.6x) in 2 of the 6 canary e2e/k8s releases, so two
# lanes are for machines with cores to spare. Tests marked `image_tools` (buildah/podman) never overlap.
# Usage: infra/ci/pytest-lanes.sh PYTEST [ARGS...]
set -uo pipefail
pytest=$1
shift
if [ "${PYTEST_LANES:-1}" = 1 ]; then
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
