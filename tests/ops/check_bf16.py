#!/usr/bin/env python3
"""bf16 mixed precision (PREC_BF16) end to end on the fake GPU of tests/cuda
(driver, NVRTC and cuBLAS on the CPU; kernels in the fiber emulator): a
smooth network (grouped conv, BatchNorm, 1x1 conv, residual add, sigmoid --
no ReLU, whose masks flip between precisions) through `rxc grad --set
precision=bf16 --device cuda`, against the fp32 CPU executor. bf16 keeps 8
mantissa bits, so the tolerance is 3e-2 of max(1, max|fp32|) per tensor.
usage: check_bf16.py RXC FAKE_GPU_DIR"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import harness
from safetensors_io import read_st, write_st

rxc, fake = sys.argv[1], sys.argv[2]
NAME = "bf16_fake_gpu_grad"
with tempfile.TemporaryDirectory() as tmp:
    net = os.path.join(tmp, "smooth.net")
    with open(net, "w") as f:
        f.write("network t {\n    input 16x10x10\n    classes 10\n"
                "    x = bn: batchnorm(c1: conv(input, 32, 3, groups=4))\n"
                "    return sigmoid(c2: conv(x, 16, 1) + input)\n}\n")
    rng = np.random.default_rng(5)
    b = os.path.join(tmp, "b.st")
    write_st(b, {"x": rng.standard_normal((8, 16, 10, 10)).astype(np.float32), "y": np.zeros(8, np.int64),
                 "dy": rng.standard_normal((8, 16, 10, 10)).astype(np.float32)})
    env = dict(os.environ, LD_LIBRARY_PATH=fake, CUDA_HOME=os.path.join(fake, "cuda"),
               RXC_FAKE_GPU_EMU_INCLUDE=os.path.abspath("../emu"), RXC_FAKE_GPU_DIR=fake,
               RXC_CACHE_DIR=os.path.join(fake, "cache"))
    r1 = subprocess.run([rxc, "grad", net, "--batch", b, "--device", "cuda", "--set", "precision=bf16", "--out",
                         os.path.join(tmp, "bf.st")], capture_output=True, text=True, env=env)
    r2 = subprocess.run([rxc, "grad", net, "--batch", b, "--device", "cpu", "--out", os.path.join(tmp, "f32.st")],
                        capture_output=True, text=True)
    if r1.returncode or r2.returncode:
        harness.failed(NAME, (r1.stderr + r2.stderr).strip()[-400:])
        sys.exit(0)
    A, B = read_st(os.path.join(tmp, "bf.st")), read_st(os.path.join(tmp, "f32.st"))
    errs, worst = [], 0.0
    for k, ref in B.items():
        a = A.get(k)
        if a is None:
            errs.append(f"{k} missing")
            continue
        e = float(np.max(np.abs(a.astype(np.float64) - ref)) / max(1.0, float(np.max(np.abs(ref)))))
        worst = max(worst, e)
        if not e <= 3e-2:
            errs.append(f"{k} rel err {e:.2e}")
    # and bf16 really is in use: identical to fp32 would mean the precision was ignored
    if worst == 0.0:
        errs.append("bf16 results equal fp32 exactly: precision=bf16 was not applied")
    harness.check(NAME, not errs, "; ".join(errs), f"worst {worst:.1e}")

