#!/usr/bin/env bash
# Side-by-side benchmark against the peers (the real KPL, aiokpl, boto3, aws-kinesis-agg, kcl-rs).
#   benches/peers/run.sh                 full size, release build (the README's figures)
#   benches/peers/run.sh --small         small size on the debug build, without kcl-rs, whose
#                                        start and failover alone take minutes (what CI runs)
# Installs the peers into a virtualenv under target/ and builds the KPL's Java driver with Maven
# (Java 17; the KPL and its native daemon come from Maven Central); extra arguments go to run.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/venv.sh"
ensure_venv peers "$here/requirements.txt" "aiokpl, kcl_rs, aws_kinesis_agg, boto3"
venv="$VENV"
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
command -v pgrep >/dev/null || apt-get install -y -qq procps >/dev/null
command -v mvn >/dev/null || { echo "Maven (and Java 17) is needed to run the real KPL" >&2; exit 1; }
(cd "$here/kpl" && mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt)
kpl_classpath="$here/kpl/target/classes:$(cat "$here/kpl/target/classpath.txt")"

if [ "${1:-}" = "--small" ]; then
  shift
  source "$root/interop/workspace.sh"
  build_workspace
  exec "$venv/bin/python" "$here/run.py" "$BIN" --records 5000 --big-records 200 \
    --consumer-records 2000 --codec-records 20000 --bound 120 --no-kcl \
    --kpl-classpath "$kpl_classpath" "$@"
fi
(cd "$root" && cargo build --quiet --release -p kinesis-testkit --bin kinesis-testkit \
  && cargo build --quiet --release -p kinesis-examples --example produce --example consume \
  && cargo build --quiet --release -p kinesis-benches --bin codec_rate)
exec "$venv/bin/python" "$here/run.py" "$root/target/release" --kpl-classpath "$kpl_classpath" "$@"
