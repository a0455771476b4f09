"""check_profile.py — the structure of an RXC_PROFILE report (target/cuda/profile_cuda.c)
against `rxc compile --estimate --json` of the same program.

Usage: check_profile.py PROFILE.jsonl ESTIMATE.json STDERR.log NAME

Checks: every step of the estimate (forward, backward, update) appears exactly
once in the JSON lines and in the text table, with the estimate's name and
model time; rows are sorted by lost time (measured - model), with lost time
and efficiency (model / measured) consistent; the totals add up; the text
table lists the same rows in the same order and names the device. The
measured times themselves are not checked: on the fake GPU they are the CPU
emulator's, meaningless as GPU times. Prints one PASS/FAIL line.
"""
import json
import re
import sys


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


def problems(profile_path, estimate_path, log_path):
    lines = [json.loads(line) for line in open(profile_path) if line.strip()]
    head, entries, totals = lines[0], [x for x in lines if x["type"] == "entry"], lines[-1]
    if head["type"] != "profile" or totals["type"] != "totals":
        yield "the JSON lines do not start with a profile line and end with a totals line"
        return
    if head["graphs"]:
        yield "the profile says it ran with CUDA graphs"
    estimate = json.load(open(estimate_path))
    if estimate["gpu"] != head["gpu"]:
        yield "estimate for %s, profile for %s" % (estimate["gpu"], head["gpu"])
    want = {(s["phase"], s["index"]): s for s in estimate["steps"]}
    seen = {}
    for e in entries:
        key = (e["phase"], e["index"])
        seen[key] = seen.get(key, 0) + 1
        s = want.get(key)
        if s is None:
            yield "%s step %d is not in the estimate" % key
            continue
        if e["name"] != s["name"] or not close(e["model_s"], s["seconds"]):
            yield "%s step %d: %s %.9g s, the estimate's %s %.9g s" % (key + (e["name"], e["model_s"], s["name"], s["seconds"]))
        if not close(e["lost_s"], e["measured_s"] - e["model_s"]) or not close(e["efficiency"], e["model_s"] / e["measured_s"]):
            yield "%s step %d: lost time or efficiency inconsistent" % key
    for key in want:
        if seen.get(key, 0) != 1:
            yield "%s step %d appears %d times" % (key + (seen.get(key, 0),))
    lost = [e["lost_s"] for e in entries]
    if any(a < b for a, b in zip(lost, lost[1:])):
        yield "rows not sorted by lost time"
    if totals["entries"] != len(entries) or not close(totals["measured_s"], sum(e["measured_s"] for e in entries), 1e-6) \
            or not close(totals["model_s"], sum(e["model_s"] for e in entries), 1e-6):
        yield "the totals do not add up: %s" % totals
    log = open(log_path).read()
    rows = re.findall(r"^(forward|backward|update) +(\d+)  ", log, re.M)
    if [(p, int(i)) for p, i in rows] != [(e["phase"], e["index"]) for e in entries]:
        yield "the text table has %d rows, not the JSON's %d in its order" % (len(rows), len(entries))
    m = re.search(r"^totals: (\d+) entries, measured ([0-9.]+) ms per step, model ([0-9.]+) ms", log, re.M)
    if not m or int(m.group(1)) != len(entries) or not close(float(m.group(3)) * 1e-3, totals["model_s"], 1e-3):
        yield "the text totals line is missing or disagrees"
    if head["device"] not in log or "direct launches (no CUDA graphs)" not in log:
        yield "the table does not name the device and the direct launches"


def main():
    profile_path, estimate_path, log_path, name = sys.argv[1:5]
    try:
        found = list(problems(profile_path, estimate_path, log_path))
    except (OSError, ValueError, KeyError, IndexError) as e:
        found = ["unreadable report: %r" % e]
    if found:
        print("FAIL %s: %s" % (name, "; ".join(found[:4])))
        return 1
    head = json.loads(open(profile_path).readline())
    n = sum(1 for line in open(profile_path) if '"type":"entry"' in line)
    measured = ("the fake GPU's CPU emulation, so the times are meaningless" if "fake GPU" in head["device"]
                else "times not checked")
    print("PASS %s (%d entries once each, model times = rxc compile --estimate --gpu %s, sorted by lost time, totals add up;"
          " measured on %s: %s)" % (name, n, head["gpu"], head["device"], measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
