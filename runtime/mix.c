/*
 * mix.c — mixup and cutmix of a training batch (mix.h).
 */
#include "mix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define STREAM_MIX 0x6d697875702f6375ULL /* "mixup/cu" */

bool mix_enabled(const Recipe *r) { return r->mixup_alpha > 0 || r->cutmix_alpha > 0; }

static double uniform(Rng *g) { return (double)(rng_next(g) >> 11) * (1.0 / 9007199254740992.0); }

static double normal(Rng *g) {
    double u1 = uniform(g), u2 = uniform(g);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* Gamma(a, 1): Marsaglia and Tsang for a >= 1, boosted by U^(1/a) below 1. */
static double gamma_draw(double a, Rng *g) {
    if (a < 1.0) return gamma_draw(a + 1.0, g) * pow(1.0 - uniform(g), 1.0 / a);
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double z = normal(g), v = 1.0 + c * z;
        if (v <= 0) continue;
        v = v * v * v;
        double u = 1.0 - uniform(g);
        if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) return d * v;
    }
}

double mix_beta(double a, uint64_t key) {
    Rng g = {key, 0x62657461, 0};
    double x = gamma_draw(a, &g), y = gamma_draw(a, &g);
    return x / (x + y);
}

MixDraw mix_draw(const Recipe *r, int h, int w, int64_t micro_step) {
    MixDraw m = {.lam = 1.0};
    if (!mix_enabled(r)) return m;
    Rng g = {r->seed, STREAM_MIX, (uint64_t)micro_step * 8};
    if (!(uniform(&g) < r->mix_prob)) return m;
    if (r->mixup_alpha > 0 && r->cutmix_alpha > 0) m.cutmix = uniform(&g) < r->mix_switch_prob;
    else m.cutmix = r->cutmix_alpha > 0;
    m.lam = mix_beta(m.cutmix ? r->cutmix_alpha : r->mixup_alpha, rng_next(&g));
    if (!m.cutmix) return m;
    /* timm's rand_bbox (margin 0) and the area-corrected lam */
    double ratio = sqrt(1.0 - m.lam);
    int cut_h = (int)(h * ratio), cut_w = (int)(w * ratio);
    int cy = (int)(rng_next(&g) % (uint64_t)h), cx = (int)(rng_next(&g) % (uint64_t)w);
    m.y0 = cy - cut_h / 2 < 0 ? 0 : cy - cut_h / 2;
    m.y1 = cy + cut_h / 2 > h ? h : cy + cut_h / 2;
    m.x0 = cx - cut_w / 2 < 0 ? 0 : cx - cut_w / 2;
    m.x1 = cx + cut_w / 2 > w ? w : cx + cut_w / 2;
    m.lam = 1.0 - (double)(m.y1 - m.y0) * (m.x1 - m.x0) / ((double)h * w);
    return m;
}

double mix_apply(const MixDraw *m, float *x, int n, int h, int w, int c) {
    if (m->lam == 1.0) return 0.0;
    size_t sample = (size_t)h * w * c;
    if (m->cutmix) {
        /* pairs (i, n-1-i) swap the box: the flipped batch's pixels, in place */
        size_t row = (size_t)(m->x1 - m->x0) * c;
        for (int i = 0; i < n / 2; i++)
            for (int y = m->y0; y < m->y1; y++) {
                float *a = x + i * sample + ((size_t)y * w + m->x0) * c, *b = x + (n - 1 - i) * sample + ((size_t)y * w + m->x0) * c;
                for (size_t k = 0; k < row; k++) {
                    float t = a[k];
                    a[k] = b[k];
                    b[k] = t;
                }
            }
        return 1.0 - m->lam;
    }
    float keep = (float)m->lam, take = (float)(1.0 - m->lam);
    for (int i = 0; i < (n + 1) / 2; i++) {
        float *a = x + i * sample, *b = x + (size_t)(n - 1 - i) * sample;
        for (size_t k = 0; k < sample; k++) {
            float va = a[k], vb = b[k];
            a[k] = va * keep + vb * take;
            if (a != b) b[k] = vb * keep + va * take;
        }
    }
    return 1.0 - m->lam;
}
