"""check_layout.py — the layout rules docs/developers.md and docs/architecture.md state,
against the source tree:
  source_sizes_within_limits   no file in compiler/, runtime/ or target/ over 900 lines, and
                               no C function in compiler/, runtime/, target/ or cli/ over 120
  compiler_includes_only_compiler  compiler/ includes no header of runtime/, target/ or cli/
Functions are found by their opening line (a definition line ending in '{', or a lone '{'
under one) and the first '}' in column 0 after it, which is how this tree is formatted.
Usage: check_layout.py REPO_ROOT"""
import glob
import os
import re
import sys

import harness

MAX_FILE_LINES, MAX_FUNCTION_LINES = 900, 120


def long_functions(path, lines):
    found, start, name = [], None, ""
    for i, line in enumerate(lines):
        if start is None and (line.startswith("{") or re.match(r"^[A-Za-z].*\)\s*\{\s*$", line)):
            start, name = i, (lines[i - 1] if line.startswith("{") else line).strip()[:60]
        elif start is not None and line.startswith("}"):
            if i - start + 1 > MAX_FUNCTION_LINES:
                found.append(f"{path}:{start + 1} {name} ({i - start + 1} lines)")
            start = None
    return found


def main(root):
    too_long = []
    for folder in ("compiler", "runtime", "target", "cli"):
        for path in sorted(glob.glob(os.path.join(root, folder, "**", "*.[ch]"), recursive=True)):
            lines = open(path, errors="replace").read().split("\n")
            rel = os.path.relpath(path, root)
            if folder != "cli" and len(lines) > MAX_FILE_LINES:
                too_long.append(f"{rel} ({len(lines)} lines)")
            too_long += long_functions(rel, lines)
    harness.check("source_sizes_within_limits", not too_long, "; ".join(too_long))

    outside = []
    own = {os.path.basename(p) for p in glob.glob(os.path.join(root, "compiler", "*.h"))}
    for path in sorted(glob.glob(os.path.join(root, "compiler", "*.[ch]"))):
        for n, line in enumerate(open(path, errors="replace"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m and os.path.basename(m.group(1)) not in own:
                outside.append(f"{os.path.relpath(path, root)}:{n} includes \"{m.group(1)}\"")
    harness.check("compiler_includes_only_compiler", not outside, "; ".join(outside))


if __name__ == "__main__":
    main(sys.argv[1])
