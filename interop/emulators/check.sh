#!/usr/bin/env bash
# Runs the producer and consumer integration suites, and the testkit's pins of the Kinesis and
# DynamoDB APIs, against an independently written emulator pair instead of the embedded one:
#   Kinesis:  kinesis-mock (npm kinesis-local, Scala.js on Node)
#   DynamoDB: AWS's DynamoDB Local (the jar inside npm amplify-dynamodb-simulator, on Java 17)
# The tests' fronts (fault injection included) forward to them through
# KINESIS_TESTKIT_KINESIS_UPSTREAM / KINESIS_TESTKIT_DYNAMODB_UPSTREAM.
# Both servers listen on every interface, so they and the tests run in a private network
# namespace (unshare -n, as root) where only loopback exists.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

source "$here/servers.sh"
install_emulators

# Build outside the namespace (which has no registry access), with the workspace's features so
# CI's build is reused; run the test executables inside it.
source "$root/interop/workspace.sh"
executables="$root/target/independent-emulators.tests"
test_executables 'kinesis-producer:*' 'kinesis-consumer:*' kinesis-testkit:kinesis_api \
  kinesis-testkit:dynamodb_api >"$executables"
[ "$(wc -l <"$executables")" -ge 4 ] || { echo "test executables missing: $(cat "$executables")" >&2; exit 1; }

exec unshare --net -- bash "$here/isolated.sh" "$executables"
