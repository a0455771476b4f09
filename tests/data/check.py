"""check.py — the PIL/torchvision side of tests/data/run.sh.

Each subcommand prints PASS/FAIL lines itself (tests/harness.py), with the
measured mean and max absolute differences (0-255 levels) and the tolerance
it was held to.
"""
import io
import os
import re
import struct
import sys

import numpy as np
from PIL import Image

import harness

sys.path.insert(0, os.path.dirname(__file__))
import pil_ref  # noqa: E402


def arr(path_or_img):
    im = Image.open(path_or_img) if isinstance(path_or_img, str) else path_or_img
    return np.asarray(im.convert("RGB")).astype(np.int32)


def report(name, ours, ref, tol_mean, tol_max):
    if ours.shape != ref.shape:
        harness.failed(name, "shape %s, reference %s" % (ours.shape, ref.shape))
        return
    d = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    mean, mx = float(d.mean()), int(d.max())
    harness.check(name, mean <= tol_mean and mx <= tol_max,
                  "mean %.4f max %d exceeds tolerance mean %g max %d" % (mean, mx, tol_mean, tol_max),
                  "mean %.4f max %d; tolerance mean %g max %d" % (mean, mx, tol_mean, tol_max))


def make_inputs(outdir, photos):
    """Synthesizes the extra decoder inputs (grayscale, CMYK, PNG variants) and
    the 224x224 crops the AutoAugment ops are compared on."""
    base = Image.open(photos[0]).convert("RGB")
    base.convert("L").save(os.path.join(outdir, "gray.jpg"), quality=90)
    base.convert("CMYK").save(os.path.join(outdir, "cmyk.jpg"), quality=90)
    base.convert("RGBA").save(os.path.join(outdir, "rgba.png"))
    base.convert("P").save(os.path.join(outdir, "palette.png"))
    base.convert("L").save(os.path.join(outdir, "gray.png"))
    # chroma subsampling and progressive coding (the Debian photos are 4:4:4 baseline)
    base.save(os.path.join(outdir, "sub420.jpg"), quality=90, subsampling=2)
    base.save(os.path.join(outdir, "sub422.jpg"), quality=90, subsampling=1)
    base.save(os.path.join(outdir, "prog420.jpg"), quality=85, subsampling=2, progressive=True)
    for i, p in enumerate(photos):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        im.crop((w // 2 - 112, h // 2 - 112, w // 2 + 112, h // 2 + 112)).save(os.path.join(outdir, "crop%d.png" % i))
        # an odd-sized one too: ops must not assume even sizes
        im.crop((0, 0, 201, 173)).save(os.path.join(outdir, "odd%d.png" % i))


def cmp_decode(ours, src, name, draft=None):
    im = Image.open(src)
    if draft:
        im.draft("RGB", draft)
    report(name, arr(ours), arr(im.convert("RGB")), 0.0 if draft is None else 0.0, 1)


def cmp_lines(listfile):
    """Lines: NAME KIND ARGS... OURS — compares our output with the reference."""
    import torchvision.transforms.functional as F
    for line in open(listfile):
        f = line.split()
        if not f:
            continue
        name, kind = f[0], f[1]
        if not harness.selected(name):
            continue
        if kind == "decode":  # decode SRC OURS

            report(name, arr(f[3]), arr(Image.open(f[2]).convert("RGB")), 0.0, 1)
        elif kind == "draft":  # draft SRC W H OURS
            im = Image.open(f[2])
            im.draft("RGB", (int(f[3]), int(f[4])))
            report(name, arr(f[5]), arr(im.convert("RGB")), 0.0, 1)
        elif kind == "region":  # region SRC X0 Y0 W H OURS: region decode vs full decode, cropped
            x0, y0, w, h = map(int, f[3:7])
            ref = Image.open(f[2]).convert("RGB").crop((x0, y0, x0 + w, y0 + h))
            report(name, arr(f[7]), arr(ref), 0.0, 0)
        elif kind == "resize":  # resize SRC W H OURS  (PIL bilinear; tolerance 0: same fixed-point algorithm)
            ref = Image.open(f[2]).convert("RGB").resize((int(f[3]), int(f[4])), Image.BILINEAR)
            report(name, arr(f[5]), arr(ref), 0.0, 0)
        elif kind == "window":  # window SRC W H X0 Y0 CW CH OURS
            w, h, x0, y0, cw, ch = map(int, f[3:9])
            ref = Image.open(f[2]).convert("RGB").resize((w, h), Image.BILINEAR).crop((x0, y0, x0 + cw, y0 + ch))
            report(name, arr(f[9]), arr(ref), 0.0, 0)
        elif kind == "tvresize":  # tvresize SRC S OURS: torchvision Resize(S)
            ref = F.resize(Image.open(f[2]).convert("RGB"), int(f[3]))
            report(name, arr(f[4]), arr(ref), 0.0, 0)
        elif kind == "center":  # center SRC H W OURS: torchvision CenterCrop((H, W))
            ref = F.center_crop(Image.open(f[2]).convert("RGB"), [int(f[3]), int(f[4])])
            report(name, arr(f[5]), arr(ref), 0.0, 0)
        elif kind == "aa":  # aa OP M SIGN SRC OURS  (the seed library's op, PIL)
            ref = pil_ref.apply_op(Image.open(f[5]).convert("RGB"), f[2], int(f[3]), int(f[4]))
            report(name, arr(f[6]), arr(ref), 0.0, 0)
        elif kind == "dctscaled":  # dctscaled SRC S OURS: DCT-scaled decode + resize vs full decode + resize
            ref = F.resize(Image.open(f[2]).convert("RGB"), int(f[3]))
            report(name, arr(f[4]), arr(ref), 2.0, 32)
        else:
            harness.failed(name, "unknown check %s" % kind)


def check_table(md_path, ours_path):
    """The ImageNet policy table and magnitudes against the seed's document and numpy."""
    rows = []
    for line in open(md_path):
        m = re.match(r"\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*(\w+)\s*\|\s*(\d+)\s*\|", line)
        if m:
            rows.append((int(m[1]), float(m[2]), m[3], int(m[4]), float(m[5]), m[6], int(m[7])))
    ours, mags = [], {}
    for line in open(ours_path):
        f = line.split()
        if f[0] == "mag":
            mags[f[1]] = [float(x) for x in f[2:]]
        else:
            ours.append((int(f[0]), float(f[1]), f[2], int(f[3]), float(f[4]), f[5], int(f[6])))
    if len(rows) != 25:
        harness.failed("aa_table_imagenet", "parsed %d rows from %s" % (len(rows), md_path))
    elif rows != ours:
        bad = [(a, b) for a, b in zip(rows, ours) if a != b][:3]
        harness.failed("aa_table_imagenet", "differs from the seed's table: %s" % bad)
    else:
        harness.passed("aa_table_imagenet", "25 sub-policies equal the seed's table")
    worst = 0.0
    for op, ref in pil_ref.RANGES.items():
        worst = max(worst, float(np.max(np.abs(np.asarray(ref, dtype=np.float64) - np.asarray(mags[op])))))
    harness.check("aa_magnitudes", worst <= 1e-12, "max diff %g from numpy.linspace" % worst,
                  "all 14 ops x 10 indices equal numpy.linspace, max diff %g" % worst)


def check_draws(policy, n, draws_path, table_path):
    """Frequencies of the random choices over n draws: sub-policy picks
    (chi-square, 24 degrees of freedom, bound 60: p < 1e-4 for a fair draw),
    each step's application rate within 4.5 standard deviations of its
    probability, and signs within 4.5 sd of one half."""
    table = {}
    for line in open(table_path):
        f = line.split()
        if f[0] != "mag":
            table[int(f[0])] = (float(f[1]), float(f[4]))
    picks, ok, worst = {}, True, 0.0
    plus = 0
    for line in open(draws_path):
        f = line.split()
        if f[0] == "plus":
            plus = int(f[1])
        else:
            picks[int(f[0])] = tuple(int(x) for x in f[1:])
    exp = n / 25.0
    chi2 = sum((c[0] - exp) ** 2 / exp for c in picks.values())
    for k, (cnt, a1, a2) in picks.items():
        for applied, p in ((a1, table[k][0]), (a2, table[k][1])):
            sd = max((cnt * p * (1 - p)) ** 0.5, 1e-9)
            z = abs(applied - cnt * p) / sd if 0 < p < 1 else (0 if applied == cnt * p else 99)
            worst = max(worst, z)
            ok = ok and z <= 4.5
    zs = abs(plus - n / 2) / (n / 4) ** 0.5
    harness.check("aa_frequencies_%s" % policy, chi2 < 60 and ok and zs <= 4.5 and len(picks) == 25,
                  "chi2 %.1f, worst step z %.2f, sign z %.2f" % (chi2, worst, zs),
                  "%d draws: chi2 %.1f < 60 over 25 sub-policies, worst step z %.2f, sign z %.2f" % (n, chi2, worst, zs))


def check_pipedraws(path):
    """Uniformity of random_resize's size, random_crop's offsets (rows 0..24,
    columns 0..40 of a 64x48 image) and hflip(0.5), observed from outputs:
    chi-square below the 1e-4 quantile for each, flips within 4.5 sd."""
    from collections import Counter
    sizes, rows, cols, flips, n = Counter(), Counter(), Counter(), 0, 0
    for line in open(path):
        f = line.split()
        if f[0] == "resize":
            sizes[(int(f[1]), int(f[2]))] += 1
        else:
            rows[int(f[1])] += 1
            cols[int(f[2])] += 1
            flips += int(f[3])
            n += 1

    def chi2(counter, cells):
        exp = n / len(cells)
        return sum((counter.get(c, 0) - exp) ** 2 / exp for c in cells)
    # 1e-4 upper quantiles of chi-square: dof 2 -> 18.4, 24 -> 59.0, 40 -> 84.0
    c_size = chi2(sizes, [(42, 32), (53, 40), (64, 48)])
    c_row, c_col = chi2(rows, range(25)), chi2(cols, range(41))
    z = abs(flips - n / 2) / (n / 4) ** 0.5
    ok = set(sizes) == {(42, 32), (53, 40), (64, 48)} and c_size < 18.4 and c_row < 59.0 and c_col < 84.0 and z < 4.5 \
        and set(rows) <= set(range(25)) and set(cols) <= set(range(41))
    harness.measured("pipeline_random_choices", ok, "%d samples: random_resize sizes chi2 %.1f < 18.4, "
                     "crop rows chi2 %.1f < 59.0, crop columns chi2 %.1f < 84.0, hflip z %.2f < 4.5"
                     % (n, c_size, c_row, c_col, z))


def seed_val_reference(root, split):
    """torchvision's val transform on the split, in ImageFolder order: NHWC float32."""
    import torch
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(mean=[0.4625, 0.4580, 0.4295], std=[0.2452, 0.2390, 0.2469])])
    ds = ImageFolder(os.path.join(root, split), transform=tf)
    xs = torch.stack([ds[i][0] for i in range(len(ds))]).permute(0, 2, 3, 1).contiguous()
    return xs.numpy(), [ds[i][1] for i in range(len(ds))]


