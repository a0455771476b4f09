/*
 * autoaugment.c — the AutoAugment policies and operations (autoaugment.h),
 * and torchvision's versions of the operations (tv_apply_op) that
 * RandAugment and TrivialAugmentWide apply (randaugment.c).
 *
 * Each operation reproduces Pillow's C code path for RGB images so results
 * match PIL to the level: nearest-neighbour affine in 16.16 fixed point
 * (rotate), the nearest "scale affine" path (translate), the a = -1 bicubic
 * of Image.transform (shear), float32 Image.blend (enhancers), the ITU-R 601
 * luma of convert("L"), and the lookup tables of ImageOps.
 */
#include "data/autoaugment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SP(p1, o1, m1, p2, o2, m2) {p1, AA_##o1, m1, p2, AA_##o2, m2}

/* shared/seed/autoaugment.md */
static const AASubPolicy imagenet_policy[25] = {
    SP(0.4f, POSTERIZE, 8, 0.6f, ROTATE, 9),      SP(0.6f, SOLARIZE, 5, 0.6f, AUTOCONTRAST, 5),
    SP(0.8f, EQUALIZE, 8, 0.6f, EQUALIZE, 3),     SP(0.6f, POSTERIZE, 7, 0.6f, POSTERIZE, 6),
    SP(0.4f, EQUALIZE, 7, 0.2f, SOLARIZE, 4),     SP(0.4f, EQUALIZE, 4, 0.8f, ROTATE, 8),
    SP(0.6f, SOLARIZE, 3, 0.6f, EQUALIZE, 7),     SP(0.8f, POSTERIZE, 5, 1.0f, EQUALIZE, 2),
    SP(0.2f, ROTATE, 3, 0.6f, SOLARIZE, 8),       SP(0.6f, EQUALIZE, 8, 0.4f, POSTERIZE, 6),
    SP(0.8f, ROTATE, 8, 0.4f, COLOR, 0),          SP(0.4f, ROTATE, 9, 0.6f, EQUALIZE, 2),
    SP(0.0f, EQUALIZE, 7, 0.8f, EQUALIZE, 8),     SP(0.6f, INVERT, 4, 1.0f, EQUALIZE, 8),
    SP(0.6f, COLOR, 4, 1.0f, CONTRAST, 8),        SP(0.8f, ROTATE, 8, 1.0f, COLOR, 2),
    SP(0.8f, COLOR, 8, 0.8f, SOLARIZE, 7),        SP(0.4f, SHARPNESS, 7, 0.6f, INVERT, 8),
    SP(0.6f, SHEARX, 5, 1.0f, EQUALIZE, 9),       SP(0.4f, COLOR, 0, 0.6f, EQUALIZE, 3),
    SP(0.4f, EQUALIZE, 7, 0.2f, SOLARIZE, 4),     SP(0.6f, SOLARIZE, 5, 0.6f, AUTOCONTRAST, 5),
    SP(0.6f, INVERT, 4, 1.0f, EQUALIZE, 8),       SP(0.6f, COLOR, 4, 1.0f, CONTRAST, 8),
    SP(0.8f, EQUALIZE, 8, 0.6f, EQUALIZE, 3),
};

