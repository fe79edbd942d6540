# Sourced by the interop and benchmark scripts. They use debug binaries and test executables
# built with `cargo build --workspace --all-targets`, exactly as `.ci/run` builds them: cargo
# resolves dependency features per selection, so a `cargo build -p X` after it would rebuild
# much of the dependency graph (the emulators included) with other features, for minutes.
WORKSPACE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$WORKSPACE_ROOT/target/debug"

# Builds every target of the workspace (nothing, when CI or `cargo test --workspace` already has).
build_workspace() {
  (cd "$WORKSPACE_ROOT" && cargo build --quiet --workspace --all-targets)
}

# Prints "PACKAGE_DIR EXECUTABLE" for each integration-test target named PACKAGE:TEST, or
# PACKAGE:* for all of a package's, building what is missing.
test_executables() {
  (cd "$WORKSPACE_ROOT" && cargo test --quiet --workspace --no-run --message-format=json) \
    | python3 -c '
import json, os, sys
wanted = [w.split(":", 1) for w in sys.argv[1:]]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if t["kind"] != ["test"]:
        continue
    package = m["package_id"]
    # "path+file:///…/DIR#VERSION" when DIR is the name, else "path+file:///…/DIR#NAME@VERSION".
    url, _, fragment = package.partition("#")
    name = fragment.split("@")[0] if "@" in fragment else url.rstrip("/").rsplit("/", 1)[-1]
    if any(p == name and test in ("*", t["name"]) for p, test in wanted):
        print(os.path.dirname(m["manifest_path"]), m["executable"])
' "$@"
}
