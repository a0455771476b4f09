"""nets.py — elaboration semantics through `rxc check` / `rxc summary`:
each tests/graph/nets/*.net says either `# params: NAMES` (it must
elaborate, and its trainable parameter names must be exactly NAMES, in
order) or `# expect: LINE:COL: MESSAGE` (rxc check must exit 2 and the first
diagnostic must be exactly FILE:LINE:COL: error: MESSAGE)."""
import glob, json, os, subprocess

import harness

RXC = os.environ.get("RXC", "./rxc")
for path in sorted(glob.glob("tests/graph/nets/*.net")):
    name = "net_" + os.path.basename(path)[:-4]
    head = open(path).readline().strip()
    if head.startswith("# params:"):
        want = head[len("# params:"):].split()
        r = subprocess.run([RXC, "summary", path, "--json"], capture_output=True, text=True)
        if r.returncode != 0:
            harness.failed(name, f"exit {r.returncode}: {r.stderr.strip()[:200]}")
            continue
        got = [p["name"] for p in json.loads(r.stdout)["parameters"] if p["trainable"]]
        harness.check(name, got == want, f"got {got}")
    elif head.startswith("# expect:"):
        want = f"{path}:{head[len('# expect:'):].strip()}".replace(": ", ": error: ", 1)
        r = subprocess.run([RXC, "check", path], capture_output=True, text=True)
        first = r.stderr.splitlines()[0] if r.stderr else ""
        ok = r.returncode == 2 and first == want
        harness.check(name, ok, f"exit {r.returncode}, first line '{first}', expected '{want}'")
    else:
        harness.failed(name, "no '# params:' or '# expect:' header")

