#!/usr/bin/env python3
"""Op-level forward and backward checks of the training compiler against PyTorch.

For each case: a single-op .net network (the op's output is the network
output), random x, random output gradient dy and random parameters; the
runner (`rxc grad`, or tests/ops' op_runner built on compile_training + the
CPU executor) computes the output, the loss sum(output * dy), the gradient
w.r.t. the input and every parameter, and the BN running statistics after
the step. torch.autograd computes the same. Relative error:
    max|a - b| / max(1, max|b|)   per tensor, must be <= 1e-4.
Prints PASS/FAIL lines (tests/harness.py), each named by OP_CASE_PREFIX (by
default rxcgrad_, cuda_ or op_ for the runner) and the case.
usage: check_ops.py RUNNER [CASE...]     check_ops.py --list   (the case names)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import harness
from safetensors_io import read_st, write_st

TOL = 1e-4
RUNNER = sys.argv[1]
# `rxc grad` (the trainer's verification command) reports the summed loss and
# no BN buffers; op_runner reports per-sample losses and the buffers too.
VIA_RXC = os.path.basename(RUNNER.split()[0]) == "rxc"
if VIA_RXC:
    RUNNER = RUNNER + " grad"
PREFIX = os.environ.get("OP_CASE_PREFIX") or ("rxcgrad_" if VIA_RXC else "cuda_" if os.environ.get("OP_DEVICE") == "cuda"
                                              else "op_")
ONLY = sys.argv[2:] if len(sys.argv) > 2 else None
rng = np.random.default_rng(1234)
torch.manual_seed(0)


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


class Case:
    def __init__(self, name, cin, h, w, body, module, batch=3, pre=None, extra_check=None):
        self.name, self.cin, self.h, self.w = name, cin, h, w
        self.body, self.module, self.batch = body, module, batch
        self.extra_check = extra_check


def conv_case(name, cin, h, w, cout, k, stride, pad, groups, bias, batch=2, dilation=1):
    kk = k if isinstance(k, int) else k
    body = f"return op: conv(input, {cout}, {kk}, stride={stride}, padding={pad}, groups={groups}, bias={'true' if bias else 'false'}"
    body += f", dilation={dilation})" if dilation != 1 else ")"
    m = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias, dilation=dilation)
    return Case(name, cin, h, w, body, {"op": m}, batch)


def run_case(c, tmp):
    net = os.path.join(tmp, c.name + ".net")
    with open(net, "w") as f:
        f.write(f"network t {{\n    input {c.cin}x{c.h}x{c.w}\n    classes 10\n    {c.body}\n}}\n")
    x0 = c.x if getattr(c, "x", None) is not None else rng.standard_normal((c.batch, c.cin, c.h, c.w))
    x = torch.tensor(np.asarray(x0, np.float32), requires_grad=True)
    # PyTorch reference: the modules in c.module are named as the .net labels
    params = {}
    for pre, mod in c.module.items():
        for n, t in mod.named_parameters():
            with torch.no_grad():
                t.copy_(torch.tensor(rng.standard_normal(t.shape).astype(np.float32) * 0.5))
            params[f"{pre}.{n}"] = t
        for n, t in mod.named_buffers():
            if "num_batches" in n:
                continue
            with torch.no_grad():
                if "running_var" in n:
                    t.copy_(torch.tensor(rng.uniform(0.5, 1.5, t.shape).astype(np.float32)))
                else:
                    t.copy_(torch.tensor(rng.standard_normal(t.shape).astype(np.float32)))
            params[f"{pre}.{n}"] = t
        mod.train()
    W = {k: v.detach().numpy().copy() for k, v in params.items()}
    for pre, mod in c.module.items():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):  # strict loading wants the whole state_dict
            W[f"{pre}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    fwd = c.forward if hasattr(c, "forward") else None
    with torch.random.fork_rng():
        y = fwd(x) if fwd else list(c.module.values())[0](x)
    dy = torch.tensor(rng.standard_normal(tuple(y.shape)).astype(np.float32))
    (y * dy).sum().backward()
    bpath, wpath, opath = (os.path.join(tmp, c.name + s) for s in ("_b.st", "_w.st", "_o.st"))
    write_st(bpath, {"x": x.detach().numpy(), "y": np.zeros(c.batch, np.int64), "dy": dy.numpy()})
    write_st(wpath, W)
    r = subprocess.run(RUNNER.split() + [net, "--batch", bpath, "--init", wpath, "--out", opath],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"runner failed: {(r.stderr or r.stdout).strip()[:300]}"
    O = read_st(opath)
    errs = []
    checks = [("output", O.get("output"), y.detach().numpy()),
              ("grad.x", O.get("grad.x"), x.grad.numpy())]
    for k, t in params.items():
        if t.requires_grad:
            checks.append(("grad." + k, O.get("grad." + k), t.grad.numpy() if t.grad is not None else np.zeros(t.shape)))
        elif not VIA_RXC:
            checks.append((k, O.get(k), t.detach().numpy()))
    worst = 0.0
    for nm, a, b in checks:
        if a is None:
            errs.append(f"{nm} missing")
            continue
        a = np.asarray(a).reshape(b.shape) if np.asarray(a).size == b.size else a
        e = rel_err(a, b)
        worst = max(worst, e)
        if not e <= TOL:
            errs.append(f"{nm} rel err {e:.2e}")
    ls = np.asarray(O.get("loss"))
    ref_loss = (y * dy).detach().reshape(c.batch, -1).sum(1).numpy()
    if VIA_RXC:
        ref_loss = ref_loss.sum(keepdims=True)
    e = rel_err(ls, ref_loss)
    if not e <= TOL:
        errs.append(f"loss rel err {e:.2e}")
    if c.extra_check:
        m = c.extra_check(O, x, y)
        if m:
            errs.append(m)
    return "; ".join(errs) if errs else None


def seq(*mods_and_fns):
    """forward through a mix of named modules and functions"""
    def f(x):
        for m in mods_and_fns:
            x = m(x)
        return x
    return f


def cases():
    cs = []
    # convolutions: odd sizes, strides, padding, groups of widths 1..64, bias or not, the 7x7 stem
    cs.append(conv_case("conv1x1", 8, 5, 7, 12, 1, 1, 0, 1, False))
    cs.append(conv_case("conv1x1_bias", 6, 4, 3, 5, 1, 1, 0, 1, True))
    cs.append(conv_case("conv1x1_stride2", 8, 7, 9, 16, 1, 2, 0, 1, False))
    cs.append(conv_case("conv3x3_pad1", 5, 9, 7, 6, 3, 1, 1, 1, True))
    cs.append(conv_case("conv3x3_stride2_odd", 6, 11, 9, 8, 3, 2, 1, 1, False))
    cs.append(conv_case("conv3x3_nopad", 3, 8, 8, 4, 3, 1, 0, 1, True))
    cs.append(conv_case("conv5x5_stride3_pad2", 4, 13, 10, 6, 5, 3, 2, 1, False))
    cs.append(conv_case("stem7x7_stride2", 3, 23, 21, 16, 7, 2, 3, 1, False))
    for gw in (1, 2, 4, 8, 16, 32, 64):
        groups = 2 if gw >= 32 else 4
        cs.append(conv_case(f"grouped3x3_width{gw}", gw * groups, 7 if gw < 32 else 5, 6 if gw < 32 else 5,
                            gw * groups, 3, 2 if gw in (4, 32) else 1, 1, groups, gw == 8, batch=2))
    # shapes for the CPU's direct grouped conv steps (target/cpu/conv_cpu.c): 8-lane blocks not paired
    # (24), taps off the stride in the data gradient (5x5/3), no padding, an odd group count (PAIR
    # needs an even one: im2col + GEMM), 4 -> 8 channels per group (GEMM path)
    cs.append(conv_case("grouped3x3_width24", 48, 6, 5, 48, 3, 1, 1, 2, False, batch=2))
    cs.append(conv_case("grouped5x5_width8_stride3_pad2", 16, 11, 10, 16, 5, 3, 2, 2, True, batch=2))
    cs.append(conv_case("grouped3x3_width4_nopad_stride2", 8, 9, 8, 8, 3, 2, 0, 2, False, batch=3))
    cs.append(conv_case("grouped3x3_width4_groups3", 12, 6, 6, 12, 3, 1, 1, 3, False, batch=2))
    cs.append(conv_case("grouped3x3_width4_to8", 16, 6, 7, 32, 3, 1, 1, 4, False, batch=2))
    cs.append(conv_case("depthwise3x3", 6, 8, 8, 6, 3, 1, 1, 6, False))
    cs.append(conv_case("grouped1x1", 8, 5, 5, 12, 1, 1, 0, 4, False))
    # dilation (im2col + GEMM on every target): strides that share a factor with it, groups
    cs.append(conv_case("dilated3x3_d2", 5, 9, 8, 6, 3, 1, 2, 1, True, dilation=2))
    cs.append(conv_case("dilated3x3_d2_stride2", 4, 11, 9, 6, 3, 2, 2, 1, False, dilation=2))
    cs.append(conv_case("dilated3x3_d3_stride2_grouped", 8, 12, 11, 8, 3, 2, 1, 2, False, dilation=3))
    c = Case("dilated_default_padding", 4, 7, 9, "return op: conv(input, 6, [3, 5], dilation=[2, 1])",
             {"op": nn.Conv2d(4, 6, (3, 5), 1, (2, 2), dilation=(2, 1), bias=False)}, batch=2)
    cs.append(c)
    # batchnorm (train mode, batch statistics; running stats checked after the step)
    bn = nn.BatchNorm2d(7)
    cs.append(Case("batchnorm_train", 7, 5, 6, "return op: batchnorm(input)", {"op": bn}, batch=4))
    bnm = nn.BatchNorm2d(5, eps=1e-3, momentum=0.3)
    cs.append(Case("batchnorm_eps_momentum", 5, 3, 3, "return op: batchnorm(input, eps=0.001, momentum=0.3)", {"op": bnm}, batch=3))
    c = Case("batchnorm_relu", 6, 5, 5, "return relu(op: batchnorm(input))", {"op": nn.BatchNorm2d(6)}, batch=3)
    c.forward = lambda x, m=c.module["op"]: F.relu(m(x))
    cs.append(c)
    c = Case("relu", 5, 6, 7, "return relu(input)", {}, batch=2)
    c.forward = F.relu
    cs.append(c)
    c = Case("sigmoid", 4, 5, 3, "return sigmoid(input)", {}, batch=2)
    c.forward = torch.sigmoid
    cs.append(c)
    c = Case("add_same", 4, 5, 5, "a = relu(input)\n    return a + sigmoid(input)", {}, batch=2)
    c.forward = lambda x: F.relu(x) + torch.sigmoid(x)
    cs.append(c)
    c = Case("mul_same", 4, 5, 5, "return input * sigmoid(input)", {}, batch=2)
    c.forward = lambda x: x * torch.sigmoid(x)
    cs.append(c)
    # SE-style broadcast multiply: x * sigmoid(conv(gap(x)))
    se = nn.Conv2d(6, 6, 1, bias=True)
    c = Case("mul_broadcast_se", 6, 5, 4, "s = sigmoid(op: conv(global_avgpool(input), 6, 1, bias=true))\n    return input * s",
             {"op": se}, batch=3)
    c.forward = lambda x, m=se: x * torch.sigmoid(m(F.adaptive_avg_pool2d(x, 1)))
    cs.append(c)
    c = Case("add_broadcast", 6, 4, 4, "return input + global_avgpool(input)", {}, batch=2)
    c.forward = lambda x: x + F.adaptive_avg_pool2d(x, 1)
    cs.append(c)
    # residual block tail: relu(bn(conv(x)) + x)
    rc, rb = nn.Conv2d(6, 6, 3, 1, 1, bias=False), nn.BatchNorm2d(6)
    c = Case("residual_add_relu", 6, 6, 5, "return relu(bn: batchnorm(op: conv(input, 6, 3)) + input)", {"op": rc, "bn": rb}, batch=3)
    c.forward = lambda x: F.relu(rb(rc(x)) + x)
    cs.append(c)
    # a chain of residual blocks: every block output is recomputed in backward
    # (fuse.c expands the chain inline), and each feeds a convolution's weight gradient
    ch = {f"c{i}": nn.Conv2d(5, 5, 3, 1, 1, bias=False) for i in range(4)}
    ch.update({f"b{i}": nn.BatchNorm2d(5) for i in range(3)})
    c = Case("residual_chain", 5, 6, 6,
             "x = input\n    for i in 0..3 {\n        x = relu(\"b{i}\": batchnorm(\"c{i}\": conv(x, 5, 3)) + x)\n    }\n"
             "    return c3: conv(x, 5, 3)", ch, batch=3)

    def chain(x, ch=ch):
        for i in range(3):
            x = F.relu(ch[f"b{i}"](ch[f"c{i}"](x)) + x)
        return ch["c3"](x)
    c.forward = chain
    cs.append(c)
    # pools
    for nm, k, s, p, ceil, h, w in (("maxpool3s2p1", 3, 2, 1, False, 9, 8), ("maxpool2", 2, 2, 0, False, 6, 7),
                                     ("maxpool3s2_ceil", 3, 2, 0, True, 8, 10)):
        c = Case(nm, 4, h, w, f"return maxpool(input, {k}, stride={s}, padding={p}, ceil_mode={'true' if ceil else 'false'})", {}, batch=2)
        c.forward = lambda x, k=k, s=s, p=p, ceil=ceil: F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        cs.append(c)
    # max-pool ties: PyTorch routes the gradient to the first maximal element
    c = Case("maxpool_ties", 3, 6, 6, "return maxpool(relu(input), 3, stride=1, padding=1)", {}, batch=2)
    c.forward = lambda x: F.max_pool2d(F.relu(x), 3, 1, 1)
    cs.append(c)
    for nm, k, s, p, ceil, cip, h, w in (("avgpool2", 2, 2, 0, False, True, 6, 7), ("avgpool3s2p1", 3, 2, 1, False, True, 9, 8),
                                          ("avgpool3s2p1_nopadcount", 3, 2, 1, False, False, 9, 8),
                                          ("avgpool3s2_ceil", 3, 2, 1, True, False, 8, 10),
                                          ("avgpool3s2_ceil_padcount", 3, 2, 1, True, True, 9, 10),
                                          ("avgpool2s2_ceil_odd", 2, 2, 0, True, True, 7, 5)):
        c = Case(nm, 4, h, w, f"return avgpool(input, {k}, stride={s}, padding={p}, ceil_mode={'true' if ceil else 'false'}, "
                 f"count_include_pad={'true' if cip else 'false'})", {}, batch=2)
        c.forward = lambda x, k=k, s=s, p=p, ceil=ceil, cip=cip: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        cs.append(c)
    c = Case("global_avgpool", 5, 7, 6, "return global_avgpool(input)", {}, batch=3)
    c.forward = lambda x: F.adaptive_avg_pool2d(x, 1)
    cs.append(c)
    c = Case("global_maxpool", 5, 7, 6, "return global_maxpool(input)", {}, batch=3)
    c.forward = lambda x: F.adaptive_max_pool2d(x, 1)
    cs.append(c)
    # ties: adaptive_max_pool2d routes the gradient to the first maximal position
    # (row-major), as max_pool2d does; small integers tie in most channels
    c = Case("global_maxpool_ties", 6, 5, 4, "return global_maxpool(input) * 3 + input", {}, batch=2)
    c.x = rng.integers(-3, 3, (2, 6, 5, 4))
    c.forward = lambda x: F.adaptive_max_pool2d(x, 1) * 3 + x
    cs.append(c)
    c = Case("flatten", 3, 4, 5, "return flatten(input)", {}, batch=2)
    c.forward = lambda x: torch.flatten(x, 1)
    cs.append(c)
    lin = nn.Linear(3 * 4 * 5, 7)
    c = Case("linear", 3, 4, 5, "return op: linear(flatten(input), 7)", {"op": lin}, batch=3)
    c.forward = lambda x, m=lin: m(torch.flatten(x, 1))
    cs.append(c)
    lin2 = nn.Linear(6, 4, bias=False)
    c = Case("linear_nobias_gap", 6, 3, 3, "return op: linear(flatten(global_avgpool(input)), 4, bias=false)", {"op": lin2}, batch=2)
    c.forward = lambda x, m=lin2: m(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
    cs.append(c)
    l1, b1 = nn.Linear(20, 6), nn.BatchNorm1d(6)
    c = Case("batchnorm1d_on_vector", 5, 2, 2, "return relu(bn: batchnorm(op: linear(flatten(input), 6)))",
             {"op": l1, "bn": b1}, batch=5)
    c.forward = lambda x, l1=l1, b1=b1: F.relu(b1(l1(torch.flatten(x, 1))))
    cs.append(c)
    cc = nn.Conv2d(3, 5, 3, 1, 1, bias=False)
    c = Case("concat", 3, 5, 4, "return concat(relu(input), op: conv(input, 5, 3), input)", {"op": cc}, batch=2)
    c.forward = lambda x, m=cc: torch.cat([F.relu(x), m(x), x], 1)
    cs.append(c)
    # a chain longer than one fused tree may hold (fuse.c splits it)
    c = Case("long_elementwise_chain", 3, 4, 4, "x = input\n    for i in 0..150 {\n        x = sigmoid(relu(x))\n    }\n    return x", {}, batch=2)

    def long_chain(x):
        for _ in range(150):
            x = torch.sigmoid(F.relu(x))
        return x
    c.forward = long_chain
    cs.append(c)
    c = Case("dropout_p0", 4, 3, 3, "return dropout(input, 0)", {}, batch=2)
    c.forward = lambda x: F.dropout(x, 0.0, True)
    cs.append(c)
    cs.extend(activation_cases())
    cs.extend(arithmetic_cases())
    cs.extend(drop_path_cases())
    cs.extend(param_cases())
    cs.extend(channel_cases())
    cs.extend(norm_cases())
    return cs


def layernorm2d(m, x):
    """ConvNeXt's LayerNorm2d: LayerNorm over the channels of each pixel"""
    return m(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def norm_cases():
    """groupnorm (2 groups, one group per channel, on a vector) and layernorm
    over channels (LayerNorm2d, on a map and a vector), eps default and given,
    an input that also feeds another op (its gradient accumulates)."""
    cs = []
    gn = nn.GroupNorm(2, 6)
    c = Case("groupnorm", 6, 5, 4, "return relu(op: groupnorm(input, 2)) + input * 3", {"op": gn}, batch=3)
    c.forward = lambda x, m=gn: F.relu(m(x)) + x * 3
    cs.append(c)
    gi = nn.GroupNorm(4, 4, eps=1e-3)
    c = Case("groupnorm_per_channel", 4, 3, 5, "return op: groupnorm(sigmoid(input) * 2, 4, eps=0.001)", {"op": gi}, batch=2)
    c.x = rng.standard_normal((2, 4, 3, 5)) + 5  # a mean far from zero
    c.forward = lambda x, m=gi: m(torch.sigmoid(x) * 2)
    cs.append(c)
    ln = nn.LayerNorm(5, eps=1e-6)
    c = Case("layernorm2d", 5, 4, 3, "y = op: layernorm(input, eps=1e-6)\n    return y * sigmoid(y) + input", {"op": ln},
             batch=3)
    c.forward = lambda x, m=ln: layernorm2d(m, x) * torch.sigmoid(layernorm2d(m, x)) + x
    cs.append(c)
    lv, gv = nn.LayerNorm(6), nn.GroupNorm(3, 6)
    c = Case("norms_on_vectors", 6, 3, 3,
             "v = flatten(global_avgpool(input))\n    return ln: layernorm(v) + gn: groupnorm(v * 2, 3)",
             {"ln": lv, "gn": gv}, batch=4)
    c.forward = lambda x, a=lv, b=gv: a(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)) + \
        b(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1) * 2)
    cs.append(c)
    return cs


