#!/usr/bin/env bash
# Inside a private network namespace: start kinesis-mock and DynamoDB Local on loopback, run
# the mixed-fleet scenario against them, stop them. Called by check.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../emulators/servers.sh"
start_emulators "$WORK/emulators"
"$PYTHON" "$here/mixed_fleet.py"
