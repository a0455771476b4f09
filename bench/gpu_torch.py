#!/usr/bin/env python3
"""PyTorch side of bench/gpu.sh: training throughput of torchvision's
resnext50_32x4d (10 classes) at 224x224 on the GPU, channels_last, bf16
autocast, AdamW(lr=1e-3, weight_decay=0) and cross-entropy with label
smoothing 0.1 as models/resnext50_32x4d.net, in eager mode and with
torch.compile.

    gpu_torch.py MODE BATCH STEPS [SIZE]     MODE: eager | compile; SIZE 224
Prints one line: `torch MODE BATCH images_per_s peak_reserved_MiB`, or
`torch MODE BATCH n/a REASON`.
"""
import sys
import time


def main():
    mode, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
    try:
        import torch
        import torchvision
    except Exception as e:  # noqa: BLE001
        print(f"torch {mode} {batch} n/a PyTorch/torchvision not installed ({e.__class__.__name__})")
        return 0
    if not torch.cuda.is_available():
        print(f"torch {mode} {batch} n/a no CUDA device visible to PyTorch")
        return 0
    if mode == "compile" and not hasattr(torch, "compile"):
        print(f"torch {mode} {batch} n/a torch.compile needs PyTorch 2")
        return 0
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    model = torchvision.models.resnext50_32x4d(num_classes=10).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = torch.compile(step) if mode == "compile" else step
    for _ in range(5):  # warm-up (and compilation)
        run()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        run()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_reserved() / 2**20
    print(f"torch {mode} {batch} {batch * steps / dt:.1f} {peak:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
