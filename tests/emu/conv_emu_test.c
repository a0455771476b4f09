/*
 * conv_emu_test.c — the direct grouped convolutions of the CUDA target
 * (target/cuda/conv_cuda.c) run on the CPU by the fiber emulator
 * (cuda_emu.h: barriers real, shared and global races, bounds and
 * uninitialised shared reads detected) and compared with a float64
 * reference written here, for every pass, in f32 and bf16.
 *
 * Geometries: ResNeXt-50 32x4d's grouped 3x3s (128/32, 256/32, 512/32,
 * 1024/32 channels: group widths 4, 8, 16, 32; stride 1 and the stride-2
 * first block of a stage) at small spatial sizes and batch 1-2, plus tile
 * edges (sizes that are not multiples of the tiles), unequal in and out
 * widths, two groups, a 5x5 kernel with stride 3 and padding 2, and a
 * weight gradient of several chunks of several pixel tiles each; and
 * one-group convs on the implicit-GEMM form (bf16, tensor cores only):
 * ResNeXt's 7x7 stride-2 stem, a 1x1 stride-2 downsample, and channel
 * counts that leave partial tiles.
 *
 * Input norms (program.h ConvInputNorm: the BatchNorm-apply, and ReLU, of x
 * applied as a pass stages x): the forward and weight-gradient passes of
 * w4_s1, w4_s2 (stride 2, accumulating), w16_s1, k5_s3_p2 (padding 2: the
 * halo must stay zero) and many_tiles (several weight-gradient chunks),
 * with and without ReLU, in f32 and bf16 on CUDA cores and in bf16 on
 * tensor cores (those with a tensor-core form: all but many_tiles). The
 * reference applies the norm in float64 to x, rounds x' to bf16 where x is
 * bf16 (as the kernel does), and convolves x'. The statistics make it
 * matter: means about +-0.5, invstd 0.5-2, gamma and beta of both signs.
 *
 * Gradient sums (program.h ConvGradSums: a data gradient that writes dx
 * (=) and sums, per block row and channel, g = dx as stored, masked by
 * the ReLU, and g * xhat of the BN input bn_x): w4_s1, w4_s2 (stride 2),
 * w16_s1 and k5_s3_p2, with and without ReLU, bf16 on tensor cores (8x8
 * pixel tiles: w4_s1, w16_s1 and k5_s3_p2 have ragged ones). dx is checked
 * as above; the partials are NaN-filled before the launch (a row a block
 * should cover but left unwritten fails), then each channel's rows are
 * added up (their order is free: the kernel-IR reduction only adds them)
 * and compared with float64 sums over the whole tensor of g and g * xhat,
 * g taken from the emulated dx as stored (bf16), so the comparison sees the
 * sums alone; the ReLU's mask is evaluated in f32 as the kernel does (a
 * mask flipped by a rounding at 0 is no bug). Tolerance, per channel:
 * |emu - ref| <= 1e-5 * max(1, sum of |terms|). Why that tight: the inputs
 * are the same bf16 values on both sides, and a row is an f32 sum, in
 * order, of at most 64 terms (one 8x8 tile), each one to three f32
 * roundings off: under 66 * 2^-24 < 4e-6 of the sum of |terms|, rows then
 * added in double (seen: about 1e-7). Scaled by the sum of |terms|, not by
 * |sum|, because the sums cancel (random signs). That catches dx summed
 * before its bf16 rounding (about 4e-4).
 *
 * Output statistics (program.h ConvOutStats: a forward pass that writes y
 * (=) and sums, per block row and channel, over the block's valid pixels
 * in order, y as stored about k = the first one's y: sum (y - k),
 * sum (y - k)^2, the count, k): w4_s1, w4_s2 (stride 2, writing y here),
 * w16_s1 and k5_s3_p2, reading x as it is and through a BN + ReLU (both
 * features on one step, as the compiler emits ResNeXt's grouped conv),
 * bf16 on tensor cores. y is checked as above; the partials are
 * NaN-filled before the launch and must all be written; each row's count
 * must be its block's valid pixels (a channel's adding up to N*OH*OW) and
 * its k the block's first pixel's y as stored, exactly (bf16 values). The
 * block's pixel tile is told from the rows (8x8, 4x8 or 4x4, the tiles
 * row-major, row = sample * tiles + tile). Then each channel's rows are
 * combined about row 0's k, as lower.c's bn_stats_from_partials does
 * (sum (y - k0) = sum_j s1_j + n_j (k_j - k0), sum (y - k0)^2 = sum_j s2_j
 * + 2 (k_j - k0) s1_j + n_j (k_j - k0)^2), in double, into a mean and a
 * biased variance, compared with the float64 ones of the emulated y as
 * stored. The rows' f32 sums are the only rounding: d = y - k is exact or
 * one rounding, and a row adds at most 64 terms in order, so each sum is
 * off by under 65 * 2^-24 < 4e-6 of its sum of |terms|. Hence the mean's
 * error is under 4e-6 * E|y - k_row| and the variance's under 4e-6 *
 * (E[(y - k_row)^2 + 2 |k_row - k0| |y - k_row|] + 2 |mean - k0| E|y - k_row|)
 * (the cross term and the squared mean carry the row sums' errors);
 * tolerance 1e-5 of max(1, that scale), for each (seen: under 1e-6). That
 * catches y summed before its bf16 rounding (about 6e-4). A k never taken
 * (0) leaves the combined moments right: the k check alone sees it.
 *
 * Tolerance, per tensor: max|emu - ref| <= tol * max(1, max|ref|), tol
 * 1e-4 for f32 outputs (f32 sums in another order than the reference's
 * float64 ones), 1e-2 for bf16 outputs (one rounding of the result is
 * 2^-9 relative); the inputs are the same bf16-rounded values on both
 * sides. The same tolerances with an input norm: the reference rounds x'
 * to bf16 from float64, the kernel from f32, so an x' may differ by one
 * bf16 step, far under them.
 *
 * Deliberately broken kernels (a missing barrier, a halo shifted by one, a
 * wrong group offset, taps between strides not skipped, a skipped chunk,
 * an unsynchronised tile, a wrong weight column, pixels between strides
 * not zeroed; with an input norm: the off-image halo normed too (on CUDA
 * cores and tensor cores), invstd read from the mean's slot, the ReLU
 * dropped, the norm's channel off by one on tensor cores; with gradient
 * sums: the ReLU's mask dropped, the g * xhat plane a row low, the rows one
 * high, the first tile's row of g sums left unwritten, dx summed unrounded,
 * invstd read from the mean's slot; with output statistics: k never
 * taken, the counts written over the sums of squares, the rows one high,
 * y summed unrounded) must be caught, the last by the moments check.
 *
 * Usage: conv_emu_test WORKDIR     prints PASS/FAIL lines; needs g++.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "conv_cuda.h"
#include "util.h"

typedef struct Case {
    const char *name;
    ConvGeom g;
    bool accumulate; /* forward and data gradient +=; the weight gradient then = (and += otherwise) */
} Case;