/* AutoAugment paper, appendix (as the seed's library lists them). */
static const AASubPolicy cifar10_policy[25] = {
    SP(0.1f, INVERT, 7, 0.2f, CONTRAST, 6),         SP(0.7f, ROTATE, 2, 0.3f, TRANSLATEX, 9),
    SP(0.8f, SHARPNESS, 1, 0.9f, SHARPNESS, 3),     SP(0.5f, SHEARY, 8, 0.7f, TRANSLATEY, 9),
    SP(0.5f, AUTOCONTRAST, 8, 0.9f, EQUALIZE, 2),   SP(0.2f, SHEARY, 7, 0.3f, POSTERIZE, 7),
    SP(0.4f, COLOR, 3, 0.6f, BRIGHTNESS, 7),        SP(0.3f, SHARPNESS, 9, 0.7f, BRIGHTNESS, 9),
    SP(0.6f, EQUALIZE, 5, 0.5f, EQUALIZE, 1),       SP(0.6f, CONTRAST, 7, 0.6f, SHARPNESS, 5),
    SP(0.7f, COLOR, 7, 0.5f, TRANSLATEX, 8),        SP(0.3f, EQUALIZE, 7, 0.4f, AUTOCONTRAST, 8),
    SP(0.4f, TRANSLATEY, 3, 0.2f, SHARPNESS, 6),    SP(0.9f, BRIGHTNESS, 6, 0.2f, COLOR, 8),
    SP(0.5f, SOLARIZE, 2, 0.0f, INVERT, 3),         SP(0.2f, EQUALIZE, 0, 0.6f, AUTOCONTRAST, 0),
    SP(0.2f, EQUALIZE, 8, 0.8f, EQUALIZE, 4),       SP(0.9f, COLOR, 9, 0.6f, EQUALIZE, 6),
    SP(0.8f, AUTOCONTRAST, 4, 0.2f, SOLARIZE, 8),   SP(0.1f, BRIGHTNESS, 3, 0.7f, COLOR, 0),
    SP(0.4f, SOLARIZE, 5, 0.9f, AUTOCONTRAST, 3),   SP(0.9f, TRANSLATEY, 9, 0.7f, TRANSLATEY, 9),
    SP(0.9f, AUTOCONTRAST, 2, 0.8f, SOLARIZE, 3),   SP(0.8f, EQUALIZE, 8, 0.1f, INVERT, 3),
    SP(0.7f, TRANSLATEY, 9, 0.9f, AUTOCONTRAST, 1),
};

static const AASubPolicy svhn_policy[25] = {
    SP(0.9f, SHEARX, 4, 0.2f, INVERT, 3),       SP(0.9f, SHEARY, 8, 0.7f, INVERT, 5),
    SP(0.6f, EQUALIZE, 5, 0.6f, SOLARIZE, 6),   SP(0.9f, INVERT, 3, 0.6f, EQUALIZE, 3),
    SP(0.6f, EQUALIZE, 1, 0.9f, ROTATE, 3),     SP(0.9f, SHEARX, 4, 0.8f, AUTOCONTRAST, 3),
    SP(0.9f, SHEARY, 8, 0.4f, INVERT, 5),       SP(0.9f, SHEARY, 5, 0.2f, SOLARIZE, 6),
    SP(0.9f, INVERT, 6, 0.8f, AUTOCONTRAST, 1), SP(0.6f, EQUALIZE, 3, 0.9f, ROTATE, 3),
    SP(0.9f, SHEARX, 4, 0.3f, SOLARIZE, 3),     SP(0.8f, SHEARY, 8, 0.7f, INVERT, 4),
    SP(0.9f, EQUALIZE, 5, 0.6f, TRANSLATEY, 6), SP(0.9f, INVERT, 4, 0.6f, EQUALIZE, 7),
    SP(0.3f, CONTRAST, 3, 0.8f, ROTATE, 4),     SP(0.8f, INVERT, 5, 0.0f, TRANSLATEY, 2),
    SP(0.7f, SHEARY, 6, 0.4f, SOLARIZE, 8),     SP(0.6f, INVERT, 4, 0.8f, ROTATE, 4),
    SP(0.3f, SHEARY, 7, 0.9f, TRANSLATEX, 3),   SP(0.1f, SHEARX, 6, 0.6f, INVERT, 5),
    SP(0.7f, SOLARIZE, 2, 0.6f, TRANSLATEY, 7), SP(0.8f, SHEARY, 4, 0.8f, INVERT, 8),
    SP(0.7f, SHEARX, 9, 0.8f, TRANSLATEY, 3),   SP(0.8f, SHEARY, 5, 0.7f, AUTOCONTRAST, 3),
    SP(0.7f, SHEARX, 2, 0.1f, INVERT, 5),
};

const AASubPolicy *aa_policy(AutoAugmentPolicy policy, int *n) {
    *n = 25;
    switch (policy) {
    case AA_CIFAR10: return cifar10_policy;
    case AA_SVHN: return svhn_policy;
    default: return imagenet_policy;
    }
}

