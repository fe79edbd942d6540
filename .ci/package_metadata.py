#!/usr/bin/env python3
"""Checks the metadata crates.io shows for each crate named on the command line.

Reads `cargo metadata --no-deps --format-version 1` on stdin; exits non-zero with every
problem listed: a missing description, licence, repository, readme or rust-version, a
placeholder repository, keywords or categories missing, a crate marked `publish = false`,
or a normal dependency that is path-only or not published itself.
"""
import json, sys
wanted = sys.argv[1:]
meta = json.load(sys.stdin)
packages = {p["name"]: p for p in meta["packages"]}
problems = []
for name in wanted:
    p = packages[name]
    for field in ("description", "license", "repository", "readme", "rust_version"):
        if not p.get(field):
            problems.append(f"{name}: no {field}")
    repo = p.get("repository") or ""
    if any(w in repo for w in ("example.", "invalid", "placeholder", "TODO", "localhost")):
        problems.append(f"{name}: repository {repo!r} is a placeholder (set it in the root Cargo.toml)")
    if not 1 <= len(p.get("keywords", [])) <= 5:
        problems.append(f"{name}: 1 to 5 keywords, has {len(p.get('keywords', []))}")
    if not p.get("categories"):
        problems.append(f"{name}: no categories")
    if p.get("publish") == []:
        problems.append(f"{name}: publish = false")
    for d in p["dependencies"]:
        if d.get("path") and d["req"] == "*" and d["kind"] != "dev":
            problems.append(f"{name}: dependency {d['name']} has a path and no version")
        if d.get("path") and d["name"] not in wanted and d["kind"] != "dev":
            problems.append(f"{name}: depends on {d['name']}, which is not published")
if problems:
    sys.exit("\n".join(problems))
print(f"metadata of {len(wanted)} crates: ok")
