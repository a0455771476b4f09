"""aug_ref.py — the torchvision side of tests/data's checks of the "ResNet strikes
back" augmentations (aug_tool.c): random_erasing's erase against F.erase,
and its box draws against RandomErasing.get_params' distribution;
RandAugment's and TrivialAugmentWide's magnitude tables (bit-identical to
their torch.linspace values), every op at given bins and signs (byte-identical
to torchvision's _apply_op on PIL images), their random choices (chi-square),
and whole applications replayed through torchvision from the choices rxc made.

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


def tv_space(wide, bins, h, w):
    from torchvision.transforms.autoaugment import RandAugment, TrivialAugmentWide
    if wide:
        return TrivialAugmentWide(num_magnitude_bins=bins)._augmentation_space(bins)
    return RandAugment(num_magnitude_bins=bins)._augmentation_space(bins, (h, w))


def tv_apply(img, wide, bins, op, b, sign):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.autoaugment import _apply_op
    mags, signed = tv_space(wide, bins, img.size[1], img.size[0])[op]
    mag = float(mags[b].item()) if mags.ndim > 0 else 0.0
    if signed and sign < 0:
        mag *= -1.0
    return _apply_op(img, op, mag, interpolation=InterpolationMode.NEAREST, fill=None)


def check_tables(tool):
    for wide, sizes in ((False, [(31, 224, 224), (31, 37, 53), (10, 224, 160), (5, 20, 20)]),
                        (True, [(31, 224, 224), (20, 37, 53), (11, 32, 32)])):
        bad, n = [], 0
        for bins, w, h in sizes:
            ours = {}
            for ln in run(tool, "tvtable", "wide" if wide else "ra", bins, w, h).split("\n"):
                if ln:
                    op, b, v = ln.split()
                    ours[(op, int(b))] = float(v)
            for op, (mags, _signed) in tv_space(wide, bins, h, w).items():
                if mags.ndim == 0:
                    continue
                for b in range(bins):
                    n += 1
                    ref = float(mags[b].item())
                    if ours.get((op, b)) != ref:
                        bad.append(f"{op}[{b}] of {bins} at {w}x{h}: {ours.get((op, b))!r} vs {ref!r}")
        name = "trivialaugment" if wide else "randaugment"
        harness.check(f"{name}_magnitude_tables", not bad, f"{len(bad)} of {n} differ: " + "; ".join(bad[:4]),
                      f"{n} bins bit-identical to torchvision's augmentation space")


def check_ops(tool, images, work):
    """Every op with bins and signs, both tables, byte for byte against _apply_op."""
    ops = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness",
           "Posterize", "Solarize", "AutoContrast", "Equalize"]
    signed = set(ops[:9])
    for wide, settings in ((False, [(31, 9), (31, 30), (10, 4)]), (True, [(31, 13), (31, 20), (31, 30), (8, 3)])):
        name = "trivialaugment" if wide else "randaugment"
        for op in ops:
            bad, n = [], 0
            for img_path in images:
                img = Image.open(img_path).convert("RGB")
                for bins, b in settings:
                    for sign in ((1, -1) if op in signed else (1,)):
                        out = f"{work}/tv_{name}_{op}_{bins}_{b}_{sign}.png"
                        run(tool, "tvop", "wide" if wide else "ra", bins, b, op, sign, img_path, out)
                        ref = np.asarray(tv_apply(img, wide, bins, op, b, sign).convert("RGB")).astype(np.int32)
                        ours = np.asarray(Image.open(out).convert("RGB")).astype(np.int32)
                        n += 1
                        if ours.shape != ref.shape or not np.array_equal(ours, ref):
                            d = np.abs(ours - ref) if ours.shape == ref.shape else None
                            bad.append(f"{img_path.split('/')[-1]} bins {bins} bin {b} sign {sign}: "
                                       + ("shape" if d is None else f"{int((d > 0).sum())} values differ, max {d.max()}"))
            harness.check(f"{name}_op_{op}", not bad, f"{len(bad)} of {n} differ: " + "; ".join(bad[:3]),
                          f"{n} applications byte-identical to torchvision's _apply_op")


def check_draws(tool, wide, n, bins, m):
    rows = [ln.split() for ln in run(tool, "tvdraws", "wide" if wide else "ra", n, bins, m).split("\n") if ln]
    space = tv_space(wide, bins, 224, 224)
    names = list(space)
    chi = 0.0
    counts = {k: 0 for k in names}
    for op, _b, _s in rows:
        counts[op] += 1
    chi += sum((c - n / len(names)) ** 2 / (n / len(names)) for c in counts.values())
    dof = len(names) - 1
    bad = []
    for op in names:
        mags, signed = space[op]
        mine = [(int(b), int(s)) for o, b, s in rows if o == op]
        if signed:
            plus = sum(s > 0 for _b, s in mine)
            chi += (plus - len(mine) / 2) ** 2 / (len(mine) / 2) * 2
            dof += 1
        elif any(s != 1 for _b, s in mine):
            bad.append(f"{op} has a sign")
        if wide and mags.ndim > 0:
            hist = np.bincount([b for b, _s in mine], minlength=bins)
            e = len(mine) / bins
            chi += float(((hist - e) ** 2 / e).sum())
            dof += bins - 1
        elif any(b != (m if not wide else 0) for b, _s in mine):
            bad.append(f"{op} has bins {sorted({b for b, _s in mine})[:5]}")
    # chi-square 0.001 critical value, Wilson-Hilferty approximation
    crit = dof * (1 - 2 / (9 * dof) + 3.09 * math.sqrt(2 / (9 * dof))) ** 3
    name = "trivialaugment" if wide else "randaugment"
    harness.check(f"{name}_choices_uniform", len(rows) == n and not bad and chi < crit,
                  f"chi-square {chi:.1f} (critical {crit:.1f}, {dof} dof); {bad[:3]}",
                  f"ops, signs{' and bins' if wide else ''} uniform: chi-square {chi:.1f} < {crit:.1f} ({dof} dof)")


def check_pipeline(tool, wide, img_path, work, samples):
    """Whole applications through the pipeline, replayed by torchvision from rxc's choices."""
    img = Image.open(img_path).convert("RGB")
    bad = []
    name = "trivialaugment" if wide else "randaugment"
    for i in range(samples):
        out = f"{work}/tvpipe_{name}_{i}.png"
        choices = [ln.split() for ln in run(tool, "tvpipe", "wide" if wide else "ra", 31, 9, 2, i, img_path, out).split("\n")
                   if ln]
        ref = img
        for op, b, sign in choices:
            if op != "Identity":
                ref = tv_apply(ref, wide, 31, op, int(b), int(sign))
        if not np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(ref.convert("RGB"))):
            bad.append(f"sample {i}: {choices}")
    label = "randaugment(n=2, m=9)" if not wide else "trivialaugment"
    harness.check(f"{name}_pipeline_replayed", not bad, f"{len(bad)} of {samples} differ: {bad[:2]}",
                  f"{samples} samples of {label} byte-identical to torchvision applying the same choices")


if __name__ == "__main__":
    tool, cmd = sys.argv[1], sys.argv[2]
    if cmd == "erasing":
        img, work = sys.argv[3], sys.argv[4]
        check_erase(tool, img, work)
        check_params(tool, "224x224", 224, 224, 20000, (0.02, 0.33), (0.3, 3.3))
        check_params(tool, "48x20_fallback", 48, 20, 20000, (0.6, 0.95), (0.3, 3.3))
        check_probability(tool, 0.25, 20000)
    elif cmd == "tv":
        work, images = sys.argv[3], sys.argv[4:]
        check_tables(tool)
        check_ops(tool, images, work)
        check_draws(tool, False, 28000, 31, 9)
        check_draws(tool, True, 62000, 31, 0)
        check_pipeline(tool, False, images[0], work, 40)
        check_pipeline(tool, True, images[0], work, 40)