static const char *const op_names[AA_NUM_OPS] = {
    "shearX", "shearY", "translateX", "translateY", "rotate", "color", "posterize",
    "solarize", "contrast", "sharpness", "brightness", "autocontrast", "equalize", "invert",
};

const char *aa_op_name(AAOp op) { return op >= 0 && op < AA_NUM_OPS ? op_names[op] : "?"; }

int aa_op_from_name(const char *name) {
    for (int i = 0; i < AA_NUM_OPS; i++)
        if (!strcasecmp(name, op_names[i])) return i;
    return -1;
}

/* numpy.linspace(a, b, 10)[m]: m * step + a, the last point exactly b. */
static double linspace10(double a, double b, int m) {
    if (m >= 9) return b;
    return m * ((b - a) / 9.0) + a;
}

double aa_magnitude(AAOp op, int m) {
    if (m < 0) m = 0;
    if (m > 9) m = 9;
    switch (op) {
    case AA_SHEARX: case AA_SHEARY: return linspace10(0, 0.3, m);
    case AA_TRANSLATEX: case AA_TRANSLATEY: return linspace10(0, 150.0 / 331.0, m);
    case AA_ROTATE: return linspace10(0, 30, m);
    case AA_COLOR: case AA_CONTRAST: case AA_SHARPNESS: case AA_BRIGHTNESS: return linspace10(0.0, 0.9, m);
    case AA_POSTERIZE: return nearbyint(linspace10(8, 4, m)); /* numpy round: half to even */
    case AA_SOLARIZE: return linspace10(256, 0, m);
    default: return 0;
    }
}

int aa_op_signed(AAOp op) {
    return op == AA_SHEARX || op == AA_SHEARY || op == AA_TRANSLATEX || op == AA_TRANSLATEY ||
           op == AA_ROTATE || op == AA_COLOR || op == AA_CONTRAST || op == AA_SHARPNESS ||
           op == AA_BRIGHTNESS;
}

/* ---- geometric ops ---- */

static inline int pil_floor(double x) { return x < 0.0 ? (int)floor(x) : (int)x; }
static inline int pil_coord(double v) { return v < 0.0 ? -1 : (int)v; }

static void fill_image(Image *im, int fill) { memset(im->px, fill, (size_t)im->w * im->h * 3); }

/* Image.transform(AFFINE, a, BICUBIC, fillcolor): ImagingGenericTransform with
 * bicubic_filter32RGB. */
static void affine_bicubic(const Image *in, Image *out, const double a[6]) {
    int w = in->w, h = in->h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double xin = a[0] * (x + 0.5) + a[1] * (y + 0.5) + a[2];
            double yin = a[3] * (x + 0.5) + a[4] * (y + 0.5) + a[5];
            if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h) continue;
            xin -= 0.5;
            yin -= 0.5;
            int ix = pil_floor(xin), iy = pil_floor(yin);
            double dx = xin - ix, dy = yin - iy;
            ix--;
            iy--;
            int xs[4];
            for (int t = 0; t < 4; t++) {
                int xx = ix + t;
                xs[t] = xx < 0 ? 0 : xx < w ? xx : w - 1;
            }
            uint8_t *o = out->px + ((size_t)y * w + x) * 3;
            for (int b = 0; b < 3; b++) {
                double v[4];
                for (int t = 0; t < 4; t++) {
                    int yy = iy + t;
                    if (t == 0) yy = yy < 0 ? 0 : yy < h ? yy : h - 1;
                    else if (yy < 0 || yy >= h) {
                        v[t] = v[t - 1];
                        continue;
                    }
                    const uint8_t *row = in->px + (size_t)yy * w * 3 + b;
                    double v1 = row[3 * xs[0]], v2 = row[3 * xs[1]], v3 = row[3 * xs[2]], v4 = row[3 * xs[3]];
                    double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
                    v[t] = p1 + dx * (p2 + dx * (p3 + dx * p4));
                }
                double p1 = v[1], p2 = -v[0] + v[2], p3 = 2 * (v[0] - v[1]) + v[2] - v[3],
                       p4 = -v[0] + v[1] - v[2] + v[3];
                double r = p1 + dy * (p2 + dy * (p3 + dy * p4));
                o[b] = r <= 0.0 ? 0 : r >= 255.0 ? 255 : (uint8_t)r;
            }
        }
}

