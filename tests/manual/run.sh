#!/usr/bin/env bash
# tests/manual — the man page (docs/rxc.1) and the user guide (docs/guide.md)
# against the binary, so that they cannot drift from it:
#   - rxc.1 renders without groff warnings;
#   - every command of `rxc --help` has an entry in rxc.1, and every option
#     that `rxc COMMAND --help` mentions appears in rxc.1;
#   - every rxc command line in the guide names a real command (or an
#     existing .net file), uses only options that command's --help lists, and
#     every models/ or examples/ file the guide names exists.
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
cases 4
RXC="${RXC:-$PWD/rxc}"
PYTHON="${PYTHON:-/usr/bin/python3}"
if [ ! -x "$RXC" ]; then
  skip_each "no $RXC (run make)" manpage_renders_cleanly manpage_has_every_command manpage_has_every_option guide_commands_exist
  exit 0
fi

if command -v groff > /dev/null; then
  warn=$(groff -man -Tutf8 -ww -z docs/rxc.1 2>&1)
  [ -z "$warn" ] && echo "PASS manpage_renders_cleanly" || echo "FAIL manpage_renders_cleanly: $warn"
else
  echo "SKIP manpage_renders_cleanly: groff is not installed"
fi

commands=$("$RXC" --help | awk '/^commands:/ {f = 1; next} f && /^  [a-z]/ {print $1}')
[ -n "$commands" ] || { echo "FAIL manpage_commands: rxc --help lists no commands"; exit 0; }
missing=""
for c in $commands; do grep -q "^\.BI \"rxc $c " docs/rxc.1 || missing="$missing $c"; done
[ -z "$missing" ] && echo "PASS manpage_has_every_command" || echo "FAIL manpage_has_every_command: no entry for:$missing"

missing=""
for c in $commands; do
  for o in $("$RXC" $c --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
    grep -qF -- "$(printf '%s' "$o" | sed 's/-/\\-/g')" docs/rxc.1 || missing="$missing $c:$o"
  done
done
[ -z "$missing" ] && echo "PASS manpage_has_every_option" || echo "FAIL manpage_has_every_option: not in rxc.1:$missing"

"$PYTHON" - "$RXC" $commands <<'PY'
import os, re, subprocess, sys
import harness

rxc, commands = sys.argv[1], sys.argv[2:]
text = open("docs/guide.md").read()
helps = {c: subprocess.run([rxc, c, "--help"], capture_output=True, text=True) for c in commands}
helps = {c: r.stdout + r.stderr for c, r in helps.items()}
problems = []
lines = [l.strip() for l in text.splitlines()]
cmd_lines = [l for l in lines if re.match(r"^(\$ )?(\./)?rxc ", l)]
for l in cmd_lines:
    words = re.sub(r"^(\$ )?(\./)?rxc ", "", l).split("#")[0].split()
    if not words:
        continue
    first = words[0]
    if first in commands:
        cmd = first
    elif first.endswith(".net"):
        cmd = "train"
        if not os.path.exists(first):
            problems.append(f"{l!r}: no file {first}")
    else:
        problems.append(f"{l!r}: '{first}' is not a command")
        continue
    for w in words:
        if w.startswith("--") and w not in ("--help",):
            opt = w.split("=")[0]
            if opt != "--set" and opt not in helps[cmd]:
                problems.append(f"{l!r}: {opt} is not in `rxc {cmd} --help`")
for path in sorted(set(re.findall(r"\b((?:models|examples)/[A-Za-z0-9_.]+\.net)\b", text))):
    if not os.path.exists(path):
        problems.append(f"the guide names {path}, which does not exist")
if len(cmd_lines) < 10:
    problems.append(f"only {len(cmd_lines)} rxc command lines found: the extraction is broken")
harness.check("guide_commands_exist", not problems, "; ".join(problems))
PY
exit 0
