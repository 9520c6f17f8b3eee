#!/usr/bin/env python3
"""Fails when production code grows past what a reader can hold: a function
over 120 lines, or a source file over 800 lines of non-test code (issue 12's
limits). Counts from a `fn` line to its closing brace at the same indent;
`#[cfg(test)]` modules at the end of a file are left out. Run by
scripts/test.sh; `--report` lists the largest even when within limits."""
import glob
import re
import sys

FN_MAX, FILE_MAX = 120, 800
FN = re.compile(r'^(\s*)(pub(\([a-z:]+\))? )?(const )?(async )?(unsafe )?(extern "C" )?fn (\w+)')


def production_lines(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            return lines[:i]
    return lines


def main():
    fns, files = [], []
    for path in sorted(glob.glob("crates/*/src/**/*.rs", recursive=True)):
        lines = production_lines(path)
        files.append((len(lines), path))
        for i, line in enumerate(lines):
            m = FN.match(line)
            if not m or line.rstrip().endswith(";"):
                continue
            indent, j = m.group(1), i
            while j < len(lines) and lines[j].rstrip() != indent + "}":
                j += 1
            fns.append((j - i + 1, f"{path}:{i + 1}", m.group(8)))
    fns.sort(reverse=True)
    files.sort(reverse=True)
    bad = [f for f in fns if f[0] > FN_MAX] + [f for f in files if f[0] > FILE_MAX]
    if "--report" in sys.argv:
        print("longest functions:", *(f"  {n} {p} {name}" for n, p, name in fns[:5]), sep="\n")
        print("largest files:", *(f"  {n} {p}" for n, p in files[:5]), sep="\n")
    for b in bad:
        print(f"sizes: {' '.join(map(str, b))} is over the limit "
              f"({FN_MAX} lines a function, {FILE_MAX} a file)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
