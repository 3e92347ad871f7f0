#!/usr/bin/env python3
"""Merges a `sso-bench` output into bench/results.md: each measured section (`## (x) …`, up to
the next `## ` heading) replaces the same section of the file, the others stay as they were, and
every section measured now ends with the line saying when, at which commit and with which rustc.
A subset run (BENCH_ONLY) thus keeps the figures of the sections it did not measure.

  bench-merge.py RESULTS NEW "STAMP"
"""

import re
import sys

ORDER = "dbeagcf"
HEADING = re.compile(r"^## \(([a-z])\)")


def split(text):
    """The text before the first section, and the sections by letter (in their order)."""
    head, sections, letter = [], {}, None
    for line in text.splitlines(keepends=True):
        m = HEADING.match(line)
        if m:
            letter = m.group(1)
            sections[letter] = []
        elif line.startswith("## ") or line.rstrip() == "---":
            letter = "~" + line.strip()  # hand-written or old trailing parts: kept after the sections
            sections.setdefault(letter, [])
        (sections[letter] if letter else head).append(line)
    return "".join(head), {k: "".join(v) for k, v in sections.items()}


def main():
    results, new, stamp = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        old_text = open(results, encoding="utf-8").read()
    except FileNotFoundError:
        old_text = ""
    new_head, new_sections = split(open(new, encoding="utf-8").read())
    _, old_sections = split(old_text)
    merged = dict(old_sections)
    for k, v in new_sections.items():
        if not k.startswith("~"):
            merged[k] = v.rstrip("\n") + f"\n\n_Measured {stamp}._\n\n"
    out = [new_head]
    out += [merged[k] for k in ORDER if k in merged]
    out += [v for k, v in merged.items() if k.startswith("~")]
    with open(results, "w", encoding="utf-8") as f:
        f.write("".join(out))


if __name__ == "__main__":
    main()
