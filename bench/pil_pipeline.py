"""pil_pipeline.py — the seed's train pipeline with PIL + torchvision, from
JPEG bytes in memory to a normalized 224x224 tensor, on one core.
Usage: pil_pipeline.py [--decoded] SECONDS IMG... ; prints "images_per_s N images_per_cpu_s M"."""
import io
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
import torch  # noqa: E402
import torchvision.transforms as T  # noqa: E402
import torchvision.transforms.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import pil_ref  # noqa: E402

torch.set_num_threads(1)

POLICY = [line.split() for line in """
0.4 posterize 8 0.6 rotate 9
0.6 solarize 5 0.6 autocontrast 5
0.8 equalize 8 0.6 equalize 3
0.6 posterize 7 0.6 posterize 6
0.4 equalize 7 0.2 solarize 4
0.4 equalize 4 0.8 rotate 8
0.6 solarize 3 0.6 equalize 7
0.8 posterize 5 1.0 equalize 2
0.2 rotate 3 0.6 solarize 8
0.6 equalize 8 0.4 posterize 6
0.8 rotate 8 0.4 color 0
0.4 rotate 9 0.6 equalize 2
0.0 equalize 7 0.8 equalize 8
0.6 invert 4 1.0 equalize 8
0.6 color 4 1.0 contrast 8
0.8 rotate 8 1.0 color 2
0.8 color 8 0.8 solarize 7
0.4 sharpness 7 0.6 invert 8
0.6 shearX 5 1.0 equalize 9
0.4 color 0 0.6 equalize 3
0.4 equalize 7 0.2 solarize 4
0.6 solarize 5 0.6 autocontrast 5
0.6 invert 4 1.0 equalize 8
0.6 color 4 1.0 contrast 8
0.8 equalize 8 0.6 equalize 3""".strip().splitlines()]


class ImageNetPolicy:
    def __call__(self, img):
        p1, o1, m1, p2, o2, m2 = random.choice(POLICY)
        if random.random() < float(p1):
            img = pil_ref.apply_op(img, o1, int(m1), random.choice([-1, 1]))
        if random.random() < float(p2):
            img = pil_ref.apply_op(img, o2, int(m2), random.choice([-1, 1]))
        return img


class RandomResize:
    def __init__(self, sizes):
        self.sizes = sizes

    def __call__(self, img):
        return F.resize(img, random.choice(self.sizes))


pipeline = T.Compose([
    RandomResize([256, 296, 384]), T.RandomCrop(224), T.RandomHorizontalFlip(), ImageNetPolicy(),
    T.ToTensor(), T.Normalize(mean=[0.4625, 0.4580, 0.4295], std=[0.2452, 0.2390, 0.2469]),
])

args = sys.argv[1:]
decoded = args[0] == "--decoded"  # the seed's configuration: images decoded once, held as PIL images
if decoded:
    args = args[1:]
seconds = float(args[0])
blobs = [open(p, "rb").read() for p in args[1:]]
images = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
n = 0
t0, c0 = time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < seconds:
    for b, im in zip(blobs, images):
        x = pipeline(im if decoded else Image.open(io.BytesIO(b)).convert("RGB"))
        n += 1
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print("images_per_s %.1f images_per_cpu_s %.1f" % (n / dt, n / cpu))
