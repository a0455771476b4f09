"""pil_ref.py — reference implementations for tests/data: the seed's AutoAugment
operations written the way its library writes them (PIL ImageOps/ImageEnhance,
Image.transform), with a forced magnitude index and sign, plus torchvision's
transforms. Used by run.sh through $PYTHON."""
import sys
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

RANGES = {
    "shearX": np.linspace(0, 0.3, 10),
    "shearY": np.linspace(0, 0.3, 10),
    "translateX": np.linspace(0, 150 / 331, 10),
    "translateY": np.linspace(0, 150 / 331, 10),
    "rotate": np.linspace(0, 30, 10),
    "color": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10), 0).astype(int),
    "solarize": np.linspace(256, 0, 10),
    "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10),
    "brightness": np.linspace(0.0, 0.9, 10),
    "autocontrast": [0] * 10,
    "equalize": [0] * 10,
    "invert": [0] * 10,
}
FILL = (128, 128, 128)


def rotate_with_fill(img, magnitude):
    rot = img.convert("RGBA").rotate(magnitude)
    return Image.composite(rot, Image.new("RGBA", rot.size, (128,) * 4), rot).convert(img.mode)


def apply_op(img, op, m, sign):
    mag = RANGES[op][m]
    if op == "shearX":
        return img.transform(img.size, Image.AFFINE, (1, mag * sign, 0, 0, 1, 0), Image.BICUBIC, fillcolor=FILL)
    if op == "shearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, mag * sign, 1, 0), Image.BICUBIC, fillcolor=FILL)
    if op == "translateX":
        return img.transform(img.size, Image.AFFINE, (1, 0, mag * img.size[0] * sign, 0, 1, 0), fillcolor=FILL)
    if op == "translateY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, mag * img.size[1] * sign), fillcolor=FILL)
    if op == "rotate":
        return rotate_with_fill(img, mag * sign)
    if op == "color":
        return ImageEnhance.Color(img).enhance(1 + mag * sign)
    if op == "posterize":
        return ImageOps.posterize(img, int(mag))
    if op == "solarize":
        return ImageOps.solarize(img, mag)
    if op == "contrast":
        return ImageEnhance.Contrast(img).enhance(1 + mag * sign)
    if op == "sharpness":
        return ImageEnhance.Sharpness(img).enhance(1 + mag * sign)
    if op == "brightness":
        return ImageEnhance.Brightness(img).enhance(1 + mag * sign)
    if op == "autocontrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op == "invert":
        return ImageOps.invert(img)
    raise ValueError(op)


def diff(a_path, b):
    a = np.asarray(Image.open(a_path).convert("RGB")).astype(np.int32)
    b = np.asarray(b.convert("RGB")).astype(np.int32)
    if a.shape != b.shape:
        return None
    d = np.abs(a - b)
    return float(d.mean()), int(d.max())


if __name__ == "__main__":
    # pil_ref.py aa OP M SIGN IN OURS  -> prints "mean max"
    cmd = sys.argv[1]
    if cmd == "aa":
        op, m, sign, src, ours = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
        ref = apply_op(Image.open(src).convert("RGB"), op, m, sign)
        r = diff(ours, ref)
        print("shape-mismatch" if r is None else "%.4f %d" % r)