/* Translation: ImagingScaleAffine (nearest, a[0] = a[4] = 1). */
static void translate_nearest(const Image *in, Image *out, double tx, double ty) {
    int w = in->w, h = in->h;
    int *xin = xmalloc(sizeof(int) * w);
    double xo = tx + 0.5;
    for (int x = 0; x < w; x++) {
        xin[x] = pil_coord(xo);
        xo += 1.0;
    }
    double yo = ty + 0.5;
    for (int y = 0; y < h; y++) {
        int yi = pil_coord(yo);
        yo += 1.0;
        if (yi < 0 || yi >= h) continue;
        for (int x = 0; x < w; x++)
            if (xin[x] >= 0 && xin[x] < w)
                memcpy(out->px + ((size_t)y * w + x) * 3, in->px + ((size_t)yi * w + xin[x]) * 3, 3);
    }
    free(xin);
}

/* Python's round(x, 15), correctly rounded through the decimal string. */
static double round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

/* ImagingTransformAffine's nearest path when the matrix is not a pure
 * scale: affine_fixed's 16.16 fixed-point walk (the corners of any image
 * that fits in memory pass its check_fixed). Pixels mapped from outside the
 * source keep what `out` holds (the fill). */
static void affine_nearest(const Image *in, Image *out, const double m[6]) {
    int w = in->w, h = in->h;
#define FIX(v) pil_floor((v) * 65536.0 + 0.5)
    int a0 = FIX(m[0]), a1 = FIX(m[1]), a3 = FIX(m[3]), a4 = FIX(m[4]);
    int a2 = FIX(m[2] + m[0] * 0.5 + m[1] * 0.5), a5 = FIX(m[5] + m[3] * 0.5 + m[4] * 0.5);
#undef FIX
    for (int y = 0; y < h; y++) {
        int xx = a2, yy = a5;
        uint8_t *o = out->px + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, o += 3) {
            int xi = xx >> 16;
            if (xi >= 0 && xi < w) {
                int yi = yy >> 16;
                if (yi >= 0 && yi < h) memcpy(o, in->px + ((size_t)yi * w + xi) * 3, 3);
            }
            xx += a0;
            yy += a3;
        }
        a2 += a1;
        a5 += a4;
    }
}

/* Image.transpose(ROTATE_90 / ROTATE_180 / ROTATE_270), counter-clockwise
 * quarter turns (90 and 270 on square images only). */
static void rotate_quarters(const Image *in, Image *out, int quarters) {
    int w = in->w, h = in->h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int ox = quarters == 1 ? y : quarters == 2 ? w - 1 - x : h - 1 - y;
            int oy = quarters == 1 ? w - 1 - x : quarters == 2 ? h - 1 - y : x;
            memcpy(out->px + ((size_t)oy * out->w + ox) * 3, in->px + ((size_t)y * w + x) * 3, 3);
        }
}

/* Image.rotate(angle) (nearest, no expand): its shortcuts for 0, 180 and
 * (square) 90 / 270 degrees, else the matrix as Image.rotate builds it
 * through affine_nearest. */
static void rotate_nearest(const Image *in, Image *out, double angle_deg) {
    int w = in->w, h = in->h;
    double angle = fmod(angle_deg, 360.0);
    if (angle < 0) angle += 360.0;
    if (angle == 0) {
        memcpy(out->px, in->px, (size_t)w * h * 3);
        return;
    }
    if (angle == 180 || ((angle == 90 || angle == 270) && w == h)) {
        rotate_quarters(in, out, (int)(angle / 90));
        return;
    }
    double rad = -(angle * (M_PI / 180.0));
    double m[6] = {round15(cos(rad)), round15(sin(rad)), 0.0, round15(-sin(rad)), round15(cos(rad)), 0.0};
    double cx = w / 2.0, cy = h / 2.0;
    m[2] = m[0] * -cx + m[1] * -cy + m[2];
    m[5] = m[3] * -cx + m[4] * -cy + m[5];
    m[2] += cx;
    m[5] += cy;
    affine_nearest(in, out, m);
}

