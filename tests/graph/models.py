"""models.py — the model files against PyTorch: parameter counts, MACs,
state_dict names, shapes and order, for torchvision's models (torchvision's
own state_dict) and for the seed/CIFAR/tiny layouts (an independent PyTorch
implementation written here). MACs are measured with forward hooks on
Conv2d/Linear. Exact equality everywhere (integers)."""
import json, os, subprocess, sys

import torch
import torch.nn as nn
import torchvision

from harness import check as report

RXC = os.environ.get("RXC", "./rxc")


def summary(path, *sets):
    args = [RXC, "summary", path, "--json"]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"rxc summary {path} failed: {r.stderr.strip()[:300]}")
    return json.loads(r.stdout)



def torch_macs(model, chw):
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            total[0] += out[0].numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *chw))
    for h in hs:
        h.remove()
    return total[0]


def compare(name, path, model, chw, sets=()):
    try:
        j = summary(path, *sets)
    except Exception as e:  # noqa: BLE001
        report(name, False, str(e))
        return
    ref = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    got = [(p["name"], list(p["shape"])) for p in j["parameters"]]
    if ref != got:
        diffs = [f"{a} vs {b}" for a, b in zip(ref, got) if a != b][:3]
        report(name + "_names", False, f"{len(ref)} reference entries, {len(got)} from rxc; first differences: {diffs}")
    else:
        report(name + "_names", True)
    n_params = sum(p.numel() for p in model.parameters())
    macs = torch_macs(model, chw)
    report(name + "_counts", j["params"] == n_params and j["macs"] == macs,
           f"rxc params {j['params']} macs {j['macs']}, PyTorch params {n_params} macs {macs}")


