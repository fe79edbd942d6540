# Sourced by the scripts here: a virtualenv with aws-kinesis-agg, made once under target/.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/venv.sh"
ensure_venv aggregation "$here/requirements.txt" aws_kinesis_agg
PY="$VENV/bin/python"