/* ---- colour ops ---- */

static inline uint8_t luma(const uint8_t *p) { /* PIL convert("L") */
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

/* Image.blend(degenerate, image, alpha) with alpha in float, as ImagingBlend. */
static inline uint8_t blend1(int d, int v, float alpha) {
    if (alpha >= 0 && alpha <= 1.0f) return (uint8_t)(d + alpha * (v - d));
    float t = (float)(d + alpha * (v - d));
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

static void enhance_color(Image *im, float factor) {
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->px + 3 * i;
        int l = luma(p);
        for (int c = 0; c < 3; c++) p[c] = blend1(l, p[c], factor);
    }
}

static void enhance_contrast(Image *im, float factor) {
    size_t n = (size_t)im->w * im->h;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += luma(im->px + 3 * i);
    int mean = (int)((double)sum / (double)n + 0.5);
    for (size_t i = 0; i < 3 * n; i++) im->px[i] = blend1(mean, im->px[i], factor);
}

static void enhance_brightness(Image *im, float factor) {
    size_t n = (size_t)im->w * im->h * 3;
    for (size_t i = 0; i < n; i++) im->px[i] = blend1(0, im->px[i], factor);
}

/* ImageFilter.SMOOTH (3x3, 1 1 1 / 1 5 1 / 1 1 1, /13) as ImagingFilter3x3:
 * float kernel pre-divided, border rows and columns copied. */
static void smooth3x3(const Image *in, Image *out) {
    int w = in->w, h = in->h;
    memcpy(out->px, in->px, (size_t)w * h * 3);
    if (w < 3 || h < 3) return;
    const float k[9] = {1 / 13.0f, 1 / 13.0f, 1 / 13.0f, 1 / 13.0f, 5 / 13.0f, 1 / 13.0f, 1 / 13.0f, 1 / 13.0f, 1 / 13.0f};
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *r0 = in->px + (size_t)(y - 1) * w * 3, *r1 = r0 + w * 3, *r2 = r1 + w * 3;
        uint8_t *o = out->px + (size_t)y * w * 3;
        for (int x = 1; x < w - 1; x++)
            for (int c = 0; c < 3; c++) {
                int i = 3 * x + c;
                float ss = 0.5f;
                ss += r2[i - 3] * k[0] + r2[i] * k[1] + r2[i + 3] * k[2];
                ss += r1[i - 3] * k[3] + r1[i] * k[4] + r1[i + 3] * k[5];
                ss += r0[i - 3] * k[6] + r0[i] * k[7] + r0[i + 3] * k[8];
                o[i] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : (uint8_t)ss;
            }
    }
}

static void enhance_sharpness(Image *im, float factor) {
    Image smooth;
    image_alloc(&smooth, im->w, im->h);
    smooth3x3(im, &smooth);
    size_t n = (size_t)im->w * im->h * 3;
    for (size_t i = 0; i < n; i++) im->px[i] = blend1(smooth.px[i], im->px[i], factor);
    image_free(&smooth);
}

static void apply_lut3(Image *im, const uint8_t lut[3][256]) {
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) im->px[3 * i + c] = lut[c][im->px[3 * i + c]];
}

static void histograms(const Image *im, uint32_t hist[3][256]) {
    memset(hist, 0, sizeof(uint32_t) * 3 * 256);
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) hist[c][im->px[3 * i + c]]++;
}