# An independent ResNeXt in PyTorch, module names chosen as the model files
# name their layers (torchvision's scheme).
class Bottleneck(nn.Module):
    def __init__(self, cin, width, out, stride, groups):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Net(nn.Module):
    def __init__(self, stem, stem_k, stem_stride, depths, outs, widths, card, first_strides, classes, dropout):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, stem_k, stem_stride, stem_k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        cin = stem
        for s, n in enumerate(depths):
            blocks = []
            for i in range(n):
                blocks.append(Bottleneck(cin, widths[s], outs[s], first_strides[s] if i == 0 else 1, card))
                cin = outs[s]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.depth = len(depths)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for s in range(self.depth):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(self.drop(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


torch.manual_seed(0)
compare("tv_resnext50_32x4d", "models/resnext50_32x4d_tv.net", torchvision.models.resnext50_32x4d(), (3, 224, 224),
        ["classes=1000"])
compare("tv_resnet50", "models/resnet50.net", torchvision.models.resnet50(), (3, 224, 224), ["classes=1000"])
compare("tv_regnet_y_400mf", "examples/regnet_y_400mf.net", torchvision.models.regnet_y_400mf(), (3, 224, 224),
        ["classes=1000"])
compare("tv_efficientnet_b0", "examples/efficientnet_b0.net", torchvision.models.efficientnet_b0(), (3, 224, 224),
        ["classes=1000"])
compare("tv_resnext101_32x8d", "models/resnext101_32x8d.net", torchvision.models.resnext101_32x8d(), (3, 224, 224),
        ["classes=1000"])
compare("tv_resnext50_32x4d_10", "models/resnext50_32x4d_tv.net", torchvision.models.resnext50_32x4d(num_classes=10),
        (3, 224, 224))
compare("seed_resnext50_32x4d", "models/resnext50_32x4d.net",
        Net(64, 7, 2, [3, 4, 6, 3], [256, 512, 1024, 2048], [128, 256, 512, 1024], 32, [2, 2, 2, 2], 10, 0.5),
        (3, 224, 224))
compare("cifar_resnext29_8x64d", "models/resnext29_8x64d.net",
        Net(64, 3, 1, [3, 3, 3], [256, 512, 1024], [512, 1024, 2048], 8, [1, 2, 2], 10, 0.0), (3, 32, 32))
compare("tiny_resnext", "models/tiny_resnext.net",
        Net(32, 3, 2, [1, 1, 1], [64, 128, 256], [32, 64, 128], 8, [2, 2, 2], 10, 0.0), (3, 32, 32))

# The acceptance table of issue 2, literally.
table = [("models/resnext50_32x4d.net", [], 23000394, 4305522688),
         ("models/resnext50_32x4d_tv.net", ["classes=1000"], 25028904, 4230479872),
         ("models/resnet50.net", ["classes=1000"], 25557032, 4089184256),
         ("models/resnext101_32x8d.net", ["classes=1000"], 88791336, 16414015488)]
for path, sets, params, macs in table:
    j = summary(path, *sets)
    report("acceptance_" + os.path.basename(path)[:-4], j["params"] == params and j["macs"] == macs,
           f"params {j['params']} macs {j['macs']}, expected {params} {macs}")

# SE-ResNeXt: torchvision's ResNeXt-50 plus squeeze-excitation gates in PyTorch.
se = torchvision.models.resnext50_32x4d()
se_params = sum(p.numel() for p in se.parameters())
for layer in (se.layer1, se.layer2, se.layer3, se.layer4):
    for blk in layer:
        c = blk.conv3.out_channels
        gate = nn.Sequential(nn.Conv2d(c, c // 16, 1), nn.Conv2d(c // 16, c, 1))
        se_params += sum(p.numel() for p in gate.parameters())
j = summary("examples/se_resnext50_32x4d.net", "classes=1000")
names = {p["name"] for p in j["parameters"]}
report("se_resnext50_counts", j["params"] == se_params and "layer3.5.se_module.fc2.bias" in names,
       f"rxc {j['params']}, PyTorch {se_params}")

# examples/activations.net: the same network in PyTorch has the same
# parameter names, shapes and count.
def act_net():
    def cbn(ci, co, k=1, s=1, g=1):
        return [("conv", nn.Conv2d(ci, co, k, s, k // 2, groups=g, bias=False)), ("bn", nn.BatchNorm2d(co))]

    def block(c, h, se, convs):
        m = nn.Module()
        seq = [(f"{n}{i + 1}", mod) for i, pair in enumerate(convs) for n, mod in pair]
        for n, mod in seq:
            setattr(m, n, mod)
        if se:
            m.fc1 = nn.Conv2d(h, se, 1)
            m.fc2 = nn.Conv2d(se, h, 1)
        return m
    net = nn.Module()
    net.conv1, net.bn1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16)
    net.blocks = nn.Sequential(block(16, 64, 4, [cbn(16, 64), cbn(64, 64, 3, 1, 64), cbn(64, 16)]),
                               block(16, 48, 12, [cbn(16, 48), cbn(48, 48, 3, 1, 48), cbn(48, 16)]),
                               block(16, 32, 0, [cbn(16, 32), cbn(32, 16)]))
    net.conv2, net.bn2 = nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32)
    net.conv3, net.bn3 = nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32)
    net.fc = nn.Linear(32, 10)
    return net


ref = act_net()
ref_shapes = {k: list(v.shape) for k, v in ref.state_dict().items()}
j = summary("examples/activations.net")
got = {p["name"]: p["shape"] for p in j["parameters"]}
ref_params = sum(p.numel() for p in ref.parameters())
report("activations_example", got == ref_shapes and j["params"] == ref_params,
       f"rxc {j['params']} parameters, PyTorch {ref_params}; names differ: {sorted(set(got) ^ set(ref_shapes))[:6]}")

# Figure 3: the three forms have equal counts, and the documented mapping
# from (a)/(b) to (c) covers every (c) tensor exactly.
forms = {k: summary(f"examples/fig3{k}.net") for k in ("a_paths", "b_concat", "c_grouped")}
pc = {k: (v["params"], v["macs"]) for k, v in forms.items()}
report("fig3_equal_counts", len(set(pc.values())) == 1, str(pc))


def shapes(j):
    return {p["name"]: p["shape"] for p in j["parameters"]}


c = shapes(forms["c_grouped"])
C, d = 32, 4
for form in ("a_paths", "b_concat"):
    f = shapes(forms[form])
    ok, why = True, ""
    used = set()
    for name, shp in c.items():
        parts = name.split(".")
        if parts[0] == "block1" and parts[1] in ("conv1", "bn1", "conv2", "bn2") or \
                (form == "a_paths" and parts[:2] == ["block1", "conv3"]):
            axis = 1 if parts[1] == "conv3" else 0
            pieces = [f"block1.path{i}.{'.'.join(parts[1:])}" for i in range(C)]
            if parts[-1] == "num_batches_tracked":
                used.update(pieces)
                continue
            if not all(p in f for p in pieces):
                ok, why = False, f"missing a piece of {name}"
                break
            total = sum(f[p][axis] for p in pieces)
            same = all(f[p][:axis] + f[p][axis + 1:] == shp[:axis] + shp[axis + 1:] for p in pieces)
            if total != shp[axis] or not same or any(f[p][axis] != d for p in pieces):
                ok, why = False, f"{name} {shp} is not the concatenation of its pieces"
                break
            used.update(pieces)
        else:
            if f.get(name) != shp:
                ok, why = False, f"{name}: {f.get(name)} vs {shp}"
                break
            used.add(name)
    if ok and used != set(f):
        ok, why = False, f"unmapped: {sorted(set(f) - used)[:3]}"
    report(f"fig3_mapping_{form}", ok, why)
