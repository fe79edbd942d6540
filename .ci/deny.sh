#!/usr/bin/env bash
# The dependency policy in deny.toml: licences, banned crates and sources, checked offline
# (the advisory database, which needs the network, is not fetched). Installs cargo-deny from crates.io if this
# machine lacks the version below (a few minutes of compiling, once).
#
# `.ci/deny.sh --install-only` installs and stops: CI runs it in the background, beside the
# other steps, since the compile is minutes of CPU that would otherwise hold up the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $version"; then
  # Built as a tool, not linted as the workspace is, and unoptimised: without the fat
  # link-time optimisation into one codegen unit its release profile asks for, and at
  # opt-level 0 without debug info. A check of one lock file does not need the speed: 2.5 s
  # against 1.7 s, for 131 s of CPU to install instead of 342 (2026-12-07, 2 cores).
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install --locked --quiet "cargo-deny@$version"
fi
[ "${1:-}" != "--install-only" ] || exit 0
# The sources of every platform's dependencies (cargo metadata wants them all), from crates.io;
# after this the check itself runs offline.
cargo fetch --locked --quiet
cargo deny --offline check --hide-inclusion-graph licenses bans sources