static void autocontrast(Image *im) {
    uint32_t hist[3][256];
    uint8_t lut[3][256];
    histograms(im, hist);
    for (int c = 0; c < 3; c++) {
        int lo = 0, hi = 255;
        while (lo < 255 && !hist[c][lo]) lo++;
        while (hi > 0 && !hist[c][hi]) hi--;
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)i;
            continue;
        }
        double scale = 255.0 / (hi - lo), offset = -lo * scale;
        for (int i = 0; i < 256; i++) {
            int v = (int)(i * scale + offset);
            lut[c][i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    apply_lut3(im, lut);
}

static void equalize(Image *im) {
    uint32_t hist[3][256];
    uint8_t lut[3][256];
    histograms(im, hist);
    for (int c = 0; c < 3; c++) {
        int64_t total = 0, last = 0, nonzero = 0;
        for (int i = 0; i < 256; i++)
            if (hist[c][i]) {
                total += hist[c][i];
                last = hist[c][i];
                nonzero++;
            }
        int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
        if (!step) {
            for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)i;
            continue;
        }
        int64_t acc = step / 2;
        for (int i = 0; i < 256; i++) {
            int64_t v = acc / step;
            lut[c][i] = (uint8_t)(v > 255 ? 255 : v);
            acc += hist[c][i];
        }
    }
    apply_lut3(im, lut);
}

static void point_all(Image *im, const uint8_t lut[256]) {
    size_t n = (size_t)im->w * im->h * 3;
    for (size_t i = 0; i < n; i++) im->px[i] = lut[im->px[i]];
}

/* ImageOps.posterize(bits): keeps the top bits of each channel. */
static void posterize(Image *im, int bits) {
    uint8_t lut[256], mask = (uint8_t)~((1 << (8 - bits)) - 1);
    for (int i = 0; i < 256; i++) lut[i] = (uint8_t)(i & mask);
    point_all(im, lut);
}

/* ImageOps.solarize(threshold): inverts every value at or above it. */
static void solarize(Image *im, double threshold) {
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (uint8_t)(i < threshold ? i : 255 - i);
    point_all(im, lut);
}

void aa_apply_op(Image *im, AAOp op, int m, int sign, int fill) {
    double mag = aa_magnitude(op, m);
    double s = sign < 0 ? -1.0 : 1.0;
    uint8_t lut[256];
    switch (op) {
    case AA_SHEARX:
    case AA_SHEARY:
    case AA_TRANSLATEX:
    case AA_TRANSLATEY:
    case AA_ROTATE: {
        Image out;
        image_alloc(&out, im->w, im->h);
        fill_image(&out, fill);
        if (op == AA_SHEARX) {
            double a[6] = {1, mag * s, 0, 0, 1, 0};
            affine_bicubic(im, &out, a);
        } else if (op == AA_SHEARY) {
            double a[6] = {1, 0, 0, mag * s, 1, 0};
            affine_bicubic(im, &out, a);
        } else if (op == AA_TRANSLATEX) {
            translate_nearest(im, &out, mag * im->w * s, 0);
        } else if (op == AA_TRANSLATEY) {
            translate_nearest(im, &out, 0, mag * im->h * s);
        } else {
            rotate_nearest(im, &out, mag * s);
        }
        image_free(im);
        *im = out;
        break;
    }
    case AA_COLOR: enhance_color(im, (float)(1 + mag * s)); break;
    case AA_CONTRAST: enhance_contrast(im, (float)(1 + mag * s)); break;
    case AA_BRIGHTNESS: enhance_brightness(im, (float)(1 + mag * s)); break;
    case AA_SHARPNESS: enhance_sharpness(im, (float)(1 + mag * s)); break;
    case AA_POSTERIZE: posterize(im, (int)mag); break;
    case AA_SOLARIZE: solarize(im, mag); break;
    case AA_INVERT:
        for (int i = 0; i < 256; i++) lut[i] = (uint8_t)(255 - i);
        point_all(im, lut);
        break;
    case AA_AUTOCONTRAST: autocontrast(im); break;
    case AA_EQUALIZE: equalize(im); break;
    default: break;
    }
}

/* ---- torchvision's ops (RandAugment, TrivialAugmentWide) ---- */

/* torchvision.transforms.functional._get_inverse_affine_matrix (inverted,
 * scale 1), operation for operation, so that the doubles are the same. */
