"""test_cache_dir.py — where rxc keeps compiled kernels, through the rxc binary.

Cases (PASS/FAIL lines):
  cache_dir_regular_file_is_an_error      RXC_CACHE_DIR naming a regular file: exit 1 with a
                                          message naming the variable and the path
  cache_dir_under_a_file_is_an_error      RXC_CACHE_DIR=FILE/sub: the same, and no silent
                                          fallback to /tmp
  cache_default_unusable_falls_back       no RXC_CACHE_DIR and an XDG_CACHE_HOME that cannot
                                          hold a directory: a note on stderr, then
                                          /tmp/rxc-cache-UID is used and the step succeeds
  cache_dir_created_when_missing          RXC_CACHE_DIR naming a missing nested directory:
                                          created, the step succeeds
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import harness

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

RXC = os.environ.get("RXC", "./rxc")
TMP = tempfile.mkdtemp(prefix="rxc-kernels-test-")

NET = """
network cache_probe {
    input 3x8x8
    classes 4
    x = relu(batchnorm(conv(input, 4, 3)))
    return fc: linear(flatten(global_avgpool(x)), classes)
}
train { epochs 1; batch 2; seed 0; optimizer sgd(lr=0.1) }
"""


def report(name, ok, why=""):
    harness.check(name, ok, why)


def step(env_changes):
    """`rxc step` on a small net (it compiles kernels) with the environment changed."""
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    net = os.path.join(TMP, "probe.net")
    batch = os.path.join(TMP, "batch.safetensors")
    if not os.path.exists(net):
        with open(net, "w") as f:
            f.write(NET)
        rng = np.random.default_rng(0)
        st.write(batch, {"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32), "y": np.array([0, 3], np.int64)})
    p = subprocess.run([RXC, "step", net, "--batch", batch, "--device", "cpu", "--out", os.path.join(TMP, "out.safetensors")],
                       capture_output=True, text=True, timeout=600, env=env)
    return p.returncode, p.stderr


def main():
    plain = os.path.join(TMP, "plain_file")
    with open(plain, "w") as f:
        f.write("not a directory\n")

    rc, err = step({"RXC_CACHE_DIR": plain})
    report("cache_dir_regular_file_is_an_error",
           rc == 1 and "RXC_CACHE_DIR" in err and plain in err and "--version" not in err, f"rc={rc}: {err.strip()[-400:]}")

    sub = os.path.join(plain, "sub")
    rc, err = step({"RXC_CACHE_DIR": sub})
    report("cache_dir_under_a_file_is_an_error",
           rc == 1 and "RXC_CACHE_DIR" in err and sub in err and f"/tmp/rxc-cache-{os.getuid()}" not in err, f"rc={rc}: {err.strip()[-400:]}")

    fallback = f"/tmp/rxc-cache-{os.getuid()}"
    rc, err = step({"RXC_CACHE_DIR": None, "XDG_CACHE_HOME": plain})
    report("cache_default_unusable_falls_back",
           rc == 0 and "note" in err and fallback in err and os.path.isdir(fallback), f"rc={rc}: {err.strip()[-400:]}")

    nested = os.path.join(TMP, "a", "b", "cache")
    rc, err = step({"RXC_CACHE_DIR": nested})
    report("cache_dir_created_when_missing", rc == 0 and os.path.isdir(nested) and any(
        n.endswith(".so") for n in os.listdir(nested)), f"rc={rc}: {err.strip()[-400:]}")
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