def torch_shuffle(x, g):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


def channel_cases():
    """split, x[c0..c1], x[c0:c1] (also x[:c1], x[c0:]) and channel_shuffle: slices of one value accumulate into
    its gradient (the first writes every channel), overlapping and negative slices."""
    cs = []
    c = Case("channel_split_slice", 8, 3, 4,
             "r = relu(input)\n    parts = split(r, [3, 5])\n    chunks = split(input, 3)\n"
             "    return concat(parts[1] * 2, parts[0], input[2..6], input[-2..8], chunks[2], sigmoid(r[1..4]))", {}, batch=2)
    c.forward = lambda x: torch.cat([F.relu(x)[:, 3:] * 2, F.relu(x)[:, :3], x[:, 2:6], x[:, 6:8], x[:, 6:8],
                                     torch.sigmoid(F.relu(x)[:, 1:4])], 1)
    cs.append(c)
    c = Case("channel_colon_slices", 8, 3, 4,
             "return concat(input[1:3], input[:2] * 2, input[5:], sigmoid(input[-3:-1]), input[2:][:1])", {}, batch=2)
    c.forward = lambda x: torch.cat([x[:, 1:3], x[:, :2] * 2, x[:, 5:], torch.sigmoid(x[:, -3:-1]), x[:, 2:][:, :1]], 1)
    cs.append(c)
    conv = nn.Conv2d(6, 12, 1, bias=False)
    c = Case("channel_shuffle", 6, 4, 3, "y = channel_shuffle(op: conv(input, 12, 1), 3)\n"
             "    v = channel_shuffle(flatten(global_avgpool(y)), 4)\n"
             "    return y * sigmoid(v) + concat(channel_shuffle(input, 2), input)", {"op": conv}, batch=2)

    def shuf(x, m=conv):
        y = torch_shuffle(m(x), 3)
        v = torch_shuffle(F.adaptive_avg_pool2d(y, 1), 4)
        return y * torch.sigmoid(v) + torch.cat([torch_shuffle(x, 2), x], 1)
    c.forward = shuf
    cs.append(c)
    return cs


