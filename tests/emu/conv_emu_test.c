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
 * dropped, the norm's channel off by one on tensor cores) must be caught.
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
 * through an input norm (program.h ConvInputNorm), with or without ReLU. */
typedef enum NormMode { NORM_OFF, NORM_BN, NORM_BN_RELU } NormMode;
static const char *const norm_tags[3] = {"", "_bn", "_bnrelu"};

/* buffers of a case slot: x, w, y, then the input norm's stats, gamma, beta */
enum { SLOT_BUFS = 6 };

/* Steps of each given case (norms[c], or off when norms is NULL): its
 * three passes, or with a norm its forward and weight gradient (a data
 * gradient writes x, it never reads it through a norm). */
static Program *conv_program(const int *which, const NormMode *norms, int n, KDType act, ConvEngine engine) {
    static const char *const buf_names[SLOT_BUFS] = {"x", "w", "y", "norm_stats", "norm_gamma", "norm_beta"};
    Program *p = xcalloc(1, sizeof *p);
    p->module = kir_module_new();
    p->bufs = xcalloc((size_t)n * SLOT_BUFS, sizeof(BufDesc));
    p->steps[PHASE_FORWARD_TRAIN] = xcalloc((size_t)n * 3, sizeof(Step));
    int n_steps = 0;
    for (int c = 0; c < n; c++) {
        const Case *cs = &cases[which[c]];
        const NormMode norm = norms ? norms[c] : NORM_OFF;
        const int64_t numel[SLOT_BUFS] = {x_numel(&cs->g), w_numel(&cs->g), y_numel(&cs->g),
                                          2 * cs->g.cin, cs->g.cin, cs->g.cin};
        for (int b = 0; b < SLOT_BUFS; b++)
            p->bufs[SLOT_BUFS * c + b] = (BufDesc){.name = (char *)buf_names[b], .numel = numel[b],
                                                   .dtype = b == 0 || b == 2 ? act : KD_F32};
        const int base = SLOT_BUFS * c;
        const ConvInputNorm in_norm = {norm != NORM_OFF, norm == NORM_BN_RELU, base + 3, base + 4, base + 5};
        for (int q = 0; q < 3; q++) {
            if (norm != NORM_OFF && passes[q] == CONV_DATA_GRAD) continue;
            bool acc = passes[q] == CONV_WEIGHT_GRAD ? !cs->accumulate : cs->accumulate;
            p->steps[PHASE_FORWARD_TRAIN][n_steps++] = (Step){
                .kind = STEP_CONV,
                .kernel = -1,
                .conv = {passes[q], cs->g, base, base + 1, base + 2, acc, engine, in_norm},
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

/* x, w, y, scratch, and with an input norm its stats, gamma and beta */
enum { MAX_KERNEL_BUFS = 7 };
static int kernel_buffers(const ConvCudaKernel *k) { return k->step.norm.on ? 7 : 4; }

static char *emu_glue(const ConvCudaSet *set) {
    StrBuf b = {0};
    for (int i = 0; i < set->n; i++) {
        const ConvCudaKernel *k = &set->kernels[i];
        for (int part = 0; part < 1 + k->launch.has_finish; part++) {
            ConvPass pass = k->step.pass;
            sb_printf(&b,
                      "static void conv_call_%d_%d(rxc_emu::Launch *L) {\n    %s%s(rxc_emu::GPtr<%s%s>(L, 0), "
                      "rxc_emu::GPtr<%sfloat>(L, 1), rxc_emu::GPtr<%s%s>(L, 2), L->sc, rxc_emu::GPtr<float>(L, 3)%s);\n}\n",
                      i, part, k->name, part ? "_finish" : "", pass == CONV_DATA_GRAD ? "" : "const ",
                      render_cuda_ctype(k->x_type), pass == CONV_WEIGHT_GRAD ? "" : "const ",
                      pass == CONV_FORWARD ? "" : "const ", render_cuda_ctype(k->y_type),
                      k->step.norm.on ? ", rxc_emu::GPtr<const float>(L, 4), rxc_emu::GPtr<const float>(L, 5), "
                                        "rxc_emu::GPtr<const float>(L, 6)" : "");
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

/* Runs step s (kernel k of the loaded emulator) and compares its output.
 * Returns 0 on agreement, 1 on an emulator error, 2 on a numeric mismatch
 * (message in why). */
static int check_step(void *so, int ki, const ConvCudaKernel *k, const ConvStep *s, uint64_t seed, char *why, size_t n) {
    ConvEmuRun run = (ConvEmuRun)dlsym(so, "conv_emu_run");
    const ConvGeom *g = &s->g;
    const KDType types[3] = {k->x_type, KD_F32, k->y_type};
    const int out = s->pass == CONV_FORWARD ? 2 : s->pass == CONV_DATA_GRAD ? 0 : 1;
    const int n_bufs = kernel_buffers(k);
    long long numel[MAX_KERNEL_BUFS] = {x_numel(g), w_numel(g), y_numel(g), 1, 2 * g->cin, g->cin, g->cin};
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
    if (s->norm.on) {
        for (int b = 4; b < n_bufs; b++) dev[b] = xmalloc((size_t)numel[b] * sizeof(float));
        fill_input_norm(dev[4], dev[5], dev[6], g->cin, seed);
        x_read = xmalloc((size_t)numel[0] * sizeof(float));
        input_norm_reference(s, k->x_type, host[0], (float *const[3]){dev[4], dev[5], dev[6]}, x_read);
    }
    if (k->step.engine == CONV_ENGINE_TENSOR_CORES && s->pass != CONV_WEIGHT_GRAD)
        for (int64_t i = 0; i < numel[1]; i++) host[1][i] = bf16_round(host[1][i]); /* what the MMAs multiply */
    double *ref = xcalloc((size_t)numel[out], sizeof(double));
    if (s->accumulate)
        for (int64_t i = 0; i < numel[out]; i++) ref[i] = host[out][i];
    reference(s, x_read, host[1], host[2], ref);
    const char *names[MAX_KERNEL_BUFS] = {"x", "w", "y", "scratch", "norm_stats", "norm_gamma", "norm_beta"};
    int rc = run(ki, 0, k->launch.grid, k->launch.block, dev, numel, names, why, n);
    if (!rc && k->launch.has_finish) {
        const unsigned fg[3] = {k->launch.finish_grid, 1, 1}, fb[3] = {k->launch.finish_block, 1, 1};
        rc = run(ki, 1, fg, fb, dev, numel, names, why, n);
    }
    rc = rc ? 1 : compare_output(dev[out], types[out], ref, numel[out], names[out], why, n);
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
    snprintf(tag, sizeof tag, "conv_%s%s", dt, norms ? "_norm" : "");
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

typedef struct Mutation {
    const char *name;
    int case_index;
    ConvPass pass;
    const char *find, *replace;
    const char *expect; /* substring of the emulator's error, or NULL: a numeric mismatch */
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
            bool ok = mu->expect ? rc == 1 && strstr(why, mu->expect) != NULL : rc != 0;
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
    for (int i = 0; i < N_MUTATIONS; i++) run_mutation(argv[1], &mutations[i]);
    return harness_status();
}