static void tv_inverse_affine(const double center[2], double angle, const double translate[2], const double shear[2],
                              double m[6]) {
    double rot = angle * (M_PI / 180.0), sx = shear[0] * (M_PI / 180.0), sy = shear[1] * (M_PI / 180.0);
    double cx = center[0], cy = center[1], tx = translate[0], ty = translate[1];
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    double mm[6] = {d / 1.0, -b / 1.0, 0.0 / 1.0, -c / 1.0, a / 1.0, 0.0 / 1.0};
    mm[2] += mm[0] * (-cx - tx) + mm[1] * (-cy - ty);
    mm[5] += mm[3] * (-cx - tx) + mm[4] * (-cy - ty);
    mm[2] += cx;
    mm[5] += cy;
    memcpy(m, mm, sizeof mm);
}

/* F.affine on a PIL image: Image.transform(AFFINE, NEAREST, fillcolor),
 * whose C code takes the scale-only path when m[1] == m[3] == 0. */
static void tv_affine(Image *im, const double center[2], const double translate[2], const double shear[2], int fill) {
    double m[6];
    tv_inverse_affine(center, 0.0, translate, shear, m);
    Image out;
    image_alloc(&out, im->w, im->h);
    fill_image(&out, fill);
    if (m[1] == 0 && m[3] == 0) translate_nearest(im, &out, m[2], m[5]);
    else affine_nearest(im, &out, m);
    image_free(im);
    *im = out;
}

void tv_apply_op(Image *im, TvOp op, double magnitude, int fill) {
    const double origin[2] = {0.0, 0.0}, middle[2] = {im->w * 0.5, im->h * 0.5}, none[2] = {0.0, 0.0};
    const double to_degrees = 180.0 / M_PI;
    switch (op) {
    case TV_SHEARX: tv_affine(im, origin, none, (const double[2]){atan(magnitude) * to_degrees, 0.0}, fill); break;
    case TV_SHEARY: tv_affine(im, origin, none, (const double[2]){0.0, atan(magnitude) * to_degrees}, fill); break;
    case TV_TRANSLATEX: tv_affine(im, middle, (const double[2]){(double)(int)magnitude, 0.0}, none, fill); break;
    case TV_TRANSLATEY: tv_affine(im, middle, (const double[2]){0.0, (double)(int)magnitude}, none, fill); break;
    case TV_ROTATE: {
        Image out;
        image_alloc(&out, im->w, im->h);
        fill_image(&out, fill);
        rotate_nearest(im, &out, magnitude);
        image_free(im);
        *im = out;
        break;
    }
    case TV_BRIGHTNESS: enhance_brightness(im, (float)(1.0 + magnitude)); break;
    case TV_COLOR: enhance_color(im, (float)(1.0 + magnitude)); break;
    case TV_CONTRAST: enhance_contrast(im, (float)(1.0 + magnitude)); break;
    case TV_SHARPNESS: enhance_sharpness(im, (float)(1.0 + magnitude)); break;
    case TV_POSTERIZE: posterize(im, (int)magnitude); break;
    case TV_SOLARIZE: solarize(im, magnitude); break;
    case TV_AUTOCONTRAST: autocontrast(im); break;
    case TV_EQUALIZE: equalize(im); break;
    default: break;
    }
}

AAChoice autoaugment_choose(AutoAugmentPolicy policy, SampleRng *rng) {
    int n;
    const AASubPolicy *table = aa_policy(policy, &n);
    AAChoice c;
    c.index = srng_below(rng, n);
    c.apply1 = srng_uniform(rng) < table[c.index].p1;
    c.sign1 = (srng_u64(rng) >> 63) ? 1 : -1;
    c.apply2 = srng_uniform(rng) < table[c.index].p2;
    c.sign2 = (srng_u64(rng) >> 63) ? 1 : -1;
    return c;
}

void autoaugment_apply(Image *im, AutoAugmentPolicy policy, int fill, SampleRng *rng) {
    int n;
    const AASubPolicy *table = aa_policy(policy, &n);
    AAChoice c = autoaugment_choose(policy, rng);
    const AASubPolicy *sp = &table[c.index];
    if (c.apply1) aa_apply_op(im, sp->op1, sp->m1, c.sign1, fill);
    if (c.apply2) aa_apply_op(im, sp->op2, sp->m2, c.sign2, fill);
}