class Holder(nn.Module):
    """parameters named as a .net file's labels name its param() tensors"""
    def __init__(self, **shapes):
        super().__init__()
        for k, shp in shapes.items():
            setattr(self, k, nn.Parameter(torch.zeros(shp)))


def param_cases():
    """param(): a learnable tensor as a value, in each shape it may have: [C]
    (timm's layer scale gamma), [C,1,1] (torchvision's CNBlock layer_scale),
    [1] (one scalar for every sample) and [C,H,W] (a learned map)."""
    cs = []
    m = Holder(gamma=(4,), ls=(4, 1, 1), s=(1,), pos=(4, 3, 5))
    c = Case("param_layer_scale", 4, 3, 5,
             "y = relu(input) * p.gamma: param(shape=[4], init=1e-6) + input\n"
             "    y = y * p.ls: param(shape=[4, 1, 1]) - p.s: param(shape=[1], init=0.5) * y\n"
             "    return y + p.pos: param(shape=[4, 3, 5], init=normal(0, 0.02))", {"p": m}, batch=3)

    def fwd(x, m=m):
        y = F.relu(x) * m.gamma.view(1, -1, 1, 1) + x
        y = y * m.ls - m.s * y
        return y + m.pos
    c.forward = fwd
    cs.append(c)
    return cs


