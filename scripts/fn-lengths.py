#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 120 lines) in every crate of the workspace
(`crates/*/src`, the end-to-end harness included), and exits 1 if there is one.

    scripts/fn-lengths.py            # check: only the functions over the limit
    scripts/fn-lengths.py --top 20   # the 20 longest, whatever their length
    scripts/fn-lengths.py crates/x   # other roots

A function's length is the lines from its `fn` line to its closing brace. The scan skips
strings, raw strings, char literals and comments, so braces inside them do not count. The one
exception: the lab's emulator route tables (`fn route` under `crates/lab/src/emulator/`, one long
`match` on method and path each, read as a table) are not held to the limit.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def default_roots():
    """Every crate's sources, and the end-to-end tests' harness (the e2e crate's library)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "crates").glob("*/src")) + ["tests/harness.rs"]


def exempt(path, name):
    """The emulators' route tables (see the module doc)."""
    return name == "route" and "crates/lab/src/emulator/" in path.as_posix()


FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def code_only(text):
    """The text with strings, chars and comments blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 260])) and (i == 0 or not text[i - 1].isalnum()):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])):
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, length) of every function with a body in one file."""
    code = code_only(path.read_text())
    found = []
    for m in FN.finditer(code):
        # The body starts at the first `{` after the signature; a `;` first means no body.
        j = m.end()
        while j < len(code) and code[j] not in "{;":
            j += 1
        if j >= len(code) or code[j] == ";":
            continue
        depth, k = 0, j
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, k) + 1
        found.append((m.group(1), first, last - first + 1))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*")
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--top", type=int, help="print the N longest and exit 0")
    args = ap.parse_args()
    rows = []
    for root in args.roots or default_roots():
        base = ROOT / root
        files = [base] if base.is_file() else sorted(base.rglob("*.rs"))
        for f in files:
            for name, line, length in functions(f):
                if exempt(f.relative_to(ROOT), name):
                    continue
                rows.append((length, f"{f.relative_to(ROOT)}:{line}", name))
    rows.sort(reverse=True)
    if args.top:
        for length, where, name in rows[: args.top]:
            print(f"{length:5} {where} {name}")
        return 0
    over = [r for r in rows if r[0] > args.limit]
    for length, where, name in over:
        print(f"{length:5} {where} {name} (over {args.limit})")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
