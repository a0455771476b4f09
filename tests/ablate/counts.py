"""counts.py — independent parameter and MAC counts for `rxc ablate` checks.

seed C D CLASSES      params and MACs of the seed's ResNeXt-50 layout
                      (shared/seed/README.md: no max-pool, stride 2 on the
                      grouped 3x3 of every stage's first block, projection
                      shortcut there), from a closed formula written here
tv C D CLASSES        params and MACs of torchvision's ResNet with
                      groups=C, width_per_group=D, counted by PyTorch
                      (params: numel of trainable tensors; MACs: forward
                      hooks on every Conv2d and Linear)
Prints "params macs".
"""
import sys


def seed_counts(c, d, classes, size=224):
    params, macs = 0, 0

    def conv(cin, cout, k, h_out, groups=1):
        nonlocal params, macs
        p = cout * (cin // groups) * k * k
        params += p
        macs += p * h_out * h_out

    def bn(ch):
        nonlocal params
        params += 2 * ch

    h = size // 2
    conv(3, 64, 7, h)
    bn(64)
    cin = 64
    for s, blocks in enumerate([3, 4, 6, 3]):
        out, w = 256 * 2 ** s, c * d * 2 ** s
        for i in range(blocks):
            h_in = h
            if i == 0:
                h = h // 2
            conv(cin, w, 1, h_in)
            bn(w)
            conv(w, w, 3, h, groups=c)
            bn(w)
            conv(w, out, 1, h)
            bn(out)
            if i == 0:
                conv(cin, out, 1, h)
                bn(out)
            cin = out
    params += 2048 * classes + classes
    macs += 2048 * classes
    return params, macs


def tv_counts(c, d, classes):
    import torch  # noqa: PLC0415
    from torchvision.models.resnet import Bottleneck, ResNet  # noqa: PLC0415

    net = ResNet(Bottleneck, [3, 4, 6, 3], groups=c, width_per_group=d, num_classes=classes).eval()
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, torch.nn.Conv2d):
            macs += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            macs += mod.in_features * mod.out_features

    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, 224, 224))
    return params, macs


if __name__ == "__main__":
    kind, c, d, classes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    p, m = seed_counts(c, d, classes) if kind == "seed" else tv_counts(c, d, classes)
    print(p, m)