def rxc_uniform(seed, salt, index):
    """rxc's counter-based uniform draw KE_RAND(salt, index) of a step seeded
    with `seed` (compiler/kir.c, kir_rand_source)."""
    m = (1 << 64) - 1

    def splitmix64(x):
        x = (x + 0x9e3779b97f4a7c15) & m
        x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & m
        x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & m
        return x ^ (x >> 31)
    stream = splitmix64(splitmix64(seed) ^ salt)
    return np.float32(splitmix64(stream ^ index) >> 40) * np.float32(1.0 / 16777216.0)


def drop_path_cases():
    """Stochastic depth: one draw per sample, the mask reproduced from rxc's RNG
    (op_runner's step seed 12345, salt = the drop_path node's id), then timm's
    drop_path (x * mask / (1 - p)) in PyTorch, forward and backward."""
    cs = []
    for nm, body, node, p, pre, post in (
            ("drop_path", "return drop_path(input, 0.4)", 1, 0.4, lambda x: x, lambda d, x: d),
            ("drop_path_residual", "return relu(drop_path(sigmoid(input) * 3, 0.5) + input)", 3, 0.5,
             lambda x: torch.sigmoid(x) * 3, lambda d, x: F.relu(d + x))):
        batch = 8
        keep = np.array([p <= rxc_uniform(12345, node, i) for i in range(batch)])
        c = Case(nm, 3, 4, 5, body, {}, batch=batch)

        def fwd(x, keep=keep, p=p, pre=pre, post=post):
            mask = torch.tensor(keep, dtype=torch.float32).view(-1, 1, 1, 1)
            return post(pre(x) * mask / (1 - p), x)
        c.forward = fwd
        c.extra_check = (lambda O, x, y, keep=keep: None if 0 < keep.sum() < len(keep)
                         else "the mask keeps or drops every sample: the case tests nothing")
        cs.append(c)
    return cs


