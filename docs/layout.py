#!/usr/bin/env python3
"""The README's Layout section, generated from the tree.

`python3 docs/layout.py` prints it; `--write` puts it into README.md between the layout
markers; `--check` fails when README.md's copy differs from the tree (run by CI).
"""
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {"target", "node_modules", "__pycache__", "fixtures", "regressions"}
# Files that are not modules: entry points and lockfiles.
QUIET = {"lib.rs", "main.rs", "mod.rs", "Cargo.toml", "Cargo.lock", "package-lock.json",
         "LICENSE-MIT", "LICENSE-APACHE"}
WIDTH = 96
START, END = "<!-- layout:start -->", "<!-- layout:end -->"


def names(folder):
    """A folder's entries as module-like names: `x` for x.rs / x.py / x.sh, `x/` for folders."""
    entries = sorted(os.listdir(folder))
    folders = {e for e in entries if os.path.isdir(os.path.join(folder, e))}
    out = []
    for entry in entries:
        path = os.path.join(folder, entry)
        if entry.startswith(".") or entry in SKIP or entry in QUIET:
            continue
        if entry in folders:
            inner = names(path)
            if len(inner) == 1 and not inner[0].endswith(")"):
                out.append(f"{entry}/{inner[0]}")  # a chain of single folders, as one path
            else:
                out.append(f"{entry}/ ({', '.join(inner)})" if inner else f"{entry}/")
            continue
        stem = os.path.splitext(entry)[0]
        if entry.endswith(".rs") and stem in folders:
            continue  # x.rs beside x/: the module and its children, listed once
        out.append(stem if entry.endswith((".rs", ".py", ".sh")) else entry)
    return out


def describe(top):
    folder = os.path.join(ROOT, top)
    parts = []
    if os.path.exists(os.path.join(folder, "Cargo.toml")):
        for sub in ["src", "tests", "examples", "fuzz_targets"]:
            if os.path.isdir(os.path.join(folder, sub)):
                parts.append(f"{sub}: {', '.join(names(os.path.join(folder, sub)))}")
        rest = [n for n in names(folder) if not n.split("/")[0] in ("src", "tests", "examples", "fuzz_targets")]
        if rest:
            parts.append(", ".join(rest))
    else:
        parts.append(", ".join(names(folder)))
    return "; ".join(parts)


def layout():
    tops = [d for d in sorted(os.listdir(ROOT))
            if os.path.isdir(os.path.join(ROOT, d)) and not d.startswith(".") and d not in SKIP]
    lines = ["```text"]
    for top in tops + [".ci"]:
        text = textwrap.wrap(describe(top), WIDTH - 19, break_on_hyphens=False) or [""]
        lines.append(f"{top + '/':<19}{text[0]}".rstrip())
        lines += [" " * 19 + t for t in text[1:]]
    lines.append("```")
    return "\n".join(lines)


def main():
    readme = os.path.join(ROOT, "README.md")
    text = open(readme).read()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    wanted = f"{head}{START}\n{layout()}\n{END}{tail}"
    if "--write" in sys.argv:
        open(readme, "w").write(wanted)
    elif "--check" in sys.argv:
        if wanted != text:
            sys.exit("README.md's Layout differs from the tree: run python3 docs/layout.py --write")
    else:
        print(layout())


if __name__ == "__main__":
    main()
