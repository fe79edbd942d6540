#!/usr/bin/env bash
# Inside a private network namespace: start kinesis-mock and DynamoDB Local on loopback, run
# the test executables listed in the given file ("PACKAGE_DIR EXECUTABLE" lines) against them,
# each from its package's folder as cargo test would, stop them. Called by check.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/servers.sh"
start_emulators "${CARGO_TARGET_DIR:-target}/independent-emulators"

export KINESIS_TESTKIT_KINESIS_UPSTREAM="http://127.0.0.1:$KINESIS_PORT"
export KINESIS_TESTKIT_DYNAMODB_UPSTREAM="http://127.0.0.1:$DYNAMODB_PORT"
# The skewed-load balance test (two fleets converging, then watched for two minutes: three
# minutes of wall time) checks the leader's planner over lease-table scans, which behaves the
# same on any emulator; it runs in the README's suite on the embedded pair. The other balance
# tests (joins, failover, graceful handoff, refused checkpoints) run here.
status=0
while read -r dir executable; do
  test_name="$(basename "$executable")"
  args=()
  case "${test_name%-*}" in
    worker) args=(--skip balance::skewed_load_converges) ;;
  esac
  echo "--- $(basename "$dir"): ${test_name%-*} ${args[*]}"
  (cd "$dir" && "$executable" "${args[@]}" </dev/null) || status=1
done <"$1"
exit $status
