/*
 * conv_cpu.c — direct convolution on NHWC float tensors for grouped convs
 * with narrow groups (ResNeXt's 4..64 channels per group): the forward,
 * data-gradient and weight-gradient passes of program.h's STEP_CONV.
 *
 * Why not im2col + GEMM, as for every other conv: a 3x3 conv with 4
 * channels per group becomes, per group, a product with n = 4 and k = 36,
 * far too thin for a GEMM kernel, after its input has been copied nine
 * times into columns; on ResNeXt-50 32x4d at 64x64 that path ran at ~10
 * GFLOP/s and its copies cost as much again (docs/performance.md). Here
 * every output vector of 8 channels accumulates straight from the input.
 *
 * Forward and data gradient share one form, a gathered product: every
 * destination pixel d sums, over the taps t of the window and the source
 * channels i of its group, src[tap(d, t)][i] * wk[t][i][o].
 *   forward        src = x, destinations are output pixels, tap(d, t) the
 *                  input pixel under tap t of d's window;
 *   data gradient  src = dy, destinations are input pixels, tap(d, t) the
 *                  output pixel whose window puts tap t on d: the gather
 *                  form of the transposed conv, so no two threads ever
 *                  write one element.
 * A tap table, built at each run, holds the source pixel of every (d, t),
 * or -1 off the image or between strides. The weight gradient sums
 * dy[p][co] * x[tap(p, t)][ci] over all output pixels p, with the forward
 * table.
 *
 * Vector forms, 8 floats wide (GCC vector extensions, so one source serves
 * every target; GCC builds the workers for x86-64-v4 (AVX-512), x86-64-v3
 * (AVX2 + FMA) and the baseline, and picks one at load time):
 *   BCAST  a multiple of 8 destination channels per group: a vector holds
 *          8 outputs of one group and each source value is broadcast;
 *   PAIR   4 channels in and out per group (32x4d's first stage): a vector
 *          holds two groups' 4 outputs, one 8-float load holds the two
 *          groups' 4 inputs, and an in-lane shuffle spreads input i of each
 *          group over its half.
 * Any other shape runs plain scalar loops (correct, slow); the CPU target
 * asks for STEP_CONV only where every pass has a vector form
 * (conv_cpu_has_vector_form, target_cpu.c).
 *
 * Determinism: each output element is summed by one task, in one order
 * (taps, then channels; pixels in order for the weight gradient), so the
 * thread count never changes a result.
 */
#include "conv_cpu.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

/* Every function taking or returning a vector is static: no ABI is exposed. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

/* x86-64-v4 (AVX-512, e.g. the development machine's Zen 4) gives the same
 * 8-float code 32 registers and broadcasts folded into the FMAs: 1.2-1.7x on
 * the PAIR form. target_clones needs GCC 11 (the level names) and glibc's
 * ifuncs; CONV_CPU_SINGLE_TARGET builds one version for the compiler's
 * -march (tests/kir compiles the v3 and baseline versions that way). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(CONV_CPU_SINGLE_TARGET)
#define VECTOR_CLONES                                                                                        \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#elif defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((optimize("fp-contract=fast")))
#else
#define VECTOR_CLONES
#endif

#if defined(__clang__)
#define SPREAD(v, I) __builtin_shufflevector(v, v, I, I, I, I, 4 + I, 4 + I, 4 + I, 4 + I)
#else
#define SPREAD(v, I) __builtin_shuffle(v, (v8i){I, I, I, I, 4 + I, 4 + I, 4 + I, 4 + I})
#endif

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline v8f splat(float f) { return (v8f){f, f, f, f, f, f, f, f}; }

/* p[0..8) = *v, or += with accumulate (the vector by address: no ABI note) */
static inline void store8(float *p, const v8f *v, bool accumulate) {
    v8f r = *v;
    if (accumulate) r += load8(p);
    memcpy(p, &r, sizeof r);
}

typedef enum Form { FORM_GENERIC, FORM_BCAST, FORM_PAIR } Form;

/* The gathered product of the forward and data-gradient passes. */
typedef struct Gather {
    const float *src;
    float *dst;
    int src_c, dst_c;        /* channels of a source / destination pixel */
    int in_g, out_g;         /* source / destination channels per group */
    int taps;
    int64_t pixels;          /* destination pixels */
    const int32_t *tap;      /* [pixels][taps]: source pixel, or -1 */
    int64_t images;          /* N */
    bool by_position;        /* destinations in (position, image) order, else in memory order (gather_block) */
    const float *wp;         /* packed weights, see pack_block */
    const float *zero;       /* src_c zeros: the source of a missing tap */
    Form form;
    bool accumulate;
} Gather;

