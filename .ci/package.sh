#!/usr/bin/env bash
# The library crates as crates.io takes them: the metadata it shows (description, licence,
# repository, readme, keywords, categories, rust-version), no path-only dependency, then
# `cargo package` and `cargo publish --dry-run` of every one, in dependency order.
#
# `.ci/package.sh --verify` also builds each packaged crate on its own, against the newest
# dependency versions its requirements allow (a cold build of the AWS SDK: ~10 minutes here),
# as a release would; CI verifies the codec crate, whose graph is small, and packages the rest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

crates=(kinesis-agg kinesis-common kinesis-testkit kinesis-producer kinesis-consumer kinesis-sink)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done

cargo metadata --no-deps --format-version 1 | python3 .ci/package_metadata.py "${crates[@]}"
# The check bites: the same metadata with the placeholder repository the workspace once had.
if cargo metadata --no-deps --format-version 1 \
  | sed 's#"repository":"[^"]*"#"repository":"https://example.invalid/kinesis-rs"#g' \
  | python3 .ci/package_metadata.py "${crates[@]}" >/dev/null 2>&1; then
  echo "the metadata check let a placeholder repository through" >&2
  exit 1
fi

# The compiler CI builds with must be at least the rust-version the crates declare.
declared=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
actual=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$declared" "$actual" | sort -V | head -1)" != "$declared" ]; then
  echo "rustc $actual is older than the declared rust-version $declared" >&2
  exit 1
fi

if [ "${1:-}" = "--verify" ]; then
  cargo package "${args[@]}"
else
  cargo package -p kinesis-agg
  cargo package --no-verify "${args[@]}"
fi
cargo publish --dry-run --no-verify "${args[@]}"
