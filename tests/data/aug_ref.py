"""aug_ref.py — the torchvision side of tests/data's checks of the "ResNet strikes
back" augmentations (aug_tool.c): random_erasing's erase against F.erase,
and its box draws against RandomErasing.get_params' distribution.

Byte identity of random draws is impossible (rxc draws from its counter-based
RNG), so the draws are held to torchvision's rules box by box and to its
distribution: two-sample Kolmogorov-Smirnov statistics under the 0.001
critical value, and the share of 'no box' within 4 standard errors. Both
sides use fixed seeds, so every result is the same on each run."""
import math
import subprocess
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

import harness

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def run(tool, *args):
    return subprocess.run([tool] + [str(a) for a in args], capture_output=True, text=True, check=True).stdout


def check_erase(tool, img, work):
    t = F.normalize(F.to_tensor(Image.open(img).convert("RGB")), MEAN, STD)
    _, h, w = t.shape
    box = (30, 40, 50, 70)
    for name, value in (("value_0", "0"), ("value_rgb", "0.5,-1,2"), ("value_random", "random")):
        out = f"{work}/erase_{name}.f32"
        run(tool, "erase", img, *box, value, out)
        ours = np.fromfile(out, np.float32).reshape(h, w, 3)
        if value == "random":
            i, j, eh, ew = box
            inside = np.zeros((h, w), bool)
            inside[i:i + eh, j:j + ew] = True
            base = t.permute(1, 2, 0).numpy()
            vals = ours[inside]
            ok = np.array_equal(ours[~inside], base[~inside]) and abs(vals.mean()) < 0.05 and abs(vals.std() - 1) < 0.05
            harness.check(f"random_erasing_{name}", ok, f"outside equal {np.array_equal(ours[~inside], base[~inside])}, "
                          f"inside mean {vals.mean():.4f} std {vals.std():.4f} (want 0 +- 0.05, 1 +- 0.05)",
                          f"outside the box == normalized input; inside mean {vals.mean():.4f} std {vals.std():.4f}")
            continue
        v = torch.tensor([float(x) for x in value.split(",")] * (3 if "," not in value else 1))[:, None, None]
        ref = F.erase(t.clone(), *box, v).permute(1, 2, 0).numpy()
        harness.check(f"random_erasing_{name}_equals_F_erase", np.array_equal(ours, ref),
                      f"max abs difference {np.abs(ours - ref).max()}", "bit-identical to F.erase(Normalize(ToTensor(img)))")


def ks(a, b):
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


def torchvision_boxes(w, h, n, scale, ratio):
    torch.manual_seed(0)
    img = torch.zeros(3, h, w)
    out = []
    for _ in range(n):
        i, j, eh, ew, _v = T.RandomErasing.get_params(img, scale=scale, ratio=ratio, value=[0.0])
        out.append(None if (eh, ew) == (h, w) else (i, j, eh, ew))
    return out


def check_params(tool, name, w, h, n, scale, ratio):
    ours = [None if ln == "none" else tuple(int(v) for v in ln.split())
            for ln in run(tool, "eraseparams", w, h, n, *scale, *ratio).split("\n") if ln]
    ref = torchvision_boxes(w, h, n, scale, ratio)
    area = w * h
    bad = [b for b in ours if b is not None and not (
        0 < b[2] < h and 0 < b[3] < w and 0 <= b[0] <= h - b[2] and 0 <= b[1] <= w - b[3]
        and (b[2] - 0.5) * (b[3] - 0.5) <= scale[1] * area and (b[2] + 0.5) * (b[3] + 0.5) >= scale[0] * area
        and (b[2] - 0.5) / (b[3] + 0.5) <= ratio[1] and (b[2] + 0.5) / (b[3] - 0.5) >= ratio[0])]
    harness.check(f"random_erasing_params_{name}_rules", len(ours) == n and not bad,
                  f"{len(bad)} boxes break get_params' rules, e.g. {bad[:3]}", f"{n} boxes inside the image, scale and ratio")
    p_ours = sum(b is None for b in ours) / n
    p_ref = sum(b is None for b in ref) / n
    se = math.sqrt(max(p_ref * (1 - p_ref), 1 / n) * 2 / n)
    crit = 1.95 * math.sqrt(2 / n)  # two-sample KS, alpha 0.001
    stats = {}
    for k, label in enumerate(("top", "left", "h", "w")):
        stats[label] = ks([b[k] for b in ours if b], [b[k] for b in ref if b])
    stats["area"] = ks([b[2] * b[3] for b in ours if b], [b[2] * b[3] for b in ref if b])
    stats["aspect"] = ks([b[2] / b[3] for b in ours if b], [b[2] / b[3] for b in ref if b])
    ok = abs(p_ours - p_ref) <= 4 * se and max(stats.values()) < crit
    detail = (f"no box {p_ours:.4f} vs torchvision {p_ref:.4f} (4 s.e. {4 * se:.4f}); KS "
              + ", ".join(f"{k} {v:.4f}" for k, v in stats.items()) + f" (critical {crit:.4f})")
    harness.check(f"random_erasing_params_{name}_distribution", ok, detail, detail)
    return p_ref


def check_probability(tool, p, n):
    p_none = sum(b is None for b in torchvision_boxes(32, 32, 20000, (0.02, 0.33), (0.3, 3.3))) / 20000
    want = p * (1 - p_none)
    got = int(run(tool, "erasepipe", 32, 32, n, p)) / n
    se = math.sqrt(want * (1 - want) / n)
    harness.check("random_erasing_probability", abs(got - want) <= 4 * se,
                  f"erased {got:.4f}, want {want:.4f} +- {4 * se:.4f}", f"erased {got:.4f}, want p * P(box) = {want:.4f}")


if __name__ == "__main__":
    tool, cmd = sys.argv[1], sys.argv[2]
    if cmd == "erasing":
        img, work = sys.argv[3], sys.argv[4]
        check_erase(tool, img, work)
        check_params(tool, "224x224", 224, 224, 20000, (0.02, 0.33), (0.3, 3.3))
        check_params(tool, "48x20_fallback", 48, 20, 20000, (0.6, 0.95), (0.3, 3.3))
        check_probability(tool, 0.25, 20000)
