#!/usr/bin/env bash
# Inside a private network namespace: start kinesis-mock and DynamoDB Local on loopback, run
# the test executables listed in the given file ("PACKAGE_DIR EXECUTABLE" lines) against them,
# each from its package's folder as cargo test would, stop them. Called by check.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/servers.sh"
start_emulators "${CARGO_TARGET_DIR:-target}/independent-emulators"

export KINESIS_TESTKIT_KINESIS_UPSTREAM="http://127.0.0.1:$KINESIS_PORT"
export KINESIS_TESTKIT_DYNAMODB_UPSTREAM="http://127.0.0.1:$DYNAMODB_PORT"
status=0
while read -r dir executable; do
  test_name="$(basename "$executable")"
  echo "--- $(basename "$dir"): ${test_name%-*}"
  (cd "$dir" && "$executable" </dev/null) || status=1
done <"$1"
exit $status