def check_val_dump(root, split, dump):
    ref, _ = seed_val_reference(root, split)
    ours = np.fromfile(dump, dtype=np.float32).reshape(ref.shape)
    d = float(np.max(np.abs(ours - ref)))
    harness.check("loader_val_vs_torchvision", d <= 1e-6, "max abs diff %g > 1e-6" % d,
                  "%d images, Resize(256)+CenterCrop(224)+ToTensor+Normalize; max abs diff %g, tolerance 1e-6"
                  % (ref.shape[0], d))


def make_cifar(outdir, n_per_file):
    """A small CIFAR-10 binary set (5 train files + test) and its expected HWC
    pixels and labels, saved as .npy next to it."""
    rng = np.random.RandomState(0)
    os.makedirs(outdir, exist_ok=True)
    allx, ally = [], []
    for name in ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.randint(0, 10, n_per_file).astype(np.uint8)
        planes = rng.randint(0, 256, (n_per_file, 3, 32, 32)).astype(np.uint8)
        with open(os.path.join(outdir, name), "wb") as f:
            for i in range(n_per_file):
                f.write(bytes([labels[i]]) + planes[i].tobytes())
        if name.startswith("data"):
            allx.append(planes.transpose(0, 2, 3, 1))
            ally.append(labels)
    with open(os.path.join(outdir, "batches.meta.txt"), "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n")
    np.save(os.path.join(outdir, "expect_x.npy"), np.concatenate(allx))
    np.save(os.path.join(outdir, "expect_y.npy"), np.concatenate(ally))


