#!/usr/bin/env bash
# Regenerates kinesis-agg/tests/fixtures/agg_vectors.json with the official Python library.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
cd "$here"
"$PY" generate_vectors.py "$root/kinesis-agg/tests/fixtures/agg_vectors.json"
echo "wrote kinesis-agg/tests/fixtures/agg_vectors.json"
