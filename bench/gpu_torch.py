#!/usr/bin/env python3
"""PyTorch side of bench/gpu.sh, on the GPU.

The network is the seed's own ResNeXt-50 32x4d (models/resnext50_32x4d.net,
shared/seed/): a 7x7 stem with no max-pool, every stage's first block strided
on its grouped 3x3, a projection shortcut there, dropout 0.5 before the
classifier; 23,000,394 parameters with 10 classes (checked at start). Not
torchvision's resnext50_32x4d, which has a max-pool and so a quarter of the
seed's activations after the stem.

    gpu_torch.py step MODE BATCH STEPS [SIZE]
        MODE eager | compile. The training step alone on one random batch:
        channels_last, bf16 autocast, AdamW(lr=1e-3, weight_decay=0), cross
        entropy with label smoothing 0.1, as the .net file. Prints
        `torch MODE BATCH images_per_s peak_reserved_MiB`.
    gpu_torch.py epoch DIR BATCH WORKERS EPOCHS
        Whole epochs from JPEG files: ImageFolder(DIR/train) with the seed's
        augmentation (RandomResize([256, 296, 384]) -> RandomCrop(224) -> hflip
        -> AutoAugment(IMAGENET, fill=128) -> ToTensor -> Normalize), a
        DataLoader with WORKERS processes, shuffle, pinned memory, the same
        step in eager mode. Prints `torch epoch BATCH images_per_s` of the
        last epoch (the first pays for cudnn's autotuning and worker start).
Either prints `torch ... n/a REASON` when it cannot run.
These need no GPU:
    gpu_torch.py params            the seed network's parameter count
    gpu_torch.py jpegs DIR N       N synthetic Imagenette-sized JPEGs (the sizes
                                   of ImageNet photographs, quality 90, smooth
                                   content plus grain, so they decode like photos)
                                   in 10 class folders under DIR/train, and 10
                                   per class under DIR/val
"""
import random
import sys
import time

SEED_PARAMS = 23000394


def seed_resnext(torch, classes=10, cardinality=32, width=4, stages=(3, 4, 6, 3), drop=0.5):
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, out, w, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, w, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.conv2 = nn.Conv2d(w, w, 3, stride, 1, groups=cardinality, bias=False)
            self.bn2 = nn.BatchNorm2d(w)
            self.conv3 = nn.Conv2d(w, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.downsample = None
            if stride != 1 or cin != out:
                self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return F.relu(y + (self.downsample(x) if self.downsample is not None else x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            cin = 64
            for s, n in enumerate(stages):
                out = 256 * 2 ** s
                blocks = []
                for i in range(n):
                    blocks.append(Block(cin, out, cardinality * width * 2 ** s, 2 if i == 0 else 1))
                    cin = out
                setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            self.drop = nn.Dropout(drop)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            for s in range(len(stages)):
                x = getattr(self, f"layer{s + 1}")(x)
            return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))

    net = Net()
    n = sum(p.numel() for p in net.parameters())
    if classes == 10 and n != SEED_PARAMS:
        raise SystemExit(f"seed network has {n} parameters, the seed prints {SEED_PARAMS}")
    return net


def training_step(torch, model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def step_mode(torch, mode, batch, steps, size):
    if mode == "compile" and not hasattr(torch, "compile"):
        return "n/a torch.compile needs PyTorch 2"
    dev = torch.device("cuda")
    model = seed_resnext(torch).to(dev).to(memory_format=torch.channels_last)
    step = training_step(torch, model)
    run = torch.compile(step) if mode == "compile" else step
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)
    for _ in range(5):  # warm-up (and compilation)
        run(x, y)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        run(x, y)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return f"{batch * steps / dt:.1f} {torch.cuda.max_memory_reserved() / 2**20:.0f}"


def epoch_mode(torch, root, batch, workers, epochs):
    import torchvision
    from torchvision import transforms as T
    mean, std = [0.4625, 0.4580, 0.4295], [0.2452, 0.2390, 0.2469]

    class RandomResize:  # the seed's: one of the sizes, as the shorter side
        def __init__(self, sizes):
            self.sizes = sizes

        def __call__(self, img):
            return T.functional.resize(img, random.choice(self.sizes))

    tf = T.Compose([RandomResize([256, 296, 384]), T.RandomCrop(224), T.RandomHorizontalFlip(),
                    T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, fill=[128, 128, 128]),
                    T.ToTensor(), T.Normalize(mean, std)])
    data = torchvision.datasets.ImageFolder(f"{root}/train", transform=tf)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers,
                                         pin_memory=True, drop_last=False, persistent_workers=workers > 0)
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    model = seed_resnext(torch).to(dev).to(memory_format=torch.channels_last)
    model.train()
    step = training_step(torch, model)
    rate = 0.0
    for _ in range(epochs):
        torch.cuda.synchronize()
        t0, images = time.perf_counter(), 0
        for x, y in loader:
            x = x.to(dev, non_blocking=True).to(memory_format=torch.channels_last)
            step(x, y.to(dev, non_blocking=True))
            images += len(y)
        torch.cuda.synchronize()
        rate = images / (time.perf_counter() - t0)
    return f"{rate:.1f}"


def write_jpegs(root, n):
    import os
    from multiprocessing import Pool
    jobs = [(f"{root}/train/c{i % 10}", i) for i in range(n)] + [(f"{root}/val/c{i % 10}", n + i) for i in range(100)]
    for d in {d for d, _ in jobs}:
        os.makedirs(d, exist_ok=True)
    with Pool() as pool:
        pool.map(write_one_jpeg, jobs, chunksize=16)


def write_one_jpeg(job):
    import numpy as np
    from PIL import Image
    folder, i = job
    rng = np.random.default_rng(i)
    w, h = [(500, 375), (500, 333), (375, 500), (640, 480), (500, 500)][i % 5]
    coarse = Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    grain = rng.normal(0, 12, (h, w, 3))
    img = np.clip(np.asarray(coarse, np.float64) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(f"{folder}/{i}.jpg", quality=90)


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(f"torch {what} n/a PyTorch not installed ({e.__class__.__name__})")
        return 0
    if what == "jpegs":
        write_jpegs(sys.argv[2], int(sys.argv[3]))
        return 0
    if what == "params":
        print(sum(p.numel() for p in seed_resnext(torch).parameters()))
        return 0
    if what == "step":
        mode, batch, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        size = int(sys.argv[5]) if len(sys.argv) > 5 else 224
        label = f"torch {mode} {batch}"
        run = lambda: step_mode(torch, mode, batch, steps, size)  # noqa: E731
    elif what == "epoch":
        root, batch, workers, epochs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        label = f"torch epoch {batch}"
        run = lambda: epoch_mode(torch, root, batch, workers, epochs)  # noqa: E731
    else:
        print(__doc__)
        return 2
    if not torch.cuda.is_available():
        print(f"{label} n/a no CUDA device visible to PyTorch")
        return 0
    print(f"{label} {run()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
