#!/usr/bin/env bash
# The library crates as crates.io takes them: the metadata it shows (description, licence,
# repository, readme, keywords, categories, rust-version), no path-only dependency, then
# `cargo package` and `cargo publish --dry-run` of every one, in dependency order.
#
# `.ci/package.sh --verify` also builds each packaged crate on its own, against the newest
# dependency versions its requirements allow (a cold build of the AWS SDK for each: about 40
# minutes here), as a release should; CI verifies the codec crate, whose graph is small, and
# for the rest checks that every file their sources pull in is in the package.
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

# What the sources pull in (README, fixtures, #[path] modules) must be inside each package,
# the failure an unverified package would show only on crates.io; and the check bites: the
# codec's package without its README is refused.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
packages=()
for c in "${crates[@]}"; do packages+=("target/package/$c-$version.crate"); done
python3 .ci/package_files.py "${packages[@]}"
bite=$(mktemp -d)
tar xzf "target/package/kinesis-agg-$version.crate" -C "$bite"
rm "$bite/kinesis-agg-$version/README.md"
tar czf "$bite/agg.crate" -C "$bite" "kinesis-agg-$version"
if python3 .ci/package_files.py "$bite/agg.crate" >/dev/null 2>&1; then
  echo "the package-files check let a missing README through" >&2
  exit 1
fi
rm -rf "$bite"

cargo publish --dry-run --no-verify "${args[@]}"
