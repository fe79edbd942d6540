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
# cargo-fuzz itself, unoptimised: a tool that starts one build does not need the speed.
cargo fuzz --version >/dev/null 2>&1 ||
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install --quiet --locked cargo-fuzz
# The instrumented build (cargo-fuzz's release profile, debug assertions on) in 16 codegen
# units per crate instead of cargo-fuzz's one (the AWS SDK's crates, which the lease-item
# target pulls in, were each one serial LLVM job of minutes), with the opt-levels of
# fuzz/.cargo/config.toml: our crates and the few the targets spend their time in at 1, the
# rest of the graph at 0. Cargo reads that file because cargo-fuzz runs from fuzz/. `run`
# passes the same flags, so it reuses this build.
cd "$root/fuzz"
flags=(--fuzz-dir "$root/fuzz" --sanitizer none --codegen-units 16)
if [ "${1:-}" = "--build-only" ]; then
  exec cargo fuzz build "${flags[@]}"
fi
for target in deaggregate lease_item; do
  corpus="$root/target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  regressions=("$root/fuzz/regressions/$target"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "replaying ${#regressions[@]} regression inputs for $target"
    cargo fuzz run "${flags[@]}" "$target" "${regressions[@]}"
  fi
  echo "fuzzing $target for $seconds s"
  log="$root/target/fuzz-$target.log"
  if ! cargo fuzz run "${flags[@]}" "$target" "$corpus" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed; any crashing input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log"
done
