"""test_ema.py — the EMA of the weights (train settings `ema DECAY` and `ema_every N`)
against PyTorch 1.13 (CPU), through the rxc binary.

Cases (PASS/FAIL/SKIP lines):
  ema_step_*         `rxc step` with `ema` vs torchvision's reference ExponentialMovingAverage
                     (torch.optim.swa_utils.AveragedModel, use_buffers=True, avg_fn
                     decay * ema + (1 - decay) * value), started at the starting weights
                     (update_parameters once before the first step, which copies) and
                     updated after every `every`-th optimizer step: every EMA tensor
                     (parameters and BN running statistics) and the raw weights after K
                     steps, max |a - b| <= 2e-4 * max |b| + 1e-6 per tensor; the EMA's
                     num_batches_tracked is the model's count (torch's AveragedModel
                     averages the integer and truncates: not compared). Cases: SGD with
                     every 1, and AdamW with every 2 and gradient accumulation, whose
                     last step moves no EMA.
  ema_resume_*       on the demo set: a run stopped by --max-steps and resumed equals
                     the uninterrupted run bit for bit (weights, optimizer state, ema.*)
                     with the same epoch lines (EMA validation included); a checkpoint
                     without EMA resumed with `ema` starts the average there (a note).
  ema_best_*, ema_eval_*
                     best.safetensors follows the EMA's accuracy (its metadata and the
                     epoch it was written); `rxc eval --ema` reproduces that accuracy;
                     plain eval of the same file ignores the ema.* entries; --ema on a
                     file without them exits 2 with a clear message.
"""
import os
import re
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_rxc as base  # noqa: E402  (its Tiny net, helpers and temporary directory)
from harness import check as report, skipped as skip  # noqa: E402

st = base.st
rxc = base.rxc