def activation_cases():
    """The activations on N(0, 2^2) inputs (so that hardswish's and relu6's
    outer pieces are reached), then all of them at their kinks."""
    cs = []
    for nm, body, fn in (("silu", "silu(input)", F.silu), ("gelu", "gelu(input)", F.gelu),
                         ("gelu_tanh", 'gelu(input, approximate="tanh")', lambda x: F.gelu(x, approximate="tanh")),
                         ("hardswish", "hardswish(input)", F.hardswish),
                         ("hardsigmoid", "hardsigmoid(input)", F.hardsigmoid), ("relu6", "relu6(input)", F.relu6),
                         ("tanh", "tanh(input)", torch.tanh), ("leaky_relu", "leaky_relu(input)", F.leaky_relu),
                         ("leaky_relu_slope", "leaky_relu(input, slope=0.2)", lambda x: F.leaky_relu(x, 0.2)),
                         ("elu", "elu(input)", F.elu), ("elu_alpha", "elu(input, alpha=0.5)", lambda x: F.elu(x, 0.5))):
        c = Case(nm, 4, 5, 6, f"return {body}", {}, batch=2)
        c.x = rng.standard_normal((2, 4, 5, 6)) * 2
        c.forward = fn
        cs.append(c)
    # every kink at its exact value: PyTorch picks a side at each (relu6 and hardsigmoid
    # pass no gradient at their ends, hardswish passes -0.5 and 1.5 at -3 and 3, leaky_relu
    # the slope at 0, elu alpha at 0)
    kinks = np.array([-3, 3, 0, 6, -6, -1e-3, 1e-3, 2.5, -2.5, 7, -0.5, 0.5])
    c = Case("activation_kinks", 2, 3, 4,
             "return hardswish(input) + hardsigmoid(input) * 3 + relu6(input) * 5 + leaky_relu(input, 0.1) * 7"
             " + elu(input) * 11 + gelu(input) + silu(input)", {}, batch=2)
    c.x = np.resize(kinks, (2, 2, 3, 4))
    c.forward = lambda x: (F.hardswish(x) + F.hardsigmoid(x) * 3 + F.relu6(x) * 5 + F.leaky_relu(x, 0.1) * 7
                           + F.elu(x) * 11 + F.gelu(x) + F.silu(x))
    cs.append(c)
    return cs