/*                     n   h   w  cin oh  ow cout  g  kh kw sh sw ph pw */
static const Case cases[] = {
    {"w4_s1", {1, 12, 12, 128, 12, 12, 128, 32, 3, 3, 1, 1, 1, 1}, false},
    {"w4_s2", {2, 16, 16, 128, 8, 8, 128, 32, 3, 3, 2, 2, 1, 1}, true},
    {"w8_s1", {1, 10, 10, 256, 10, 10, 256, 32, 3, 3, 1, 1, 1, 1}, false},
    {"w8_s2", {1, 14, 14, 256, 7, 7, 256, 32, 3, 3, 2, 2, 1, 1}, false},
    {"w16_s1", {1, 7, 7, 512, 7, 7, 512, 32, 3, 3, 1, 1, 1, 1}, true},
    {"w16_s2", {1, 14, 14, 512, 7, 7, 512, 32, 3, 3, 2, 2, 1, 1}, false},
    {"w32_s1", {1, 7, 7, 1024, 7, 7, 1024, 32, 3, 3, 1, 1, 1, 1}, false},
    {"w32_s2", {1, 14, 14, 1024, 7, 7, 1024, 32, 3, 3, 2, 2, 1, 1}, true},
    {"w4_to_w8", {1, 9, 11, 64, 9, 11, 128, 16, 3, 3, 1, 1, 1, 1}, false},
    {"two_groups", {2, 6, 5, 8, 6, 5, 8, 2, 3, 3, 1, 1, 1, 1}, true},
    {"k5_s3_p2", {2, 11, 9, 32, 4, 3, 32, 4, 5, 5, 3, 3, 2, 2}, false},
    {"many_tiles", {2, 30, 32, 8, 30, 32, 8, 2, 3, 3, 1, 1, 1, 1}, false}, /* 8 weight-gradient chunks of 4 tiles */
    /* one group: the implicit-GEMM form (conv_igemm.c), bf16 on tensor cores only */
    {"stem_k7_s2", {2, 24, 24, 3, 12, 12, 64, 1, 7, 7, 2, 2, 3, 3}, false}, /* K 147; 3 weight-gradient chunks */
    {"downsample_1x1_s2", {2, 8, 8, 64, 4, 4, 128, 1, 1, 1, 2, 2, 0, 0}, true},
    {"dense_ragged", {1, 7, 9, 40, 7, 9, 24, 1, 3, 3, 1, 1, 1, 1}, false}, /* 24 and 40 channels: partial tiles */
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static const ConvPass passes[3] = {CONV_FORWARD, CONV_DATA_GRAD, CONV_WEIGHT_GRAD};
static const char *const pass_names[3] = {"forward", "data_grad", "weight_grad"};

static int64_t x_numel(const ConvGeom *g) { return (int64_t)g->n * g->h * g->w * g->cin; }
static int64_t y_numel(const ConvGeom *g) { return (int64_t)g->n * g->oh * g->ow * g->cout; }
static int64_t w_numel(const ConvGeom *g) { return (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw; }

static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- a Program holding just conv steps ------------------------------------------- */

/* How a case's forward and weight-gradient passes read x: as it is, or
 * through an input norm (program.h ConvInputNorm), with or without ReLU;
 * or (SUMS_*) a case of just its data gradient, which writes dx (=) and
 * sums for the BN (+ ReLU) tree whose output gradient dx is (ConvGradSums);
 * or (STATS_*) a case of just its forward pass, which writes y (=) and sums
 * its output statistics (ConvOutStats), reading x as it is or through a
 * BN + ReLU, as the compiler emits ResNeXt's grouped conv. Each pair of
 * SUMS_* and STATS_* is consecutive (check_bn_sums takes a pair). */
typedef enum NormMode { NORM_OFF, NORM_BN, NORM_BN_RELU, SUMS_BN, SUMS_BN_RELU, STATS_OUT, STATS_BN_RELU } NormMode;
static const char *const norm_tags[7] = {"", "_bn", "_bnrelu", "_bn_sums", "_bnrelu_sums", "_stats", "_bnrelu_stats"};
static bool grad_sums(NormMode m) { return m == SUMS_BN || m == SUMS_BN_RELU; }
static bool out_stats(NormMode m) { return m == STATS_OUT || m == STATS_BN_RELU; }

/* buffers of a case slot: x, w, y, then the input norm's stats, gamma,
 * beta, then the gradient sums' BN input and partials, then the output
 * statistics' partials */
enum { SLOT_BUFS = 9 };

/* Steps of each given case (norms[c], or off when norms is NULL): its
 * three passes, or with a norm its forward and weight gradient (a data
 * gradient writes x, it never reads it through a norm), or with gradient
 * sums its data gradient alone, writing dx (=), or with output statistics
 * its forward pass alone, writing y (=). */
static Program *conv_program(const int *which, const NormMode *norms, int n, KDType act, ConvEngine engine) {
    static const char *const buf_names[SLOT_BUFS] = {"x", "w", "y", "norm_stats", "norm_gamma", "norm_beta",
                                                     "sums_bn_x", "sums_partials", "stats_partials"};
    Program *p = xcalloc(1, sizeof *p);
    p->module = kir_module_new();
    p->bufs = xcalloc((size_t)n * SLOT_BUFS, sizeof(BufDesc));
    p->steps[PHASE_FORWARD_TRAIN] = xcalloc((size_t)n * 3, sizeof(Step));
    int n_steps = 0;
    for (int c = 0; c < n; c++) {
        const Case *cs = &cases[which[c]];
        const NormMode norm = norms ? norms[c] : NORM_OFF;
        const int rows = grad_sums(norm) ? conv_cuda_dgrad_sums_rows(&cs->g, engine) : 0;
        const int stats_rows = out_stats(norm) ? conv_cuda_forward_stats_rows(&cs->g, engine) : 0;
        const int64_t numel[SLOT_BUFS] = {x_numel(&cs->g), w_numel(&cs->g), y_numel(&cs->g), 2 * cs->g.cin,
                                          cs->g.cin, cs->g.cin, x_numel(&cs->g), 2LL * (rows ? rows : 1) * cs->g.cin,
                                          4LL * (stats_rows ? stats_rows : 1) * cs->g.cout};
        for (int b = 0; b < SLOT_BUFS; b++)
            p->bufs[SLOT_BUFS * c + b] = (BufDesc){.name = (char *)buf_names[b], .numel = numel[b],
                                                   .dtype = b == 0 || b == 2 || b == 6 ? act : KD_F32};
        const int base = SLOT_BUFS * c;
        const ConvInputNorm in_norm = {norm != NORM_OFF && norm != STATS_OUT,
                                       norm == NORM_BN_RELU || norm == SUMS_BN_RELU || norm == STATS_BN_RELU, base + 3,
                                       base + 4, base + 5};
        const ConvGradSums sums = {grad_sums(norm), base + 6, base + 7, rows};
        const ConvOutStats stats = {out_stats(norm), base + 8, stats_rows};
        for (int q = 0; q < 3; q++) {
            if (norm != NORM_OFF && (passes[q] == CONV_DATA_GRAD) != grad_sums(norm)) continue;
            if (stats.on && passes[q] != CONV_FORWARD) continue;
            bool acc = passes[q] == CONV_WEIGHT_GRAD ? !cs->accumulate : cs->accumulate && !grad_sums(norm) && !stats.on;
            p->steps[PHASE_FORWARD_TRAIN][n_steps++] = (Step){
                .kind = STEP_CONV,
                .kernel = -1,
                .conv = {passes[q], cs->g, base, base + 1, base + 2, acc, engine, in_norm, sums, stats},
            };
        }
    }
    p->n_bufs = SLOT_BUFS * n;
    p->n_steps[PHASE_FORWARD_TRAIN] = n_steps;
    return p;
}

/* The step of case slot c's pass, or -1. */
static int find_step(const Program *p, int c, ConvPass pass) {
    for (int i = 0; i < p->n_steps[PHASE_FORWARD_TRAIN]; i++) {
        const ConvStep *s = &p->steps[PHASE_FORWARD_TRAIN][i].conv;
        if (s->x == SLOT_BUFS * c && s->pass == pass) return i;
    }
    return -1;
}

static void conv_program_free(Program *p) {
    kir_module_free(p->module);
    free(p->bufs);
    free(p->steps[PHASE_FORWARD_TRAIN]);
    free(p);
}

/* ---- the emulator ------------------------------------------------------------------ */

/* check_step's buffers: x, w, y, scratch, the input norm's stats, gamma
 * and beta, the gradient sums' BN input and partials, the output
 * statistics' partials */
enum { MAX_KERNEL_BUFS = 10 };

/* The kernel's arguments in the order of its parameters (conv_cuda.c
 * conv_cuda_signature): x, w, y, scratch, then those of the features it
 * has; their indices in check_step's buffers into slots. Returns how many. */
static int kernel_args(const ConvStep *s, int slots[MAX_KERNEL_BUFS]) {
    int n = 0;
    for (int b = 0; b < MAX_KERNEL_BUFS; b++)
        if (b < 4 || (b < 7 ? s->norm.on : b < 9 ? s->sums.on : s->stats.on)) slots[n++] = b;
    return n;
}

static int kernel_buffers(const ConvCudaKernel *k) {
    int slots[MAX_KERNEL_BUFS];
    return kernel_args(&k->step, slots);
}

static char *emu_glue(const ConvCudaSet *set) {
    StrBuf b = {0};
    for (int i = 0; i < set->n; i++) {
        const ConvCudaKernel *k = &set->kernels[i];
        for (int part = 0; part < 1 + k->launch.has_finish; part++) {
            ConvPass pass = k->step.pass;
            sb_printf(&b,
                      "static void conv_call_%d_%d(rxc_emu::Launch *L) {\n    %s%s(rxc_emu::GPtr<%s%s>(L, 0), "
                      "rxc_emu::GPtr<%sfloat>(L, 1), rxc_emu::GPtr<%s%s>(L, 2), L->sc, rxc_emu::GPtr<float>(L, 3)%s",
                      i, part, k->name, part ? "_finish" : "", pass == CONV_DATA_GRAD ? "" : "const ",
                      render_cuda_ctype(k->x_type), pass == CONV_WEIGHT_GRAD ? "" : "const ",
                      pass == CONV_FORWARD ? "" : "const ", render_cuda_ctype(k->y_type),
                      k->step.norm.on ? ", rxc_emu::GPtr<const float>(L, 4), rxc_emu::GPtr<const float>(L, 5), "
                                        "rxc_emu::GPtr<const float>(L, 6)" : "");
            const int after_norm = k->step.norm.on ? 7 : 4;
            if (k->step.sums.on)
                sb_printf(&b, ", rxc_emu::GPtr<const %s>(L, %d), rxc_emu::GPtr<float>(L, %d)", render_cuda_ctype(k->x_type),
                          after_norm, after_norm + 1);
            if (k->step.stats.on) sb_printf(&b, ", rxc_emu::GPtr<float>(L, %d)", kernel_buffers(k) - 1);
            sb_puts(&b, ");\n}\n");
        }
    }
    sb_puts(&b, "extern \"C\" int conv_emu_run(int kernel, int part, const unsigned *grid, const unsigned *block,\n"
                "                             void *const *bufs, const long long *numel, const char *const *names,\n"
                "                             char *err, size_t errlen) {\n"
                "    static const double sc[1] = {0};\n    switch (kernel * 2 + part) {\n");
    for (int i = 0; i < set->n; i++)
        for (int part = 0; part < 1 + set->kernels[i].launch.has_finish; part++)
            sb_printf(&b, "    case %d: return rxc_emu_launch(conv_call_%d_%d, grid, block, bufs, numel, names, %d, sc, err, errlen);\n",
                      i * 2 + part, i, part, kernel_buffers(&set->kernels[i]));
    sb_puts(&b, "    }\n    snprintf(err, errlen, \"no kernel %d\", kernel);\n    return 1;\n}\n");
    return sb_take(&b);
}

typedef int (*ConvEmuRun)(int, int, const unsigned *, const unsigned *, void *const *, const long long *,
                          const char *const *, char *, size_t);

static void *build_emulator(const char *workdir, const char *tag, const char *source, const ConvCudaSet *set,
                            char *err, size_t errlen) {
    char *path = xasprintf("%s/%s.cc", workdir, tag), *so = xasprintf("%s/%s.so", workdir, tag);
    char *glue = emu_glue(set);
    void *h = NULL;
    FILE *f = fopen(path, "w");
    if (!f) snprintf(err, errlen, "cannot write %s", path);
    else {
        fprintf(f, "#include \"cuda_emu.h\"\n%s\n%s", source, glue);
        fclose(f);
        char *cmd = xasprintf("g++ -std=c++17 -O1 -shared -fPIC -w -Itests/emu -o %s %s 2>%s/%s.log", so, path, workdir, tag);
        if (system(cmd) != 0) snprintf(err, errlen, "g++ failed on the emulated source (%s/%s.log)", workdir, tag);
        else if (!(h = dlopen(so, RTLD_NOW | RTLD_LOCAL))) snprintf(err, errlen, "dlopen %s: %s", so, dlerror());
        free(cmd);
    }
    free(glue);
    free(path);
    free(so);
    return h;
}

/* ---- the float64 reference ------------------------------------------------------------ */

/* out = (acc ? out : 0) + the pass, in double, from float tensors */
static void reference(const ConvStep *s, const float *x, const float *w, const float *y, double *out) {
    const ConvGeom *g = &s->g;
    const int cig = g->cin / g->groups, cog = g->cout / g->groups;
    for (int n = 0; n < g->n; n++)
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++)
                for (int co = 0; co < g->cout; co++)
                    for (int ci = 0; ci < cig; ci++)
                        for (int kh = 0; kh < g->kh; kh++)
                            for (int kw = 0; kw < g->kw; kw++) {
                                int ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                                int64_t xi = (((int64_t)n * g->h + ih) * g->w + iw) * g->cin + co / cog * cig + ci;
                                int64_t yi = (((int64_t)n * g->oh + oh) * g->ow + ow) * g->cout + co;
                                int64_t wi = (((int64_t)co * cig + ci) * g->kh + kh) * g->kw + kw;
                                if (s->pass == CONV_FORWARD) out[yi] += (double)x[xi] * w[wi];
                                else if (s->pass == CONV_DATA_GRAD) out[xi] += (double)y[yi] * w[wi];
                                else out[wi] += (double)y[yi] * x[xi];
                            }
}

static void fill(float *p, int64_t n, KDType t, uint64_t seed) {
    Rng rng = {seed, 7, 0};
    for (int64_t i = 0; i < n; i++) {
        float u = rng_uniform(rng_next(&rng)) * 4.0f - 2.0f;
        p[i] = t == KD_BF16 ? bf16_round(u) : u;
    }
}

static void to_device(void *dst, const float *src, int64_t n, KDType t) {
    for (int64_t i = 0; i < n; i++) {
        if (t == KD_F32) ((float *)dst)[i] = src[i];
        else {
            uint32_t u;
            memcpy(&u, &src[i], 4);
            ((uint16_t *)dst)[i] = (uint16_t)(u >> 16); /* src is bf16-exact */
        }
    }
}

static float from_device(const void *src, int64_t i, KDType t) {
    if (t == KD_F32) return ((const float *)src)[i];
    uint32_t u = (uint32_t)((const uint16_t *)src)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* An input norm's buffers, with statistics that make it matter: means
 * about +-0.5 on x in [-2, 2), invstd 0.5-2, gamma and beta of both signs
 * (ReLU clips about half of x', and relu(beta) is mostly not 0, so a
 * normed halo shows). */
static void fill_input_norm(float *stats, float *gamma, float *beta, int c, uint64_t seed) {
    Rng rng = {seed, 11, 0};
    for (int i = 0; i < c; i++) {
        stats[i] = rng_uniform(rng_next(&rng)) * 1.2f - 0.6f;
        stats[c + i] = 0.5f + rng_uniform(rng_next(&rng)) * 1.5f;
        float magnitude = 0.5f + rng_uniform(rng_next(&rng));
        gamma[i] = rng_uniform(rng_next(&rng)) < 0.5f ? -magnitude : magnitude;
        beta[i] = rng_uniform(rng_next(&rng)) * 2.0f - 1.0f;
    }
}

/* x' = the input norm of x in float64, rounded to bf16 where x is bf16 (as
 * the kernel stores it); padding stays out of it (reference() skips it). */
static void input_norm_reference(const ConvStep *s, KDType xt, const float *x, float *const norm_bufs[3], float *out) {
    const int c = s->g.cin;
    const float *stats = norm_bufs[0], *gamma = norm_bufs[1], *beta = norm_bufs[2];
    for (int64_t i = 0; i < x_numel(&s->g); i++) {
        const int ch = (int)(i % c);
        double v = ((double)x[i] - stats[ch]) * stats[c + ch] * gamma[ch] + beta[ch];
        if (s->norm.relu && v < 0) v = 0;
        out[i] = xt == KD_BF16 ? bf16_round((float)v) : (float)v;
    }
}

/* Compares output tensor out (called name) with ref: 0 on agreement, 2 on
 * a mismatch; the detail in why. */
static int compare_output(const void *out, KDType t, const double *ref, int64_t numel, const char *name, char *why,
                          size_t n) {
    double scale = 1, worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < numel; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    for (int64_t i = 0; i < numel; i++) {
        double d = fabs((double)from_device(out, i, t) - ref[i]);
        if (!(d <= worst)) worst = d, at = i;
    }
    const double rel = t == KD_BF16 ? 1e-2 : 1e-4, tol = rel * scale;
    if (!(worst <= tol)) {
        snprintf(why, n, "%s[%lld]: emulated %.9g, reference %.9g (max error %.3g > tolerance %.3g)", name,
                 (long long)at, from_device(out, at, t), ref[at], worst, tol);
        return 2;
    }
    snprintf(why, n, "max error %.3g of max(1, max|ref|) %.3g (tolerance %.0e)", worst, scale, rel);
    return 0;
}

/* Compares the gradient sums (ConvGradSums) of a data-gradient pass that
 * wrote dx with the float64 sums over the whole tensor of g and g * xhat,
 * g taken from dx as the emulated kernel stored it; the rows' order is
 * free (the reduction over them only adds them up), so each channel's rows
 * are added up here too. 0 on agreement, 2 on a mismatch or a row never
 * written (the partials are NaN-filled before the launch). */
static int compare_grad_sums(const ConvStep *s, KDType xt, void *const dev[MAX_KERNEL_BUFS], char *why, size_t n) {
    const int c = s->g.cin, rows = s->sums.rows;
    const float *stats = dev[4], *gamma = dev[5], *beta = dev[6], *partials = dev[8];
    for (int64_t i = 0; i < 2LL * rows * c; i++)
        if (isnan(partials[i])) {
            snprintf(why, n, "sums_partials: row %lld of %d, channel %lld of the %s never written", (long long)(i / c % rows),
                     rows, (long long)(i % c), i < (int64_t)rows * c ? "sums of g" : "sums of g * xhat");
            return 2;
        }
    double *ref = xcalloc(4 * (size_t)c, sizeof(double)); /* sum g, sum g * xhat, then their sums of |terms| */
    for (int64_t i = 0; i < x_numel(&s->g); i++) {
        const int ch = (int)(i % c);
        const float gv = from_device(dev[0], i, xt), xv = from_device(dev[7], i, xt);
        /* the ReLU's mask from the f32 values, as the kernel computes it: a mask that flips on a value within
         * an f32 rounding of 0 would be no bug */
        const float xhat_f32 = (xv - stats[ch]) * stats[c + ch];
        if (s->norm.relu && !(xhat_f32 * gamma[ch] + beta[ch] > 0.0f)) continue;
        const double xhat = ((double)xv - stats[ch]) * stats[c + ch];
        ref[ch] += gv, ref[c + ch] += gv * xhat;
        ref[2 * c + ch] += fabs(gv), ref[3 * c + ch] += fabs(gv * xhat);
    }
    const double tol = 1e-5;
    double worst = -1, worst_emu = 0;
    int worst_at = 0;
    for (int j = 0; j < 2 * c; j++) {
        double emu = 0;
        for (int r = 0; r < rows; r++) emu += partials[((int64_t)(j / c) * rows + r) * c + j % c];
        const double err = fabs(emu - ref[j]) / fmax(1.0, ref[2 * c + j]);
        if (!(err <= worst)) worst = err, worst_at = j, worst_emu = emu;
    }
    const int rc = worst <= tol ? 0 : 2;
    snprintf(why + strlen(why), n - strlen(why), "; %s the gradient sums over %d rows, %s[channel %d]: %.9g, reference "
             "%.9g, error %.3g of max(1, sum of |terms| %.3g) (tolerance %.0e)", rc ? "MISMATCH in" : "worst of",
             rows, worst_at < c ? "sum g" : "sum g*xhat", worst_at % c, worst_emu, ref[worst_at], worst,
             ref[2 * c + worst_at], tol);
    free(ref);
    return rc;
}

/* ---- output statistics (ConvOutStats) -------------------------------------------------- */

/* The pixel tile of a tensor-core forward block, told from the rows the
 * plan gives (conv_cuda.c keeps its plan to itself): the tensor-core gather
 * tiles hold a multiple of 16 pixels (8x8, 4x8, 4x4), and a block takes
 * tile blockIdx.x of sample blockIdx.y, row-major, so row = sample * tiles
 * + tile. False where no shape gives the rows, or two place a pixel in
 * different blocks. */
static bool stats_tile(const ConvGeom *g, int rows, int *th, int *tw) {
    static const int shapes[3][2] = {{8, 8}, {4, 8}, {4, 4}};
    bool found = false;
    for (int s = 0; s < 3; s++) {
        const int h = shapes[s][0], w = shapes[s][1], tiles_w = (g->ow + w - 1) / w;
        if (g->n * ((g->oh + h - 1) / h) * tiles_w != rows) continue;
        if (!found) {
            *th = h, *tw = w, found = true;
            continue;
        }
        const int found_tiles_w = (g->ow + *tw - 1) / *tw;
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++)
                if (oh / h * tiles_w + ow / w != oh / *th * found_tiles_w + ow / *tw) return false;
    }
    return found;
}

/* What the partials of each block row should say, whatever the channel:
 * its valid pixels, and its first one's (the tile's origin's) index in y
 * over the channels (pixel * cout + channel is that channel's y). */
typedef struct StatsRows {
    int *count;
    int64_t *first;
    int64_t *row_of; /* each pixel's row */
} StatsRows;

static StatsRows stats_rows_of(const ConvGeom *g, int rows, int th, int tw) {
    StatsRows r = {xcalloc((size_t)rows, sizeof(int)), xmalloc((size_t)rows * sizeof(int64_t)),
                   xmalloc((size_t)g->n * g->oh * g->ow * sizeof(int64_t))};
    const int tiles_w = (g->ow + tw - 1) / tw, tiles = rows / g->n;
    int64_t pixel = 0;
    for (int n = 0; n < g->n; n++)
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++, pixel++) {
                const int row = n * tiles + oh / th * tiles_w + ow / tw;
                if (r.count[row]++ == 0) r.first[row] = pixel; /* row-major: the tile's origin comes first */
                r.row_of[pixel] = row;
            }
    return r;
}