typedef struct WeightGrad {
    const float *x, *dy;
    float *dw;
    int cin, cout, cig, cog, taps;
    int64_t pixels;          /* output pixels */
    const int32_t *tap;      /* the forward table */
    Form form;
    bool accumulate;
} WeightGrad;

/* ---- shapes --------------------------------------------------------------------- */

/* dst_c: destination channels in all (PAIR needs an even group count) */
static Form gather_form(int in_g, int out_g, int dst_c) {
    if (in_g == 4 && out_g == 4 && dst_c % 8 == 0) return FORM_PAIR;
    if (out_g % 8 == 0) return FORM_BCAST;
    return FORM_GENERIC;
}

static Form weight_grad_form(int cig, int cog, int cout) {
    if (cig == 4 && cog == 4 && cout % 8 == 0) return FORM_PAIR;
    if (cig % 8 == 0 && cog % 4 == 0) return FORM_BCAST;
    return FORM_GENERIC;
}

static Form pass_form(const ConvStep *s) {
    int cig = s->g.cin / s->g.groups, cog = s->g.cout / s->g.groups;
    switch (s->pass) {
    case CONV_FORWARD: return gather_form(cig, cog, s->g.cout);
    case CONV_DATA_GRAD: return gather_form(cog, cig, s->g.cin);
    case CONV_WEIGHT_GRAD: return weight_grad_form(cig, cog, s->g.cout);
    }
    return FORM_GENERIC;
}

bool conv_cpu_has_vector_form(const ConvGeom *g) {
    for (ConvPass pass = CONV_FORWARD; pass <= CONV_WEIGHT_GRAD; pass++) {
        ConvStep s = {.pass = pass, .g = *g};
        if (pass_form(&s) == FORM_GENERIC) return false;
    }
    return true;
}

const char *conv_cpu_kernel_name(const ConvStep *s) {
    switch (pass_form(s)) {
    case FORM_BCAST: return "8 channels per vector";
    case FORM_PAIR: return "two groups of 4 per vector";
    case FORM_GENERIC: break;
    }
    return "generic";
}

static int64_t dst_pixels(const ConvStep *s) {
    const ConvGeom *g = &s->g;
    return s->pass == CONV_DATA_GRAD ? (int64_t)g->n * g->h * g->w : (int64_t)g->n * g->oh * g->ow;
}

/* Scratch layout: packed weights, the zero row, the tap table, the weight
 * gradient's running sums. */
typedef struct Scratch {
    float *wp, *zero;
    int32_t *tap;
    float *part;
} Scratch;

static size_t round64(size_t b) { return (b + 63) / 64 * 64; }

static size_t scratch_layout(const ConvStep *s, void *base, Scratch *out) {
    const ConvGeom *g = &s->g;
    int64_t T = (int64_t)g->kh * g->kw, D = dst_pixels(s);
    size_t wbytes = 0, zbytes = 0;
    if (s->pass != CONV_WEIGHT_GRAD) {
        wbytes = round64((size_t)g->cout * (size_t)(g->cin / g->groups) * (size_t)T * sizeof(float));
        zbytes = round64((size_t)(s->pass == CONV_FORWARD ? g->cin : g->cout) * sizeof(float));
    }
    size_t tbytes = round64((size_t)D * (size_t)T * sizeof(int32_t));
    /* weight gradient: running sums, 12 vectors per sub-block of 96 weights (T rounded up to 3) */
    size_t pbytes = s->pass == CONV_WEIGHT_GRAD
                        ? round64((size_t)g->cout * (size_t)(g->cin / g->groups) * (size_t)((T + 2) / 3 * 3) *
                                  sizeof(float) + 32)
                        : 0;
    if (out) {
        unsigned char *p = base;
        out->wp = wbytes ? (float *)p : NULL;
        out->zero = zbytes ? (float *)(p + wbytes) : NULL;
        out->tap = (int32_t *)(p + wbytes + zbytes);
        out->part = pbytes ? (float *)(p + wbytes + zbytes + tbytes) : NULL;
    }
    return wbytes + zbytes + tbytes + pbytes;
}

size_t conv_cpu_scratch_bytes(const ConvStep *s) { return scratch_layout(s, NULL, NULL); }