def arithmetic_cases():
    """Tensor-number and tensor-tensor arithmetic: -, /, negation, and
    broadcasts of a {1,1,C} map on either side of sub and div."""
    cs = []
    c = Case("scalar_arith", 3, 4, 5, "return (input * 0.5 + 1) / 4 - 2 * (3 - input) + -input - 0.25", {}, batch=2)
    c.forward = lambda x: (x * 0.5 + 1) / 4 - 2 * (3 - x) + -x - 0.25
    cs.append(c)
    c = Case("sub_same", 4, 5, 5, "return sub(relu(input), sigmoid(input)) - input", {}, batch=2)
    c.forward = lambda x: F.relu(x) - torch.sigmoid(x) - x
    cs.append(c)
    c = Case("div_same", 4, 5, 5, "return div(input, sigmoid(input) + 0.5) / (tanh(input) + 2)", {}, batch=2)
    c.forward = lambda x: x / (torch.sigmoid(x) + 0.5) / (torch.tanh(x) + 2)
    cs.append(c)
    c = Case("sub_broadcast", 5, 4, 3, "m = global_avgpool(input)\n    return (input - m) + (sigmoid(m) - input) * 3", {},
             batch=2)
    c.forward = lambda x: (x - F.adaptive_avg_pool2d(x, 1)) + (torch.sigmoid(F.adaptive_avg_pool2d(x, 1)) - x) * 3
    cs.append(c)
    se = nn.Conv2d(5, 5, 1, bias=True)
    c = Case("div_broadcast", 5, 4, 3,
             "s = sigmoid(op: conv(global_avgpool(input), 5, 1, bias=true)) + 0.5\n    return input / s + s / (sigmoid(input) + 1)",
             {"op": se}, batch=2)

    def div_bc(x, m=se):
        s = torch.sigmoid(m(F.adaptive_avg_pool2d(x, 1))) + 0.5
        return x / s + s / (torch.sigmoid(x) + 1)
    c.forward = div_bc
    cs.append(c)
    # per-sample broadcasts: a {1,1,1} map and a {1} vector against {H,W,C}, on either side
    sc = nn.Conv2d(5, 1, 1, bias=True)
    c = Case("broadcast_per_sample", 5, 4, 3,
             "s = sigmoid(op: conv(global_avgpool(input), 1, 1, bias=true))\n    v = flatten(s) + 0.5\n"
             "    return input * s + (s - input) / v + v * relu(input) - div(s, sigmoid(input) + 1)",
             {"op": sc}, batch=3)

    def per_sample(x, m=sc):
        s = torch.sigmoid(m(F.adaptive_avg_pool2d(x, 1)))
        v = torch.flatten(s, 1) + 0.5
        vb = v.view(-1, 1, 1, 1)
        return x * s + (s - x) / vb + vb * F.relu(x) - s / (torch.sigmoid(x) + 1)
    c.forward = per_sample
    cs.append(c)
    c = Case("broadcast_per_sample_vector", 6, 1, 1,
             "v = flatten(input)\n    s = flatten(global_avgpool(op: conv(input, 1, 1)))\n    return v * s - s / (sigmoid(v) + 1)",
             {"op": nn.Conv2d(6, 1, 1, bias=False)}, batch=3)
    c.forward = lambda x, m=c.module["op"]: (torch.flatten(x, 1) * torch.flatten(m(x), 1)
                                             - torch.flatten(m(x), 1) / (torch.sigmoid(torch.flatten(x, 1)) + 1))
    cs.append(c)
    return cs