/* Checks (b) and (c): each row's count is its block's valid pixels (and a
 * channel's counts add up to every pixel), its k that channel's y at the
 * block's first pixel as stored, exactly. Appends the first mismatch to
 * why; 0 on agreement, 2 on one. */
static int check_counts_and_k(const ConvStep *s, const StatsRows *r, KDType yt, const void *y, const float *partials,
                              char *why, size_t n) {
    const ConvGeom *g = &s->g;
    const int C = g->cout, rows = s->stats.rows;
    const int64_t plane = (int64_t)rows * C, pixels = (int64_t)g->n * g->oh * g->ow;
    const size_t len = strlen(why);
    for (int c = 0; c < C; c++) {
        double total = 0;
        for (int row = 0; row < rows; row++) total += partials[2 * plane + (int64_t)row * C + c];
        if (total != (double)pixels) {
            snprintf(why + len, n - len, "; MISMATCH in the counts: channel %d's add up to %.9g, not the %lld pixels", c,
                     total, (long long)pixels);
            return 2;
        }
    }
    for (int row = 0; row < rows; row++)
        for (int c = 0; c < C; c++) {
            const int64_t at = (int64_t)row * C + c;
            const float k = from_device(y, r->first[row] * C + c, yt);
            if (partials[2 * plane + at] != (float)r->count[row]) {
                snprintf(why + len, n - len, "; MISMATCH in the counts: row %d of %d, channel %d: %.9g, the block has %d "
                         "valid pixels", row, rows, c, partials[2 * plane + at], r->count[row]);
                return 2;
            }
            if (partials[3 * plane + at] != k) {
                snprintf(why + len, n - len, "; MISMATCH in k: row %d of %d, channel %d: %.9g, the block's first pixel's y "
                         "as stored %.9g", row, rows, c, partials[3 * plane + at], k);
                return 2;
            }
        }
    return 0;
}

