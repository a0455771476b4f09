/*
 * test_conv_cpu.c — target/cpu/conv_cpu.c (STEP_CONV) against a float64
 * reference written from the definition of convolution, over every form
 * (two groups of 4 per vector, 8 channels per vector with and without block
 * pairs, the scalar generic form for shapes the compiler never sends) and
 * every pass, with strides, padding, non-square kernels, odd sizes and
 * accumulation. tests/ops compares the forms the compiler emits with
 * PyTorch; this covers the library's whole shape space.
 *
 * Tolerance: max |got - ref| / max(1, max |ref|) <= 1e-5 per tensor (fp32
 * sums of at most a few thousand terms of size ~1); 2e-6 for the 65536-pixel
 * case, whose weight gradient must be summed as tile sums (a single running
 * sum measured 5.9e-6 there, tile sums 6.4e-7). Thread count: results with
 * 1 and 3 threads must be bit-identical.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "conv_cpu.h"

static unsigned rng_state = 12345;
static float uniform(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

typedef struct Case {
    const char *name;
    ConvGeom g;
    const char *form; /* expected conv_cpu_kernel_name of the forward pass */
    double tol;       /* 0: 1e-5 */
} Case;

static int out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* float64 reference of all three passes */
static void reference(const ConvGeom *g, const float *x, const float *w, const float *dy, double *y, double *dx,
                      double *dw) {
    int cig = g->cin / g->groups, cog = g->cout / g->groups, T = g->kh * g->kw;
    for (int n = 0; n < g->n; n++)
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++)
                for (int co = 0; co < g->cout; co++) {
                    int gr = co / cog;
                    long yi = (((long)n * g->oh + oh) * g->ow + ow) * g->cout + co;
                    double sum = 0;
                    for (int ci = 0; ci < cig; ci++)
                        for (int kh = 0; kh < g->kh; kh++)
                            for (int kw = 0; kw < g->kw; kw++) {
                                int ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                                if (ih < 0 || iw < 0 || ih >= g->h || iw >= g->w) continue;
                                long xi = (((long)n * g->h + ih) * g->w + iw) * g->cin + gr * cig + ci;
                                long wi = ((long)co * cig + ci) * T + kh * g->kw + kw;
                                sum += (double)x[xi] * w[wi];
                                dx[xi] += (double)dy[yi] * w[wi];
                                dw[wi] += (double)dy[yi] * x[xi];
                            }
                    y[yi] = sum;
                }
}

static double rel_err(const float *got, const double *ref, long n) {
    double worst = 0, scale = 1;
    for (long i = 0; i < n; i++) {
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
        double d = fabs(got[i] - ref[i]);
        if (d > worst || d != d) worst = d != d ? INFINITY : d;
    }
    return worst / scale;
}

/* runs one pass into out (which starts as `start`), with the given threads */
static void run_pass(const ConvStep *s, const float *x, const float *w, const float *dy, const float *start,
                     float *out, long n_out, int threads) {
    size_t bytes = conv_cpu_scratch_bytes(s);
    /* exactly what the executor allocates, so ASan sees any overrun */
    void *scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
    long nx = (long)s->g.n * s->g.h * s->g.w * s->g.cin;
    long nw = (long)s->g.cout * (s->g.cin / s->g.groups) * s->g.kh * s->g.kw;
    long ny = (long)s->g.n * s->g.oh * s->g.ow * s->g.cout;
    float *xb = malloc(sizeof(float) * nx), *wb = malloc(sizeof(float) * nw), *yb = malloc(sizeof(float) * ny);
    memcpy(xb, x, sizeof(float) * nx);
    memcpy(wb, w, sizeof(float) * nw);
    memcpy(yb, dy, sizeof(float) * ny);
    float *target = s->pass == CONV_FORWARD ? yb : s->pass == CONV_DATA_GRAD ? xb : wb;
    memcpy(target, start, sizeof(float) * n_out);
    omp_set_num_threads(threads);
    conv_cpu_run(s, xb, wb, yb, scratch);
    memcpy(out, target, sizeof(float) * n_out);
    free(xb), free(wb), free(yb), free(scratch);
}

static const char *variant = ""; /* argv[1]: a name prefix for the build being tested ("v3_", ...) */

