"""ddp_ref.py — the PyTorch side of tests/dist's ddp_per_rank_bn case:
DistributedDataParallel with the gloo backend on 2 processes, per-rank
BatchNorm, 3 AdamW steps, rank r on the contiguous slice [r*B/2, (r+1)*B/2)
of the batch, as `mpirun -np 2 rxc step` takes it.

  ddp_ref.py prepare DIR   writes DIR/w.safetensors (initial weights, BN
                           parameters and running stats randomised),
                           DIR/b.safetensors (the global batch of 8) and
                           DIR/ddp.safetensors (rank 0's state_dict after 3
                           steps, the gathered logits of step 1, the global
                           mean losses), DIR/full.safetensors (one process,
                           BatchNorm over the whole batch: what per-rank
                           statistics must differ from)
                           and DIR/full64.safetensors (the same in float64:
                           what SyncBatchNorm on 2 ranks must equal)
  ddp_ref.py check DIR OUT compares rxc's OUT with DIR/ddp.safetensors and
                           prints the problems (nothing when it matches) or,
                           on success, one line starting with "ok "
  ddp_ref.py check_sync DIR ONE TWO
                           the sync_bn case: rxc on 1 rank (ONE) and on 2
                           ranks with sync_bn (TWO), both against the float64
                           whole-batch run; "ok ..." or the problems

DDP's broadcast_buffers (the default) copies rank 0's running statistics to
every rank before each forward; rxc copies them after each update. Rank 0's
buffers, the ones both write out, are the same either way: they only ever
see rank 0's slices. Gradients are averaged (sum / world size) in both.
The process group is rendezvoused through a file and gloo is bound to the
loopback interface: nothing leaves the machine.
"""
import os
import sys

import numpy as np
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import st  # noqa: E402

WORLD = 2
BATCH = 8
STEPS = 3
LR, WEIGHT_DECAY = 0.01, 0.1
# Per tensor: max |rxc - ddp| <= REL * max |ddp| + ABS (the rule of tests/train's optim_* cases).
REL, ABS = 1e-4, 1e-6

NET = """network ddp_bn {
    input 3x8x8
    classes 4
    init pytorch
    x = relu(batchnorm(conv(input, 8, 3)))
    x = relu(batchnorm(conv(x, 8, 3, stride=2)))
    return fc: linear(flatten(global_avgpool(x)), classes)
}
train {
    epochs 3; batch 8; seed 0
    optimizer adamw(lr=0.01, weight_decay=0.1)
    schedule constant
    loss cross_entropy(label_smoothing=0)
}
"""


class ConvBnNet(nn.Module):
    """NET in PyTorch, with rxc's parameter names."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def initial_weights():
    torch.manual_seed(7)
    m = ConvBnNet()
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for bn in (m.bn1, m.bn2):
            bn.weight.copy_(1 + 0.2 * torch.randn(bn.weight.shape, generator=g))
            bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=g))
            bn.running_mean.copy_(0.1 * torch.randn(bn.running_mean.shape, generator=g))
            bn.running_var.copy_(1 + 0.1 * torch.rand(bn.running_var.shape, generator=g))
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def train(model, x, y, all_reduce_loss):
    """STEPS AdamW steps on (x, y): the step-1 logits and each step's loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    model.train()
    logits, losses = None, []
    for k in range(STEPS):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        if k == 0:
            logits = out.detach().clone()
        losses.append(all_reduce_loss(loss.detach().clone()))
    return logits, losses


def ddp_rank(rank, d):
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method="file://" + os.path.join(d, "rendezvous"), rank=rank,
                             world_size=WORLD)
    b, _ = st.read(os.path.join(d, "b.safetensors"))
    part = BATCH // WORLD
    x = torch.tensor(b["x"][rank * part:(rank + 1) * part])
    y = torch.tensor(b["y"][rank * part:(rank + 1) * part])
    model = ConvBnNet()
    model.load_state_dict(initial_weights())
    ddp = nn.parallel.DistributedDataParallel(model)  # broadcast_buffers=True, per-rank BN

    def mean_over_ranks(v):
        tdist.all_reduce(v)
        return float(v) / WORLD

    logits, losses = train(ddp, x, y, mean_over_ranks)
    gathered = [torch.empty_like(logits) for _ in range(WORLD)]
    tdist.all_gather(gathered, logits)
    if rank == 0:
        out = {k: v.numpy() for k, v in model.state_dict().items()}
        out["logits"] = torch.cat(gathered).numpy()
        out["loss"] = np.array(losses, np.float32)
        st.write(os.path.join(d, "ddp.safetensors"), out)
    # Leave together, and without the process group's teardown: with a file rendezvous, a rank
    # whose peer has already gone can hang in it.
    tdist.barrier()
    sys.stdout.flush()
    os._exit(0)