def make_cifar100(outdir, n):
    """A small CIFAR-100 binary set: train.bin / test.bin with (coarse, fine) label bytes."""
    rng = np.random.RandomState(1)
    os.makedirs(outdir, exist_ok=True)
    for name in ("train.bin", "test.bin"):
        coarse = rng.randint(0, 20, n).astype(np.uint8)
        fine = rng.randint(0, 100, n).astype(np.uint8)
        planes = rng.randint(0, 256, (n, 3, 32, 32)).astype(np.uint8)
        with open(os.path.join(outdir, name), "wb") as f:
            for i in range(n):
                f.write(bytes([coarse[i], fine[i]]) + planes[i].tobytes())
        if name == "test.bin":
            np.save(os.path.join(outdir, "expect_x.npy"), planes.transpose(0, 2, 3, 1))
            np.save(os.path.join(outdir, "expect_y.npy"), fine)


def check_cifar(outdir, dump, indices_log):
    x = np.load(os.path.join(outdir, "expect_x.npy"))
    y = np.load(os.path.join(outdir, "expect_y.npy"))
    ours = np.fromfile(dump, dtype=np.uint8).reshape(x.shape)
    labels = []
    for line in open(indices_log):
        if line.startswith("indices"):
            labels += [int(t.split("/")[1]) for t in line.split(":")[1].split()]
    name = sys.argv[5] if len(sys.argv) > 5 else "cifar10_binary"
    harness.check(name, np.array_equal(ours, x) and labels == list(y),
                  "pixels equal %s, labels equal %s" % (np.array_equal(ours, x), labels == list(y)),
                  "%d images decoded to HWC with their labels" % len(y))


