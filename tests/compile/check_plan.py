#!/usr/bin/env python3
"""Independent checks of the training compiler's memory plan and fusion.

check_plan.py plan FILE.json   -- JSON of `rxc summary --memory --json`:
    re-derives every arena buffer's lifetime from the step schedule (first to
    last step that touches it; the external output gradient from the start,
    logits/losses/input gradient to the end) and checks that no two buffers
    live at the same step share bytes, except an in-place pair: one dies at
    the single-store kernel step where the other is born, same offset and
    size. Also: every buffer lies inside the planned peak, and peak <= naive.
check_plan.py fusion FILE.json -- JSON of `rxc summary --kernels --json` of a
    bottleneck network: the expected fused groups exist.
Prints one PASS/FAIL line named by argv[3].
"""
import json
import sys

import harness



def plan(doc, name):
    m = doc["memory"]
    bufs, sched = m["buffers"], m["schedule"]
    S = len(sched)
    first, last = {}, {}
    for s, st in enumerate(sched):
        for b in st["bufs"]:
            if bufs[b]["space"] != 0:
                continue
            first.setdefault(b, s)
            last[b] = s
    if m["dy_buf"] >= 0:
        first[m["dy_buf"]] = 0
        last.setdefault(m["dy_buf"], 0)
    for b in (m["logits_buf"], m["loss_buf"], m["input_grad_buf"]):
        if b >= 0:
            first.setdefault(b, 0)
            last[b] = S - 1
    live = sorted(first)
    peak = m["peak_bytes"]
    for b in live:
        if bufs[b]["offset"] < 0 or bufs[b]["offset"] + bufs[b]["bytes"] > peak:
            return f"{bufs[b]['name']} lies outside the arena"
    # sweep: buffers sorted by first step; compare against those still live
    order = sorted(live, key=lambda b: first[b])
    active = []
    n_pairs = 0
    for b in order:
        active = [a for a in active if last[a] >= first[b]]
        for a in active:
            x, y = bufs[a], bufs[b]
            if x["offset"] < y["offset"] + y["bytes"] and y["offset"] < x["offset"] + x["bytes"]:
                s = first[b]
                inplace = (last[a] == s and x["offset"] == y["offset"] and x["bytes"] == y["bytes"]
                           and sched[s]["stores"] == 1)
                if not inplace:
                    return f"{x['name']} (steps {first[a]}..{last[a]}) and {y['name']} (steps {first[b]}..{last[b]}) overlap"
                n_pairs += 1
        active.append(b)
    if peak > m["naive_bytes"]:
        return f"peak {peak} > naive {m['naive_bytes']}"
    if not m["verified"]:
        return "rxc's own verification failed: " + m.get("verify_error", "")
    print(f"# {name}: {len(live)} arena buffers, {S} steps, {n_pairs} in-place pairs, peak {peak / 2**20:.1f} MiB, "
          f"naive {m['naive_bytes'] / 2**20:.1f} MiB", flush=True)
    return None


def bf16(doc, name):
    """PREC_BF16: every GEMM multiplies two bf16 operands (cuBLAS needs A and B
    of one type; C may be f32: parameter gradients, logits), activations are
    bf16, master weights, gradients, optimizer state, BN statistics (running
    and batch, and the backward sums), logits and the loss stay f32, and the
    plan still verifies."""
    m = doc["memory"]
    bufs = m["buffers"]
    n_gemm = 0
    for st in m["schedule"]:
        if st["kind"] != "gemm":
            continue
        n_gemm += 1
        a, b, c = (bufs[i] for i in st["bufs"])
        if a["dtype"] != "bf16" or b["dtype"] != "bf16" or c["dtype"] not in ("bf16", "f32"):
            return f"GEMM on {a['name']} ({a['dtype']}) x {b['name']} ({b['dtype']}) -> {c['name']} ({c['dtype']})"
    if n_gemm == 0:
        return "no GEMM steps"
    if bufs[m["logits_buf"]]["dtype"] != "f32":
        return "logits are not f32"
    if bufs[m["loss_buf"]]["dtype"] != "f32":
        return "the per-sample losses are not f32"
    for x in bufs:
        # spaces 1-4: parameters, gradients, optimizer state, BN running statistics
        fixed = 1 <= x["space"] <= 4
        if (fixed or x["name"].endswith((":stats", ":grad_sums"))) and x["dtype"] != "f32":
            return f"{x['name']} is {x['dtype']}, not f32"
    return plan(doc, name)


def fusion(doc, name):
    k = doc["kernels"]
    fwd = [x.get("fuses", "") for x in k["forward"] if x["kind"] == "kernel"]
    bwd = [x.get("fuses", "") for x in k["backward"] if x["kind"] == "kernel"]
    upd = k["update"]
    want_fwd = ["batchnorm statistics", "batchnorm+relu", "batchnorm+batchnorm+add(residual)+relu",
                "softmax + cross-entropy (label smoothing) + its gradient"]
    for w in want_fwd:
        if not any(f.startswith(w) for f in fwd):
            return f"no forward kernel fuses '{w}'"
    for f in fwd:
        if f in ("relu", "add", "add(residual)", "batchnorm"):
            return f"an unfused forward kernel: '{f}'"
    want_bwd = ["batchnorm backward sums",
                # BN backward + ReLU mask + the residual gradient split, one kernel for both branches
                "backward of batchnorm+batchnorm+add(residual split)+relu -> 2 input gradients",
                "backward of batchnorm+relu -> 1 input gradient"]
    for w in want_bwd:
        if not any(f.startswith(w) for f in bwd):
            return f"no backward kernel fuses '{w}' (have: {sorted(set(bwd))[:8]})"
    if len(upd) != 1 or upd[0]["kind"] != "kernel" or "all parameters" not in upd[0]["fuses"]:
        return "the update is not one kernel over all parameters"
    return None


def corrupt(doc):
    """Moves the largest buffer of the forward/backward boundary onto another
    buffer live at the same time: the checker must notice."""
    m = doc["memory"]
    bufs, sched = m["buffers"], m["schedule"]
    F = sum(1 for st in sched if st["phase"] == "forward")
    at_f = [b for b in sched[F]["bufs"] if bufs[b]["space"] == 0]
    at_f_prev = [b for b in sched[F - 1]["bufs"] if bufs[b]["space"] == 0]
    a, b = at_f[0], next(x for x in at_f if x != at_f[0]) if len(at_f) > 1 else at_f_prev[0]
    bufs[b]["offset"] = bufs[a]["offset"]
    return doc


def main():
    mode, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        with open(path) as f:
            doc = json.load(f)
        if mode == "corrupt":
            msg = plan(corrupt(doc), name)
            msg = "a corrupted plan passed the check" if msg is None else None
            harness.check(name, msg is None, msg)
            return
        msg = plan(doc, name) if mode == "plan" else bf16(doc, name) if mode == "bf16" else fusion(doc, name)
    except Exception as ex:
        msg = f"exception {type(ex).__name__}: {ex}"
    harness.check(name, msg is None, msg)



if __name__ == "__main__":
    main()