/* Check (d): per channel, the rows combined about row 0's k as lower.c's
 * bn_stats_from_partials combines them, in double, against the float64
 * mean and biased variance of y as stored; errors relative to the
 * scales of the f32 rounding bound (see the header). Appends the worst
 * channel to why; 0 on agreement, 2 on a mismatch. */
static int check_moments(const ConvStep *s, const StatsRows *r, KDType yt, const void *y, const float *partials,
                         char *why, size_t n) {
    const ConvGeom *g = &s->g;
    const int C = g->cout, rows = s->stats.rows;
    const int64_t plane = (int64_t)rows * C, pixels = (int64_t)g->n * g->oh * g->ow;
    const double tol = 1e-5, m = (double)pixels;
    double worst = -1, worst_emu[2] = {0}, worst_ref[2] = {0};
    int worst_c = 0;
    for (int c = 0; c < C; c++) {
        const double k0 = partials[3 * plane + c];
        double s1 = 0, s2 = 0, sum = 0, var_ref = 0, abs_d = 0, var_terms = 0;
        for (int row = 0; row < rows; row++) {
            const int64_t at = (int64_t)row * C + c;
            const double d = partials[3 * plane + at] - k0, cnt = partials[2 * plane + at];
            s1 += partials[at] + cnt * d;
            s2 += partials[plane + at] + 2 * d * partials[at] + cnt * d * d;
        }
        for (int64_t p = 0; p < pixels; p++) sum += from_device(y, p * C + c, yt);
        const double mean_ref = sum / m, y0 = from_device(y, c, yt);
        for (int64_t p = 0; p < pixels; p++) {
            const double v = from_device(y, p * C + c, yt), k = from_device(y, r->first[r->row_of[p]] * C + c, yt);
            var_ref += (v - mean_ref) * (v - mean_ref);
            abs_d += fabs(v - k);
            var_terms += (v - k) * (v - k) + 2 * fabs(k - y0) * fabs(v - k);
        }
        var_ref /= m, abs_d /= m, var_terms = var_terms / m + 2 * fabs(mean_ref - y0) * abs_d;
        const double mean = k0 + s1 / m, var = s2 / m - (s1 / m) * (s1 / m);
        const double err = fmax(fabs(mean - mean_ref) / fmax(1, abs_d), fabs(var - var_ref) / fmax(1, var_terms));
        if (!(err <= worst)) worst = err, worst_c = c, worst_emu[0] = mean, worst_emu[1] = var, worst_ref[0] = mean_ref,
                             worst_ref[1] = var_ref;
    }
    const int rc = worst <= tol ? 0 : 2;
    const size_t len = strlen(why);
    snprintf(why + len, n - len, "; %s the moments over %d rows, channel %d: mean %.9g, reference %.9g; variance %.9g, "
             "reference %.9g; error %.3g of their scales (tolerance %.0e)", rc ? "MISMATCH in" : "worst of", rows, worst_c,
             worst_emu[0], worst_ref[0], worst_emu[1], worst_ref[1], worst, tol);
    return rc;
}