/* ---- tables and packing (run inside the team) -------------------------------- */

/* The tap-table rows of the destination pixels of image n, image row r.
 * Forward (and weight gradient): destinations are output pixels, entries
 * input pixels. Data gradient: destinations are input pixels, entries the
 * output pixels whose windows reach them. */
static void tap_rows(const ConvStep *s, int n, int r, int32_t *tap) {
    const ConvGeom *g = &s->g;
    const int T = g->kh * g->kw;
    if (s->pass != CONV_DATA_GRAD) {
        int32_t *row = tap + (((int64_t)n * g->oh + r) * g->ow) * T;
        for (int ow = 0; ow < g->ow; ow++, row += T)
            for (int kh = 0; kh < g->kh; kh++) {
                int ih = r * g->sh - g->ph + kh;
                for (int kw = 0; kw < g->kw; kw++) {
                    int iw = ow * g->sw - g->pw + kw;
                    bool in = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
                    row[kh * g->kw + kw] = in ? (int32_t)(((int64_t)n * g->h + ih) * g->w + iw) : -1;
                }
            }
        return;
    }
    int32_t *row = tap + (((int64_t)n * g->h + r) * g->w) * T;
    for (int iw = 0; iw < g->w; iw++, row += T)
        for (int kh = 0; kh < g->kh; kh++) {
            int th = r + g->ph - kh;
            bool row_in = th >= 0 && th % g->sh == 0 && th / g->sh < g->oh;
            for (int kw = 0; kw < g->kw; kw++) {
                int tw = iw + g->pw - kw;
                bool in = row_in && tw >= 0 && tw % g->sw == 0 && tw / g->sw < g->ow;
                row[kh * g->kw + kw] = in ? (int32_t)(((int64_t)n * g->oh + th / g->sh) * g->ow + tw / g->sw) : -1;
            }
        }
}

/* Builds the whole table, inside the team. */
static void build_taps(const ConvStep *s, int32_t *tap) {
    const ConvGeom *g = &s->g;
    const int rows = s->pass == CONV_DATA_GRAD ? g->h : g->oh;
#pragma omp for schedule(static)
    for (int q = 0; q < g->n * rows; q++) tap_rows(s, q / rows, q % rows, tap);
}

/* Weight of tap t from source channel i to destination channel o of group
 * gr, as the pass sees it (w is [cout][cin/groups][kh][kw]). */
static float pass_weight(const ConvStep *s, const float *w, int t, int gr, int i, int o) {
    const ConvGeom *g = &s->g;
    int cig = g->cin / g->groups, cog = g->cout / g->groups, T = g->kh * g->kw;
    int co = s->pass == CONV_FORWARD ? gr * cog + o : gr * cog + i;
    int ci = s->pass == CONV_FORWARD ? i : o;
    return w[((int64_t)co * cig + ci) * T + t];
}

/* Packed weights of destination block cb (8 channels) for the vector forms:
 * wp[cb][t][i][lane]. Generic form: wp[dst channel][t][i]. */
static void pack_block(const ConvStep *s, const Gather *G, const float *w, float *wp, int cb) {
    int T = G->taps;
    if (G->form == FORM_GENERIC) {
        int dc = cb, gr = dc / G->out_g, o = dc % G->out_g;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < G->in_g; i++) wp[((int64_t)dc * T + t) * G->in_g + i] = pass_weight(s, w, t, gr, i, o);
        return;
    }
    /* weight (t, i) of lane l sits at w[base[l] + i * istride + t] */
    const ConvGeom *g = &s->g;
    int cig = g->cin / g->groups, cog = g->cout / g->groups;
    int64_t istride = s->pass == CONV_FORWARD ? T : (int64_t)cig * T, base[8];
    for (int l = 0; l < 8; l++) {
        int gr = G->form == FORM_PAIR ? 2 * cb + l / 4 : cb * 8 / G->out_g;
        int o = G->form == FORM_PAIR ? l % 4 : cb * 8 + l - gr * G->out_g;
        base[l] = s->pass == CONV_FORWARD ? ((int64_t)gr * cog + o) * cig * T : ((int64_t)gr * cog * cig + o) * T;
    }
    float *out = wp + (int64_t)cb * T * G->in_g * 8;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < G->in_g; i++)
            for (int l = 0; l < 8; l++) out[((int64_t)t * G->in_g + i) * 8 + l] = w[base[l] + i * istride + t];
}

