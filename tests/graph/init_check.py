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

# the file's own initialisers (init=, bias_init= on conv and linear; param(init=)):
# RegNet's normal(0, 0.01) linear, EfficientNet's uniform(-1/sqrt(out), +) linear,
# kaiming_normal(mode="fan_in"), trunc_normal with bounds, constants
FILE_INIT_NET = """network t {
    input 3x16x16
    classes 10
    x = conv1: conv(input, 64, 3, init=normal(0.5, 0.01), bias=true, bias_init=constant(0.25))
    x = conv2: conv(x, 256, 5, init=kaiming_normal(mode="fan_in"))
    x = conv3: conv(x, 32, 1, init=trunc_normal(std=0.02, a=-0.03, b=0.03)) * gamma: param(shape=[32], init=1e-6)
    r = 1.0 / classes ^ 0.5
    x = fc1: linear(flatten(global_avgpool(x)), 1024, init=uniform(-r, r), bias_init=zeros)
    return fc2: linear(x, classes, init=normal(0, 0.01), bias_init=ones)
}
"""
with tempfile.TemporaryDirectory() as tmp:
    with open(f"{tmp}/t.net", "w") as fh:
        fh.write(FILE_INIT_NET)
    write_st(f"{tmp}/b.safetensors", {"x": rng.standard_normal((2, 3, 16, 16)).astype(np.float32),
                                      "y": np.array([1, 2], dtype=np.int64)})
    r = subprocess.run([RXC, "grad", f"{tmp}/t.net", "--batch", f"{tmp}/b.safetensors", "--device", "cpu",
                        "--out", f"{tmp}/o.safetensors"], capture_output=True, text=True)
    if r.returncode:
        harness.failed("init_from_file", f"rxc grad exited {r.returncode}: {r.stderr.strip()[-300:]}")
    else:
        p = read_st(f"{tmp}/o.safetensors")
        close = lambda a, b: abs(a / b - 1) < 0.05  # noqa: E731
        w1, w2, w3 = p["param.conv1.weight"], p["param.conv2.weight"], p["param.conv3.weight"]
        f1, f2 = p["param.fc1.weight"], p["param.fc2.weight"]
        checks = {
            "normal": close(w1.mean(), 0.5) and close(w1.std(), 0.01),
            "constant bias": np.all(p["param.conv1.bias"] == 0.25),
            "kaiming fan_in": close(w2.std(), math.sqrt(2 / (64 * 25))),
            # N(0, 0.02) truncated at +-1.5 std: std 0.02 * 0.7375
            "trunc_normal": np.abs(w3).max() <= 0.03 and close(w3.std(), 0.02 * 0.7375),
            "param constant": np.all(p["param.gamma"] == np.float32(1e-6)),
            "uniform": f1.min() >= -1 / math.sqrt(10) and f1.max() <= 1 / math.sqrt(10)
                       and close(f1.std(), 2 / math.sqrt(10) / math.sqrt(12)),
            "zeros/ones bias": np.all(p["param.fc1.bias"] == 0) and np.all(p["param.fc2.bias"] == 1),
            "normal std": close(f2.std(), 0.01),
        }
        bad = [k for k, v in checks.items() if not v]
        harness.check("init_from_file", not bad, "wrong: " + ", ".join(bad))
