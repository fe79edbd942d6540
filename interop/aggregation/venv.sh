# Sourced by the scripts here: a virtualenv with aws-kinesis-agg, made once under target/.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/venv-aggregation"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aws_kinesis_agg' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
PY="$venv/bin/python"