/* ---- the vector workers --------------------------------------------------------- */

/* Destination pixels per block, at most: with two 8-channel blocks of one
 * group, 2 x 6 = 12 accumulators cover the FMA latency (4-5 cycles at two
 * 8-float FMAs per cycle on Zen 2-4 and recent Intel cores) and leave room
 * for the operands in AVX2's 16 vector registers. PAIR keeps 4: its
 * shuffles, not the FMAs, bound it, and 6 measured slower. */
#define PIX 6
#define PIX_PAIR 4

static int block_pixels(Form f) { return f == FORM_PAIR ? PIX_PAIR : PIX; }

/* Destination pixels P*blk .. P*blk+P-1 in processing order, destination
 * blocks [cb0, cb1). On small maps, and for a strided data gradient, that
 * order takes one position (oh, ow) in every image before the next position:
 * the pixels of a block then have the same taps off the image or off the
 * stride, and a tap off for the whole block is skipped (at 2x2, ResNeXt's
 * last stage, 4 of the 9 taps are on the image). On maps 8 or more wide
 * most pixels have every tap, and memory order measured faster (its source
 * rows are neighbours; the same position in 6 images is 6 rows an image
 * apart, all in one L1 set when the image size is a multiple of 4 KiB). */
__attribute__((always_inline)) static inline void gather_block(const Gather *G, int64_t blk, int cb0, int cb1,
                                                              const int P) {
    const int T = G->taps;
    const float *sp[T][PIX];
    int live[T];
    int n_live = 0, n_dst = 0;
    float *dp[PIX];
    const int64_t positions = G->pixels / G->images;
    int64_t image = blk * P % G->images, position = blk * P / G->images;
    for (int j = 0; j < P; j++, image++) {
        if (image == G->images) image = 0, position++;
        dp[j] = NULL;
        if (position >= positions) {
            for (int t = 0; t < T; t++) sp[t][j] = G->zero;
            continue;
        }
        int64_t d = G->by_position ? image * positions + position : blk * P + j;
        dp[j] = G->dst + d * G->dst_c;
        n_dst = j + 1;
        for (int t = 0; t < T; t++) {
            int32_t p = G->tap[d * T + t];
            sp[t][j] = p >= 0 ? G->src + (int64_t)p * G->src_c : G->zero;
        }
    }
    for (int t = 0; t < T; t++) {
        bool any = false;
        for (int j = 0; j < P; j++) any |= sp[t][j] != G->zero;
        if (any) live[n_live++] = t;
    }
    const int in_g = G->in_g;
    const bool pairs = G->form == FORM_BCAST && G->out_g % 16 == 0;
    for (int cb = cb0; cb < cb1;) {
        const float *w0 = G->wp + (int64_t)cb * T * in_g * 8;
        v8f a[PIX], b[PIX];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        const bool two = pairs && cb + 1 < cb1;
        if (G->form == FORM_PAIR) {
            int off = cb * 8;
            for (int q = 0; q < n_live; q++) {
                int t = live[q];
                const float *wt = w0 + t * 32;
                v8f x[PIX];
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) x[j] = load8(sp[t][j] + off);
                v8f w = load8(wt);
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) a[j] += w * SPREAD(x[j], 0);
                w = load8(wt + 8);
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) a[j] += w * SPREAD(x[j], 1);
                w = load8(wt + 16);
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) a[j] += w * SPREAD(x[j], 2);
                w = load8(wt + 24);
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) a[j] += w * SPREAD(x[j], 3);
            }
        } else if (two) {
            /* two blocks of one group: every broadcast feeds two accumulators */
            int off = cb * 8 / G->out_g * in_g;
            const float *w1 = w0 + (int64_t)T * in_g * 8;
            for (int q = 0; q < n_live; q++) {
                int t = live[q];
                const float *src[PIX];
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) src[j] = sp[t][j] + off;
                const float *wt0 = w0 + (int64_t)t * in_g * 8, *wt1 = w1 + (int64_t)t * in_g * 8;
                for (int i = 0; i < in_g; i++) {
                    v8f u = load8(wt0 + i * 8), v = load8(wt1 + i * 8);
#pragma GCC unroll 8
                    for (int j = 0; j < P; j++) {
                        float xs = src[j][i];
                        a[j] += u * xs, b[j] += v * xs;
                    }
                }
            }
            for (int j = 0; j < n_dst; j++) store8(dp[j] + (cb + 1) * 8, &b[j], G->accumulate);
        } else {
            int off = cb * 8 / G->out_g * in_g;
            for (int q = 0; q < n_live; q++) {
                int t = live[q];
                const float *src[PIX];
#pragma GCC unroll 8
                for (int j = 0; j < P; j++) src[j] = sp[t][j] + off;
                const float *wt = w0 + (int64_t)t * in_g * 8;
                for (int i = 0; i < in_g; i++) {
                    v8f u = load8(wt + i * 8);
#pragma GCC unroll 8
                    for (int j = 0; j < P; j++) a[j] += u * src[j][i];
                }
            }
        }
        for (int j = 0; j < n_dst; j++) store8(dp[j] + cb * 8, &a[j], G->accumulate);
        cb += two ? 2 : 1;
    }
}

