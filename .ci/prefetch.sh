#!/usr/bin/env bash
# Fetches what the interop and benchmark steps download from the registries (Python
# virtualenvs, npm packages, DynamoDB Local, the Java projects' Maven dependencies, Debian's
# chromium), so CI does it in the background while the workspace builds instead of in those
# steps: on a fresh machine about four minutes of waiting on the network and pip.
#
# Each step still checks for and installs what it needs, so anything that fails here is
# simply fetched again there. CI waits for this script before the first step that uses it.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p target

fetch() {
  local what="$1" started=$SECONDS
  shift
  if ( "$@" ) >"target/prefetch-$what.log" 2>&1; then
    echo "prefetch $what: $((SECONDS - started)) s"
  else
    echo "prefetch $what: failed after $((SECONDS - started)) s (its step fetches it again)"
    tail -n 5 "target/prefetch-$what.log"
  fi
}

venv() {
  source interop/venv.sh
  ensure_venv "$@"
}
maven() {
  cd "$1" && mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
}
emulators() {
  source interop/emulators/servers.sh
  install_emulators
}
# Not named `chromium`: install.sh asks `command -v chromium`, which a function of that name
# answers, so nothing was installed and the browser step did it in the foreground (100 s).
browser() {
  source interop/browser/install.sh
}

# The module lists are the ones each step checks the virtualenv with.
fetch venv-aggregation venv aggregation interop/aggregation/requirements.txt aws_kinesis_agg
fetch venv-s3 venv s3 interop/s3/requirements.txt "moto, boto3"
fetch venv-parquet venv parquet interop/parquet/requirements.txt "pyarrow.parquet"
fetch chromium browser
fetch emulators emulators
fetch maven-kcl maven interop/kcl
fetch venv-kcl venv kcl interop/kcl/requirements.txt boto3
fetch venv-ecosystem venv ecosystem interop/ecosystem/requirements.txt "aws_kinesis_agg, boto3"
fetch npm-ecosystem bash -c "cd interop/ecosystem && npm ci --no-audit --no-fund --loglevel=error"
fetch venv-peers venv peers benches/peers/requirements.txt "aiokpl, kcl_rs, aws_kinesis_agg, boto3"
fetch maven-kpl maven benches/peers/kpl
exit 0