/* Compares the output statistics (ConvOutStats) of a forward pass that
 * wrote y with what y as the emulated kernel stored it says: (a) every
 * entry written (the partials are NaN-filled before the launch), (b) the
 * counts, (c) the k, (d) the moments combined from the rows. Every failing
 * check shows in why. 0 on agreement, 2 on a mismatch. */
static int compare_out_stats(const ConvStep *s, KDType yt, void *const dev[MAX_KERNEL_BUFS], char *why, size_t n) {
    static const char *const planes[4] = {"sum (y - k)", "sum (y - k)^2", "count", "k"};
    const ConvGeom *g = &s->g;
    const int C = g->cout, rows = s->stats.rows;
    const float *partials = dev[9];
    const size_t len = strlen(why);
    for (int64_t i = 0; i < 4LL * rows * C; i++)
        if (isnan(partials[i])) {
            snprintf(why + len, n - len, "; stats_partials: the %s of row %lld of %d, channel %lld never written",
                     planes[i / ((int64_t)rows * C)], (long long)(i / C % rows), rows, (long long)(i % C));
            return 2;
        }
    int th = 0, tw = 0;
    if (!stats_tile(g, rows, &th, &tw)) {
        snprintf(why + len, n - len, "; cannot tell the blocks' pixel tile from the %d rows", rows);
        return 2;
    }
    StatsRows r = stats_rows_of(g, rows, th, tw);
    int rc = check_counts_and_k(s, &r, yt, dev[2], partials, why, n);
    rc |= check_moments(s, &r, yt, dev[2], partials, why, n);
    free(r.count);
    free(r.first);
    free(r.row_of);
    return rc;
}

/* The extra buffers of a step with an input norm (stats, gamma, beta),
 * gradient sums (the BN's input, the partials NaN-filled: a row never
 * written shows) and output statistics (the partials, NaN-filled). */
static void fill_extra_buffers(const ConvCudaKernel *k, const long long *numel, void *dev[MAX_KERNEL_BUFS], uint64_t seed) {
    int slots[MAX_KERNEL_BUFS];
    for (int a = 4, n_args = kernel_args(&k->step, slots); a < n_args; a++)
        dev[slots[a]] = xmalloc((size_t)numel[slots[a]] * sizeof(float));
    if (k->step.stats.on)
        for (int64_t i = 0; i < numel[9]; i++) ((float *)dev[9])[i] = NAN;
    if (k->step.norm.on) fill_input_norm(dev[4], dev[5], dev[6], k->step.g.cin, seed);
    if (!k->step.sums.on) return;
    float *bn_x = xmalloc((size_t)numel[7] * sizeof(float));
    fill(bn_x, numel[7], KD_BF16, seed * 3 + 7);
    to_device(dev[7], bn_x, numel[7], k->x_type);
    free(bn_x);
    for (int64_t i = 0; i < numel[8]; i++) ((float *)dev[8])[i] = NAN;
}

