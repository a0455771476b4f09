"""test_defects.py — the defects of issue 12, each reproduced through the rxc binary
on a small synthetic image set (three colour classes, 32x32 PNGs), so that no
download is needed.

Cases (PASS/FAIL lines):
  shape_*        a network input that differs from the samples the pipelines give
                 (larger, smaller, 1 channel; train and eval): exit 2 with a message
                 naming both shapes and the fix, never a crash.
  classes_*      validation labels by class name: a val class missing (a warning, and
                 eval's accuracy is the one predict's answers give), a renamed or extra
                 val folder (exit 2 naming it); eval on a split without the train
                 split uses the checkpoint's class list; predict prints names.
  lock_*         two runs on one run directory: the second exits 2 naming the first's
                 process; a lock left by a killed run does not block.
  best_*         best.safetensors is written before last.safetensors; on resume a best
                 that is behind last's best_epoch is rewritten from last.
  tmp_*          temporary files of dead writers are removed when the run directory is
                 opened, those of live processes kept.
  exit_*         a checkpoint that does not exist: exit 1, as docs/rxc.1 says for an
                 unreadable file (--resume, --init, eval, predict).
  resume_*       run-only settings (log_every, workers) do not count as another model;
                 a real change still does.
  log_*          log.txt records "resumed from epoch E, step S" and "interrupted at ...".
  batch_*        a batch larger than the training split: a note at start-up.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import harness

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

RXC = os.environ.get("RXC", "./rxc")
TMP = tempfile.mkdtemp(prefix="rxc-defects-")
CLASSES = ("apple", "berry", "cherry")  # folder names; display names come from names.txt

NET = """
network tdef {{
    input 3x32x32
    classes 3
    x = relu(batchnorm(conv(input, 8, 3, stride=2)))
    return fc: linear(flatten(global_avgpool(x)), classes)
}}
data {{
    root "{root}"
    layout imagefolder
    class_names "names.txt"
    cache decoded
}}
augment train: normalize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
augment val: normalize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
train {{
    epochs 2
    batch 16
    seed 0
    optimizer adamw(lr=1e-2)
    schedule constant
    loss cross_entropy
}}
"""


def report(name, ok, why=""):
    harness.check(name, ok, why)


def rxc(*args, timeout=300):
    p = subprocess.run([RXC, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def tail(text, n=500):
    return text.strip()[-n:]


# ---- the data set ---------------------------------------------------------------------

def write_images(folder, colour, n, seed):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        px = rng.integers(0, 90, size=(32, 32, 3))
        px[:, :, colour] += 150
        Image.fromarray(px.astype(np.uint8)).save(os.path.join(folder, f"{i:03d}.png"))


def make_data():
    """root/train/{apple,berry,cherry}, root/val (all three), and val splits with a class
    missing, a renamed folder and an extra folder."""
    root = os.path.join(TMP, "data")
    for c, name in enumerate(CLASSES):
        write_images(os.path.join(root, "train", name), c, 16, c)
        write_images(os.path.join(root, "val", name), c, 6, 10 + c)
    with open(os.path.join(root, "names.txt"), "w") as f:
        f.write("apple Apple\nberry Blue berry\ncherry Cherry\n")
    variants = {"val_missing": ("apple", "cherry"), "val_renamed": ("apple", "berry", "cranberry"),
                "val_extra": ("apple", "berry", "cherry", "damson")}
    for split, names in variants.items():
        for name in names:
            src = os.path.join(root, "val", name if name in CLASSES else "cherry")
            shutil.copytree(src, os.path.join(root, split, name))
    net = os.path.join(TMP, "tdef.net")
    with open(net, "w") as f:
        f.write(NET.format(root=root))
    return root, net


def train(net, run_dir, *extra, timeout=300):
    return rxc(net, "--run-dir", run_dir, "--device", "cpu", *extra, timeout=timeout)


def meta(path):
    return st.read(path)[1]


# ---- 1: sample shape against the network's input ----------------------------------------

def test_shapes(net):
    cases = [("shape_larger_train", ["--set", "input=3x64x64"], ["3x32x32", "3x64x64", "resize", "crop", "--set input="]),
             ("shape_smaller_train", ["--set", "input=3x16x16"], ["3x32x32", "3x16x16", "--set input="]),
             ("shape_one_channel_train", ["--set", "input=1x32x32"], ["3x32x32", "1x32x32", "--set input=3x32x32"])]
    for name, extra, needles in cases:
        rc, out, err = train(net, os.path.join(TMP, "run_" + name), "--max-steps", 2, *extra)
        missing = [n for n in needles if n not in err]
        report(name, rc == 2 and not missing, f"rc={rc} missing {missing}: {tail(err)}")
    weights = os.path.join(TMP, "run_main", "best.safetensors")
    rc, out, err = rxc("eval", net, "--weights", weights, "--set", "input=3x64x64", "--device", "cpu")
    needles = ["3x32x32", "3x64x64", "augment val"]
    missing = [n for n in needles if n not in err]
    report("shape_larger_eval", rc == 2 and not missing, f"rc={rc} missing {missing}: {tail(err)}")


# ---- 2: labels by class name ------------------------------------------------------------------

def predicted_accuracy(net, weights, root, split):
    """The accuracy predict's top-1 answers give on root/split (names.txt display names)."""
    display = dict(line.split(" ", 1) for line in open(os.path.join(root, "names.txt")).read().splitlines())
    images, truth = [], []
    for folder in sorted(os.listdir(os.path.join(root, split))):
        for f in sorted(os.listdir(os.path.join(root, split, folder))):
            images.append(os.path.join(root, split, folder, f))
            truth.append(display.get(folder, folder))
    rc, out, err = rxc("predict", net, "--weights", weights, "--device", "cpu", *images)
    tops = re.findall(r"^\s+1\. (.*?)\s+\d+\.\d+%", out, re.M)
    if rc != 0 or len(tops) != len(images):
        return None, f"predict rc={rc}: {tail(out + err, 300)}"
    return sum(t == y for t, y in zip(tops, truth)) / len(images), out


