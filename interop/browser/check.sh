#!/usr/bin/env bash
# The demo's page in a real headless browser (Debian's chromium, driven by playwright-core):
# submit the form, see the counts reach N, keep a screenshot. Run by CI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/install.sh"
(cd "$here" && npm ci --no-audit --no-fund --silent)
demo="$root/target/debug/examples/demo_app"
source "$root/interop/workspace.sh"
build_workspace

out="$root/target/browser-demo-output"
rm -rf "$out"
log="$root/target/browser-demo.log"
"$demo" --port 0 --buffer-interval 1 --output-dir "$out" > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
url=""
for _ in $(seq 300); do
  url=$(sed -n 's/^demo_app: open //p' "$log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "demo did not start"; exit 1; }
node "$here/demo.mjs" "$url" 3000 "$root/target/demo-page.png"
