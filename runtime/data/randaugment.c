/*
 * randaugment.c — RandAugment and TrivialAugmentWide as torchvision 0.14
 * defines them (randaugment.h): augmentation spaces, bins, random choices.
 */
#include "data/randaugment.h"

#include <math.h>
#include <string.h>

static const char *const tv_names[TV_NUM_OPS] = {
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
};

const char *tv_op_name(TvOp op) { return op >= 0 && op < TV_NUM_OPS ? tv_names[op] : "?"; }

int tv_op_from_name(const char *name) {
    for (int i = 0; i < TV_NUM_OPS; i++)
        if (!strcmp(name, tv_names[i])) return i;
    return -1;
}

bool tv_op_signed(TvOp op) { return op >= TV_SHEARX && op <= TV_SHARPNESS; }

bool tv_op_has_bins(TvOp op) { return op != TV_IDENTITY && op != TV_AUTOCONTRAST && op != TV_EQUALIZE; }

float torch_linspace_f32(double start, double end, int n, int i) {
    if (n == 1) return (float)start;
    float a = (float)start, b = (float)end;
    float step = (b - a) / (float)(n - 1);
    int halfway = n / 2;
    enum { VEC = 8 };
    int vectorized = n / (2 * VEC) * (2 * VEC); /* elements the vector loop writes */
    if (i < vectorized) {
        int base_index = i / VEC * VEC;
        float base = base_index < halfway ? a + step * (float)base_index : b - step * (float)(n - base_index - 1);
        return base + (float)(i - base_index) * step;
    }
    return i < halfway ? fmaf(step, (float)i, a) : fmaf(-step, (float)(n - i - 1), b);
}

/* 8 - round(i / ((bins - 1) / d)) in float32, round half to even. */
static int posterize_bits(int bins, int bin, double d) {
    float v = (float)bin / (float)((bins - 1) / d);
    return 8 - (int)nearbyintf(v);
}

double tv_magnitude(bool wide, TvOp op, int bins, int bin, int w, int h) {
    double shear = wide ? 0.99 : 0.3, enhance = wide ? 0.99 : 0.9, rotate = wide ? 135.0 : 30.0;
    switch (op) {
    case TV_SHEARX: case TV_SHEARY: return torch_linspace_f32(0.0, shear, bins, bin);
    case TV_TRANSLATEX: return torch_linspace_f32(0.0, wide ? 32.0 : 150.0 / 331.0 * w, bins, bin);
    case TV_TRANSLATEY: return torch_linspace_f32(0.0, wide ? 32.0 : 150.0 / 331.0 * h, bins, bin);
    case TV_ROTATE: return torch_linspace_f32(0.0, rotate, bins, bin);
    case TV_BRIGHTNESS: case TV_COLOR: case TV_CONTRAST: case TV_SHARPNESS:
        return torch_linspace_f32(0.0, enhance, bins, bin);
    case TV_POSTERIZE: return posterize_bits(bins, bin, wide ? 6.0 : 4.0);
    case TV_SOLARIZE: return torch_linspace_f32(255.0, 0.0, bins, bin);
    default: return 0.0;
    }
}

static int draw_sign(TvOp op, SampleRng *rng) {
    if (!tv_op_signed(op)) return 1;
    return (srng_u64(rng) >> 63) ? -1 : 1;
}

TvChoice randaugment_choose(int magnitude, SampleRng *rng) {
    TvChoice c;
    c.op = (TvOp)srng_below(rng, TV_NUM_OPS);
    c.bin = magnitude;
    c.sign = draw_sign(c.op, rng);
    return c;
}

TvChoice trivialaugment_choose(int bins, SampleRng *rng) {
    TvChoice c;
    c.op = (TvOp)srng_below(rng, TV_NUM_OPS);
    c.bin = tv_op_has_bins(c.op) ? srng_below(rng, bins) : 0;
    c.sign = draw_sign(c.op, rng);
    return c;
}

void tv_apply_choice(Image *im, bool wide, int bins, TvChoice c, int fill) {
    double magnitude = tv_op_has_bins(c.op) ? tv_magnitude(wide, c.op, bins, c.bin, im->w, im->h) : 0.0;
    tv_apply_op(im, c.op, c.sign < 0 ? -magnitude : magnitude, fill);
}

void randaugment_apply(Image *im, int num_ops, int magnitude, int bins, int fill, SampleRng *rng) {
    for (int k = 0; k < num_ops; k++) tv_apply_choice(im, false, bins, randaugment_choose(magnitude, rng), fill);
}

void trivialaugment_apply(Image *im, int bins, int fill, SampleRng *rng) {
    tv_apply_choice(im, true, bins, trivialaugment_choose(bins, rng), fill);
}