def eval_accuracy(net, weights, *extra):
    rc, out, err = rxc("eval", net, "--weights", weights, "--device", "cpu", *extra)
    m = re.search(r"Accuracy: ([01]\.\d{4})", out)
    return (float(m.group(1)) if rc == 0 and m else None), tail(out + err, 400)


def test_classes(root, net):
    weights = os.path.join(TMP, "run_main", "best.safetensors")
    names = meta(weights).get("class_names", "").split("\n")
    report("classes_checkpoint_lists_names", names[:3] == ["Apple", "Blue berry", "Cherry"] and
           meta(weights).get("class_folders", "").split("\n")[:3] == list(CLASSES), f"metadata {meta(weights)}")

    rc, out, err = train(net, os.path.join(TMP, "run_val_missing"), "--epochs", 1, "--set", "val_split=val_missing")
    report("classes_val_missing_warns", rc == 0 and "berry" in err and "no images" in err, f"rc={rc} {tail(err)}")
    want, detail = predicted_accuracy(net, weights, root, "val_missing")
    got, why = eval_accuracy(net, weights, "--split", "val_missing")
    report("classes_val_missing_eval_by_name", want is not None and got is not None and abs(got - want) < 1e-4 and want > 0.5,
           f"eval {got} vs predict {want}: {why} {detail[-200:] if want is None else ''}")
    # eval on a root that has no train split: only the checkpoint knows the classes.
    alone = os.path.join(TMP, "data_val_only")
    shutil.copytree(os.path.join(root, "val_missing"), os.path.join(alone, "val"))
    shutil.copy(os.path.join(root, "names.txt"), alone)
    got2, why2 = eval_accuracy(net, weights, "--set", f'root="{alone}"')
    report("classes_eval_uses_checkpoint_list", got2 is not None and want is not None and abs(got2 - want) < 1e-4,
           f"eval {got2} vs predict {want}: {why2}")

    for case, split, needle in (("classes_val_renamed_folder", "val_renamed", "cranberry"),
                                ("classes_val_extra_class", "val_extra", "damson")):
        rc, out, err = train(net, os.path.join(TMP, "run_" + case), "--epochs", 1, "--set", f"val_split={split}")
        report(case, rc == 2 and f"'{needle}'" in err and "not a class of the training split" in err,
               f"rc={rc} {tail(err)}")

    img = os.path.join(root, "val", "berry", "000.png")
    rc, out, err = rxc("predict", net, "--weights", weights, "--device", "cpu", img)
    lines = re.findall(r"^\s+\d\. (.*?)\s+\d+\.\d+%\s*$", out, re.M)
    report("classes_predict_prints_names", rc == 0 and len(lines) == 3 and set(lines) == {"Apple", "Blue berry", "Cherry"}
           and "(class" not in out, f"rc={rc} {tail(out + err)}")


