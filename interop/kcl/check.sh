#!/usr/bin/env bash
# A mixed fleet: workers of the real KCL 3.x (Java, software.amazon.kinesis:amazon-kinesis-
# client from Maven Central) and of ours share one application's lease table on the
# independent emulators (kinesis-mock, DynamoDB Local): each side processes its share, a
# kill -9 on either side is failed over by the other, and nothing is lost (mixed_fleet.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# Everything that needs the registries happens here, outside the namespace.
source "$root/interop/emulators/servers.sh"
install_emulators
source "$root/interop/workspace.sh"
build_workspace
command -v mvn >/dev/null || { echo "Maven is needed to build the KCL application" >&2; exit 1; }
(cd "$here" && mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt)
source "$root/interop/venv.sh"
ensure_venv kcl "$here/requirements.txt" boto3

export BIN PYTHON="$VENV/bin/python" WORK="$root/target/kcl-interop"
export KCL_CLASSPATH="$here/target/classes:$(cat "$here/target/classpath.txt")"
rm -rf "$WORK" && mkdir -p "$WORK"
status=0
unshare --net -- bash "$here/isolated.sh" || status=$?
if [ $status -ne 0 ]; then
  echo "--- logs in $WORK; the last lines of each:" >&2
  for f in "$WORK"/*.log; do echo "== $f" >&2; tail -n 15 "$f" >&2; done
fi
exit $status