/* Runs step s (kernel k of the loaded emulator) and compares its output
 * (and with gradient sums, the partials). Returns 0 on agreement, 1 on an
 * emulator error, 2 on a numeric mismatch (message in why). */
static int check_step(void *so, int ki, const ConvCudaKernel *k, const ConvStep *s, uint64_t seed, char *why, size_t n) {
    ConvEmuRun run = (ConvEmuRun)dlsym(so, "conv_emu_run");
    const ConvGeom *g = &s->g;
    const KDType types[3] = {k->x_type, KD_F32, k->y_type};
    const int out = s->pass == CONV_FORWARD ? 2 : s->pass == CONV_DATA_GRAD ? 0 : 1;
    long long numel[MAX_KERNEL_BUFS] = {x_numel(g), w_numel(g), y_numel(g), 1, 2 * g->cin, g->cin, g->cin,
                                        x_numel(g), 2LL * s->sums.rows * g->cin, 4LL * s->stats.rows * g->cout};
    float *host[3];
    void *dev[MAX_KERNEL_BUFS] = {0};
    for (int b = 0; b < 3; b++) {
        host[b] = xmalloc((size_t)numel[b] * sizeof(float));
        /* tensor cores multiply bf16: f32 activations of the implicit-GEMM form are given bf16-exact values */
        KDType values = k->step.engine == CONV_ENGINE_TENSOR_CORES && b != 1 ? KD_BF16 : types[b];
        fill(host[b], numel[b], values, seed * 3 + (uint64_t)b);
        dev[b] = xmalloc((size_t)numel[b] * 4);
        to_device(dev[b], host[b], numel[b], types[b]);
    }
    if (k->launch.scratch_floats) numel[3] = k->launch.scratch_floats;
    float *scratch = xmalloc((size_t)numel[3] * sizeof(float));
    for (int64_t i = 0; i < numel[3]; i++) scratch[i] = NAN; /* a partial never written shows */
    dev[3] = scratch;
    float *x_read = host[0]; /* what the pass multiplies: x, or x' */
    fill_extra_buffers(k, numel, dev, seed);
    if (s->norm.on && s->pass != CONV_DATA_GRAD) { /* a data gradient writes x */
        x_read = xmalloc((size_t)numel[0] * sizeof(float));
        input_norm_reference(s, k->x_type, host[0], (float *const[3]){dev[4], dev[5], dev[6]}, x_read);
    }
    if (k->step.engine == CONV_ENGINE_TENSOR_CORES && s->pass != CONV_WEIGHT_GRAD)
        for (int64_t i = 0; i < numel[1]; i++) host[1][i] = bf16_round(host[1][i]); /* what the MMAs multiply */
    double *ref = xcalloc((size_t)numel[out], sizeof(double));
    if (s->accumulate)
        for (int64_t i = 0; i < numel[out]; i++) ref[i] = host[out][i];
    reference(s, x_read, host[1], host[2], ref);
    static const char *const names[MAX_KERNEL_BUFS] = {"x", "w", "y", "scratch", "norm_stats", "norm_gamma",
                                                       "norm_beta", "sums_bn_x", "sums_partials", "stats_partials"};
    int slots[MAX_KERNEL_BUFS], n_args = kernel_args(s, slots);
    void *args[MAX_KERNEL_BUFS];
    long long arg_numel[MAX_KERNEL_BUFS];
    const char *arg_names[MAX_KERNEL_BUFS];
    for (int a = 0; a < n_args; a++) args[a] = dev[slots[a]], arg_numel[a] = numel[slots[a]], arg_names[a] = names[slots[a]];
    int rc = run(ki, 0, k->launch.grid, k->launch.block, args, arg_numel, arg_names, why, n);
    if (!rc && k->launch.has_finish) {
        const unsigned fg[3] = {k->launch.finish_grid, 1, 1}, fb[3] = {k->launch.finish_block, 1, 1};
        rc = run(ki, 1, fg, fb, args, arg_numel, arg_names, why, n);
    }
    rc = rc ? 1 : compare_output(dev[out], types[out], ref, numel[out], names[out], why, n);
    if (!rc && s->sums.on) rc = compare_grad_sums(s, k->x_type, dev, why, n);
    if (!rc && s->stats.on) rc = compare_out_stats(s, k->y_type, dev, why, n);
    for (int b = 0; b < MAX_KERNEL_BUFS; b++) free(dev[b]);
    if (x_read != host[0]) free(x_read);
    for (int b = 0; b < 3; b++) free(host[b]);
    free(ref);
    return rc;
}

/* ---- the cases ------------------------------------------------------------------------- */

/* Tensor cores in bf16: the engine, or a strided GEMM conv's, whose weight
 * gradient runs on the implicit-GEMM form (its forward and data gradient are
 * cuBLAS's, but the form has kernels for them as well: checked here too). */
static bool has_tensor_core_forms(const ConvGeom *g) {
    ConvEngine e = conv_cuda_engine(g, KD_BF16);
    return e == CONV_ENGINE_TENSOR_CORES || e == CONV_ENGINE_STRIDED_GEMM;
}

/* Renders the steps of the given cases (with norms[c], or none when norms
 * is NULL) in activations act, on tensor cores when tc (else CUDA cores),
 * and checks every step in the emulator. */
static void check_cases(const char *workdir, const int *which, const NormMode *norms, int n, KDType act, bool tc) {
    Program *p = conv_program(which, norms, n, act, tc ? CONV_ENGINE_TENSOR_CORES : CONV_ENGINE_CUDA_CORES);
    const char *dt = tc ? (act == KD_BF16 ? "bf16_tc" : "f32_tc") : act == KD_BF16 ? "bf16" : "f32";
    ConvCudaSet set;
    Error err = {0};
    char *src = render_cuda_program(p, NULL, &set, &err), tag[64], why[2048];
    snprintf(tag, sizeof tag, "conv_%s%s", dt,
             !norms ? "" : n && grad_sums(norms[0]) ? "_sums" : n && out_stats(norms[0]) ? "_stats" : "_norm");
    void *so = src ? build_emulator(workdir, tag, src, &set, why, sizeof why) : NULL;
    for (int i = 0; i < p->n_steps[PHASE_FORWARD_TRAIN]; i++) {
        const ConvStep *s = &p->steps[PHASE_FORWARD_TRAIN][i].conv;
        const int c = s->x / SLOT_BUFS, q = s->pass == CONV_FORWARD ? 0 : s->pass == CONV_DATA_GRAD ? 1 : 2;
        char name[160];
        snprintf(name, sizeof name, "conv_emu_%s%s_%s_%s", cases[which[c]].name, norm_tags[norms ? norms[c] : NORM_OFF],
                 pass_names[q], dt);
        if (!so) {
            harness_fail(name, "%s", src ? why : err.msg);
            continue;
        }
        int ki = set.step_kernel[PHASE_FORWARD_TRAIN][i];
        int rc = check_step(so, ki, &set.kernels[ki], s, (uint64_t)(100 + which[c]), why, sizeof why);
        if (rc) harness_fail(name, "%s (%s)", why, set.kernels[ki].name);
        else harness_passf(name, "%s", why);
    }
    if (so) dlclose(so);
    if (src) conv_cuda_set_free(&set);
    free(src);
    conv_program_free(p);
}

/* Every case in activations act on CUDA cores, or (tc) every case with a
 * tensor-core form on tensor cores (in f32 activations, the one-group
 * cases: only the implicit-GEMM form takes them). */
