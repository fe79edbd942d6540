#!/usr/bin/env bash
# Interop check run by CI: our aggregates, decoded and rebuilt by the official Python library.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
out="$root/target/our_aggregates.json"
source "$root/interop/workspace.sh"
build_workspace
(cd "$root" && "$BIN/examples/write_aggregates" kinesis-agg/tests/fixtures/agg_vectors.json "$out")
cd "$here"
"$PY" verify_ours.py "$out"
