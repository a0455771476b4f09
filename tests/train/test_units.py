"""test_units.py — the trainer's pure pieces against independent code and PyTorch.

Usage: $PYTHON tests/train/test_units.py UNIT_BINARY [ASAN_UNIT_BINARY]
Prints PASS/FAIL lines (tests/harness.py).
  safetensors  rxc's writer read by tests/train/st.py (independent), st.py's
               files read by rxc, and corrupt/truncated files rejected with a
               clear message and exit status 1 (never a crash; also under ASan).
  schedules    every schedule against torch.optim.lr_scheduler, relative
               tolerance 1e-9 (closed form vs PyTorch's recursive form).
  scalars      bias corrections, step count, grad scale, dropout seeds.
  init         distributions of each InitKind (moments within 3%), determinism.
  mix          mixup/cutmix draws against timm's Mixup._params_per_batch and
               rand_bbox run on numpy (binomial shares within 4 standard
               errors, two-sample KS under the 0.001 critical value).
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

from harness import check as report, skipped as skip

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

UNIT = sys.argv[1]
ASAN_UNIT = sys.argv[2] if len(sys.argv) > 2 and os.path.exists(sys.argv[2]) else None
TMP = tempfile.mkdtemp(prefix="rxc-train-unit-")



def run(*args, binary=None):
    p = subprocess.run([binary or UNIT, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


# ---- safetensors ------------------------------------------------------------

def test_write_read():
    path = os.path.join(TMP, "w.safetensors")
    rc, out, err = run("st-write", path)
    if rc != 0:
        return report("st_rxc_writes_python_reads", False, err)
    t, meta = st.read(path)
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
    checks = [
        (n % 8 == 0, f"header length {n} not 8-aligned"),
        (np.array_equal(t["a.weight"], np.array([[1.5, -2, 3.25], [0, 1e-3, -7]], np.float32)), "a.weight"),
        (t["bn.num_batches_tracked"].shape == () and int(t["bn.num_batches_tracked"]) == 12345678901, "i64 scalar"),
        (np.array_equal(t["half"], np.array([1, -2, 3.140625], np.float32)), "bf16"),
        (np.array_equal(t["bytes"], np.array([0, 1, 127, 128, 255], np.uint8)), "u8"),
        (t["empty"].shape == (0,), "empty tensor"),
        (meta == {"format": "unit", "quote": 'a "quoted"\nvalue'}, f"metadata {meta}"),
        (not [f for f in os.listdir(TMP) if ".tmp." in f], "temporary file left behind"),
    ]
    bad = [why for ok, why in checks if not ok]
    report("st_rxc_writes_python_reads", not bad, "; ".join(bad))


def test_python_writes_rxc_reads():
    path = os.path.join(TMP, "p.safetensors")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5, 7)).astype(np.float32)
    b = np.arange(11, dtype=np.int64)
    c = np.arange(1, 4, dtype=np.uint8)
    # A header whose length is not a multiple of 8 (no padding) makes tensors misaligned: rxc must cope.
    header = {"__metadata__": {"k": "v"},
              "b": {"dtype": "I64", "shape": [11], "data_offsets": [0, 88]},
              "a": {"dtype": "F32", "shape": [3, 5, 7], "data_offsets": [88, 88 + 420]},
              "c": {"dtype": "U8", "shape": [3], "data_offsets": [508, 511]}}
    h = json.dumps(header).encode()
    if len(h) % 8 == 0:
        h += b" "
    st.write_raw(path, h, b.tobytes() + a.tobytes() + c.tobytes())
    rc, out, err = run("st-read", path)
    lines = out.splitlines()
    sums = {ln.split()[1]: float(ln.split("sum=")[1]) for ln in lines if ln.startswith("tensor ")}
    ok = (rc == 0 and lines[0] == "ok 3" and abs(sums.get("a", 1e9) - float(a.astype(np.float64).sum())) < 1e-4
          and sums.get("b") == 55.0 and sums.get("c") == 6.0 and "meta k=v" in lines)
    report("st_python_writes_rxc_reads_unaligned", ok, out + err)
    # round trip through rxc's atomic writer keeps every byte of the tensors
    path2 = os.path.join(TMP, "p2.safetensors")
    rc, out, err = run("st-copy", path, path2)
    t2, meta2 = st.read(path2) if rc == 0 else ({}, {})
    ok = rc == 0 and np.array_equal(t2.get("a"), a) and np.array_equal(t2.get("b"), b) and meta2 == {"k": "v"}
    report("st_roundtrip_copy", ok, out + err)


def good_file_bytes():
    header = {"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "y": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]}}
    return json.dumps(header).encode(), bytes(24)


def bad_cases():
    h, d = good_file_bytes()
    full = struct.pack("<Q", len(h)) + h + d
    J = lambda obj: json.dumps(obj).encode()  # noqa: E731
    x = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    return [
        ("empty_file", b"", "shorter than"),
        ("short_file", b"\x01\x02\x03", "shorter than"),
        ("truncated_data", full[:-5], "truncated"),
        ("truncated_header", full[:8 + len(h) // 2], "exceeds"),
        ("huge_header_length", struct.pack("<Q", 1 << 62) + h + d, "exceeds"),
        ("corrupt_json", struct.pack("<Q", len(h)) + h.replace(b":", b";", 1) + d, "malformed"),
        ("nul_in_name", struct.pack("<Q", len(h)) + h[:3] + b"\x00" + h[4:] + d, "control character"),
        ("json_not_object", struct.pack("<Q", 4) + b"[1] " + d, "not an object"),
        ("trailing_garbage_in_header", struct.pack("<Q", len(h) + 2) + h + b"xx" + d, "unexpected bytes"),
        ("size_mismatch", struct.pack("<Q", len(J({"x": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}})))
         + J({"x": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}}) + bytes(16), "needs 24 bytes"),
        ("overlap", None, "overlaps"),
        ("gap", None, "gap"),
        ("bytes_after_last", struct.pack("<Q", len(J({"x": x}))) + J({"x": x}) + bytes(20), "after the last tensor"),
        ("unknown_dtype", None, "unsupported dtype"),
        ("negative_shape", None, "non-negative"),
        ("shape_overflow", None, "overflow"),
        ("duplicate_name", None, "twice"),
        ("offsets_reversed", None, "end before"),
        ("metadata_not_string", None, "not a string"),
        ("missing_key", None, "lacks"),
    ]


def make_special(name):
    x = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    if name == "overlap":
        hd = {"x": x, "y": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
        data = bytes(16)
    elif name == "gap":
        hd = {"x": x, "y": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]}}
        data = bytes(24)
    elif name == "unknown_dtype":
        hd = {"x": {"dtype": "F99", "shape": [2, 2], "data_offsets": [0, 16]}}
        data = bytes(16)
    elif name == "negative_shape":
        hd = {"x": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}
        data = bytes(16)
    elif name == "shape_overflow":
        hd = {"x": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 16]}}
        data = bytes(16)
    elif name == "offsets_reversed":
        hd = {"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}}
        data = bytes(16)
    elif name == "metadata_not_string":
        hd = {"__metadata__": {"epoch": 3}, "x": x}
        data = bytes(16)
    elif name == "missing_key":
        hd = {"x": {"dtype": "F32", "shape": [2, 2]}}
        data = bytes(16)
    elif name == "duplicate_name":
        h = b'{"x":' + json.dumps(x).encode() + b',"x":' + json.dumps(x).encode() + b"}"
        return struct.pack("<Q", len(h)) + h + bytes(16)
    h = json.dumps(hd).encode()
    return struct.pack("<Q", len(h)) + h + data


def test_bad_files():
    for name, blob, needle in bad_cases():
        if blob is None:
            blob = make_special(name)
        path = os.path.join(TMP, f"bad_{name}.safetensors")
        with open(path, "wb") as f:
            f.write(blob)
        for label, binary in (("", UNIT), ("_asan", ASAN_UNIT)):
            if binary is None:
                skip(f"st_bad_{name}{label}", "the unit driver does not build with -fsanitize=address,undefined")
                continue

            rc, out, err = run("st-read", path, binary=binary)
            ok = rc == 1 and out.startswith("error ") and needle in out and path in out and "Sanitizer" not in err
            report(f"st_bad_{name}{label}", ok, f"rc={rc} out={out.strip()!r} err={err.strip()[:300]!r}")
    rc, out, err = run("st-read", os.path.join(TMP, "does-not-exist.safetensors"))
    report("st_missing_file", rc == 1 and "cannot read" in out, out)


def test_atomic_write_failure_keeps_old():
    good = os.path.join(TMP, "good.safetensors")
    run("st-write", good)
    before = open(good, "rb").read()
    rc, out, err = run("st-copy", good, os.path.join(TMP, "no-such-dir", "x.safetensors"))
    ok = rc == 1 and "cannot create" in out and open(good, "rb").read() == before
    report("st_write_failure_is_clean", ok, out + err)


# ---- schedules ----------------------------------------------------------------

def torch_lrs(kind, lr, epochs, spe, per_step, eta_min=0.0, t_max=0, step_size=1, gamma=0.1, milestones=(),
              warmup=0, warmup_start=0.01, warmup_steps=0, warmup_kind="linear"):
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    units = epochs * spe if per_step else epochs
    wu = warmup * spe if per_step else warmup
    if warmup_steps:
        per_step, units, wu = True, epochs * spe, warmup_steps
    S = torch.optim.lr_scheduler
    if kind == "constant":
        main = S.LambdaLR(opt, lambda e: 1.0)
    elif kind == "cosine":
        main = S.CosineAnnealingLR(opt, T_max=t_max if t_max > 0 else units - wu, eta_min=eta_min)
    elif kind == "step":
        main = S.StepLR(opt, step_size=step_size, gamma=gamma)
    else:
        main = S.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)
    sched = main
    if wu > 0:
        if warmup_kind == "constant":
            warm = S.ConstantLR(opt, factor=warmup_start, total_iters=wu)
        else:
            warm = S.LinearLR(opt, start_factor=warmup_start, end_factor=1.0, total_iters=wu)
        sched = S.SequentialLR(opt, [warm, main], milestones=[wu])
    lrs = []
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in range(epochs):
            for s in range(spe):
                lrs.append(opt.param_groups[0]["lr"])
                if per_step:
                    opt.step()
                    sched.step()
            if not per_step:
                opt.step()
                sched.step()
    return lrs


def timm_lrs(kind, lr, epochs, spe, per_step, eta_min=0.0, warmup=0, warmup_lr_init=0.0, warmup_prefix=False,
             step_size=1, gamma=0.1):
    """timm's CosineLRScheduler / StepLRScheduler._get_lr (timm 0.9, cycle_limit 1, no noise, k_decay 1),
    t_initial = the run's length as timm's create_scheduler_v2 sets it, stepped per epoch or per update."""
    units = epochs * spe if per_step else epochs
    wt = warmup * spe if per_step else warmup
    out = []
    for e in range(epochs):
        for s in range(spe):
            t = e * spe + s if per_step else e
            if t < wt:
                out.append(warmup_lr_init + t * (lr - warmup_lr_init) / wt)
                continue
            if warmup_prefix:
                t -= wt
            if kind == "cosine":
                out.append(eta_min + 0.5 * (lr - eta_min) * (1 + math.cos(math.pi * t / units)))
            else:
                out.append(lr * gamma ** (t // step_size))
    return out


def test_schedules():
    cases = [
        ("cosine_per_epoch_seed", dict(kind="cosine", lr=1e-3, epochs=200, spe=2, per_step=False, eta_min=1e-5)),
        ("cosine_per_step", dict(kind="cosine", lr=0.1, epochs=5, spe=7, per_step=True, eta_min=0.001)),
        ("cosine_t_max", dict(kind="cosine", lr=0.1, epochs=12, spe=1, per_step=False, eta_min=0.0, t_max=5)),
        ("step", dict(kind="step", lr=0.1, epochs=20, spe=3, per_step=False, step_size=6, gamma=0.5)),
        ("step_per_step", dict(kind="step", lr=0.1, epochs=4, spe=5, per_step=True, step_size=3, gamma=0.7)),
        ("multistep", dict(kind="multistep", lr=0.2, epochs=30, spe=2, per_step=False, milestones=(5, 12, 20), gamma=0.1)),
        ("constant", dict(kind="constant", lr=0.05, epochs=4, spe=3, per_step=False)),
        ("warmup_cosine", dict(kind="cosine", lr=0.1, epochs=20, spe=3, per_step=False, eta_min=1e-4, warmup=3,
                               warmup_start=0.1)),
        ("warmup_cosine_per_step", dict(kind="cosine", lr=0.1, epochs=6, spe=4, per_step=True, eta_min=0.0, warmup=1,
                                        warmup_start=0.01)),
        ("warmup_multistep", dict(kind="multistep", lr=0.1, epochs=15, spe=1, per_step=False, milestones=(4, 8),
                                  gamma=0.5, warmup=2, warmup_start=0.25)),
        ("warmup_constant_schedule", dict(kind="constant", lr=0.1, epochs=5, spe=3, per_step=False, warmup=2,
                                          warmup_start=0.2)),
        ("warmup_step", dict(kind="step", lr=0.1, epochs=12, spe=2, per_step=False, step_size=3, gamma=0.5, warmup=2,
                             warmup_start=0.1)),
        ("warmup_steps_cosine", dict(kind="cosine", lr=0.1, epochs=4, spe=5, per_step=True, eta_min=1e-3,
                                     warmup_steps=7, warmup_start=0.05)),
        ("warmup_steps_constant", dict(kind="constant", lr=0.1, epochs=3, spe=4, per_step=False, warmup_steps=5,
                                       warmup_start=0.5)),
        ("warmup_constant_kind", dict(kind="cosine", lr=0.1, epochs=10, spe=2, per_step=False, eta_min=0.0, warmup=3,
                                      warmup_start=1 / 3, warmup_kind="constant")),
    ]
    # timm's warmup (warmup_lr_init, warmup_prefix) through its formula; timm is not installed here
    timm_cases = [
        ("timm_cosine_overlap", dict(kind="cosine", lr=0.1, epochs=20, spe=3, per_step=False, eta_min=1e-5, warmup=5,
                                     warmup_lr_init=1e-6, warmup_prefix=False)),
        ("timm_cosine_overlap_per_step", dict(kind="cosine", lr=0.05, epochs=4, spe=6, per_step=True, eta_min=0.0,
                                              warmup=1, warmup_lr_init=1e-4, warmup_prefix=False)),
        ("timm_step_lr_init_prefix", dict(kind="step", lr=0.1, epochs=12, spe=1, per_step=False, warmup=3,
                                          warmup_lr_init=0.002, warmup_prefix=True, step_size=4, gamma=0.5)),
    ]
    for name, c in cases + timm_cases:
        args = [f"sched={c['kind']}", f"lr={c['lr']}", f"epochs={c['epochs']}", f"spe={c['spe']}",
                f"per_step={int(c['per_step'])}", f"eta_min={c.get('eta_min', 0.0)}", f"t_max={c.get('t_max', 0)}",
                f"step_size={c.get('step_size', 1)}", f"gamma={c.get('gamma', 0.1)}",
                "milestones=" + ",".join(str(m) for m in c.get("milestones", ())),
                f"warmup={c.get('warmup', 0)}", f"warmup_start={c.get('warmup_start', 0.01)}",
                f"warmup_steps={c.get('warmup_steps', 0)}", f"warmup_kind={c.get('warmup_kind', 'linear')}"]
        if "warmup_lr_init" in c:
            args += [f"warmup_lr_init={c['warmup_lr_init']}", f"warmup_prefix={int(c['warmup_prefix'])}"]
        rc, out, err = run("lr", *args)
        ours = [float(v) for v in out.split()]
        ref = timm_lrs(**c) if "warmup_lr_init" in c else torch_lrs(**c)
        worst = max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, ref)), default=1.0)
        ok = rc == 0 and len(ours) == len(ref) and worst <= 1e-9
        report(f"schedule_{name}", ok, f"n={len(ours)}/{len(ref)} worst relative error {worst:.3g}"
               + (f" first mismatch {next(((i, a, b) for i, (a, b) in enumerate(zip(ours, ref)) if abs(a - b) > 1e-9 * abs(b)), None)}"
                  if len(ours) == len(ref) else ""))


def test_scalars():
    rc, out, err = run("scalars", "beta1=0.8", "beta2=0.95", "accum=2", "seed=7")
    rows = [[float(v) for v in ln.split()] for ln in out.splitlines()]
    # kir.h order: LR WD MOMENTUM BETA1 BETA2 EPS BC1 BC2 STEP RNG GRAD_SCALE FIRST_STEP
    ok = rc == 0 and len(rows) == 3
    why = out + err
    for t, r in enumerate(rows, start=1):
        ok = ok and math.isclose(r[6], 1 - 0.8 ** t, rel_tol=1e-12) and math.isclose(r[7], 1 - 0.95 ** t, rel_tol=1e-12)
        ok = ok and r[8] == t and r[10] == 1 / 16 and r[11] == (1 if t == 1 else 0) and r[0] == 0.5
        ok = ok and 0 <= r[9] < 2 ** 53 and r[9] == int(r[9])
    ok = ok and len({r[9] for r in rows}) == 3
    report("scalars_per_step", ok, why)


def test_init():
    rc, out, err = run("init")
    s = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in out.splitlines()}
    std_k = math.sqrt(2 / 1152)
    bound = 1 / math.sqrt(576)
    checks = [
        ("kaiming_std", abs(s["kaiming"][1] / std_k - 1) < 0.03 and abs(s["kaiming"][0]) < 0.03 * std_k),
        ("kaiming_deterministic", s["kaiming"] == s["kaiming_seed0_again"]),
        ("kaiming_seed_changes", s["kaiming"][4] != s["kaiming_seed1"][4]),
        ("default_uniform", s["default"][2] >= -bound and s["default"][3] <= bound
         and abs(s["default"][1] / (bound / math.sqrt(3)) - 1) < 0.03 and s["default"][3] > 0.99 * bound),
        ("ones_zeros", s["ones"][:4] == [1, 0, 1, 1] and s["zeros"][:4] == [0, 0, 0, 0]),
        ("bn_buffers", s["running_var"][:4] == [1, 0, 1, 1] and s["running_mean"][:4] == [0, 0, 0, 0]),
    ]
    for name, ok in checks:
        report(f"init_{name}", ok, out + err)


def ks(a, b):
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


def timm_draws(n, mixup, cutmix, prob, switch, h, w):
    """timm.data.Mixup._params_per_batch and cutmix_bbox_and_lam (correct_lam), on numpy's generator."""
    rs = np.random.RandomState(0)
    out = []
    for _ in range(n):
        lam, use_cutmix = 1.0, False
        if rs.rand() < prob:
            if mixup > 0 and cutmix > 0:
                use_cutmix = rs.rand() < switch
                lam = rs.beta(cutmix, cutmix) if use_cutmix else rs.beta(mixup, mixup)
            elif mixup > 0:
                lam = rs.beta(mixup, mixup)
            else:
                use_cutmix, lam = True, rs.beta(cutmix, cutmix)
        if lam == 1.0:
            out.append(("none",))
        elif use_cutmix:
            ratio = np.sqrt(1 - lam)
            cut_h, cut_w = int(h * ratio), int(w * ratio)
            cy, cx = rs.randint(0, h), rs.randint(0, w)
            yl, yh = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
            xl, xh = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
            out.append(("cutmix", 1. - (yh - yl) * (xh - xl) / float(h * w), yl, yh, xl, xh))
        else:
            out.append(("mixup", lam))
    return out


