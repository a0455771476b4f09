#!/usr/bin/env python3
"""Checks the JSON of `rxc compile FILE --estimate --json` (the cost model).

check_estimate.py FILE.json NAME [bf16]
    The object parses and has the keys the issue names (gb_per_step,
    gflop_per_step, tensor_core_flop_share, launches, bound_images_per_s)
    and a per-step array; the totals equal the sums of the rows (GB, GFLOP,
    launches, time, the tensor-core share of the GEMM/conv FLOPs, the bound
    = batch / time); rows are sorted by time; every GEMM is a matmul, every
    kernel is not. With bf16, some GEMMs run on tensor cores, and in fp32
    none does. Prints one PASS/FAIL line named NAME. No timing assertions:
    the figures are an estimate, checked only for consistency.
"""
import json
import math
import sys

import harness


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def problems(doc, bf16):
    keys = ["gb_per_step", "gflop_per_step", "tensor_core_flop_share", "launches", "bound_images_per_s", "steps"]
    missing = [k for k in keys if k not in doc]
    if missing:
        return [f"missing keys {missing}"]
    rows, out = doc["steps"], []
    if not rows:
        return ["no steps"]
    phases = {r["phase"] for r in rows}
    if phases != {"forward", "backward", "update"}:
        out.append(f"phases {sorted(phases)}, expected forward, backward and update")
    gb = sum(r["bytes_read"] + r["bytes_written"] for r in rows) / 1e9
    gflop = sum(r["flops"] for r in rows) / 1e9
    launches = sum(r["launches"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    mm = sum(r["flops"] for r in rows if r["matmul"])
    tc = sum(r["flops"] for r in rows if r["matmul"] and r["tensor_cores"])
    for key, want in [("gb_per_step", gb), ("gflop_per_step", gflop), ("launches", launches),
                      ("seconds_per_step", seconds), ("tensor_core_flop_share", tc / mm if mm else 0),
                      ("bound_images_per_s", doc["batch"] / seconds)]:
        if not close(doc[key], want):
            out.append(f"{key} {doc[key]} != {want} (the sum of the rows)")
    times = [r["seconds"] for r in rows]
    if times != sorted(times, reverse=True):
        out.append("rows are not sorted by time")
    for r in rows:
        if (r["kind"] != "kernel") != r["matmul"] or (r["kind"] == "kernel" and r["tensor_cores"]):
            out.append(f"row {r['name']}: kind {r['kind']}, matmul {r['matmul']}, tensor cores {r['tensor_cores']}")
            break
        if min(r["flops"], r["bytes_read"], r["bytes_written"]) < 0 or r["launches"] < 1 or r["seconds"] <= 0:
            out.append(f"row {r['name']}: a negative figure or no launch")
            break
    share = doc["tensor_core_flop_share"]
    if bf16 and not share > 0:
        out.append("bf16 but no GEMM on tensor cores")
    if not bf16 and share != 0:
        out.append(f"fp32 without TF32 but tensor-core share {share}")
    return out


def main():
    path, name = sys.argv[1], sys.argv[2]
    bf16 = len(sys.argv) > 3 and sys.argv[3] == "bf16"
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        harness.failed(name, f"no JSON: {e}")
        return 1
    bad = problems(doc, bf16)
    detail = (f"{doc.get('gb_per_step', 0):.3f} GB, {doc.get('gflop_per_step', 0):.2f} GFLOP, "
              f"{doc.get('launches')} launches, tensor-core share {doc.get('tensor_core_flop_share', 0):.3f}, "
              f"{len(doc.get('steps', []))} steps")
    return 0 if harness.check(name, not bad, "; ".join(bad[:3]), detail) else 1


if __name__ == "__main__":
    sys.exit(main())