def prepare(d):
    with open(os.path.join(d, "ddp_bn.net"), "w") as f:
        f.write(NET)
    st.write(os.path.join(d, "w.safetensors"), {k: v.numpy() for k, v in initial_weights().items()})
    g = torch.Generator().manual_seed(9)
    # Slices from different distributions, so that per-rank and whole-batch statistics differ.
    x = torch.randn(BATCH, 3, 8, 8, generator=g)
    x[BATCH // WORLD:] = 0.5 + 2 * x[BATCH // WORLD:]
    y = torch.randint(0, 4, (BATCH,), generator=g)
    st.write(os.path.join(d, "b.safetensors"), {"x": x.numpy(), "y": y.numpy().astype(np.int64)})
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(ddp_rank, args=(d,), nprocs=WORLD, join=True)
    torch.set_num_threads(1)
    model = ConvBnNet()
    model.load_state_dict(initial_weights())
    logits, losses = train(model, x, y, float)
    full = {k: v.numpy() for k, v in model.state_dict().items()}
    full["logits"], full["loss"] = logits.numpy(), np.array(losses, np.float32)
    st.write(os.path.join(d, "full.safetensors"), full)
    model = ConvBnNet().double()
    model.load_state_dict(initial_weights())
    logits, losses = train(model, x.double(), y, float)
    full64 = {k: v.numpy().astype(np.float32) if v.is_floating_point() else v.numpy()
              for k, v in model.state_dict().items()}
    full64["logits"], full64["loss"] = logits.numpy().astype(np.float32), np.array(losses, np.float32)
    st.write(os.path.join(d, "full64.safetensors"), full64)


def distance(ours, ref):
    """Per tensor: max |a - b| / (REL * max |b| + ABS); > 1 fails. Missing names are listed."""
    bad, worst = [], {}
    for k, v in ref.items():
        if k not in ours or ours[k].shape != v.shape:
            bad.append(f"{k}: missing or shape {ours[k].shape if k in ours else None} vs {v.shape}")
            continue
        a, b = ours[k].astype(np.float64), v.astype(np.float64)
        worst[k] = float(np.max(np.abs(a - b))) / (REL * float(np.max(np.abs(b))) + ABS) if b.size else 0.0
    return bad, worst


def check(d, out):
    ours, _ = st.read(out)
    ddp, _ = st.read(os.path.join(d, "ddp.safetensors"))
    full, _ = st.read(os.path.join(d, "full.safetensors"))
    bad, worst = distance(ours, ddp)
    bad += [f"{k}: max |diff| {r * REL:.3g} x max |ddp| (allowed {REL:g})" for k, r in sorted(worst.items()) if r > 1]
    if bad:
        print("; ".join(bad[:6]))
        return
    # The case means something only if whole-batch BatchNorm would have failed it.
    _, apart = distance(full, ddp)
    far = max(apart[k] for k in apart if k != "logits" and not k.endswith("num_batches_tracked"))
    if far <= 10:
        print(f"whole-batch BatchNorm lands within {far:.3g}x the tolerance of DDP: the case cannot tell them apart")
        return
    print(f"ok worst tensor {max(worst.values()):.2f}x the tolerance; whole-batch BatchNorm {far:.0f}x")


def check_sync(d, one, two):
    """2 ranks with sync_bn equal 1 rank on the whole batch: each within the tolerance of the
    float64 run, where per-rank BatchNorm (DDP) is far outside it."""
    ref, _ = st.read(os.path.join(d, "full64.safetensors"))
    found = {}
    for name, path in (("1 rank", one), ("2 ranks sync_bn", two)):
        ours, _ = st.read(path)
        bad, worst = distance(ours, ref)
        bad += [f"{name}: {k}: {r:.3g}x the tolerance" for k, r in sorted(worst.items()) if r > 1]
        if bad:
            print("; ".join(bad[:6]))
            return
        found[name] = max(worst.values())
    ddp, _ = st.read(os.path.join(d, "ddp.safetensors"))
    _, apart = distance(ddp, ref)
    far = max(apart[k] for k in apart if k != "logits" and not k.endswith("num_batches_tracked"))
    if far <= 10:
        print(f"per-rank BatchNorm lands within {far:.3g}x the tolerance of the float64 run: the case cannot tell")
        return
    print("ok against float64, worst tensor: " + ", ".join(f"{k} {v:.2f}x" for k, v in found.items()) +
          f" the tolerance; per-rank BatchNorm {far:.0f}x")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    elif sys.argv[1] == "check_sync":
        check_sync(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        check(sys.argv[2], sys.argv[3])