def test_mix():
    n, h, w = 20000, 24, 16
    rc, out, err = run("mix", *(str(v) for v in (n, 0.2, 1.0, 0.8, 0.4, h, w)))
    ours = [(ln.split()[0],) + tuple(float(v) for v in ln.split()[1:]) for ln in out.splitlines()]
    ref = timm_draws(n, 0.2, 1.0, 0.8, 0.4, h, w)
    shares = []
    ok = rc == 0 and len(ours) == n
    for kind in ("none", "mixup", "cutmix"):
        a, b = sum(d[0] == kind for d in ours) / n, sum(d[0] == kind for d in ref) / n
        shares.append(f"{kind} {a:.4f}/{b:.4f}")
        ok = ok and abs(a - b) <= 4 * math.sqrt(max(b * (1 - b), 1 / n) * 2 / n)
    report("mix_kinds_as_timm", ok, "shares ours/timm: " + ", ".join(shares))
    mix, rmix = [d[1] for d in ours if d[0] == "mixup"], [d[1] for d in ref if d[0] == "mixup"]
    crit = 1.95 * math.sqrt((len(mix) + len(rmix)) / (len(mix) * len(rmix)))  # two-sample KS, alpha 0.001
    lam_ks = ks(mix, rmix)
    report("mix_mixup_lambda_beta", ok and lam_ks < crit, f"KS {lam_ks:.4f} (critical {crit:.4f}) vs Beta(0.2, 0.2)")
    cut, rcut = [d for d in ours if d[0] == "cutmix"], [d for d in ref if d[0] == "cutmix"]
    crit = 1.95 * math.sqrt((len(cut) + len(rcut)) / (len(cut) * len(rcut)))
    stats = {k: ks([d[i] for d in cut], [d[i] for d in rcut]) for k, i in (("lam", 1), ("y0", 2), ("y1", 3), ("x0", 4),
                                                                                ("x1", 5))}
    inside = all(0 <= d[2] <= d[3] <= h and 0 <= d[4] <= d[5] <= w
                 and abs(d[1] - (1 - (d[3] - d[2]) * (d[5] - d[4]) / (h * w))) < 1e-12 for d in cut)
    report("mix_cutmix_boxes_as_timm", ok and inside and max(stats.values()) < crit,
           f"boxes inside, lam = 1 - area: {inside}; KS " + ", ".join(f"{k} {v:.4f}" for k, v in stats.items())
           + f" (critical {crit:.4f})")


test_write_read()
test_python_writes_rxc_reads()
test_bad_files()
test_atomic_write_failure_keeps_old()
test_schedules()
test_scalars()
test_init()
test_mix()
