#!/usr/bin/env python3
"""Checks that every file a packaged crate's sources pull in is inside its package.

`cargo package --no-verify` does not build the package, so a README, fixture or module that
`include_str!`, `include_bytes!` or `#[path]` reaches outside the package would only fail on
crates.io. For each `.crate` named on the command line this resolves those paths against the
packaged files and exits non-zero listing any that are missing.
"""
import os
import re
import sys
import tarfile

PATTERN = re.compile(r'(?:include_str!|include_bytes!)\(\s*"([^"]+)"\s*\)|#\[path\s*=\s*"([^"]+)"\]')


def check(crate_file):
    problems = []
    with tarfile.open(crate_file) as tar:
        names = {m.name for m in tar.getmembers()}
        root = os.path.commonpath(list(names)).split("/")[0]
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            text = tar.extractfile(name).read().decode("utf-8", "replace")
            for m in PATTERN.finditer(text):
                target = m.group(1) or m.group(2)
                if m.group(2) and not name.endswith(("lib.rs", "main.rs", "mod.rs")):
                    # `#[path]` on a module of `a/b.rs` resolves from `a/b/`.
                    base = os.path.join(os.path.dirname(name), os.path.splitext(os.path.basename(name))[0])
                    candidates = [os.path.normpath(os.path.join(base, target)),
                                  os.path.normpath(os.path.join(os.path.dirname(name), target))]
                else:
                    candidates = [os.path.normpath(os.path.join(os.path.dirname(name), target))]
                if not any(c in names for c in candidates):
                    problems.append(f"{root}: {name} pulls in {target}, which is not in the package")
    return problems


def main():
    problems = [p for crate in sys.argv[1:] for p in check(crate)]
    if problems:
        sys.exit("\n".join(problems))
    print(f"files pulled in by {len(sys.argv) - 1} packages: all inside them")


if __name__ == "__main__":
    main()
