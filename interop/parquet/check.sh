#!/usr/bin/env bash
# The demo's Parquet output read back by pyarrow, run by CI: the demo runs headless with
# --parquet into a folder (column chunks snappy, then gzip), and verify.py reads every object
# with pyarrow and checks the schema, the codec and that every record of the run is there once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/venv.sh"
ensure_venv parquet "$here/requirements.txt" "pyarrow.parquet"
venv="$VENV"
demo="$root/target/debug/examples/demo_app"
source "$root/interop/workspace.sh"
build_workspace

records=3000
for codec in snappy gzip; do
  out="$root/target/parquet-interop/$codec"
  rm -rf "$out"
  # 1 KB records into 1 MiB buffers: several objects.
  flags=(--headless --records "$records" --record-size 1000 --buffer-size 1048576 --parquet
    --output-dir "$out")
  [ "$codec" = gzip ] && flags+=(--gzip)
  "$demo" "${flags[@]}"
  "$venv/bin/python" "$here/verify.py" "$out" "$records" "$codec"
done
