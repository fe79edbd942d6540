# Sourced by the interop scripts that run on the independent emulator pair.
#   install_emulators: fetches kinesis-mock (npm kinesis-local) and DynamoDB Local (the jar
#     inside npm amplify-dynamodb-simulator, on Java 17) once; sets KINESIS_MOCK_MAIN and
#     DDB_LOCAL_DIR. Needs the registries: call it outside the private network namespace.
#   start_emulators LOG_DIR: inside a private network namespace (unshare -n, as root), brings
#     loopback up, starts both on it (Kinesis :4568, DynamoDB :8001), waits until they listen
#     and stops them when the calling shell exits.
EMULATORS_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KINESIS_PORT=4568
DYNAMODB_PORT=8001

install_emulators() {
  local root ddb_version=2.9.30
  root="$(cd "$EMULATORS_HERE/../.." && pwd)"
  local ddb_dir="$root/target/dynamodb-local-$ddb_version"
  if [ ! -f "$EMULATORS_HERE/node_modules/kinesis-local/main.js" ]; then
    (cd "$EMULATORS_HERE" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f "$ddb_dir/package/emulator/DynamoDBLocal.jar" ]; then
    mkdir -p "$ddb_dir"
    (cd "$ddb_dir" && npm pack --silent "amplify-dynamodb-simulator@$ddb_version" >/dev/null \
      && tar xzf "amplify-dynamodb-simulator-$ddb_version.tgz")
  fi
  command -v java >/dev/null || { echo "java is needed for DynamoDB Local" >&2; return 1; }
  export KINESIS_MOCK_MAIN="$EMULATORS_HERE/node_modules/kinesis-local/main.js"
  export DDB_LOCAL_DIR="$ddb_dir/package/emulator"
}

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1 after 30 s" >&2
  return 1
}

start_emulators() {
  local logs="$1"
  mkdir -p "$logs"
  ip link set lo up
  # State changes (create, split, merge, register) take 50 ms instead of AWS-like seconds.
  KINESIS_MOCK_CERT_PATH="$(dirname "$KINESIS_MOCK_MAIN")/server.json" \
  KINESIS_MOCK_PLAIN_PORT=$KINESIS_PORT KINESIS_MOCK_TLS_PORT=4569 \
  CREATE_STREAM_DURATION=50ms DELETE_STREAM_DURATION=50ms UPDATE_SHARD_COUNT_DURATION=50ms \
  SPLIT_SHARD_DURATION=50ms MERGE_SHARDS_DURATION=50ms \
  REGISTER_STREAM_CONSUMER_DURATION=50ms DEREGISTER_STREAM_CONSUMER_DURATION=50ms \
  SHARD_LIMIT=100000 LOG_LEVEL=WARN \
    node "$KINESIS_MOCK_MAIN" >"$logs/kinesis-mock.log" 2>&1 &
  EMULATOR_PIDS="$!"
  (cd "$DDB_LOCAL_DIR" && exec java -Xmx1g -jar DynamoDBLocal.jar -inMemory -sharedDb \
    -port $DYNAMODB_PORT) >"$logs/dynamodb-local.log" 2>&1 &
  EMULATOR_PIDS="$EMULATOR_PIDS $!"
  # shellcheck disable=SC2064
  trap "kill $EMULATOR_PIDS 2>/dev/null || true" EXIT
  wait_port $KINESIS_PORT
  wait_port $DYNAMODB_PORT
  echo "kinesis-mock on :$KINESIS_PORT, DynamoDB Local on :$DYNAMODB_PORT (private network namespace)"
}