VECTOR_CLONES static void gather_task(const Gather *G, int64_t blk, int cb0, int cb1) {
    if (G->form == FORM_PAIR) gather_block(G, blk, cb0, cb1, PIX_PAIR);
    else gather_block(G, blk, cb0, cb1, PIX);
}

/* Output pixels per tile of the weight gradient: a group's slices of x and
 * dy for 256 pixels fit in L1 while every sub-block of the group uses them. */
#define WGRAD_TILE 256

/* One sub-block of the weight gradient, dw[co][ci][t] = sum over output
 * pixels p of dy[p][co] * x[tap(p, t)][ci], over pixels [p0, p1): 4 output
 * channels j and taps [t0, t0 + 3), with input channels as the 8 lanes. Per
 * pixel three x loads and four dy values feed 12 accumulators (16 vector
 * registers in all, so each dy value is formed just before its products).
 *   BCAST  output channels co0 + j of one group, input channels
 *          [i0, i0 + 8) of that group; dy[p][co0 + j] is broadcast.
 *   PAIR   channels [co0, co0 + 8) are two groups of 4 in x as in dy;
 *          output j of each group is dy's lane j of that half, spread.
 * The tile's 12 sums (j, tap, lane) start at zero and are added to acc,
 * the running sums between tiles: a sum of tile sums, whose rounding error
 * grows with the tile count rather than with every pixel (a single fp32
 * running sum over 800K pixels, batch 256 at 56x56, was 3e-4 off float64;
 * this is 2e-5, like a blocked GEMM). */
__attribute__((always_inline)) static inline void weight_grad_sub(const WeightGrad *W, int co0, int t0, int i0,
                                                                 int64_t p0, int64_t p1, v8f acc[12]) {
    static const float zeros[8];
    const int T = W->taps, nt = T - t0 < 3 ? T - t0 : 3;
    const bool pair = W->form == FORM_PAIR;
    const int xoff = pair ? co0 : co0 / W->cog * W->cig + i0;
    v8f a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};
    v8f a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};
    for (int64_t p = p0; p < p1; p++) {
        const float *dy = W->dy + p * W->cout + co0;
        const int32_t *row = W->tap + p * T + t0;
        if (row[0] < 0 && (nt < 2 || row[1] < 0) && (nt < 3 || row[2] < 0)) continue; /* a row off the image */
        const float *s0 = row[0] >= 0 ? W->x + (int64_t)row[0] * W->cin + xoff : zeros;
        const float *s1 = nt > 1 && row[1] >= 0 ? W->x + (int64_t)row[1] * W->cin + xoff : zeros;
        const float *s2 = nt > 2 && row[2] >= 0 ? W->x + (int64_t)row[2] * W->cin + xoff : zeros;
        v8f x0 = load8(s0), x1 = load8(s1), x2 = load8(s2), d;
        d = pair ? SPREAD(load8(dy), 0) : splat(dy[0]);
        a00 += d * x0, a01 += d * x1, a02 += d * x2;
        d = pair ? SPREAD(load8(dy), 1) : splat(dy[1]);
        a10 += d * x0, a11 += d * x1, a12 += d * x2;
        d = pair ? SPREAD(load8(dy), 2) : splat(dy[2]);
        a20 += d * x0, a21 += d * x1, a22 += d * x2;
        d = pair ? SPREAD(load8(dy), 3) : splat(dy[3]);
        a30 += d * x0, a31 += d * x1, a32 += d * x2;
    }
    acc[0] += a00, acc[1] += a01, acc[2] += a02, acc[3] += a10, acc[4] += a11, acc[5] += a12;
    acc[6] += a20, acc[7] += a21, acc[8] += a22, acc[9] += a30, acc[10] += a31, acc[11] += a32;
}