def make_bad_corpus(root, photo):
    """ImageFolder split with one good class and every kind of bad input."""
    good = os.path.join(root, "train", "good")
    bad = os.path.join(root, "train", "bad")
    os.makedirs(good, exist_ok=True)
    os.makedirs(bad, exist_ok=True)
    os.makedirs(os.path.join(root, "train", "empty"), exist_ok=True)
    im = Image.open(photo).convert("RGB")
    for i in range(6):
        im.resize((64 + 8 * i, 48 + 4 * i), Image.BILINEAR).save(os.path.join(good, "g%d.jpg" % i), quality=90)
    im.resize((40, 30)).save(os.path.join(good, "g6.png"))
    data = open(os.path.join(good, "g0.jpg"), "rb").read()
    open(os.path.join(bad, "truncated.jpg"), "wb").write(data[: len(data) // 2])
    open(os.path.join(bad, "random.jpg"), "wb").write(np.random.RandomState(1).bytes(5000))
    open(os.path.join(bad, "zero.jpg"), "wb").close()
    # 60000 x 60000 declared in the SOF0 header of an otherwise valid JPEG
    buf = bytearray(data)
    i = buf.find(b"\xff\xc0")
    struct.pack_into(">HH", buf, i + 5, 60000, 60000)
    open(os.path.join(bad, "huge.jpg"), "wb").write(bytes(buf))
    Image.new("RGB", (1, 1), (200, 10, 10)).save(os.path.join(bad, "one.jpg"))
    os.makedirs(os.path.join(bad, "folder.jpg"), exist_ok=True)
    link = os.path.join(bad, "dangling.jpg")
    if not os.path.lexists(link):
        os.symlink("/nonexistent/rxc-test-target.jpg", link)
    open(os.path.join(bad, "notes.txt"), "w").write("not an image\n")
    # a split where nothing is usable
    nothing = os.path.join(root, "nothing", "only")
    os.makedirs(nothing, exist_ok=True)
    open(os.path.join(nothing, "zero.jpg"), "wb").close()
    open(os.path.join(nothing, "random.jpg"), "wb").write(np.random.RandomState(2).bytes(300))


def check_demo(out, csv):
    import gzip
    rows = [list(map(int, l.split(","))) for l in gzip.open(csv, "rt") if l.strip()]
    n_train = sum(1 for i in range(len(rows)) if i % 5 != 4)
    found = {"train": 0, "val": 0}
    for split in found:
        for c in range(10):
            d = os.path.join(out, split, str(c))
            found[split] += len(os.listdir(d)) if os.path.isdir(d) else 0
    if found["train"] != n_train or found["val"] != len(rows) - n_train:
        harness.failed("demo_split", "%s, expected %d train %d val" % (found, n_train, len(rows) - n_train))
        return
    harness.passed("demo_split", "%d train, %d val, 10 classes, row i in val iff i %% 5 == 4" % (found["train"], found["val"]))
    worst_mean, worst_max = 0.0, 0
    for i in (0, 4, 1000, len(rows) - 1):
        r = rows[i]
        g = np.array([min(255, (v * 255 + 8) // 16) for v in r[:64]], dtype=np.uint8).reshape(8, 8)
        ref = Image.fromarray(g).convert("RGB").resize((32, 32), Image.BILINEAR)
        path = os.path.join(out, "val" if i % 5 == 4 else "train", str(r[64]), "%04d.jpg" % i)
        d = np.abs(arr(path) - arr(ref))
        worst_mean, worst_max = max(worst_mean, float(d.mean())), max(worst_max, int(d.max()))
    # JPEG quality 95 on sharp 32x32 strokes: a few levels on average, edges more
    harness.check("demo_pixels", worst_mean <= 1.0 and worst_max <= 12, "mean %.2f max %d" % (worst_mean, worst_max),
                  "rows 0, 4, 1000, last vs PIL upscale of the CSV: mean %.2f max %d; tolerance mean 1 max 12 for JPEG q95"
                  % (worst_mean, worst_max))



if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "inputs":
        make_inputs(sys.argv[2], sys.argv[3:])
    elif cmd == "compare":
        cmp_lines(sys.argv[2])
    elif cmd == "table":
        check_table(sys.argv[2], sys.argv[3])
    elif cmd == "draws":
        check_draws(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "pipedraws":
        check_pipedraws(sys.argv[2])
    elif cmd == "valdump":
        check_val_dump(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "make_cifar":
        make_cifar(sys.argv[2], int(sys.argv[3]))
    elif cmd == "make_cifar100":
        make_cifar100(sys.argv[2], int(sys.argv[3]))
    elif cmd == "cifar":
        check_cifar(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "bad_corpus":
        make_bad_corpus(sys.argv[2], sys.argv[3])
    elif cmd == "demo":
        check_demo(sys.argv[2], sys.argv[3])
    elif cmd == "photos":  # synthesizes stand-in photographs when the Debian ones are unavailable
        rng = np.random.RandomState(0)
        for name in ("china.jpg", "flower.jpg"):
            y, x = np.mgrid[0:427, 0:640]
            base = np.stack([x * 255 / 640, y * 255 / 427, (x + y) % 256], -1)
            base += rng.randint(-30, 30, base.shape)
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(os.path.join(sys.argv[2], name), quality=90)