def dropout_stats(tmp):
    """p=0.3: about 30% zeros, survivors scaled by 1/(1-p), and the gradient
    uses the same mask (grad.x == output / x * dy elementwise)."""
    net = os.path.join(tmp, "dropout.net")
    with open(net, "w") as f:
        f.write("network t {\n    input 8x16x16\n    classes 10\n    return dropout(input, 0.3)\n}\n")
    x = (rng.uniform(0.5, 1.5, (4, 8, 16, 16))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    b, w, o = (os.path.join(tmp, "dropout" + s) for s in ("_b.st", "_w.st", "_o.st"))
    write_st(b, {"x": x, "y": np.zeros(4, np.int64), "dy": dy})
    write_st(w, {})
    r = subprocess.run(RUNNER.split() + [net, "--batch", b, "--init", w, "--out", o], capture_output=True, text=True)
    if r.returncode != 0:
        return f"runner failed: {r.stderr.strip()[:300]}"
    O = read_st(o)
    out, gx = O["output"], O["grad.x"]
    kept = out != 0
    frac = 1 - kept.mean()
    n = out.size
    sd = (0.3 * 0.7 / n) ** 0.5
    if abs(frac - 0.3) > 5 * sd:
        return f"dropped fraction {frac:.4f}, expected 0.3 +- {5 * sd:.4f}"
    if rel_err(out[kept], x[kept] / 0.7) > TOL:
        return "survivors are not scaled by 1/(1-p)"
    if rel_err(gx, np.where(kept, dy / 0.7, 0)) > TOL:
        return "the gradient does not use the forward mask"
    return None


def cross_entropy_case(tmp, smoothing):
    """softmax cross-entropy with label smoothing, mean over the batch, against
    nn.CrossEntropyLoss(label_smoothing=eps): loss and the gradient of the logits
    (through a linear layer: grad of its weight and of x)."""
    nm = f"ce_ls{smoothing}"
    net = os.path.join(tmp, nm + ".net")
    with open(net, "w") as f:
        f.write("network t {\n    input 3x2x2\n    classes 7\n    return fc: linear(flatten(input), 7)\n}\n"
                f"train {{\n    loss cross_entropy(label_smoothing={smoothing})\n}}\n")
    N = 5
    lin = nn.Linear(12, 7)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(rng.standard_normal((7, 12)).astype(np.float32)))
        lin.bias.copy_(torch.tensor(rng.standard_normal(7).astype(np.float32)))
    x = torch.tensor(rng.standard_normal((N, 3, 2, 2)).astype(np.float32), requires_grad=True)
    y = torch.tensor(rng.integers(0, 7, N), dtype=torch.int64)
    logits = lin(torch.flatten(x, 1))
    per = F.cross_entropy(logits, y, label_smoothing=smoothing, reduction="none")
    F.cross_entropy(logits, y, label_smoothing=smoothing).backward()
    b, w, o = (os.path.join(tmp, nm + s) for s in ("_b.st", "_w.st", "_o.st"))
    write_st(b, {"x": x.detach().numpy(), "y": y.numpy()})
    write_st(w, {"fc.weight": lin.weight.detach().numpy(), "fc.bias": lin.bias.detach().numpy()})
    r = subprocess.run(RUNNER.split() + [net, "--batch", b, "--init", w, "--out", o], capture_output=True, text=True)
    if r.returncode != 0:
        return f"runner failed: {r.stderr.strip()[:300]}"
    O = read_st(o)
    errs = []
    for k, a, ref in (("logits", O["output"], logits.detach().numpy()), ("loss", O["loss"], per.detach().numpy()),
                      ("grad.fc.weight", O["grad.fc.weight"], lin.weight.grad.numpy()),
                      ("grad.fc.bias", O["grad.fc.bias"], lin.bias.grad.numpy()), ("grad.x", O["grad.x"], x.grad.numpy())):
        e = rel_err(a, ref)
        if not e <= TOL:
            errs.append(f"{k} rel err {e:.2e}")
    return "; ".join(errs) if errs else None