static void check_all(const char *workdir, KDType act, bool tc) {
    int which[N_CASES], n = 0;
    for (int i = 0; i < N_CASES; i++)
        if (tc ? has_tensor_core_forms(&cases[i].g) && (act == KD_BF16 || cases[i].g.groups == 1)
               : conv_cuda_supported(&cases[i].g))
            which[n++] = i;
    check_cases(workdir, which, NULL, n, act, tc);
}

/* The cases whose forward and weight gradient read x through an input norm,
 * with and without ReLU: the group widths 4 and 16, a stride-2
 * accumulating conv, padding 2 (the halo stays zero), several weight-gradient
 * chunks. On tensor cores, those with a tensor-core form. */
static const char *const norm_case_names[] = {"w4_s1", "w4_s2", "w16_s1", "k5_s3_p2", "many_tiles"};
enum { N_NORM_CASES = sizeof norm_case_names / sizeof norm_case_names[0] };

static int case_named(const char *name) {
    for (int i = 0; i < N_CASES; i++)
        if (!strcmp(cases[i].name, name)) return i;
    return -1;
}

static void check_input_norms(const char *workdir, KDType act, bool tc) {
    int which[2 * N_NORM_CASES], n = 0;
    NormMode norms[2 * N_NORM_CASES];
    for (int i = 0; i < N_NORM_CASES; i++) {
        const int c = case_named(norm_case_names[i]);
        if (c < 0) harness_fail("conv_emu_input_norm_cases", "no case named %s", norm_case_names[i]);
        if (c < 0 || (tc && !has_tensor_core_forms(&cases[c].g))) continue;
        for (NormMode m = NORM_BN; m <= NORM_BN_RELU; m++) which[n] = c, norms[n++] = m;
    }
    check_cases(workdir, which, norms, n, act, tc);
}

/* The data gradients with gradient sums (ConvGradSums), with and without
 * ReLU, and the forward passes with output statistics (ConvOutStats),
 * writing y (=; w4_s2 and w16_s1 accumulate elsewhere), reading x as it is
 * and through a BN + ReLU (the step the compiler emits for ResNeXt's
 * grouped conv); bf16 on tensor cores (the only form that has them): the
 * group widths 4 and 16, stride 2 (16x16 in, 8x8 out: whole 8x8 tiles, two
 * samples), and tile edges (w4_s1's 12x12 and w16_s1's 7x7, k5_s3_p2's 11x9
 * in and 4x3 out in two samples, with stride 3 and padding 2). Each must
 * have the feature (w4_to_w8 has no tensor-core form). */
static const char *const sums_case_names[] = {"w4_s1", "w4_s2", "w16_s1", "k5_s3_p2"};
enum { N_SUMS_CASES = sizeof sums_case_names / sizeof sums_case_names[0] };

/* Those cases in the two modes from `first` (SUMS_BN or STATS_OUT). */
static void check_bn_sums(const char *workdir, NormMode first) {
    const bool stats = out_stats(first);
    int which[2 * N_SUMS_CASES], n = 0;
    NormMode modes[2 * N_SUMS_CASES];
    for (int i = 0; i < N_SUMS_CASES; i++) {
        const int c = case_named(sums_case_names[i]);
        const ConvGeom *g = c < 0 ? NULL : &cases[c].g;
        if (!g || (stats ? conv_cuda_forward_stats_rows : conv_cuda_dgrad_sums_rows)(g, CONV_ENGINE_TENSOR_CORES) < 1 ||
            conv_cuda_engine(g, KD_BF16) != CONV_ENGINE_TENSOR_CORES) {
            harness_fail(stats ? "conv_emu_out_stats_cases" : "conv_emu_grad_sums_cases",
                         "%s: no such case with a tensor-core form that has %s", sums_case_names[i],
                         stats ? "output statistics" : "gradient sums");
            continue;
        }
        for (NormMode m = first; m <= first + 1; m++) which[n] = c, modes[n++] = m;
    }
    check_cases(workdir, which, modes, n, KD_BF16, true);
}

typedef struct Mutation {
    const char *name;
    int case_index;
    ConvPass pass;
    const char *find, *replace;
    const char *expect; /* substring of the error that must catch it (the emulator's or a check's), or NULL: any */
    bool tc;            /* the tensor-core form, bf16 (else CUDA cores, f32) */
    NormMode norm;      /* the step's input norm */
} Mutation;

