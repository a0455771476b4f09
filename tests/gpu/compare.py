#!/usr/bin/env python3
"""GPU-versus-CPU comparisons for tests/gpu (run only where a GPU exists).

    compare.py batch OUT N C H W CLASSES SEED     writes a random batch (x, y)
    compare.py step A.safetensors B.safetensors NAME TOL
        every tensor of `rxc step` outputs A (cpu) and B (cuda) agrees:
        max|a-b| / max(1, max|b|) <= TOL per tensor
    compare.py grads A B NAME RTOL [MIN_COSINE]
        `rxc grad` outputs A (reference) and B: every tensor but param.*
        (output, loss, grad.x, every grad.<param>) within RTOL of the
        reference tensor's own largest magnitude, max|a-b| / max|a| (no
        floor at 1: gradients are small), and, when given, the cosine of
        each pair at least MIN_COSINE
    compare.py perturb IN OUT REL SEED            IN's x times (1 + REL * N(0,1)), y as is
    compare.py conditioned A B P[,P2...] NAME TOL FACTOR
        as grads, for a problem that may be ill-conditioned: A is the
        reference, P (and P2...) the reference's runs on perturbed batches.
        Each tensor of B is within max(TOL, FACTOR * spread) of A's, spread =
        the largest error of the P runs against A (relu decisions near zero
        flip under a 1e-6 perturbation of the input and move deep gradients
        by tens of percent at batch 1 or at 2x2 feature maps: no
        implementation can agree closer; one perturbation can flip fewer of
        them than another, so several estimate the spread better)
    compare.py curve A B NAME ATOL RTOL
        the per-step losses of A and B agree step by step within ATOL + RTOL*|b|
Prints one PASS/FAIL line (tests/harness.py).
"""
import os
import sys

import numpy as np

import harness

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ops"))
from safetensors_io import read_st, write_st  # noqa: E402


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def tensor_err(a, b):
    """max|a-b| / max|a| (max|b| when a is all zero)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        return float("inf")
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    e = float(np.max(np.abs(x - y), initial=0.0))
    return e / scale if scale > 0 else e


def conditioned(a, b, ps, name, tol, factor):
    worst, where, held_to_tol, n = 0.0, "", 0, 0
    for k in sorted(b):
        if k.startswith("param."):
            continue
        if k not in a or any(k not in p for p in ps):
            harness.failed(name, f"{k} missing from the reference runs")
            return 1
        n += 1
        spread = max(tensor_err(a[k], p[k]) for p in ps)
        allowed = max(tol, factor * spread)
        held_to_tol += allowed == tol
        ratio = tensor_err(a[k], b[k]) / allowed
        if not np.isfinite(ratio) or ratio > worst:
            worst, where = (ratio if np.isfinite(ratio) else float("inf")), k
    ok = harness.measured(name, worst <= 1.0,
                          f"{n} tensors, {held_to_tol} held to {tol}, the others to {factor}x their spread under "
                          f"{len(ps)} perturbed inputs; worst error / allowed {worst:.3g} ({where})")
    return 0 if ok else 1


def main():
    mode = sys.argv[1]
    if mode == "batch":
        out, n, c, h, w, classes, seed = sys.argv[2], *map(int, sys.argv[3:9])
        rng = np.random.default_rng(seed)
        write_st(out, {"x": rng.standard_normal((n, c, h, w)).astype(np.float32),
                       "y": rng.integers(0, classes, n).astype(np.int64)})
        return 0
    if mode == "perturb":
        src, out, rel, seed = read_st(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
        rng = np.random.default_rng(seed)
        x = src["x"] * (1 + rel * rng.standard_normal(src["x"].shape))
        write_st(out, {"x": x.astype(np.float32), "y": src["y"]})
        return 0
    if mode == "conditioned":
        return conditioned(read_st(sys.argv[2]), read_st(sys.argv[3]), [read_st(p) for p in sys.argv[4].split(",")], sys.argv[5],
                           float(sys.argv[6]), float(sys.argv[7]))
    a, b, name = read_st(sys.argv[2]), read_st(sys.argv[3]), sys.argv[4]
    if mode == "step":
        tol = float(sys.argv[5])
        worst, where = 0.0, ""
        for k in sorted(b):
            if k not in a:
                harness.failed(name, f"{k} missing from the cpu output")
                return 1
            e = rel_err(a[k], b[k])
            if e > worst:
                worst, where = e, k
        ok = harness.measured(name, worst <= tol, f"max relative error {worst:.3g} ({where}), tolerance {tol}")
        return 0 if ok else 1
    if mode == "grads":
        tol = float(sys.argv[5])
        min_cos = float(sys.argv[6]) if len(sys.argv) > 6 else -1.0
        worst, where, low, low_at, n = 0.0, "", 1.0, "", 0
        for k in sorted(b):
            if k.startswith("param."):
                continue
            if k not in a:
                harness.failed(name, f"{k} missing from the reference")
                return 1
            x = np.asarray(a[k], dtype=np.float64).ravel()
            y = np.asarray(b[k], dtype=np.float64).ravel()
            if x.shape != y.shape:
                harness.failed(name, f"{k}: shapes {x.shape} and {y.shape}")
                return 1
            n += 1
            scale = float(np.max(np.abs(x))) if x.size else 0.0
            e = float(np.max(np.abs(x - y))) / scale if scale > 0 else float(np.max(np.abs(y), initial=0.0))
            if not np.isfinite(e) or e > worst:
                worst, where = (e if np.isfinite(e) else float("inf")), k
            norms = float(np.linalg.norm(x) * np.linalg.norm(y))
            c = float(x @ y) / norms if norms > 0 else 1.0
            if c < low:
                low, low_at = c, k
        ok = worst <= tol and low >= min_cos
        detail = f"{n} tensors: max relative error {worst:.3g} ({where}), tolerance {tol}"
        if min_cos > -1.0:
            detail += f"; min cosine {low:.5f} ({low_at}), at least {min_cos}"
        harness.measured(name, ok, detail)
        return 0 if ok else 1
    if mode == "curve":
        atol, rtol = float(sys.argv[5]), float(sys.argv[6])
        la = np.asarray(a["loss"], dtype=np.float64).ravel()
        lb = np.asarray(b["loss"], dtype=np.float64).ravel()
        if la.shape != lb.shape:
            harness.failed(name, f"{la.size} cpu losses, {lb.size} cuda losses")
            return 1
        bad = np.abs(la - lb) > atol + rtol * np.abs(la)
        ok = not bad.any()
        first = int(np.argmax(bad)) if bad.any() else -1
        detail = (f"losses {la[0]:.4f} -> {la[-1]:.4f} (cpu), {lb[0]:.4f} -> {lb[-1]:.4f} (cuda), "
                  f"max diff {np.max(np.abs(la - lb)):.3g}")
        if not ok:
            detail += f"; first outside tolerance at step {first}: {la[first]:.5f} vs {lb[first]:.5f}"
        harness.measured(name, ok, detail)
        return 0 if ok else 1
    harness.failed("compare", f"unknown mode {mode}")

    return 1


if __name__ == "__main__":
    sys.exit(main())
