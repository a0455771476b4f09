#!/usr/bin/env python3
"""Whole models against torchvision: the eval-mode logits of examples/
efficientnet_b0.net and examples/regnet_y_400mf.net with torchvision's
weights loaded through --init (randomly initialised torchvision models, their
BatchNorm statistics and affine parameters drawn away from 1 and 0, saved to
safetensors: torchvision's pretrained weights cannot be downloaded here).
The files' input is set to 3x64x64 to keep the run short; every layer is the
same. Relative error max|a-b| / max(1, max|b|) <= 1e-4 (check_ops.py's rule).
usage: check_models.py RUNNER (tests/ops' op_runner)"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

import harness
from safetensors_io import read_st, write_st

TOL = 1e-4
RUNNER = sys.argv[1]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
rng = np.random.default_rng(7)
torch.manual_seed(0)


def check(name, path, model):
    with tempfile.TemporaryDirectory() as tmp:
        src = open(os.path.join(ROOT, path)).read()
        net = os.path.join(tmp, "model.net")
        with open(net, "w") as f:
            f.write(re.sub(r"\binput 3x224x224\b", "input 3x64x64", src, count=1))
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, mod.weight.shape), dtype=torch.float32))
                    mod.bias.copy_(torch.tensor(rng.normal(0, 0.1, mod.bias.shape), dtype=torch.float32))
                    mod.running_mean.copy_(torch.tensor(rng.normal(0, 0.1, mod.running_mean.shape), dtype=torch.float32))
                    mod.running_var.copy_(torch.tensor(rng.uniform(0.5, 1.5, mod.running_var.shape), dtype=torch.float32))
        model.eval()
        x = torch.tensor(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
        with torch.no_grad():
            ref = model(x).numpy()
        b, w, o = (os.path.join(tmp, s) for s in ("b.st", "w.st", "o.st"))
        write_st(b, {"x": x.numpy(), "y": np.zeros(2, np.int64), "dy": np.zeros_like(ref)})
        write_st(w, {k: v.numpy() for k, v in model.state_dict().items()})
        r = subprocess.run(RUNNER.split() + [net, "--batch", b, "--init", w, "--out", o], capture_output=True, text=True,
                           env=dict(os.environ, OP_EVAL="1"))
        if r.returncode != 0:
            return harness.check(name, False, f"runner failed: {(r.stderr or r.stdout).strip()[:300]}")
        out = read_st(o)["output"].reshape(ref.shape)
        err = float(np.max(np.abs(out - ref)) / max(1.0, float(np.max(np.abs(ref)))))
        harness.check(name, err <= TOL, f"logits rel err {err:.2e} (max |logit| {np.max(np.abs(ref)):.3g})")


check("efficientnet_b0_eval_logits", "examples/efficientnet_b0.net", torchvision.models.efficientnet_b0(num_classes=10))
check("regnet_y_400mf_eval_logits", "examples/regnet_y_400mf.net", torchvision.models.regnet_y_400mf(num_classes=10))