STEP_CASES = [
    # name, .net optimizer, torch optimizer, kwargs, accum, decay, every, steps
    ("sgd_every1", "sgd(lr=0.1, momentum=0.9, weight_decay=0.01)", torch.optim.SGD,
     {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, 1, 0.9, 1, 4),
    ("adamw_every2_accum2", "adamw(lr=0.01, weight_decay=0.1)", torch.optim.AdamW,
     {"lr": 0.01, "weight_decay": 0.1}, 2, 0.8, 2, 5),
]


def torchvision_ema(model, decay):
    """torchvision's references/classification/utils.py ExponentialMovingAverage."""
    def ema_avg(avg_param, param, num_averaged):
        return decay * avg_param + (1 - decay) * param
    return torch.optim.swa_utils.AveragedModel(model, avg_fn=ema_avg, use_buffers=True)


def test_steps():
    wpath, bpath, x, y = base.tiny_weights_and_batch("ema")
    for name, net_opt, cls, kw, accum, decay, every, steps in STEP_CASES:
        net = base.write_net("ema_" + name, net_opt, "constant", 0.0, steps, accum, 0.0,
                             more=f"; ema {decay}; ema_every {every}")
        opath = os.path.join(base.TMP, f"ema_o_{name}.safetensors")
        rc, out, err = rxc("step", net, "--batch", bpath, "--init", wpath, "--steps", steps, "--out", opath)
        if rc != 0:
            report(f"ema_step_{name}", False, err.strip()[-500:])
            continue
        ours, _ = st.read(opath)
        m = base.Tiny()
        m.load_state_dict({k: torch.tensor(v) for k, v in st.read(wpath)[0].items()})
        avg = torchvision_ema(m, decay)
        avg.update_parameters(m)  # n_averaged 0: a copy of the starting weights
        opt = cls(m.parameters(), **kw)
        m.train()
        for k in range(1, steps + 1):
            opt.zero_grad()
            for xm, ym in zip(x.chunk(accum), y.chunk(accum)):
                (F.cross_entropy(m(xm), ym) / accum).backward()
            opt.step()
            if k % every == 0:
                avg.update_parameters(m)
        ref = base.state_numpy(m)
        ref.update({"ema." + k: v.detach().numpy() for k, v in avg.module.state_dict().items()
                    if not k.endswith("num_batches_tracked")})
        bad = base.compare_dicts(ours, ref, 2e-4, 1e-6)
        counts = [k for k in ours if k.endswith("num_batches_tracked") and not k.startswith("ema.")]
        bad += [f"ema.{k} is {ours['ema.' + k]} not {ours[k]}" for k in counts
                if "ema." + k not in ours or int(ours["ema." + k]) != int(ours[k])]
        # the case must test an average: away from both the weights and the start
        start = st.read(wpath)[0]
        moved = min(float(np.max(np.abs(ref["ema.conv1.weight"] - ref["conv1.weight"]))),
                    float(np.max(np.abs(ref["ema.conv1.weight"] - start["conv1.weight"]))))
        if moved < 1e-4:
            bad.append(f"the EMA is too close to the weights or the start ({moved:.3g}) to test anything")
        report(f"ema_step_{name}", not bad, "; ".join(bad[:6]))


EMA_LINE = re.compile(r"\| EMA Val Loss: \d+\.\d{4} Accuracy: ([01]\.\d{4})$", re.M)


def epoch_lines(text):
    return [ln.split(" Time:")[0] + ln.split("|", 1)[1] for ln in text.splitlines() if ln.startswith("Epoch:")]


def test_training():
    root, why = base.demo_root()
    if root is None:
        for n in ("ema_resume_reference_run", "ema_resume_max_steps_exact", "ema_best_follows_ema_accuracy",
                  "ema_eval_reproduces_best_epoch", "ema_eval_plain_ignores_ema_entries", "ema_eval_without_ema_exits_2",
                  "ema_resume_from_checkpoint_without_ema"):
            skip(n, f"rxc demo failed: {why}")
        return
    small = os.path.join(base.TMP, "ema_digits_small")
    for split, n in (("train", 12), ("val", 4)):
        for c in sorted(os.listdir(os.path.join(root, split))):
            os.makedirs(os.path.join(small, split, c), exist_ok=True)
            for f in sorted(os.listdir(os.path.join(root, split, c)))[:n]:
                shutil.copy(os.path.join(root, split, c, f), os.path.join(small, split, c, f))
    ema = ["--set", "ema=0.9", "--set", "ema_every=3"]

    def train(run_dir, *extra):
        return base.train(small, run_dir, "--set", "batch=16", *extra)

    ref_dir = os.path.join(base.TMP, "ema_run_ref")
    rc, out, err = train(ref_dir, "--epochs", 2, *ema)
    if rc != 0:
        report("ema_resume_reference_run", False, err.strip()[-500:])
        return
    ref_w, ref_meta = st.read(os.path.join(ref_dir, "last.safetensors"))
    ref_lines = epoch_lines(out)
    ema_accs = [float(EMA_LINE.search(ln).group(1)) for ln in out.splitlines() if EMA_LINE.search(ln)]
    names = [k for k in ref_w if not k.startswith(("ema.", "optimizer."))]
    report("ema_resume_reference_run", len(ema_accs) == 2 and all("ema." + k in ref_w for k in names),
           f"EMA accuracies {ema_accs}; ema.* entries {sum(k.startswith('ema.') for k in ref_w)} of {len(names)}")

    stop_dir = os.path.join(base.TMP, "ema_run_stop")
    rc1, out1, err1 = train(stop_dir, "--epochs", 2, "--max-steps", 11, *ema)
    rc2, out2, err2 = train(stop_dir, "--epochs", 2, "--resume", os.path.join(stop_dir, "last.safetensors"), *ema)
    if rc1 != 0 or rc2 != 0:
        report("ema_resume_max_steps_exact", False, f"rc {rc1}/{rc2}: {err1.strip()[-300:]} {err2.strip()[-300:]}")
    else:
        w, _ = st.read(os.path.join(stop_dir, "last.safetensors"))
        diff = [k for k in ref_w if k not in w or not np.array_equal(w[k], ref_w[k])]
        lines = epoch_lines(out1 + out2)
        report("ema_resume_max_steps_exact", not diff and lines == ref_lines,
               f"{len(diff)} tensors differ ({diff[:3]}); epochs {lines} vs {ref_lines}")

    # best follows the EMA's accuracy (timm's train.py), and eval --ema reproduces it
    best_path = os.path.join(ref_dir, "best.safetensors")
    _, best_meta = st.read(best_path)
    want = max(ema_accs) if ema_accs else -1
    got = float(best_meta.get("best_val_acc", "nan"))
    report("ema_best_follows_ema_accuracy", abs(got - want) < 1e-9 and
           int(best_meta.get("best_epoch", 0)) == ema_accs.index(want) + 1,
           f"best_val_acc {got} epoch {best_meta.get('best_epoch')}; EMA accuracies {ema_accs}")
    rc, out, err = rxc("eval", "models/tiny_resnext.net", "--set", f'root="{small}"', "--weights", best_path,
                       "--device", "cpu", "--ema")
    m = re.search(r"^EMA Val Loss: \d+\.\d{4} Accuracy: ([01]\.\d{4})", out)
    report("ema_eval_reproduces_best_epoch", rc == 0 and m is not None and abs(float(m.group(1)) - want) < 1e-9,
           f"rc={rc} {out.strip()} vs {want} {err.strip()[-300:]}")
    rc, out, err = rxc("eval", "models/tiny_resnext.net", "--set", f'root="{small}"', "--weights", best_path,
                       "--device", "cpu")
    report("ema_eval_plain_ignores_ema_entries", rc == 0 and out.startswith("Val Loss:"), f"rc={rc} {err.strip()[-300:]}")
    plain_dir = os.path.join(base.TMP, "ema_run_plain")
    rc, out, err = train(plain_dir, "--epochs", 1)
    last_plain = os.path.join(plain_dir, "last.safetensors")
    rc2, out2, err2 = rxc("eval", "models/tiny_resnext.net", "--set", f'root="{small}"', "--weights", last_plain,
                          "--device", "cpu", "--ema")
    report("ema_eval_without_ema_exits_2", rc == 0 and rc2 == 2 and "holds no EMA weights" in err2,
           f"rc={rc}/{rc2} {err2.strip()[-300:]}")
    # turning ema on when resuming a run without it: the average starts at the resumed weights
    rc3, out3, err3 = train(plain_dir, "--epochs", 2, "--resume", last_plain, *ema)
    w3, _ = st.read(last_plain) if rc3 == 0 else ({}, {})
    report("ema_resume_from_checkpoint_without_ema", rc3 == 0 and "holds no EMA weights" in err3 and
           all("ema." + k in w3 for k in names) and len(epoch_lines(out3)) == 1 and EMA_LINE.search(out3),
           f"rc={rc3} {err3.strip()[-300:]}")


def main():
    try:
        test_steps()
    except Exception as e:  # noqa: BLE001
        report("ema_step_group", False, f"{type(e).__name__}: {str(e)[-300:]}")
    try:
        test_training()
    except Exception as e:  # noqa: BLE001
        report("ema_training_group", False, f"{type(e).__name__}: {str(e)[-300:]}")
    shutil.rmtree(base.TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
