#!/usr/bin/env bash
# The demo's s3:// output against a local S3-compatible server (moto), run by CI.
# Installs moto into a virtualenv under target/, serves it on a free loopback port, runs the
# demo headless into a bucket, and checks every record is in the bucket's files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/venv.sh"
ensure_venv s3 "$here/requirements.txt" "moto, boto3"
venv="$VENV"
demo="$root/target/debug/examples/demo_app"
source "$root/interop/workspace.sh"
build_workspace

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$root/target/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$venv/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port"
"$venv/bin/python" -c "import boto3, os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3']).create_bucket(Bucket='demo-bucket')"
"$demo" --headless --records 5000 --gzip --output-dir s3://demo-bucket/run
"$venv/bin/python" "$here/verify.py" demo-bucket run/ 5000
