#!/usr/bin/env bash
# Interop with the existing ecosystem, run by CI, on the kinesis-testkit emulators:
#  1. our producer writes; plain boto3 GetRecords reads, the official Python and Node.js
#     aws-kinesis-agg deaggregate, and all agree with our consumer, record for record;
#  2. the Python and Node.js libraries aggregate, boto3 puts; our consumer reads them all;
#  3. a lease table written the way KCL writes it, checkpointed inside aggregates: our worker
#     resumes from those checkpoints, and every item it writes uses only KCL's names and types;
#  4. our producer with --ordered, through PutRecords faults and a split: boto3 and the Python
#     aws-kinesis-agg read every key's records in send order; without --ordered, some key not.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/venv.sh"
ensure_venv ecosystem "$here/requirements.txt" "aws_kinesis_agg, boto3"
venv="$VENV"
[ -f "$here/node_modules/aws-kinesis-agg/index.js" ] \
  || (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
source "$root/interop/workspace.sh"
build_workspace
bin="$BIN"
work="$root/target/interop-ecosystem"
rm -rf "$work" && mkdir -p "$work"
py="$venv/bin/python $here/ecosystem.py"

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
kport=$(free_port); dport=$(free_port)
"$bin/kinesis-testkit" --kinesis-port "$kport" --dynamodb-port "$dport" >"$work/emulators.log" 2>&1 &
emulators=$!
trap 'kill $emulators 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q dynamodb "$work/emulators.log" && break; sleep 0.1; done
export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$kport" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dport"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

n=5000
echo "--- 1. our producer -> boto3, python and node aws-kinesis-agg, our consumer"
"$bin/examples/produce" --stream ours --records $((n - 1)) --size 60 --create-shards 4 >"$work/produce.json"
# A lone record goes out plain, as KPL sends an aggregate of one: every reader must take both forms.
"$bin/examples/produce" --stream ours --records 1 --size 60 >"$work/produce-one.json"
"$bin/examples/consume" --stream ours --app-name interop-ours --until-idle 1.5 --print >"$work/ours.txt"
$py read-ours ours "$work/ours.txt" "$work/raw.json" $n
node "$here/agg.cjs" deaggregate "$work/raw.json" "$work/node-deaggregated.json"
$py compare-node "$work/node-deaggregated.json" "$work/ours.txt"

echo "--- 2. python and node aws-kinesis-agg -> boto3 PutRecords -> our consumer"
node "$here/agg.cjs" aggregate 3000 "$work/node-aggregates.json"
$py write-theirs theirs "$work/node-aggregates.json" 3000 "$work/theirs-expected.json"
"$bin/examples/consume" --stream theirs --app-name interop-theirs --until-idle 1.5 --print >"$work/theirs.txt"
$py compare "$work/theirs.txt" "$work/theirs-expected.json"

echo "--- 3. a KCL-written lease table -> our worker resumes at its checkpoints"
$py kcl-write kcl-written "$work/raw.json" "$work/kcl-expected.json"
# Idle long enough for the dead KCL worker's leases to expire (failover time 10 s) and be taken.
"$bin/examples/consume" --stream ours --app-name kcl-written --until-idle 14 --print >"$work/kcl.txt"
$py compare "$work/kcl.txt" "$work/kcl-expected.json"
$py kcl-verify kcl-written
$py kcl-verify interop-ours
echo "--- 4. per-key order through PutRecords faults and a split, read back by boto3"
fport=$(free_port); fdport=$(free_port)
"$bin/kinesis-testkit" --kinesis-port "$fport" --dynamodb-port "$fdport" --put-fault-probability 0.4 \
  >"$work/faulty.log" 2>&1 &
faulty=$!
trap 'kill $emulators $faulty 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q dynamodb "$work/faulty.log" && break; sleep 0.1; done
for mode in ordered reordered; do
  flag=; [ "$mode" = ordered ] && flag=--ordered
  AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$fport" "$bin/examples/produce" --stream "order-$mode" \
    --create-shards 2 --keys 20 --records 4000 --rate 2000 $flag >"$work/order-$mode.json" &
  producer=$!
  sleep 1
  AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$fport" "$venv/bin/python" "$here/order.py" split "order-$mode"
  wait "$producer"
  AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$fport" "$venv/bin/python" "$here/order.py" check "order-$mode" 4000 "$mode"
done
echo "ecosystem interop: ok"