/* The weight gradient of one unit: a group (BCAST) or two (PAIR), all its
 * sub-blocks, tile by tile over the output pixels, so each tile's slices of
 * x and dy come from memory once for the whole unit rather than once per
 * sub-block. part (12 vectors per sub-block, the unit's share of the
 * scratch) carries the sums between tiles; every dw element is still
 * summed in pixel order, by one thread. */
VECTOR_CLONES static void weight_grad_unit(const WeightGrad *W, int unit, v8f *part) {
    const bool pair = W->form == FORM_PAIR;
    const int T = W->taps, n_t = (T + 2) / 3;
    const int co_begin = pair ? unit * 8 : unit * W->cog, n_co = pair ? 1 : W->cog / 4, n_i = pair ? 1 : W->cig / 8;
    const int n_sub = n_co * n_t * n_i;
    memset(part, 0, sizeof(v8f) * 12 * (size_t)n_sub);
    for (int64_t p0 = 0; p0 < W->pixels; p0 += WGRAD_TILE) {
        int64_t p1 = p0 + WGRAD_TILE < W->pixels ? p0 + WGRAD_TILE : W->pixels;
        for (int q = 0; q < n_sub; q++)
            weight_grad_sub(W, co_begin + q / (n_t * n_i) * 4, q / n_i % n_t * 3, q % n_i * 8, p0, p1, part + 12 * q);
    }
    for (int q = 0; q < n_sub; q++) {
        int co0 = co_begin + q / (n_t * n_i) * 4, t0 = q / n_i % n_t * 3, i0 = q % n_i * 8;
        int nt = T - t0 < 3 ? T - t0 : 3;
        const v8f *acc = part + 12 * q;
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < nt; k++)
                for (int l = 0; l < 8; l++) {
                    int co = pair ? co0 + l / 4 * 4 + j : co0 + j, ci = pair ? l % 4 : i0 + l;
                    float *o = W->dw + ((int64_t)co * W->cig + ci) * T + t0 + k;
                    *o = W->accumulate ? *o + acc[j * 3 + k][l] : acc[j * 3 + k][l];
                }
    }
}

/* ---- the scalar form ------------------------------------------------------------ */

static void gather_generic(const Gather *G, int64_t d) {
    const int T = G->taps;
    float *out = G->dst + d * G->dst_c;
    for (int dc = 0; dc < G->dst_c; dc++) {
        const float *wd = G->wp + (int64_t)dc * T * G->in_g;
        int off = dc / G->out_g * G->in_g;
        float sum = 0;
        for (int t = 0; t < T; t++) {
            int32_t p = G->tap[d * T + t];
            if (p < 0) continue;
            const float *s = G->src + (int64_t)p * G->src_c + off;
            for (int i = 0; i < G->in_g; i++) sum += s[i] * wd[t * G->in_g + i];
        }
        out[dc] = G->accumulate ? out[dc] + sum : sum;
    }
}

static void weight_grad_generic(const WeightGrad *W, int co) {
    const int T = W->taps;
    int gr = co / W->cog;
    for (int ci = 0; ci < W->cig; ci++)
        for (int t = 0; t < T; t++) {
            float sum = 0;
            for (int64_t p = 0; p < W->pixels; p++) {
                int32_t q = W->tap[p * T + t];
                if (q >= 0) sum += W->dy[p * W->cout + co] * W->x[(int64_t)q * W->cin + gr * W->cig + ci];
            }
            float *o = W->dw + ((int64_t)co * W->cig + ci) * T + t;
            *o = W->accumulate ? *o + sum : sum;
        }
}

/* ---- the passes ----------------------------------------------------------------- */