static const Mutation mutations[] = {
    {"conv_emu_detects_missing_barrier_forward", 2, CONV_FORWARD, "    __syncthreads();\n    const int pl",
     "    const int pl", "shared", false, NORM_OFF},
    {"conv_emu_detects_halo_off_by_one", 0, CONV_FORWARD, "const int r = r0 + px", "const int r = r0 + 1 + px", NULL, false, NORM_OFF},
    {"conv_emu_detects_wrong_group_offset", 2, CONV_FORWARD, "const int sb = (", "const int sb = 0 * (", NULL, false, NORM_OFF},
    {"conv_emu_detects_data_grad_halo_off_by_one", 1, CONV_DATA_GRAD, ", q = q0 + px", ", q = q0 - 1 + px",
     NULL, false, NORM_OFF},
    {"conv_emu_detects_taps_between_strides", 1, CONV_DATA_GRAD, "if (!ok[q]) continue;", "", NULL, false, NORM_OFF},
    {"conv_emu_detects_missing_barrier_weight_grad", 11, CONV_WEIGHT_GRAD, "        __syncthreads();\n    }\n", "    }\n",
     "race", false, NORM_OFF},
    {"conv_emu_detects_skipped_chunk", 11, CONV_WEIGHT_GRAD, "for (int c = 0;", "for (int c = 1;", NULL, false, NORM_OFF},
    /* tensor-core forms */
    {"conv_emu_tc_detects_wrong_fragment_ld", 6, CONV_FORWARD, "load_matrix_sync(a, s_a + a_at + kc * 16, 32)",
     "load_matrix_sync(a, s_a + a_at + kc * 16, 16)", NULL, true, NORM_OFF},
    {"conv_emu_tc_detects_missing_barrier_before_load", 2, CONV_FORWARD, "__syncthreads(); /* the tap's rows */", "",
     "race", true, NORM_OFF},
    {"conv_emu_tc_detects_missing_barrier_after_mma", 4, CONV_DATA_GRAD,
     "__syncthreads(); /* every warp is done with the rows */", "", "race", true, NORM_OFF},
    {"conv_emu_tc_detects_unzeroed_taps_between_strides", 1, CONV_DATA_GRAD, "th % 2 == 0 && tw % 2 == 0", "true",
     NULL, true, NORM_OFF},
    {"conv_emu_tc_detects_wrong_pixel_stride_weight_grad", 5, CONV_WEIGHT_GRAD, "b_at + r * 2112, 64)",
     "b_at + r * 2112, 32)",
     NULL, true, NORM_OFF},
    {"conv_emu_tc_detects_misaligned_tile", 0, CONV_WEIGHT_GRAD, "s_dy + r * ", "s_dy + 8 + r * ", "aligned", true, NORM_OFF},
    /* implicit-GEMM forms (one group) */
    {"conv_emu_igemm_detects_missing_barrier_before_mma", 12, CONV_FORWARD, "__syncthreads(); /* the chunk's tiles */", "",
     "race", true, NORM_OFF},
    {"conv_emu_igemm_detects_wrong_weight_column", 12, CONV_FORWARD, "v = w[j * 147 + kk]", "v = w[j * 147 + kk / 2]", NULL,
     true, NORM_OFF},
    {"conv_emu_igemm_detects_unzeroed_pixels_between_strides", 13, CONV_DATA_GRAD, "th % 2 == 0 && tw % 2 == 0 && ", "",
     NULL, true, NORM_OFF},
    {"conv_emu_igemm_detects_missing_barrier_weight_grad", 12, CONV_WEIGHT_GRAD,
     "__syncthreads(); /* every warp is done with the tile */", "", "race", true, NORM_OFF},
    {"conv_emu_igemm_detects_skipped_chunk", 12, CONV_WEIGHT_GRAD, "for (int c = 0;", "for (int c = 1;", NULL, true, NORM_OFF},
    /* input norms (ConvInputNorm): the halo normed too (padding relu(beta - mean * invstd * gamma), not 0),
     * invstd read from the mean's slot, the ReLU dropped, a channel off by one */
    {"conv_emu_detects_normed_halo", 10, CONV_FORWARD, ";\n            v = (v - norm_stats",
     ";\n        }\n        {\n            v = (v - norm_stats", NULL, false, NORM_BN_RELU},
    {"conv_emu_detects_invstd_from_mean_slot", 0, CONV_WEIGHT_GRAD, "norm_stats[128 + ", "norm_stats[", NULL, false,
     NORM_BN},
    {"conv_emu_detects_dropped_relu", 11, CONV_WEIGHT_GRAD, "            v = fmaxf(v, 0.0f);\n", "", NULL, false,
     NORM_BN_RELU},
    {"conv_emu_tc_detects_norm_channel_off_by_one", 4, CONV_FORWARD, "norm_gamma[s_c0 + c]",
     "norm_gamma[(s_c0 + c + 1) % 512]", NULL, true, NORM_BN_RELU},
    {"conv_emu_tc_detects_normed_halo_weight_grad", 10, CONV_WEIGHT_GRAD, ";\n            v = (v - norm_stats",
     ";\n        }\n        {\n            v = (v - norm_stats", NULL, true, NORM_BN},
    /* gradient sums (ConvGradSums): the ReLU's mask dropped, the g * xhat plane a row low (the g plane's last
     * row written twice), the rows one high (past the end), the g sums of each sample's first tile never written
     * (the NaN left there), dx summed before its bf16 rounding, invstd read from the mean's slot */
    {"conv_emu_tc_detects_sums_dropped_relu_mask", 0, CONV_DATA_GRAD,
     "            if (!(xhat * ga + be > 0.0f)) gv = 0.0f; /* the ReLU's mask */\n", "", NULL, true, SUMS_BN_RELU},
    {"conv_emu_tc_detects_sums_xhat_plane_off_by_one", 10, CONV_DATA_GRAD, "sums_partials[(", "sums_partials[(-1 + ", NULL,
     true, SUMS_BN_RELU},
    {"conv_emu_tc_detects_sums_row_off_by_one", 1, CONV_DATA_GRAD, "const int row = blockIdx.y",
     "const int row = 1 + blockIdx.y", "out-of-bounds", true, SUMS_BN},
    {"conv_emu_tc_detects_sums_unwritten_rows", 1, CONV_DATA_GRAD, "        sums_partials[row * ",
     "        if (blockIdx.x) sums_partials[row * ", NULL, true, SUMS_BN},
    {"conv_emu_tc_detects_sums_unrounded_dx", 0, CONV_DATA_GRAD,
     "            gv = __bfloat162float(__float2bfloat16(gv)); /* as stored */\n", "", NULL, true, SUMS_BN},
    {"conv_emu_tc_detects_sums_invstd_from_mean_slot", 4, CONV_DATA_GRAD, "inv = norm_stats[512 + ch]",
     "inv = norm_stats[ch]", NULL, true, SUMS_BN_RELU},
    /* output statistics (ConvOutStats): k never taken (it stays 0: the combined moments stay right, only the k
     * check sees it), the counts written over the sums of squares (w4_s1's plane is 512), the rows one high
     * (past the end), y summed before its bf16 rounding (the moments check must see it, not only the k check) */
    {"conv_emu_tc_detects_stats_k_never_taken", 0, CONV_FORWARD, "            if (count == 0.0f) k = v;\n", "",
     "MISMATCH in k", true, STATS_OUT},
    {"conv_emu_tc_detects_stats_count_plane_offset", 0, CONV_FORWARD, "stats_partials[1024 + at] = count;",
     "stats_partials[512 + at] = count;", "count of row 0 of 4, channel 0 never written", true, STATS_BN_RELU},
    {"conv_emu_tc_detects_stats_row_off_by_one", 1, CONV_FORWARD, "const int at = (blockIdx.y * ",
     "const int at = (1 + blockIdx.y * ", "out-of-bounds", true, STATS_BN_RELU},
    {"conv_emu_tc_detects_stats_unrounded_y", 0, CONV_FORWARD,
     "            v = __bfloat162float(__float2bfloat16(v)); /* as stored */\n", "", "MISMATCH in the moments", true,
     STATS_OUT},
};
enum { N_MUTATIONS = sizeof mutations / sizeof mutations[0] };

static void run_mutation(const char *workdir, const Mutation *mu) {
    Program *p = conv_program(&mu->case_index, &mu->norm, 1, mu->tc ? KD_BF16 : KD_F32,
                              mu->tc ? CONV_ENGINE_TENSOR_CORES : CONV_ENGINE_CUDA_CORES);
    ConvCudaSet set;
    Error err = {0};
    char *src = render_cuda_program(p, NULL, &set, &err), why[2048];
    int q = find_step(p, 0, mu->pass);
    int ki = src && q >= 0 ? set.step_kernel[PHASE_FORWARD_TRAIN][q] : -1;
    char *start = ki >= 0 ? strstr(src, set.kernels[ki].name) : NULL;
    char *at = start ? strstr(start, mu->find) : NULL;
    if (!at) harness_fail(mu->name, "the text to mutate was not found (%s)", src ? "" : err.msg);
    else {
        char *mutated = xasprintf("%.*s%s%s", (int)(at - src), src, mu->replace, at + strlen(mu->find));
        void *so = build_emulator(workdir, mu->name, mutated, &set, why, sizeof why);
        if (!so) harness_fail(mu->name, "%s", why);
        else {
            const ConvStep *s = &p->steps[PHASE_FORWARD_TRAIN][q].conv;
            int rc = check_step(so, ki, &set.kernels[ki], s, 7, why, sizeof why);
            bool ok = mu->expect ? rc != 0 && strstr(why, mu->expect) != NULL : rc != 0;
            harness_check(mu->name, ok, "the broken kernel was not caught as expected (%s): %s",
                          mu->expect ? mu->expect : "any error", rc ? why : "it agreed with the reference");
            if (ok) printf("  caught: %s\n", why);
            dlclose(so);
        }
        free(mutated);
    }
    if (src) conv_cuda_set_free(&set);
    free(src);
    conv_program_free(p);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: conv_emu_test WORKDIR\n");
        return 2;
    }
    check_all(argv[1], KD_F32, false);
    check_all(argv[1], KD_BF16, false);
    check_all(argv[1], KD_BF16, true);
    check_all(argv[1], KD_F32, true); /* the implicit-GEMM form on f32 activations (the input's gradient) */
    check_input_norms(argv[1], KD_F32, false);
    check_input_norms(argv[1], KD_BF16, false);
    check_input_norms(argv[1], KD_BF16, true);
    check_bn_sums(argv[1], SUMS_BN);
    check_bn_sums(argv[1], STATS_OUT);
    for (int i = 0; i < N_MUTATIONS; i++) run_mutation(argv[1], &mutations[i]);
    return harness_status();
}
