#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 30), after
# replaying the inputs in fuzz/regressions/TARGET/. Installs cargo-fuzz from crates.io if it
# is missing. Builds on stable Rust without a sanitizer (our code has no unsafe; libFuzzer's
# coverage instrumentation needs none). A crash fails the run and leaves the input under
# fuzz/artifacts/TARGET/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${FUZZ_SECONDS:-30}"
cargo fuzz --version >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz
# cargo fuzz builds the whole dependency graph (the AWS SDK included) again, instrumented, in
# its own target folder. At opt-level 1 without debug info that takes half the time of the
# release profile, and a bounded run finds as much: coverage, not speed, guides libFuzzer.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-1}"
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-false}"
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