# ---- 3: the run directory's lock ----------------------------------------------------------------

def wait_for_lock(run_dir, pid, seconds=60):
    path = os.path.join(run_dir, ".lock")
    end = time.time() + seconds
    while time.time() < end:
        try:
            if open(path).read().strip() == str(pid):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_lock(net):
    run_dir = os.path.join(TMP, "run_lock")
    args = [RXC, net, "--run-dir", run_dir, "--device", "cpu", "--epochs", 500]
    first = subprocess.Popen(list(map(str, args)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        locked = wait_for_lock(run_dir, first.pid)
        rc, out, err = train(net, run_dir, "--max-steps", 1)
        report("lock_second_run_refused", locked and rc == 2 and f"in use by process {first.pid}" in err,
               f"lock file written: {locked}; rc={rc} {tail(err)}")
    finally:
        first.kill()
        first.wait()
    rc, out, err = train(net, run_dir, "--max-steps", 1)
    report("lock_stale_after_kill9", rc == 0, f"rc={rc} {tail(err)}")


# ---- 4: best and last ----------------------------------------------------------------------------

def renames_into(trace, names):
    """The checkpoint names that renames in an strace log moved into place, in order."""
    order = []
    for line in trace.splitlines():
        if "rename" not in line or not line.rstrip().endswith("= 0"):
            continue
        target = re.findall(r'"([^"]*)"', line)[-1]
        base = os.path.basename(target)
        if base in names:
            order.append(base)
    return order


def test_best(net):
    # The first epoch writes both checkpoints, each to a temporary file renamed into place;
    # strace records the order of the renames (file times are too coarse to tell it).
    one = os.path.join(TMP, "run_best")
    b1, l1 = os.path.join(one, "best.safetensors"), os.path.join(one, "last.safetensors")
    shutil.rmtree(one, ignore_errors=True)
    log = os.path.join(TMP, "best.strace")
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=rename,renameat,renameat2", "-o", log, RXC, net,
                        "--run-dir", one, "--device", "cpu", "--epochs", "1"], capture_output=True, text=True,
                       timeout=300) if shutil.which("strace") else None
    rc, err = (p.returncode, p.stderr) if p else (-1, "strace is not installed (make setup installs it)")
    order = renames_into(open(log).read(), {"best.safetensors", "last.safetensors"}) if p else []
    report("best_written_before_last", rc == 0 and order[:2] == ["best.safetensors", "last.safetensors"],
           f"rc={rc}; renames into place, in order: {order} {tail(err, 200)}")

    # A kill between the two writes of an older rxc: last records best_epoch 1, best is missing
    # or holds an earlier epoch.
    ok = rc == 0 and meta(l1).get("best_epoch") == "1"
    for case, damage in (("best_missing_rewritten_on_resume", "missing"), ("best_behind_rewritten_on_resume", "behind")):
        if damage == "missing":
            os.remove(b1)
        else:
            tensors, m = st.read(l1)
            m["epoch"], m["best_epoch"] = "0", "0"
            st.write(b1, tensors, m)
        rc2, out2, err2 = train(net, one, "--epochs", 1, "--resume", l1)
        got = meta(b1).get("epoch") if os.path.exists(b1) else None
        report(case, ok and rc2 == 0 and got == "1" and "rewritten" in err2,
               f"first run rc={rc}; resume rc={rc2}; best holds epoch {got}: {tail(err2)}")


# ---- 5: temporary files --------------------------------------------------------------------------

