"""init_check.py — the `init` setting reaches the parameters: the initial
values `rxc grad` reports (param.<name>) follow torchvision's ResNet init
(conv weight N(0, 2/fan_out), conv bias 0) or PyTorch's module defaults
(conv/linear weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))); BN weight 1,
bias 0; linear always PyTorch's default. Statistical checks on 19,200 conv
weights: the sample std within 5% of the expected one, uniform bounds
respected."""
import os, subprocess, tempfile, math

import sys

import numpy as np

import harness


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import read_st, write_st  # noqa: E402

RXC = os.environ.get("RXC", "./rxc")
fan_in, fan_out = 3 * 25, 256 * 25
rng = np.random.default_rng(1)
with tempfile.TemporaryDirectory() as tmp:
    write_st(f"{tmp}/b.safetensors", {"x": rng.standard_normal((2, 3, 16, 16)).astype(np.float32),
                                      "y": np.array([1, 2], dtype=np.int64)})
    for kind in ("pytorch", "torchvision"):
        r = subprocess.run([RXC, "grad", f"tests/graph/nets/init_{kind}.net", "--batch", f"{tmp}/b.safetensors",
                            "--device", "cpu", "--out", f"{tmp}/{kind}.safetensors"], capture_output=True, text=True)
        if r.returncode:
            harness.failed(f"init_{kind}", f"rxc grad exited {r.returncode}: {r.stderr.strip()[-300:]}")
            continue
        p = read_st(f"{tmp}/{kind}.safetensors")
        w, b = p["param.conv1.weight"], p["param.conv1.bias"]
        fw, fb = p["param.fc1.weight"], p["param.fc1.bias"]
        if kind == "pytorch":
            bound = 1 / math.sqrt(fan_in)
            conv_ok = abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.05 and np.abs(w).max() <= bound \
                and np.abs(b).max() <= bound and b.std() > 0
        else:
            conv_ok = abs(w.std() / math.sqrt(2 / fan_out) - 1) < 0.05 and np.all(b == 0)
        lb = 1 / math.sqrt(256)
        lin_ok = np.abs(fw).max() <= lb and np.abs(fb).max() <= lb and fw.std() > 0.5 * lb / math.sqrt(3)
        bn_ok = np.all(p["param.bn1.weight"] == 1) and np.all(p["param.bn1.bias"] == 0)
        ok = conv_ok and lin_ok and bn_ok
        harness.check(f"init_{kind}", ok,
                      f"conv {conv_ok} (std {w.std():.4f}, bias max {np.abs(b).max():.4f}) linear {lin_ok} bn {bn_ok}")