static void check_case(const Case *c) {
    ConvGeom g = c->g;
    g.oh = out_size(g.h, g.kh, g.sh, g.ph);
    g.ow = out_size(g.w, g.kw, g.sw, g.pw);
    long nx = (long)g.n * g.h * g.w * g.cin, nw = (long)g.cout * (g.cin / g.groups) * g.kh * g.kw;
    long ny = (long)g.n * g.oh * g.ow * g.cout;
    float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * nw), *dy = malloc(sizeof(float) * ny);
    for (long i = 0; i < nx; i++) x[i] = uniform();
    for (long i = 0; i < nw; i++) w[i] = uniform();
    for (long i = 0; i < ny; i++) dy[i] = uniform();
    double *ry = calloc(ny, sizeof(double)), *rdx = calloc(nx, sizeof(double)), *rdw = calloc(nw, sizeof(double));
    reference(&g, x, w, dy, ry, rdx, rdw);
    static const char *const pass_names[] = {"forward", "data_grad", "weight_grad"};
    for (int pass = 0; pass < 3; pass++)
        for (int acc = 0; acc < 2; acc++) {
            ConvStep s = {.pass = (ConvPass)pass, .g = g, .accumulate = acc};
            long n_out = pass == CONV_FORWARD ? ny : pass == CONV_DATA_GRAD ? nx : nw;
            const double *ref = pass == CONV_FORWARD ? ry : pass == CONV_DATA_GRAD ? rdx : rdw;
            /* accumulate: start from a known tensor and subtract it afterwards */
            float *start = malloc(sizeof(float) * n_out), *one = malloc(sizeof(float) * n_out),
                  *three = malloc(sizeof(float) * n_out);
            for (long i = 0; i < n_out; i++) start[i] = acc ? uniform() : NAN;
            run_pass(&s, x, w, dy, start, one, n_out, 1);
            run_pass(&s, x, w, dy, start, three, n_out, 3);
            bool same = memcmp(one, three, sizeof(float) * n_out) == 0;
            if (acc)
                for (long i = 0; i < n_out; i++) one[i] -= start[i];
            double err = rel_err(one, ref, n_out);
            bool ok = err <= (c->tol > 0 ? c->tol : 1e-5) && same;
            char name[160];
            snprintf(name, sizeof name, "conv_cpu_%s%s_%s%s", variant, c->name, pass_names[pass],
                     acc ? "_accumulate" : "");
            harness_measured(name, ok, "%s, rel err %.2e%s", conv_cpu_kernel_name(&s), err,
                             same ? "" : ", 1 and 3 threads differ");
            free(start), free(one), free(three);
        }
    ConvStep fwd = {.pass = CONV_FORWARD, .g = g};
    if (strcmp(conv_cpu_kernel_name(&fwd), c->form) != 0) {
        char name[160];
        snprintf(name, sizeof name, "conv_cpu_%s%s_form", variant, c->name);
        harness_fail(name, "forward runs '%s', expected '%s'", conv_cpu_kernel_name(&fwd), c->form);
    }
    free(x), free(w), free(dy), free(ry), free(rdx), free(rdw);
}

int main(int argc, char **argv) {
    if (argc > 1) variant = argv[1];
    /* n, h, w, cin, (oh, ow), cout, groups, kh, kw, sh, sw, ph, pw */
    const Case cases[] = {
        {"pair_3x3", {2, 7, 6, 16, 0, 0, 16, 4, 3, 3, 1, 1, 1, 1}, "two groups of 4 per vector", 0},
        {"pair_3x3_stride2", {2, 9, 8, 16, 0, 0, 16, 4, 3, 3, 2, 2, 1, 1}, "two groups of 4 per vector", 0},
        {"pair_odd_groups_generic", {2, 5, 5, 12, 0, 0, 12, 3, 3, 3, 1, 1, 1, 1}, "generic", 0},
        {"bcast_width8", {2, 6, 7, 32, 0, 0, 32, 4, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 0},
        {"bcast_width16_pairs", {2, 5, 5, 64, 0, 0, 64, 4, 3, 3, 2, 2, 1, 1}, "8 channels per vector", 0},
        {"bcast_width24", {1, 6, 5, 48, 0, 0, 48, 2, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 0},
        {"bcast_5x3_stride3x2_pad2x0", {2, 11, 9, 16, 0, 0, 16, 2, 5, 3, 3, 2, 2, 0}, "8 channels per vector", 0},
        {"bcast_1x1_grouped", {2, 4, 4, 32, 0, 0, 32, 4, 1, 1, 1, 1, 0, 0}, "8 channels per vector", 0},
        {"stem_3ch_7x7", {2, 13, 11, 3, 0, 0, 16, 1, 7, 7, 2, 2, 3, 3}, "8 channels per vector", 0},
        {"generic_width14", {2, 5, 6, 28, 0, 0, 28, 2, 3, 3, 1, 1, 1, 1}, "generic", 0},
        /* more than one 256-pixel tile of the weight gradient (546 output pixels) */
        {"pair_tiles_n3_14x13", {3, 14, 13, 8, 0, 0, 8, 2, 3, 3, 1, 1, 1, 1}, "two groups of 4 per vector", 0},
        {"bcast_tiles_n3_14x13", {3, 14, 13, 16, 0, 0, 16, 2, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 0},
        /* 65536 output pixels: the weight gradient's sums must stay close to float64 (tile sums) */
        {"bcast_many_pixels_n16_64x64", {16, 64, 64, 16, 0, 0, 16, 2, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 2e-6},
        /* several chunks of 8-channel blocks per pass (ResNeXt-50's last stage, and narrow groups) */
        {"bcast_chunks_1024_32groups", {2, 2, 2, 1024, 0, 0, 1024, 32, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 0},
        {"bcast_chunks_1024_128groups", {1, 3, 3, 1024, 0, 0, 1024, 128, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 0},
        /* batches that do not fill the 6-pixel blocks evenly, across positions */
        {"bcast_n4", {4, 3, 3, 16, 0, 0, 16, 2, 3, 3, 1, 1, 1, 1}, "8 channels per vector", 0},
        {"bcast_n5_stride2", {5, 5, 4, 16, 0, 0, 16, 2, 3, 3, 2, 2, 1, 1}, "8 channels per vector", 0},
        {"pair_n13", {13, 3, 2, 8, 0, 0, 8, 2, 3, 3, 1, 1, 1, 1}, "two groups of 4 per vector", 0},
        {"pair_3x2_stride2x1_pad1x0", {3, 7, 6, 8, 0, 0, 8, 2, 3, 2, 2, 1, 1, 0}, "two groups of 4 per vector", 0},
        {"generic_4_to_2", {1, 6, 6, 8, 0, 0, 4, 2, 3, 3, 1, 1, 1, 1}, "generic", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    return harness_status();
}
