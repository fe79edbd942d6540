#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 30), after
# replaying the inputs in fuzz/regressions/TARGET/. Installs cargo-fuzz from crates.io if it
# is missing. Builds on stable Rust without a sanitizer (our code has no unsafe; libFuzzer's
# coverage instrumentation needs none). A crash fails the run and leaves the input under
# fuzz/artifacts/TARGET/.
#   fuzz/run.sh --build-only   installs cargo-fuzz and builds the targets, nothing more (CI
#                              starts this early, in the background, at the lowest priority)
# The instrumented build is a second copy of the whole dependency graph (the AWS SDK included),
# so it has its own target folder and never contends with the workspace's build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${FUZZ_SECONDS:-30}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/target/fuzz-build}"
cargo fuzz --version >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz
if [ "${1:-}" = "--build-only" ]; then
  exec cargo fuzz build --sanitizer none
fi
for target in deaggregate lease_item; do
  corpus="$root/target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  regressions=("$root/fuzz/regressions/$target"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "replaying ${#regressions[@]} regression inputs for $target"
    cargo fuzz run --sanitizer none "$target" "${regressions[@]}"
  fi
  echo "fuzzing $target for $seconds s"
  log="$root/target/fuzz-$target.log"
  if ! cargo fuzz run --sanitizer none "$target" "$corpus" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed; any crashing input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log"
done