static void run_gather(const ConvStep *s, const Scratch *sc, const float *src, const float *w, float *dst) {
    const ConvGeom *g = &s->g;
    int cig = g->cin / g->groups, cog = g->cout / g->groups;
    bool fwd = s->pass == CONV_FORWARD;
    Gather G = {.src = src, .dst = dst, .src_c = fwd ? g->cin : g->cout, .dst_c = fwd ? g->cout : g->cin,
                .in_g = fwd ? cig : cog, .out_g = fwd ? cog : cig, .taps = g->kh * g->kw,
                .pixels = dst_pixels(s), .tap = sc->tap, .images = g->n, .wp = sc->wp, .zero = sc->zero,
                .accumulate = s->accumulate};
    G.form = gather_form(G.in_g, G.out_g, G.dst_c);
    int dst_w = fwd ? g->ow : g->w;
    G.by_position = dst_w < 8 || (!fwd && (g->sh > 1 || g->sw > 1));
    int blocks_cb = G.form == FORM_GENERIC ? G.dst_c : G.dst_c / 8;
    /* Tasks take as many 8-channel blocks as keep their weights within
     * ~256 KiB (L2), in chunks of equal size (the team splits the task list
     * in contiguous shares), an even number so BCAST can pair blocks of one
     * group. */
    int per_block = G.taps * G.in_g * 8 * (int)sizeof(float);
    int most = 262144 / per_block < 2 ? 2 : 262144 / per_block;
    int n_chunks = (blocks_cb + most - 1) / most;
    int chunk = (blocks_cb + n_chunks - 1) / n_chunks;
    chunk += chunk & 1;
    n_chunks = (blocks_cb + chunk - 1) / chunk;
    const int P = block_pixels(G.form);
    int64_t n_blk = (G.pixels + P - 1) / P, n_tasks = n_blk * n_chunks;
    memset(sc->zero, 0, (size_t)G.src_c * sizeof(float));
#pragma omp parallel
    {
        build_taps(s, sc->tap);
#pragma omp for schedule(static)
        for (int cb = 0; cb < blocks_cb; cb++) pack_block(s, &G, w, sc->wp, cb);
        if (G.form == FORM_GENERIC) {
#pragma omp for schedule(static)
            for (int64_t d = 0; d < G.pixels; d++) gather_generic(&G, d);
        } else {
            /* static: each thread keeps one contiguous share of the tasks in
             * every run. With one channel chunk and memory order (stages 1-2
             * at 64x64) that share is a range of pixels, the rows the
             * executor's static GEMM tiles and kernels give the same thread
             * (exec_cpu.c); otherwise it is a channel slice or a set of
             * positions, no worse than dynamic tasks. The sums are the same
             * either way: each output has one task. */
#pragma omp for schedule(static)
            for (int64_t q = 0; q < n_tasks; q++) {
                int c = (int)(q / n_blk);
                int cb0 = c * chunk, cb1 = cb0 + chunk < blocks_cb ? cb0 + chunk : blocks_cb;
                gather_task(&G, q % n_blk, cb0, cb1);
            }
        }
    }
}

static void run_weight_grad(const ConvStep *s, const Scratch *sc, const float *x, const float *dy, float *dw) {
    const ConvGeom *g = &s->g;
    WeightGrad W = {.x = x, .dy = dy, .dw = dw, .cin = g->cin, .cout = g->cout, .cig = g->cin / g->groups,
                    .cog = g->cout / g->groups, .taps = g->kh * g->kw, .pixels = dst_pixels(s), .tap = sc->tap,
                    .accumulate = s->accumulate};
    W.form = weight_grad_form(W.cig, W.cog, W.cout);
    int units = W.form == FORM_PAIR ? g->groups / 2 : g->groups;
    int n_t = (W.taps + 2) / 3;
    /* each unit's share of the running sums: its sub-blocks x 12 vectors */
    int64_t unit_vectors = W.form == FORM_PAIR ? (int64_t)n_t * 12 : (int64_t)(W.cog / 4) * n_t * (W.cig / 8) * 12;
    v8f *part = (v8f *)(((uintptr_t)sc->part + 31) & ~(uintptr_t)31);
#pragma omp parallel
    {
        build_taps(s, sc->tap);
        if (W.form == FORM_GENERIC) {
#pragma omp for schedule(static)
            for (int co = 0; co < g->cout; co++) weight_grad_generic(&W, co);
        } else {
#pragma omp for schedule(dynamic, 1)
            for (int u = 0; u < units; u++) weight_grad_unit(&W, u, part + u * unit_vectors);
        }
    }
}

void conv_cpu_run(const ConvStep *s, float *x, float *w, float *y, void *scratch) {
    Scratch sc;
    scratch_layout(s, scratch, &sc);
    switch (s->pass) {
    case CONV_FORWARD: run_gather(s, &sc, x, w, y); break;
    case CONV_DATA_GRAD: run_gather(s, &sc, y, w, x); break;
    case CONV_WEIGHT_GRAD: run_weight_grad(s, &sc, x, y, w); break;
    }
}
