#!/usr/bin/env bash
# Inside a private network namespace: start kinesis-mock and DynamoDB Local on loopback, run
# the test executables listed in the given file ("PACKAGE_DIR EXECUTABLE" lines) against them,
# each from its package's folder as cargo test would, stop them. Called by check.sh.
set -euo pipefail
ip link set lo up
logs="${CARGO_TARGET_DIR:-target}/independent-emulators"
mkdir -p "$logs"
kinesis_port=4568
dynamodb_port=8001

# State changes (create, split, merge, register) take 50 ms instead of AWS-like seconds.
KINESIS_MOCK_CERT_PATH="$(dirname "$KINESIS_MOCK_MAIN")/server.json" \
KINESIS_MOCK_PLAIN_PORT=$kinesis_port KINESIS_MOCK_TLS_PORT=4569 \
CREATE_STREAM_DURATION=50ms DELETE_STREAM_DURATION=50ms UPDATE_SHARD_COUNT_DURATION=50ms \
SPLIT_SHARD_DURATION=50ms MERGE_SHARDS_DURATION=50ms \
REGISTER_STREAM_CONSUMER_DURATION=50ms DEREGISTER_STREAM_CONSUMER_DURATION=50ms \
SHARD_LIMIT=100000 LOG_LEVEL=WARN \
  node "$KINESIS_MOCK_MAIN" >"$logs/kinesis-mock.log" 2>&1 &
kinesis_pid=$!
(cd "$DDB_LOCAL_DIR" && exec java -Xmx1g -jar DynamoDBLocal.jar -inMemory -sharedDb \
  -port $dynamodb_port) >"$logs/dynamodb-local.log" 2>&1 &
dynamodb_pid=$!
trap 'kill $kinesis_pid $dynamodb_pid 2>/dev/null || true' EXIT

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1 after 30 s; see $logs" >&2
  return 1
}
wait_port $kinesis_port
wait_port $dynamodb_port
echo "kinesis-mock on :$kinesis_port, DynamoDB Local on :$dynamodb_port (private network namespace)"

export KINESIS_TESTKIT_KINESIS_UPSTREAM="http://127.0.0.1:$kinesis_port"
export KINESIS_TESTKIT_DYNAMODB_UPSTREAM="http://127.0.0.1:$dynamodb_port"
status=0
while read -r dir executable; do
  test_name="$(basename "$executable")"
  echo "--- $(basename "$dir"): ${test_name%-*}"
  (cd "$dir" && "$executable" </dev/null) || status=1
done <"$1"
exit $status