def normalize_u8_case(tmp):
    """uint8 input normalized by the first kernel: (x/255 - mean)/std per channel,
    then a 7x7 stride-2 stem with BN and ReLU; the input gradient is w.r.t. the
    normalized image."""
    net = os.path.join(tmp, "u8.net")
    with open(net, "w") as f:
        f.write("network t {\n    input 3x13x11\n    classes 10\n"
                "    return relu(bn: batchnorm(op: conv(input, 8, 7, stride=2, padding=3)))\n}\n")
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    conv, bn = nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(rng.standard_normal(conv.weight.shape).astype(np.float32) * 0.2))
    xu = rng.integers(0, 256, (2, 3, 13, 11)).astype(np.float32)
    xn = ((torch.tensor(xu) / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).requires_grad_(True)
    y = F.relu(bn(conv(xn)))
    dy = torch.tensor(rng.standard_normal(tuple(y.shape)).astype(np.float32))
    (y * dy).sum().backward()
    b, w, o = (os.path.join(tmp, "u8" + s) for s in ("_b.st", "_w.st", "_o.st"))
    write_st(b, {"x": xu, "y": np.zeros(2, np.int64), "dy": dy.numpy()})
    W = {"op.weight": conv.weight.detach().numpy(), "bn.weight": bn.weight.detach().numpy(),
         "bn.bias": bn.bias.detach().numpy(), "bn.running_mean": np.zeros(8, np.float32),
         "bn.running_var": np.ones(8, np.float32)}
    write_st(w, W)
    env = dict(os.environ, OP_U8_NORMALIZE=",".join(str(v) for v in mean + std))
    r = subprocess.run(RUNNER.split() + [net, "--batch", b, "--init", w, "--out", o], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return f"runner failed: {r.stderr.strip()[:300]}"
    O = read_st(o)
    errs = []
    for k, a, ref in (("output", O["output"], y.detach().numpy()), ("grad.x", O["grad.x"], xn.grad.numpy()),
                      ("grad.op.weight", O["grad.op.weight"], conv.weight.grad.numpy()),
                      ("bn.running_mean", O["bn.running_mean"], bn.running_mean.numpy())):
        e = rel_err(a, ref)
        if not e <= TOL:
            errs.append(f"{k} rel err {e:.2e}")
    return "; ".join(errs) if errs else None


def eval_case(tmp):
    """PHASE_FORWARD_EVAL: batchnorm with the running statistics, dropout and drop_path as identity."""
    net = os.path.join(tmp, "eval.net")
    with open(net, "w") as f:
        f.write("network t {\n    input 6x5x4\n    classes 10\n    return drop_path(dropout(relu(bn: batchnorm(input)), 0.5), 0.3)\n}\n")
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(rng.standard_normal(6).astype(np.float32)))
        bn.bias.copy_(torch.tensor(rng.standard_normal(6).astype(np.float32)))
        bn.running_mean.copy_(torch.tensor(rng.standard_normal(6).astype(np.float32)))
        bn.running_var.copy_(torch.tensor(rng.uniform(0.5, 2, 6).astype(np.float32)))
    bn.eval()
    x = rng.standard_normal((3, 6, 5, 4)).astype(np.float32)
    ref = F.dropout(F.relu(bn(torch.tensor(x))), 0.5, training=False).detach().numpy()
    b, w, o = (os.path.join(tmp, "eval" + s) for s in ("_b.st", "_w.st", "_o.st"))
    write_st(b, {"x": x, "y": np.zeros(3, np.int64), "dy": np.zeros_like(ref)})
    write_st(w, {"bn." + k: v.detach().numpy() for k, v in bn.state_dict().items() if "num_batches" not in k})
    env = dict(os.environ, OP_EVAL="1")
    r = subprocess.run(RUNNER.split() + [net, "--batch", b, "--init", w, "--out", o], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return f"runner failed: {r.stderr.strip()[:300]}"
    O = read_st(o)
    e = rel_err(O["output"], ref)
    if not e <= TOL:
        return f"output rel err {e:.2e}"
    e = rel_err(O["bn.running_mean"], bn.running_mean.numpy())
    if not e == 0:
        return "eval mode changed the running statistics"
    return None


def thread_independence(tmp):
    """The same step with 1 and 2 threads gives bit-identical outputs, losses and
    gradients (fixed KF_COLS chunking, GEMM tiles that never split k)."""
    net = os.path.join(tmp, "threads.net")
    with open(net, "w") as f:
        f.write("network t {\n    input 3x20x20\n    classes 10\n"
                "    x = relu(bn1: batchnorm(conv1: conv(input, 32, 3, stride=2)))\n"
                "    y = relu(bn2: batchnorm(conv2: conv(x, 32, 3, groups=8)))\n"
                "    x = relu(bn3: batchnorm(conv3: conv(y, 32, 1)) + x)\n"
                "    return fc: linear(flatten(global_avgpool(maxpool(x, 3, stride=2, padding=1))), 10)\n}\n"
                "train {\n    loss cross_entropy(label_smoothing=0.1)\n}\n")
    W = {}
    for nm, shape in (("conv1.weight", (32, 3, 3, 3)), ("conv2.weight", (32, 4, 3, 3)), ("conv3.weight", (32, 32, 1, 1)),
                      ("fc.weight", (10, 32)), ("fc.bias", (10,))):
        W[nm] = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    for b in ("bn1", "bn2", "bn3"):
        W[b + ".weight"] = np.ones(32, np.float32)
        W[b + ".bias"] = np.zeros(32, np.float32)
        W[b + ".running_mean"] = np.zeros(32, np.float32)
        W[b + ".running_var"] = np.ones(32, np.float32)
    b, w = os.path.join(tmp, "threads_b.st"), os.path.join(tmp, "threads_w.st")
    write_st(b, {"x": rng.standard_normal((8, 3, 20, 20)).astype(np.float32), "y": rng.integers(0, 10, 8).astype(np.int64)})
    write_st(w, W)
    outs = []
    for t in ("1", "2"):
        o = os.path.join(tmp, f"threads_o{t}.st")
        env = dict(os.environ, OMP_NUM_THREADS=t)
        r = subprocess.run(RUNNER.split() + [net, "--batch", b, "--init", w, "--out", o, "--update"],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            return f"runner failed: {r.stderr.strip()[:300]}"
        outs.append(read_st(o))
    for k in outs[0]:
        if not np.array_equal(outs[0][k], outs[1][k]):
            return f"{k} differs between 1 and 2 threads"
    return None


def main():
    if RUNNER == "--list":
        for c in cases():
            print(c.name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for c in cases():
            if (ONLY and c.name not in ONLY) or not harness.selected(PREFIX + c.name):
                continue
            try:
                msg = run_case(c, tmp)
            except Exception as ex:  # a crash in one case must not hide the others
                msg = f"exception {type(ex).__name__}: {ex}"
            harness.check(PREFIX + c.name, msg is None, msg)
        extra = [("dropout_statistics", lambda: dropout_stats(tmp)),
                 ("cross_entropy_ls0", lambda: cross_entropy_case(tmp, 0.0)),
                 ("cross_entropy_ls0.1", lambda: cross_entropy_case(tmp, 0.1)),
                 ("normalize_u8_input", lambda: normalize_u8_case(tmp)),
                 ("eval_mode_bn_dropout", lambda: eval_case(tmp)),
                 ("thread_count_independence", lambda: thread_independence(tmp))]
        for nm, fn in extra:
            if (ONLY and nm not in ONLY) or VIA_RXC or not harness.selected(PREFIX + nm):
                continue
            try:
                msg = fn()
            except Exception as ex:
                msg = f"exception {type(ex).__name__}: {ex}"
            harness.check(PREFIX + nm, msg is None, msg)



if __name__ == "__main__":
    main()