def test_temp_files(net):
    run_dir = os.path.join(TMP, "run_tmp")
    os.makedirs(run_dir, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    dead_file = os.path.join(run_dir, f"last.safetensors.tmp.{dead.pid}")
    live_file = os.path.join(run_dir, f"best.safetensors.tmp.{os.getpid()}")
    for p in (dead_file, live_file):
        with open(p, "wb") as f:
            f.write(b"\0" * 4096)
    rc, out, err = train(net, run_dir, "--max-steps", 1)
    report("tmp_dead_writers_removed", rc == 0 and not os.path.exists(dead_file) and os.path.exists(live_file),
           f"rc={rc} dead file left: {os.path.exists(dead_file)}, live file kept: {os.path.exists(live_file)} {tail(err)}")


# ---- 7: the smaller ones -----------------------------------------------------------------------------

def test_exit_codes(net):
    missing = os.path.join(TMP, "no-such-checkpoint.safetensors")
    runs = {"exit_missing_resume_is_1": lambda: train(net, os.path.join(TMP, "run_x1"), "--resume", missing),
            "exit_missing_init_is_1": lambda: train(net, os.path.join(TMP, "run_x2"), "--init", missing),
            "exit_missing_eval_weights_is_1": lambda: rxc("eval", net, "--weights", missing, "--device", "cpu"),
            "exit_missing_predict_weights_is_1": lambda: rxc("predict", net, "--weights", missing, "--device", "cpu",
                                                             os.path.join(TMP, "data", "val", "apple", "000.png"))}
    for name, run in runs.items():
        rc, out, err = run()
        report(name, rc == 1 and "no-such-checkpoint" in err, f"rc={rc} {tail(err)}")


def test_resume_and_log(net):
    run_dir = os.path.join(TMP, "run_resume")
    rc1, out1, err1 = train(net, run_dir, "--max-steps", 2)
    last = os.path.join(run_dir, "last.safetensors")
    rc2, out2, err2 = train(net, run_dir, "--resume", last, "--set", "log_every=7", "--set", "workers=1")
    report("resume_run_only_settings_no_note", rc1 == 0 and rc2 == 0 and "different model text" not in err2,
           f"rc {rc1}/{rc2}: {tail(err2)}")
    log = open(os.path.join(run_dir, "log.txt")).read() if os.path.exists(os.path.join(run_dir, "log.txt")) else ""
    report("log_resumed_line", re.search(r"^resumed from epoch 1, step 2\b", log, re.M) is not None, f"log.txt: {tail(log)}")
    rc3, out3, err3 = train(net, os.path.join(TMP, "run_resume2"), "--resume", last, "--set", "lr=0.5")
    report("resume_real_change_noted", rc3 == 0 and "different model text" in err3, f"rc={rc3} {tail(err3)}")

    # SIGINT mid-run: the run stops with a checkpoint, and log.txt says so.
    sig_dir = os.path.join(TMP, "run_sigint")
    args = [RXC, net, "--run-dir", sig_dir, "--device", "cpu", "--epochs", 500, "--set", "log_every=1"]
    p = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = p.stderr.readline()
        if not line or re.search(r"step \d+", line):
            break
    p.send_signal(signal.SIGINT)
    try:
        o, e = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        o, e = p.communicate()
    log_path = os.path.join(sig_dir, "log.txt")
    log = open(log_path).read() if os.path.exists(log_path) else ""
    report("log_interrupted_line", p.returncode == 130 and re.search(r"^interrupted at .*step \d+", log, re.M) is not None,
           f"rc={p.returncode} log.txt: {tail(log)} {tail(e, 200)}")


def test_batch_note(net):
    rc, out, err = train(net, os.path.join(TMP, "run_batch"), "--max-steps", 1, "--set", "batch=64")
    report("batch_larger_than_data_note", rc == 0 and re.search(r"note: batch 64 is larger than the 48 images", err) is not None,
           f"rc={rc} {tail(err)}")


def guarded(name, fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        report(f"{name}_group", False, f"{type(e).__name__}: {str(e)[-300:]}")


def main():
    root, net = make_data()
    rc, out, err = train(net, os.path.join(TMP, "run_main"), "--epochs", 3)
    report("defects_reference_run", rc == 0, f"rc={rc} {tail(err)}")
    guarded("shape", test_shapes, net)
    guarded("classes", test_classes, root, net)
    guarded("lock", test_lock, net)
    guarded("best", test_best, net)
    guarded("tmp", test_temp_files, net)
    guarded("exit", test_exit_codes, net)
    guarded("resume", test_resume_and_log, net)
    guarded("batch", test_batch_note, net)
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
