/*
 * test_kir.c — tests of the kernel IR, the C renderer, the JIT cache and
 * the CPU executor. Kernels are built with the kir builders, rendered,
 * compiled at run time and run; results are compared with independent
 * plain-C reference computations in double precision.
 *
 * Usage: test_kir CACHE_DIR   (prints PASS/FAIL lines; exit 0 unless a case failed)
 * Tolerances are stated per case.
 */
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "executor.h"
#include "jit.h"
#include "kir.h"
#include "kir_analysis.h"
#include "program.h"
#include "render_c.h"
#include "render_cuda.h"
#include "util.h"

static char cache_dir[4096];

/* the short names this file's cases report with */
#define pass(name) harness_pass(name)
#define failf(...) harness_fail(__VA_ARGS__)

typedef void (*KernelFn)(void *const *bufs, const double *sc);

/* ---- small builders ---------------------------------------------------------- */
static int C(Kernel *k, int64_t v) { return kir_const_i(k, v); }
static int F(Kernel *k, double v) { return kir_const_f(k, v); }
static int add(Kernel *k, int a, int b) { return kir_bin(k, KB_ADD, a, b); }
static int sub(Kernel *k, int a, int b) { return kir_bin(k, KB_SUB, a, b); }
static int mul(Kernel *k, int a, int b) { return kir_bin(k, KB_MUL, a, b); }
static int idiv(Kernel *k, int a, int64_t b) { return kir_bin(k, KB_IDIV, a, C(k, b)); }
static int mod(Kernel *k, int a, int64_t b) { return kir_bin(k, KB_MOD, a, C(k, b)); }

static Kernel *finish_or_die(Kernel *k) {
    Error err = {0};
    if (kir_finish(k, &err) != 0) {
        fprintf(stderr, "kir_finish: %s\n", err.msg);
        char *d = kir_dump(k);
        fprintf(stderr, "%s", d);
        free(d);
        exit(1);
    }
    return k;
}

static double frand(uint64_t *state) {
    *state = splitmix64(*state);
    return (double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* ---- kernels under test ------------------------------------------------------ */
enum { PN = 3, PH = 5, PW = 7, PC = 13 };

/* y = max(x * s[c] + t[w], 0) over NHWC, as ROWS (rows = pixels, j = channel). */
static Kernel *k_pointwise_rows(void) {
    Kernel *k = kir_kernel_new("pointwise_rows", KF_ROWS, PN * PH * PW, PC);
    int x = kir_buf(k, "x", KD_F32, PN * PH * PW * PC, false), s = kir_buf(k, "s", KD_F32, PC, false);
    int t = kir_buf(k, "t", KD_F32, PW, false), y = kir_buf(k, "y", KD_F32, PN * PH * PW * PC, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int idx = add(k, mul(k, i, C(k, PC)), j);
    int v = add(k, mul(k, kir_load(k, x, idx), kir_load(k, s, j)), kir_load(k, t, mod(k, i, PW)));
    int st = kir_stage(k, KS_MAP);
    kir_store(k, st, y, idx, kir_bin(k, KB_MAX, v, F(k, 0)), false);
    return finish_or_die(k);
}

/* The same as a flat pointwise kernel: one element per i, index math by div/mod. */
static Kernel *k_pointwise_flat(void) {
    Kernel *k = kir_kernel_new("pointwise_flat", KF_ROWS, PN * PH * PW * PC, 1);
    int x = kir_buf(k, "x", KD_F32, PN * PH * PW * PC, false), s = kir_buf(k, "s", KD_F32, PC, false);
    int t = kir_buf(k, "t", KD_F32, PW, false), y = kir_buf(k, "y", KD_F32, PN * PH * PW * PC, true);
    int i = kir_var(k, KV_OUTER);
    int c = mod(k, i, PC), w = mod(k, idiv(k, i, PC), PW);
    int v = add(k, mul(k, kir_load(k, x, i), kir_load(k, s, c)), kir_load(k, t, w));
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, y, i, kir_bin(k, KB_MAX, v, F(k, 0)), false);
    return finish_or_die(k);
}

enum { WN = 2, WH = 9, WW = 11, WC = 5, WOH = 5, WOW = 6 }; /* 3x3, stride 2, pad 1 */

/* 3x3 average (count_include_pad) and max pooling with guarded loads. */
static Kernel *k_window(void) {
    Kernel *k = kir_kernel_new("window3x3", KF_ROWS, WN * WOH * WOW, WC);
    int x = kir_buf(k, "x", KD_F32, WN * WH * WW * WC, false);
    int avg = kir_buf(k, "avg", KD_F32, WN * WOH * WOW * WC, true);
    int mx = kir_buf(k, "max", KD_F32, WN * WOH * WOW * WC, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int n = idiv(k, i, WOH * WOW), oh = mod(k, idiv(k, i, WOW), WOH), ow = mod(k, i, WOW);
    int results[2];
    for (int which = 0; which < 2; which++) {
        int vh = kir_reduce_var(k), vw = kir_reduce_var(k);
        int ih = add(k, sub(k, mul(k, oh, C(k, 2)), C(k, 1)), kir_var(k, vh));
        int iw = add(k, sub(k, mul(k, ow, C(k, 2)), C(k, 1)), kir_var(k, vw));
        int inb = kir_bin(k, KB_AND, kir_bin(k, KB_AND, kir_bin(k, KB_LE, C(k, 0), ih), kir_bin(k, KB_LT, ih, C(k, WH))),
                          kir_bin(k, KB_AND, kir_bin(k, KB_LE, C(k, 0), iw), kir_bin(k, KB_LT, iw, C(k, WW))));
        int idx = add(k, mul(k, add(k, mul(k, add(k, mul(k, n, C(k, WH)), ih), C(k, WW)), iw), C(k, WC)), j);
        int guarded = kir_select(k, inb, kir_load(k, x, idx), F(k, which == 0 ? 0.0 : -INFINITY));
        KRedOp op = which == 0 ? KR_SUM : KR_MAX;
        int inner = kir_reduce(k, op, vw, 3, guarded);
        results[which] = kir_reduce(k, op, vh, 3, inner);
    }
    int st = kir_stage(k, KS_MAP);
    int oidx = add(k, mul(k, i, C(k, WC)), j);
    kir_store(k, st, avg, oidx, kir_bin(k, KB_DIV, results[0], F(k, 9.0)), false);
    kir_store(k, st, mx, oidx, results[1], false);
    return finish_or_die(k);
}

enum { IN = 2, IH = 7, IW = 5, ICI = 3, IOH = 4, IOW = 3, IKT = 27 }; /* 3x3, stride 2, pad 1 */

/* im2col with padding: ROWS over output pixels, j over (kh, kw, c) with
 * c = j % ICI fastest, so the renderer splits the j loop. */
static Kernel *k_im2col(void) {
    Kernel *k = kir_kernel_new("im2col", KF_ROWS, IN * IOH * IOW, IKT);
    int x = kir_buf(k, "x", KD_F32, IN * IH * IW * ICI, false);
    int o = kir_buf(k, "cols", KD_F32, IN * IOH * IOW * IKT, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int n = idiv(k, i, IOH * IOW), oh = mod(k, idiv(k, i, IOW), IOH), ow = mod(k, i, IOW);
    int c = mod(k, j, ICI), kk = idiv(k, j, ICI);
    int ih = add(k, sub(k, mul(k, oh, C(k, 2)), C(k, 1)), idiv(k, kk, 3));
    int iw = add(k, sub(k, mul(k, ow, C(k, 2)), C(k, 1)), mod(k, kk, 3));
    int inb = kir_bin(k, KB_AND, kir_bin(k, KB_AND, kir_bin(k, KB_LE, C(k, 0), ih), kir_bin(k, KB_LT, ih, C(k, IH))),
                      kir_bin(k, KB_AND, kir_bin(k, KB_LE, C(k, 0), iw), kir_bin(k, KB_LT, iw, C(k, IW))));
    int src = add(k, mul(k, add(k, mul(k, add(k, mul(k, n, C(k, IH)), ih), C(k, IW)), iw), C(k, ICI)), c);
    int v = kir_select(k, inb, kir_load(k, x, src), F(k, 0));
    kir_store(k, kir_stage(k, KS_MAP), o, add(k, mul(k, i, C(k, IKT)), j), v, false);
    return finish_or_die(k);
}

enum { AR = 7, AC = 33 };

/* A MAP stage whose stores all hit one element per row (y[i] += x[i, j]):
 * its j iterations must not run in SIMD lanes. */
static Kernel *k_map_accumulate(void) {
    Kernel *k = kir_kernel_new("map_accumulate", KF_ROWS, AR, AC);
    int x = kir_buf(k, "x", KD_F32, AR * AC, false), y = kir_buf(k, "y", KD_F32, AR, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    kir_store(k, kir_stage(k, KS_MAP), y, i, kir_load(k, x, add(k, mul(k, i, C(k, AC)), j)), true);
    return finish_or_die(k);
}

enum { ON = 257, OF = 14, OI = 9 };

/* Every unary and binary operator, float and int, in one pointwise kernel. */
static Kernel *k_every_op(void) {
    Kernel *k = kir_kernel_new("every_op", KF_ROWS, ON, 1);
    int xb = kir_buf(k, "x", KD_F32, ON, false), yb = kir_buf(k, "y", KD_F32, ON, false);
    int qb = kir_buf(k, "q", KD_I64, ON, false);
    int of = kir_buf(k, "out_f", KD_F32, ON * OF, true), oi = kir_buf(k, "out_i", KD_I64, ON * OI, true);
    int i = kir_var(k, KV_OUTER);
    int x = kir_load(k, xb, i), y = kir_load(k, yb, i), q = kir_load(k, qb, i);
    int st = kir_stage(k, KS_STORE);
    int fo[OF], io[OI];
    fo[0] = kir_un(k, KU_NEG, x);
    fo[1] = kir_un(k, KU_EXP, x);
    fo[2] = kir_un(k, KU_LOG, y);
    fo[3] = kir_un(k, KU_SQRT, y);
    fo[4] = kir_un(k, KU_RSQRT, y);
    fo[5] = kir_un(k, KU_ABS, x);
    fo[6] = kir_un(k, KU_RECIP, y);
    fo[7] = kir_un(k, KU_SIGMOID, x);
    fo[8] = kir_un(k, KU_TO_FLOAT, q);
    fo[9] = kir_bin(k, KB_MIN, x, y);
    int b1 = kir_bin(k, KB_NE, x, y), b2 = kir_un(k, KU_NOT, kir_bin(k, KB_LT, x, F(k, 0)));
    int b3 = kir_bin(k, KB_OR, kir_bin(k, KB_AND, b1, b2), kir_bin(k, KB_EQ, q, C(k, 3)));
    fo[10] = kir_select(k, b3, x, y);
    fo[11] = kir_un(k, KU_TO_FLOAT, kir_un(k, KU_TO_INT, mul(k, x, F(k, 10))));
    fo[12] = kir_bin(k, KB_DIV, x, y);
    fo[13] = kir_bin(k, KB_MAX, x, y);
    int aq = kir_un(k, KU_ABS, q);
    io[0] = kir_un(k, KU_NEG, q);
    io[1] = aq;
    io[2] = kir_bin(k, KB_MIN, q, C(k, 7));
    io[3] = kir_bin(k, KB_MAX, q, C(k, -7));
    io[4] = kir_un(k, KU_TO_INT, mul(k, x, F(k, 100)));
    io[5] = kir_bin(k, KB_IDIV, aq, C(k, 3));
    io[6] = kir_bin(k, KB_MOD, aq, C(k, 5));
    io[7] = kir_select(k, kir_bin(k, KB_LE, q, C(k, 0)), q, sub(k, mul(k, q, C(k, 2)), C(k, 1)));
    int v = kir_reduce_var(k);
    io[8] = kir_reduce(k, KR_MAX, v, 4, kir_load(k, qb, mod(k, add(k, i, kir_var(k, v)), ON)));
    for (int o = 0; o < OF; o++) kir_store(k, st, of, add(k, mul(k, i, C(k, OF)), C(k, o)), fo[o], false);
    for (int o = 0; o < OI; o++) kir_store(k, st, oi, add(k, mul(k, i, C(k, OI)), C(k, o)), io[o], false);
    return finish_or_die(k);
}

enum { IR = 41, IC = 5 };

/* COLS with an int and a float accumulator (mixed partial storage). */
static Kernel *k_cols_int(void) {
    Kernel *k = kir_kernel_new("cols_int", KF_COLS, IC, IR);
    k->row_chunks = 3;
    int qb = kir_buf(k, "q", KD_I64, IR * IC, false), xb = kir_buf(k, "x", KD_F32, IR * IC, false);
    int si = kir_buf(k, "sum_q", KD_I64, IC, true), sf = kir_buf(k, "sum_x", KD_F32, IC, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int idx = add(k, mul(k, j, C(k, IC)), i);
    int s0 = kir_stage(k, KS_REDUCE);
    int a = kir_acc(k, s0, KR_SUM, kir_load(k, qb, idx)), b = kir_acc(k, s0, KR_SUM, kir_load(k, xb, idx));
    int s1 = kir_stage(k, KS_STORE);
    kir_store(k, s1, si, i, a, false);
    kir_store(k, s1, sf, i, b, false);
    return finish_or_die(k);
}

enum { WR = 50, WCOLS = 600 };

/* A wide, short COLS kernel: one row chunk, columns split into blocks. */
static Kernel *k_cols_wide(void) {
    Kernel *k = kir_kernel_new("cols_wide", KF_COLS, WCOLS, WR);
    k->row_chunks = 1;
    int xb = kir_buf(k, "x", KD_F32, WR * WCOLS, false), sb = kir_buf(k, "sum", KD_F32, WCOLS, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int s0 = kir_stage(k, KS_REDUCE);
    int a = kir_acc(k, s0, KR_SUM, kir_load(k, xb, add(k, mul(k, j, C(k, WCOLS)), i)));
    kir_store(k, kir_stage(k, KS_STORE), sb, i, a, false);
    return finish_or_die(k);
}

enum { SN = 6, SK = 11 };

/* Softmax cross-entropy: REDUCE(max), REDUCE(sum exp), MAP(probabilities), STORE(loss). */
static Kernel *k_softmax(void) {
    Kernel *k = kir_kernel_new("softmax_ce", KF_ROWS, SN, SK);
    int x = kir_buf(k, "logits", KD_F32, SN * SK, false), lab = kir_buf(k, "labels", KD_I64, SN, false);
    int p = kir_buf(k, "prob", KD_F32, SN * SK, true), loss = kir_buf(k, "loss", KD_F32, SN, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int xv = kir_load(k, x, add(k, mul(k, i, C(k, SK)), j));
    int s0 = kir_stage(k, KS_REDUCE);
    int m = kir_acc(k, s0, KR_MAX, xv);
    int s1 = kir_stage(k, KS_REDUCE);
    int e = kir_un(k, KU_EXP, sub(k, xv, m));
    int sum = kir_acc(k, s1, KR_SUM, e);
    int s2 = kir_stage(k, KS_MAP);
    kir_store(k, s2, p, add(k, mul(k, i, C(k, SK)), j), kir_bin(k, KB_DIV, e, sum), false);
    int s3 = kir_stage(k, KS_STORE);
    int xl = kir_load(k, x, add(k, mul(k, i, C(k, SK)), kir_load(k, lab, i)));
    kir_store(k, s3, loss, i, sub(k, add(k, kir_un(k, KU_LOG, sum), m), xl), false);
    return finish_or_die(k);
}

enum { CR = 1001, CC = 37, CCHUNKS = 7 };

/* Per-channel sum, sum of squares and max of an NHWC tensor (rows x channels). */
static Kernel *k_cols(void) {
    Kernel *k = kir_kernel_new("col_stats", KF_COLS, CC, CR);
    k->row_chunks = CCHUNKS;
    int x = kir_buf(k, "x", KD_F32, CR * CC, false);
    int mean = kir_buf(k, "mean", KD_F32, CC, true), var = kir_buf(k, "var", KD_F32, CC, true);
    int mx = kir_buf(k, "max", KD_F32, CC, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int xv = kir_load(k, x, add(k, mul(k, j, C(k, CC)), i));
    int s0 = kir_stage(k, KS_REDUCE);
    int a0 = kir_acc(k, s0, KR_SUM, xv), a1 = kir_acc(k, s0, KR_SUM, mul(k, xv, xv)), a2 = kir_acc(k, s0, KR_MAX, xv);
    int s1 = kir_stage(k, KS_STORE);
    int mu = kir_bin(k, KB_DIV, a0, F(k, CR));
    kir_store(k, s1, mean, i, mu, false);
    kir_store(k, s1, var, i, sub(k, kir_bin(k, KB_DIV, a1, F(k, CR)), mul(k, mu, mu)), false);
    kir_store(k, s1, mx, i, a2, false);
    return finish_or_die(k);
}

enum { BN16 = 4096 };

static Kernel *k_to_bf16(void) {
    Kernel *k = kir_kernel_new("to_bf16", KF_ROWS, BN16, 1);
    int x = kir_buf(k, "x", KD_F32, BN16, false), h = kir_buf(k, "h", KD_BF16, BN16, true);
    int i = kir_var(k, KV_OUTER);
    kir_store(k, kir_stage(k, KS_STORE), h, i, kir_load(k, x, i), false);
    return finish_or_die(k);
}

static Kernel *k_from_bf16(void) {
    Kernel *k = kir_kernel_new("from_bf16", KF_ROWS, BN16, 1);
    int h = kir_buf(k, "h", KD_BF16, BN16, false), y = kir_buf(k, "y", KD_F32, BN16, true);
    int i = kir_var(k, KV_OUTER);
    kir_store(k, kir_stage(k, KS_STORE), y, i, kir_load(k, h, i), false);
    return finish_or_die(k);
}

enum { RN = 100000 };

static Kernel *k_rand(void) {
    Kernel *k = kir_kernel_new("rand_fill", KF_ROWS, RN, 1);
    int a = kir_buf(k, "a", KD_F32, RN, true), b = kir_buf(k, "b", KD_F32, RN, true);
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, a, i, kir_rand(k, 7, i), false);
    kir_store(k, st, b, i, kir_rand(k, 8, i), false);
    return finish_or_die(k);
}

/* ---- references -------------------------------------------------------------- */

/* bfloat16 by search, not by bit tricks: the nearest of the two bf16
 * neighbours of x (in double arithmetic), ties to the even one. */
static float bf16_reference(float x) {
    if (isnan(x) || isinf(x)) return x;
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t lo_bits = u & 0xffff0000u;
    float lo, hi;
    memcpy(&lo, &lo_bits, 4);
    uint32_t hi_bits = lo_bits + 0x10000u;
    memcpy(&hi, &hi_bits, 4);
    /* past the largest bf16 the upper neighbour is 2^128 in unbounded
     * arithmetic; choosing it means overflow to infinity */
    double hi_value = isinf(hi) ? copysign(ldexp(1.0, 128), x) : (double)hi;
    double dlo = fabs((double)x - (double)lo), dhi = fabs(hi_value - (double)x);
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return ((lo_bits >> 16) & 1) == 0 ? lo : hi;
}

/* ---- the module run ------------------------------------------------------------ */

static JitLib *compile_module(KirModule *m, JitInfo *info, Error *err) {
    char *src = render_c(m);
    JitOptions o = {.cache_dir = cache_dir};
    JitLib *lib = jit_load(src, &o, info, err);
    if (!lib) fprintf(stderr, "---- source ----\n%s\n", src);
    free(src);
    return lib;
}

static KernelFn sym(JitLib *lib, const char *name) {
    KernelFn f = (KernelFn)jit_symbol(lib, name);
    if (!f) {
        fprintf(stderr, "missing symbol %s\n", name);
        exit(1);
    }
    return f;
}

static double sc_default[SC_COUNT];

static void test_pointwise(JitLib *lib) {
    uint64_t st = 1;
    int n = PN * PH * PW * PC;
    float *x = malloc(n * 4), *s = malloc(PC * 4), *t = malloc(PW * 4), *y1 = calloc(n, 4), *y2 = calloc(n, 4);
    for (int q = 0; q < n; q++) x[q] = (float)frand(&st);
    for (int q = 0; q < PC; q++) s[q] = (float)frand(&st);
    for (int q = 0; q < PW; q++) t[q] = (float)frand(&st);
    void *b1[] = {x, s, t, y1}, *b2[] = {x, s, t, y2};
    sym(lib, "pointwise_rows")(b1, sc_default);
    sym(lib, "pointwise_flat")(b2, sc_default);
    double worst = 0;
    for (int q = 0; q < n; q++) {
        int c = q % PC, w = (q / PC) % PW;
        double ref = fmax((double)x[q] * s[c] + t[w], 0.0);
        worst = fmax(worst, fmax(fabs(y1[q] - ref), fabs(y2[q] - ref)));
    }
    /* float products and sums of values in [-1, 1]: 1e-6 absolute */
    if (worst <= 1e-6) pass("pointwise_broadcast");
    else failf("pointwise_broadcast", "max abs error %g > 1e-6", worst);
    free(x), free(s), free(t), free(y1), free(y2);
}

/* Runs the window kernel with x placed flush against an inaccessible page on
 * one side; an unguarded out-of-bounds load would fault. Returns the max
 * error, or -1 on a mismatch of setup. */
static double run_window(JitLib *lib, const float *xsrc, bool flush_end) {
    size_t bytes = WN * WH * WW * WC * 4;
    long page = sysconf(_SC_PAGESIZE);
    size_t span = (bytes + (size_t)page - 1) / (size_t)page * (size_t)page;
    unsigned char *region = mmap(NULL, span + 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(region, (size_t)page, PROT_NONE);
    mprotect(region + page + span, (size_t)page, PROT_NONE);
    float *x = (float *)(flush_end ? region + page + span - bytes : region + page);
    memcpy(x, xsrc, bytes);
    int no = WN * WOH * WOW * WC;
    float *avg = calloc(no, 4), *mx = calloc(no, 4);
    void *b[] = {x, avg, mx};
    sym(lib, "window3x3")(b, sc_default);
    double worst = 0;
    for (int n = 0; n < WN; n++)
        for (int oh = 0; oh < WOH; oh++)
            for (int ow = 0; ow < WOW; ow++)
                for (int c = 0; c < WC; c++) {
                    double sum = 0, m = -INFINITY;
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                            if (ih < 0 || ih >= WH || iw < 0 || iw >= WW) continue;
                            double v = xsrc[((n * WH + ih) * WW + iw) * WC + c];
                            sum += v;
                            m = fmax(m, v);
                        }
                    int o = ((n * WOH + oh) * WOW + ow) * WC + c;
                    worst = fmax(worst, fabs(avg[o] - sum / 9));
                    worst = fmax(worst, fabs(mx[o] - m));
                }
    free(avg), free(mx);
    munmap(region, span + 2 * (size_t)page);
    return worst;
}

static void test_window(JitLib *lib) {
    uint64_t st = 2;
    int n = WN * WH * WW * WC;
    float *x = malloc(n * 4);
    for (int q = 0; q < n; q++) x[q] = (float)frand(&st);
    /* In a child: a fault from an unguarded load must show as a FAIL, not kill the suite. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        double e1 = run_window(lib, x, true), e2 = run_window(lib, x, false);
        _exit(e1 <= 1e-6 && e2 <= 1e-6 ? 0 : 3);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) failf("guarded_window_reduce", "kernel crashed with signal %d (a guarded load was evaluated)", WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0) failf("guarded_window_reduce", "pooling results differ from the reference by more than 1e-6");
    else pass("guarded_window_reduce");
    free(x);
}

static void test_im2col(JitLib *lib) {
    uint64_t st = 7;
    int nx = IN * IH * IW * ICI, no = IN * IOH * IOW * IKT;
    float *x = malloc(nx * 4), *o = malloc(no * 4);
    for (int q = 0; q < nx; q++) x[q] = (float)frand(&st);
    for (int q = 0; q < no; q++) o[q] = NAN;
    void *b[] = {x, o};
    sym(lib, "im2col")(b, sc_default);
    int bad = -1;
    for (int n = 0; n < IN && bad < 0; n++)
        for (int oh = 0; oh < IOH; oh++)
            for (int ow = 0; ow < IOW; ow++)
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++)
                        for (int c = 0; c < ICI; c++) {
                            int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                            float want = ih < 0 || ih >= IH || iw < 0 || iw >= IW ? 0.0f : x[((n * IH + ih) * IW + iw) * ICI + c];
                            int q = ((n * IOH + oh) * IOW + ow) * IKT + (kh * 3 + kw) * ICI + c;
                            if (memcmp(&want, &o[q], 4) != 0 && bad < 0) bad = q;
                        }
    /* a copy: exact */
    if (bad < 0) pass("im2col_split_inner_loop");
    else failf("im2col_split_inner_loop", "element %d differs", bad);
    free(x), free(o);
}

static void test_map_accumulate(JitLib *lib) {
    uint64_t st = 8;
    float x[AR * AC], y[AR];
    for (int q = 0; q < AR * AC; q++) x[q] = (float)frand(&st);
    for (int q = 0; q < AR; q++) y[q] = 1.0f;
    void *b[] = {x, y};
    sym(lib, "map_accumulate")(b, sc_default);
    int bad = -1;
    for (int r = 0; r < AR; r++) {
        /* the IR's order: sequential float additions over j; exact */
        volatile float want = 1.0f;
        for (int c = 0; c < AC; c++) want = want + x[r * AC + c];
        if (y[r] != want && bad < 0) bad = r;
    }
    if (bad < 0) pass("map_accumulate_same_element_in_order");
    else failf("map_accumulate_same_element_in_order", "row %d differs from the sequential float sum", bad);
}

static bool close_rel(float got, float want, float tol) {
    if (isnan(want)) return isnan(got);
    return fabsf(got - want) <= tol * fmaxf(1.0f, fabsf(want));
}

static void test_every_op(JitLib *lib) {
    uint64_t st = 9;
    float x[ON], y[ON], of[ON * OF];
    int64_t q[ON], oi[ON * OI];
    for (int n = 0; n < ON; n++) {
        x[n] = (float)(3 * frand(&st));
        y[n] = (float)(0.1 + 2 * fabs(frand(&st)));
        q[n] = (int64_t)(50 * frand(&st));
    }
    x[5] = y[5]; /* equal operands for ne */
    q[7] = 3;
    void *b[] = {x, y, q, of, oi};
    sym(lib, "every_op")(b, sc_default);
    int bad = -1, bad_slot = -1;
    for (int n = 0; n < ON && bad < 0; n++) {
        /* float references with the same float operations: exact, except
         * exp/log/sigmoid (libm), 2e-7 relative */
        float want[OF] = {-x[n], expf(x[n]), logf(y[n]), sqrtf(y[n]), 1.0f / sqrtf(y[n]), fabsf(x[n]), 1.0f / y[n],
                          1.0f / (1.0f + expf(-x[n])), (float)q[n], x[n] < y[n] ? x[n] : y[n],
                          ((x[n] != y[n] && !(x[n] < 0)) || q[n] == 3) ? x[n] : y[n], (float)(int64_t)(x[n] * 10.0f),
                          x[n] / y[n], x[n] > y[n] ? x[n] : y[n]};
        for (int o = 0; o < OF && bad < 0; o++)
            if (!close_rel(of[n * OF + o], want[o], o == 1 || o == 2 || o == 7 ? 2e-7f : 0.0f)) bad = n, bad_slot = o;
        int64_t aq = q[n] < 0 ? -q[n] : q[n], m = INT64_MIN;
        for (int v = 0; v < 4; v++) m = q[(n + v) % ON] > m ? q[(n + v) % ON] : m;
        int64_t wanti[OI] = {-q[n], aq, q[n] < 7 ? q[n] : 7, q[n] > -7 ? q[n] : -7, (int64_t)(x[n] * 100.0f), aq / 3, aq % 5,
                             q[n] <= 0 ? q[n] : q[n] * 2 - 1, m};
        for (int o = 0; o < OI && bad < 0; o++)
            if (oi[n * OI + o] != wanti[o]) bad = n, bad_slot = OF + o;
    }
    if (bad < 0) pass("every_operator");
    else failf("every_operator", "element %d, output %d (float outputs 0-%d, then int) differs", bad, bad_slot, OF - 1);
}

static void test_cols_int(JitLib *lib) {
    uint64_t st = 10;
    int64_t q[IR * IC], sq[IC];
    float x[IR * IC], sx[IC];
    for (int n = 0; n < IR * IC; n++) q[n] = (int64_t)(1000 * frand(&st)), x[n] = (float)frand(&st);
    void *b[] = {q, x, sq, sx};
    sym(lib, "cols_int")(b, sc_default);
    bool ok = true;
    for (int c = 0; c < IC; c++) {
        int64_t want = 0;
        double wf = 0;
        for (int r = 0; r < IR; r++) want += q[r * IC + c], wf += x[r * IC + c];
        ok &= sq[c] == want && fabs(sx[c] - wf) <= 1e-5; /* ints exact; 41 floats in [-1, 1]: 1e-5 */
    }
    if (ok) pass("cols_int_and_float_accumulators");
    else failf("cols_int_and_float_accumulators", "column sums differ");
}

static void test_cols_wide(JitLib *lib) {
    uint64_t st = 11;
    float *x = malloc(WR * WCOLS * 4), sums[3][WCOLS];
    for (int n = 0; n < WR * WCOLS; n++) x[n] = (float)frand(&st);
    int saved = omp_get_max_threads(), threads[3] = {1, 2, 3};
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(threads[t]);
        void *b[] = {x, sums[t]};
        sym(lib, "cols_wide")(b, sc_default);
    }
    omp_set_num_threads(saved);
    int bad = -1;
    for (int c = 0; c < WCOLS && bad < 0; c++) {
        volatile float want = 0.0f; /* the IR's order: rows in sequence; exact */
        for (int r = 0; r < WR; r++) want = want + x[r * WCOLS + c];
        if (sums[0][c] != want || sums[1][c] != want || sums[2][c] != want) bad = c;
    }
    if (bad < 0) pass("cols_wide_column_blocks");
    else failf("cols_wide_column_blocks", "column %d differs from the sequential sum (1, 2 or 3 threads)", bad);
    free(x);
}

static void test_softmax(JitLib *lib) {
    uint64_t st = 3;
    float x[SN * SK], p[SN * SK], loss[SN];
    int64_t lab[SN];
    for (int q = 0; q < SN * SK; q++) x[q] = (float)(4 * frand(&st));
    for (int r = 0; r < SN; r++) lab[r] = (r * 7 + 3) % SK;
    void *b[] = {x, lab, p, loss};
    sym(lib, "softmax_ce")(b, sc_default);
    double worst = 0;
    for (int r = 0; r < SN; r++) {
        double m = -INFINITY, s = 0;
        for (int c = 0; c < SK; c++) m = fmax(m, x[r * SK + c]);
        for (int c = 0; c < SK; c++) s += exp(x[r * SK + c] - m);
        for (int c = 0; c < SK; c++) worst = fmax(worst, fabs(p[r * SK + c] - exp(x[r * SK + c] - m) / s));
        double l = log(s) + m - x[r * SK + lab[r]];
        worst = fmax(worst, fabs(loss[r] - l) / fmax(1, fabs(l)));
    }
    /* float exp/log: 1e-5 relative */
    if (worst <= 1e-5) pass("softmax_rows_reduce_map_store");
    else failf("softmax_rows_reduce_map_store", "max error %g > 1e-5", worst);
}

static void test_cols(JitLib *lib) {
    uint64_t st = 4;
    float *x = malloc(CR * CC * 4);
    for (int q = 0; q < CR * CC; q++) x[q] = (float)(frand(&st) + 0.3 * (q % CC) / CC);
    float out[3][3][CC];
    int threads[3] = {1, 2, 3};
    int saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(threads[t]);
        void *b[] = {x, out[t][0], out[t][1], out[t][2]};
        sym(lib, "col_stats")(b, sc_default);
    }
    omp_set_num_threads(saved);
    double worst = 0;
    for (int c = 0; c < CC; c++) {
        double s = 0, s2 = 0, m = -INFINITY;
        for (int r = 0; r < CR; r++) {
            double v = x[r * CC + c];
            s += v, s2 += v * v, m = fmax(m, v);
        }
        double mu = s / CR, var = s2 / CR - mu * mu;
        worst = fmax(worst, fabs(out[0][0][c] - mu));
        worst = fmax(worst, fabs(out[0][1][c] - var) / var);
        worst = fmax(worst, fabs(out[0][2][c] - m));
    }
    /* sums of 1001 floats of size ~1 in chunks: 1e-5 (mean abs, var rel) */
    if (worst <= 1e-5) pass("cols_channel_stats");
    else failf("cols_channel_stats", "max error %g > 1e-5", worst);
    if (!memcmp(out[0], out[1], sizeof out[0]) && !memcmp(out[0], out[2], sizeof out[0]))
        pass("cols_thread_count_independent");
    else
        failf("cols_thread_count_independent", "results with 1, 2, 3 threads are not bit-identical");
    free(x);
}

static void test_bf16(JitLib *lib) {
    uint64_t st = 5;
    float *x = malloc(BN16 * 4), *y = malloc(BN16 * 4);
    uint16_t *h = malloc(BN16 * 2);
    for (int q = 0; q < BN16; q++) x[q] = (float)(frand(&st) * pow(2.0, (double)(q % 40) - 20));
    /* exact ties (bit 15 set, lower bits 0) with odd and even kept parts, and edge values */
    uint32_t ties[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x7f7fffffu, 0x00000001u, 0x80000000u, 0x7f800000u};
    for (size_t q = 0; q < sizeof ties / sizeof ties[0]; q++) memcpy(&x[q], &ties[q], 4);
    void *b1[] = {x, h}, *b2[] = {h, y};
    sym(lib, "to_bf16")(b1, sc_default);
    sym(lib, "from_bf16")(b2, sc_default);
    int bad = -1;
    for (int q = 0; q < BN16 && bad < 0; q++) {
        float want = bf16_reference(x[q]);
        if (memcmp(&want, &y[q], 4) != 0) bad = q;
    }
    /* exact: round-to-nearest-even is fully specified */
    if (bad < 0) pass("bf16_round_trip");
    else failf("bf16_round_trip", "element %d: %.9g -> %.9g, want %.9g", bad, x[bad], y[bad], bf16_reference(x[bad]));
    free(x), free(y), free(h);
}

static void test_rand(JitLib *lib) {
    float *a = malloc(RN * 4), *b = malloc(RN * 4), *a2 = malloc(RN * 4), *b2 = malloc(RN * 4);
    double sc[SC_COUNT] = {0};
    sc[SC_RNG_SEED] = 12345;
    void *p1[] = {a, b}, *p2[] = {a2, b2};
    KernelFn f = sym(lib, "rand_fill");
    f(p1, sc);
    f(p2, sc);
    bool same = !memcmp(a, a2, RN * 4) && !memcmp(b, b2, RN * 4);
    sc[SC_RNG_SEED] = 12346;
    f(p2, sc);
    int equal_other_seed = 0;
    for (int q = 0; q < RN; q++) equal_other_seed += a[q] == a2[q];
    double mean = 0, var = 0, corr = 0;
    int host_mismatch = -1, out_of_range = 0;
    for (int q = 0; q < RN; q++) {
        mean += a[q];
        out_of_range += !(a[q] >= 0 && a[q] < 1);
        if (host_mismatch < 0 && a[q] != rng_uniform(rng_key(12345, 7, (uint64_t)q))) host_mismatch = q;
    }
    mean /= RN;
    for (int q = 0; q < RN; q++) var += (a[q] - mean) * (a[q] - mean), corr += (a[q] - 0.5) * (b[q] - 0.5);
    var /= RN;
    corr /= RN * (1.0 / 12);
    /* mean of 1e5 uniforms: sd 0.0009, so |mean - 0.5| < 0.005 (5.5 sd); variance 1/12 within 2%;
     * streams with different salts uncorrelated (|r| < 0.02) */
    if (fabs(mean - 0.5) < 0.005 && fabs(var - 1.0 / 12) < 0.0017 && fabs(corr) < 0.02 && !out_of_range)
        pass("rand_statistics");
    else failf("rand_statistics", "mean %g var %g corr %g out of range %d", mean, var, corr, out_of_range);
    if (same && equal_other_seed < 100 && host_mismatch < 0) pass("rand_deterministic_and_matches_host");
    else failf("rand_deterministic_and_matches_host", "repeatable %d, equal under another seed %d, first host mismatch %d",
               same, equal_other_seed, host_mismatch);
    free(a), free(b), free(a2), free(b2);
}

/* ---- IR-level tests ------------------------------------------------------------- */

static void test_dedupe(void) {
    KirModule *m = kir_module_new();
    int a = kir_module_add(m, k_softmax());
    Kernel *twin = k_softmax();
    free(twin->name);
    twin->name = xstrdup("another_name");
    int b = kir_module_add(m, twin);
    int c = kir_module_add(m, k_cols());
    Kernel *same_name = k_pointwise_rows();
    free(same_name->name);
    same_name->name = xstrdup("softmax_ce");
    int d = kir_module_add(m, same_name);
    bool ok = a == 0 && b == 0 && c == 1 && d == 2 && m->n == 3 && strcmp(m->kernels[2]->name, "softmax_ce") != 0;
    /* hash-consing: the same expression built twice is one node */
    Kernel *k = kir_kernel_new("hc", KF_ROWS, 4, 4);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int e1 = add(k, mul(k, i, C(k, 4)), j), e2 = add(k, j, mul(k, C(k, 4), i));
    ok &= e1 == e2;
    /* flat index taken apart again: (i*4 + j) % 4 is j and / 4 is i when j < 4 */
    int simp_mod = mod(k, e1, 4), simp_div = idiv(k, e1, 4);
    ok &= simp_mod == j && simp_div == i;
    kir_kernel_free(k);
    Kernel *k8 = kir_kernel_new("hc8", KF_ROWS, 4, 8); /* j up to 7: only the % may drop the i*4 term */
    int i8 = kir_var(k8, KV_OUTER), j8 = kir_var(k8, KV_INNER);
    int flat8 = add(k8, mul(k8, i8, C(k8, 4)), j8);
    int m8 = mod(k8, flat8, 4), d8 = idiv(k8, flat8, 4);
    ok &= k8->ex[m8].kind == KE_BINARY && k8->ex[m8].a == j8 && k8->ex[d8].kind == KE_BINARY && k8->ex[d8].a == flat8;
    kir_kernel_free(k8);
    Kernel *kn = kir_kernel_new("3x3 conv.out", KF_ROWS, 1, 1); /* names become C symbols */
    ok &= !strcmp(kn->name, "k3x3_conv_out");
    kir_kernel_free(kn);
    if (ok) pass("module_dedupe_hash_consing_and_divmod_simplification");
    else failf("module_dedupe_hash_consing_and_divmod_simplification", "indices %d %d %d %d, n %d, same-expression ids %d %d, or div/mod not simplified", a, b, c, d, m->n, e1, e2);
    kir_module_free(m);
}

static void expect_reject(const char *name, Kernel *k, const char *needle) {
    Error err = {0};
    int rc = kir_finish(k, &err);
    if (rc == 0) failf(name, "kir_finish accepted an invalid kernel");
    else if (needle && !strstr(err.msg, needle)) failf(name, "message lacks '%s': %s", needle, err.msg);
    else pass(name);
    kir_kernel_free(k);
}

static void test_finish_rejects(void) {
    {   /* an accumulator read in its own stage */
        Kernel *k = kir_kernel_new("bad_acc", KF_ROWS, 4, 8);
        int x = kir_buf(k, "x", KD_F32, 32, false), y = kir_buf(k, "y", KD_F32, 32, true);
        int idx = add(k, mul(k, kir_var(k, KV_OUTER), C(k, 8)), kir_var(k, KV_INNER));
        int s0 = kir_stage(k, KS_REDUCE);
        int m = kir_acc(k, s0, KR_MAX, kir_load(k, x, idx));
        kir_acc(k, s0, KR_SUM, sub(k, kir_load(k, x, idx), m));
        int s1 = kir_stage(k, KS_MAP);
        kir_store(k, s1, y, idx, m, false);
        expect_reject("finish_rejects_acc_before_its_stage", k, "not finished");
    }
    {   /* COLS with a MAP stage */
        Kernel *k = kir_kernel_new("bad_cols", KF_COLS, 4, 8);
        int x = kir_buf(k, "x", KD_F32, 32, false), y = kir_buf(k, "y", KD_F32, 4, true);
        int s0 = kir_stage(k, KS_REDUCE);
        int a = kir_acc(k, s0, KR_SUM, kir_load(k, x, add(k, mul(k, kir_var(k, KV_INNER), C(k, 4)), kir_var(k, KV_OUTER))));
        int s1 = kir_stage(k, KS_MAP);
        kir_store(k, s1, y, kir_var(k, KV_OUTER), a, false);
        expect_reject("finish_rejects_cols_wrong_stages", k, "KF_COLS");
    }
    {   /* float + int */
        Kernel *k = kir_kernel_new("bad_type", KF_ROWS, 4, 1);
        int x = kir_buf(k, "x", KD_F32, 4, false), y = kir_buf(k, "y", KD_F32, 4, true);
        int i = kir_var(k, KV_OUTER);
        int v = add(k, kir_load(k, x, i), i);
        kir_store(k, kir_stage(k, KS_STORE), y, i, v, false);
        expect_reject("finish_rejects_type_mismatch", k, "add of float and int");
    }
    {   /* a float stored into an i64 buffer */
        Kernel *k = kir_kernel_new("bad_store_type", KF_ROWS, 4, 1);
        int x = kir_buf(k, "x", KD_F32, 4, false), y = kir_buf(k, "y", KD_I64, 4, true);
        int i = kir_var(k, KV_OUTER);
        kir_store(k, kir_stage(k, KS_STORE), y, i, kir_load(k, x, i), false);
        expect_reject("finish_rejects_store_dtype_mismatch", k, "storing a float");
    }
    {   /* a store to a read-only buffer */
        Kernel *k = kir_kernel_new("bad_written", KF_ROWS, 4, 1);
        int x = kir_buf(k, "x", KD_F32, 4, false);
        int i = kir_var(k, KV_OUTER);
        kir_store(k, kir_stage(k, KS_STORE), x, i, F(k, 1), false);
        expect_reject("finish_rejects_store_to_unwritten_buffer", k, "not declared written");
    }
    {   /* a reduce variable used outside its reduce */
        Kernel *k = kir_kernel_new("bad_scope", KF_ROWS, 4, 1);
        int x = kir_buf(k, "x", KD_F32, 16, false), y = kir_buf(k, "y", KD_F32, 4, true);
        int v = kir_reduce_var(k);
        int body = kir_load(k, x, kir_var(k, v));
        kir_reduce(k, KR_SUM, v, 4, body);
        kir_store(k, kir_stage(k, KS_STORE), y, kir_var(k, KV_OUTER), body, false);
        expect_reject("finish_rejects_reduce_var_out_of_scope", k, "outside the reduce");
    }
    {   /* a KF_COLS element store to a buffer the kernel also loads */
        Kernel *k = kir_kernel_new("bad_element_store", KF_COLS, 4, 8);
        int x = kir_buf(k, "x", KD_F32, 32, true), y = kir_buf(k, "y", KD_F32, 4, true);
        int idx = add(k, mul(k, kir_var(k, KV_INNER), C(k, 4)), kir_var(k, KV_OUTER));
        int s0 = kir_stage(k, KS_REDUCE);
        int a = kir_acc(k, s0, KR_SUM, kir_load(k, x, idx));
        kir_store(k, s0, x, idx, F(k, 0), false);
        kir_store(k, kir_stage(k, KS_STORE), y, kir_var(k, KV_OUTER), a, false);
        expect_reject("finish_rejects_element_store_it_loads", k, "also loads");
    }
    {   /* element stores belong to KF_COLS reduce stages only */
        Kernel *k = kir_kernel_new("bad_rows_reduce_store", KF_ROWS, 4, 8);
        int x = kir_buf(k, "x", KD_F32, 32, false), y = kir_buf(k, "y", KD_F32, 32, true);
        int z = kir_buf(k, "z", KD_F32, 4, true);
        int idx = add(k, mul(k, kir_var(k, KV_OUTER), C(k, 8)), kir_var(k, KV_INNER));
        int s0 = kir_stage(k, KS_REDUCE);
        int a = kir_acc(k, s0, KR_SUM, kir_load(k, x, idx));
        kir_store(k, s0, y, idx, kir_load(k, x, idx), false);
        kir_store(k, kir_stage(k, KS_STORE), z, kir_var(k, KV_OUTER), a, false);
        expect_reject("finish_rejects_rows_reduce_store", k, "KF_ROWS");
    }
    {   /* j in a STORE stage */
        Kernel *k = kir_kernel_new("bad_inner", KF_ROWS, 4, 4);
        int y = kir_buf(k, "y", KD_F32, 16, true);
        kir_store(k, kir_stage(k, KS_STORE), y, kir_var(k, KV_INNER), F(k, 1), false);
        expect_reject("finish_rejects_inner_var_in_store_stage", k, "KV_INNER");
    }
}

/* ---- index widths: render_c and render_cuda agree ------------------------------- */

/* How a renderer declared integer node id in src: 1 at the wide type, 0 at
 * the narrow one, -1 not declared (a literal, a variable, inlined). */
static int declared_wide(const char *src, int id, const char *wide, const char *narrow) {
    const char *types[2] = {narrow, wide};
    for (int w = 1; w >= 0; w--)
        for (int form = 0; form < 2; form++) {
            char pat[64];
            snprintf(pat, sizeof pat, form ? "%s e%d;" : "%s e%d =", types[w], id);
            if (strstr(src, pat)) return w;
        }
    return -1;
}

/* Renders k (which it frees) with both renderers. Every integer node both
 * declare must have the same width in both, and so must the loop counters;
 * node key must have width want_key_wide, and the loops want_loops_wide. */
static void expect_same_widths(const char *name, Kernel *k, int key, bool want_key_wide, bool want_loops_wide) {
    finish_or_die(k);
    KirModule *m = kir_module_new();
    kir_module_add(m, k);
    char *c_src = render_c(m);
    CudaLaunch *launches = NULL;
    char *cu_src = render_cuda(m, &launches);
    char why[256] = "";
    for (int id = 0; id < k->n_ex && !*why; id++) {
        if (k->ex[id].type != KT_INT) continue;
        int c = declared_wide(c_src, id, "int64_t", "int32_t"), cu = declared_wide(cu_src, id, "long long", "int");
        if (c >= 0 && cu >= 0 && c != cu)
            snprintf(why, sizeof why, "e%d is %s in C but %s in CUDA", id, c ? "64-bit" : "32-bit", cu ? "64-bit" : "32-bit");
        else if (id == key && (c != (int)want_key_wide || cu != (int)want_key_wide))
            snprintf(why, sizeof why, "the index e%d is not %d-bit in both (C %d, CUDA %d)", id, want_key_wide ? 64 : 32, c, cu);
    }
    bool c_loops_wide = strstr(c_src, "for (int64_t i") != NULL, cu_loops_wide = strstr(cu_src, "for (long long i") != NULL;
    if (!*why && (c_loops_wide != want_loops_wide || cu_loops_wide != want_loops_wide || launches[0].wide_index != want_loops_wide))
        snprintf(why, sizeof why, "loop counters: C %s, CUDA %s (launch says %s), want %s", c_loops_wide ? "64" : "32",
                 cu_loops_wide ? "64" : "32", launches[0].wide_index ? "64" : "32", want_loops_wide ? "64" : "32");
    if (!*why && kir_index_fits_int32(k) != (!want_key_wide && !want_loops_wide))
        snprintf(why, sizeof why, "kir_index_fits_int32 says %d", kir_index_fits_int32(k));
    if (*why) failf(name, "%s", why);
    else pass(name);
    free(c_src);
    free(cu_src);
    free(launches);
    kir_module_free(m);
}

/* y[i * inner + j + offset] = x[same]: the index reaches outer * inner - 1 + offset. */
static Kernel *k_reach(int64_t outer, int64_t inner, int64_t offset, int *index) {
    Kernel *k = kir_kernel_new("reach", KF_ROWS, outer, inner);
    int64_t numel = outer * inner + offset;
    int x = kir_buf(k, "x", KD_F32, numel, false), y = kir_buf(k, "y", KD_F32, numel, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    *index = add(k, add(k, mul(k, i, C(k, inner)), j), C(k, offset));
    kir_store(k, kir_stage(k, KS_MAP), y, *index, kir_load(k, x, *index), false);
    return k;
}

/* A pointwise copy over outer elements at index f(i), f built by the caller. */
static Kernel *k_pointwise_at(const char *name, int64_t outer, int64_t numel, int (*f)(Kernel *, int), int *index) {
    Kernel *k = kir_kernel_new(name, KF_ROWS, outer, 1);
    int x = kir_buf(k, "x", KD_F32, numel, false), y = kir_buf(k, "y", KD_F32, numel, true);
    *index = f(k, kir_var(k, KV_OUTER));
    kir_store(k, kir_stage(k, KS_STORE), y, *index, kir_load(k, x, *index), false);
    return k;
}

/* (i / 112 / 112) * 200000 + i % 112: the image index of NCHW-like math. The
 * quotient is at most 7; CUDA's old rule (|a / b| <= |a|) made it 100351 and
 * the product 64-bit while C kept 32 bits. */
static int nested_div_index(Kernel *k, int i) {
    return add(k, mul(k, idiv(k, idiv(k, i, 112), 112), C(k, 200000)), mod(k, i, 112));
}

/* (i % 1000000) * 2000 - 10^9 lies in [-10^9, 10^9): CUDA's old rule gave
 * i % m the range [-m, m], so the index reached -3 * 10^9 and went 64-bit. */
static int mod_index(Kernel *k, int i) {
    return add(k, mul(k, mod(k, i, 1000000), C(k, 2000)), C(k, -1000000000));
}

/* (|i + 10^9| - 10^9) * 3 is 3i; CUDA's old rule gave |a| the lower bound 0,
 * so the index reached -3 * 10^9 and went 64-bit. */
static int abs_index(Kernel *k, int i) {
    int shifted = kir_un(k, KU_ABS, add(k, i, C(k, 1000000000)));
    return mul(k, sub(k, shifted, C(k, 1000000000)), C(k, 3));
}

/* Brute force against kir_int_range: random integer DAGs over i, j and a
 * reduce variable (every operator, negative operands and divisors too) are
 * evaluated at every point of a small domain with C's semantics, and each
 * value must lie in its node's range. A division by zero or an overflow
 * leaves a node (and what uses it) undefined: nothing to check there. */
enum { RANGE_CASES = 400, RANGE_NODES = 24, RO = 5, RJ = 4, RV = 3 };

typedef struct { int64_t v; bool ok; } IntVal;

static IntVal eval_int(const Kernel *k, int id, const int64_t *env, IntVal *memo);

static IntVal eval_binary_int(const KExpr *e, IntVal a, IntVal b) {
    IntVal r = {0, a.ok && b.ok};
    if (!r.ok) return r;
    switch ((KBinOp)e->op) {
    case KB_ADD: r.ok = !__builtin_add_overflow(a.v, b.v, &r.v); break;
    case KB_SUB: r.ok = !__builtin_sub_overflow(a.v, b.v, &r.v); break;
    case KB_MUL: r.ok = !__builtin_mul_overflow(a.v, b.v, &r.v); break;
    case KB_MAX: r.v = a.v > b.v ? a.v : b.v; break;
    case KB_MIN: r.v = a.v < b.v ? a.v : b.v; break;
    case KB_IDIV: r.ok = b.v != 0; r.v = r.ok ? a.v / b.v : 0; break;
    case KB_MOD: r.ok = b.v != 0; r.v = r.ok ? a.v % b.v : 0; break;
    case KB_LT: r.v = a.v < b.v; break;
    case KB_LE: r.v = a.v <= b.v; break;
    default: r.ok = false; break;
    }
    return r;
}

/* Node id at env = {i, j, v}; memo holds this env's values (ok = false: not yet). */
static IntVal eval_int(const Kernel *k, int id, const int64_t *env, IntVal *memo) {
    const KExpr *e = &k->ex[id];
    IntVal r = {0, true};
    switch (e->kind) {
    case KE_CONST_I: r.v = e->i; break;
    case KE_VAR: r.v = env[e->var]; break;
    case KE_UNARY: {
        IntVal a = memo[e->a];
        r.ok = a.ok && a.v != INT64_MIN;
        r.v = e->op == KU_NEG ? -a.v : a.v < 0 ? -a.v : a.v;
        break;
    }
    case KE_BINARY: r = eval_binary_int(e, memo[e->a], memo[e->b]); break;
    case KE_SELECT: r = memo[e->a].ok ? (memo[e->a].v ? memo[e->b] : memo[e->c]) : memo[e->a]; break;
    case KE_REDUCE: {
        int64_t inner_env[3] = {env[0], env[1], 0};
        IntVal *inner = xcalloc((size_t)id, sizeof(IntVal));
        r.v = e->op == KR_SUM ? 0 : INT64_MIN;
        for (int64_t v = 0; v < e->extent && r.ok; v++) {
            inner_env[2] = v;
            for (int q = 0; q < id; q++) inner[q] = eval_int(k, q, inner_env, inner);
            IntVal b = inner[e->a];
            if (!b.ok) r.ok = false;
            else if (e->op == KR_MAX) r.v = b.v > r.v ? b.v : r.v;
            else r.ok = !__builtin_add_overflow(r.v, b.v, &r.v);
        }
        free(inner);
        break;
    }
    default: r.ok = false; break;
    }
    return r;
}

/* A random operand: one of the last 8 nodes, or any. */
static int pick(uint64_t *st, int n) {
    *st = splitmix64(*st);
    int back = (int)(*st % 8);
    return *st >> 32 & 1 ? n - 1 - (back < n ? back : 0) : (int)((*st >> 8) % (uint64_t)n);
}

static Kernel *k_random_ints(uint64_t *st) {
    Kernel *k = kir_kernel_new("ranges", KF_ROWS, RO, RJ);
    int v = kir_reduce_var(k); /* 2 */
    kir_var(k, KV_OUTER), kir_var(k, KV_INNER), kir_var(k, v);
    while (k->n_ex < RANGE_NODES) {
        *st = splitmix64(*st);
        int n = k->n_ex, a = pick(st, n), b = pick(st, n), choice = (int)(*st % 15);
        if (k->ex[a].type != KT_INT || k->ex[b].type != KT_INT) continue;
        static const KBinOp ops[] = {KB_ADD, KB_SUB, KB_MUL, KB_MAX, KB_MIN, KB_IDIV, KB_MOD};
        if (choice < 7) kir_bin(k, ops[choice], a, b);
        else if (choice < 9) kir_un(k, choice == 7 ? KU_NEG : KU_ABS, a);
        else if (choice < 11) kir_const_i(k, (int64_t)(*st >> 40 & 63) - 31);
        else if (choice < 13) kir_select(k, kir_bin(k, choice == 11 ? KB_LT : KB_LE, a, b), a, b);
        else if (!k->n_stages) { /* one reduce per kernel: its variable's range is then known */
            kir_reduce(k, choice == 13 ? KR_SUM : KR_MAX, v, RV, a);
            kir_stage(k, KS_STORE);
        }
    }
    if (!k->n_stages) kir_reduce(k, KR_SUM, v, RV, k->n_ex - 1);
    return k;
}

static void check_ranges_contain_values(void) {
    uint64_t st = 99;
    char why[256] = "";
    int checked = 0;
    for (int c = 0; c < RANGE_CASES && !*why; c++) {
        Kernel *k = k_random_ints(&st);
        KirRange *range = xcalloc((size_t)k->n_ex, sizeof(KirRange));
        for (int id = 0; id < k->n_ex; id++) range[id] = kir_int_range(k, id);
        IntVal *memo = xcalloc((size_t)k->n_ex, sizeof(IntVal));
        for (int64_t i = 0; i < RO && !*why; i++)
            for (int64_t j = 0; j < RJ && !*why; j++)
                for (int64_t v = 0; v < RV && !*why; v++) {
                    int64_t env[3] = {i, j, v};
                    for (int id = 0; id < k->n_ex && !*why; id++) {
                        memo[id] = eval_int(k, id, env, memo);
                        if (k->ex[id].type != KT_INT || !memo[id].ok) continue;
                        checked++;
                        double x = (double)memo[id].v;
                        if (x < range[id].lo || x > range[id].hi)
                            snprintf(why, sizeof why, "case %d e%d = %lld at i=%lld j=%lld v=%lld, outside [%g, %g]", c, id,
                                     (long long)memo[id].v, (long long)i, (long long)j, (long long)v, range[id].lo, range[id].hi);
                    }
                }
        if (*why) {
            char *d = kir_dump(k);
            fprintf(stderr, "%s", d);
            free(d);
        }
        free(memo);
        free(range);
        kir_kernel_free(k);
    }
    if (*why) failf("int_ranges_contain_every_value", "%s", why);
    else if (checked < 100000) failf("int_ranges_contain_every_value", "only %d values checked", checked);
    else pass("int_ranges_contain_every_value");
}

static void test_index_widths(void) {
    check_ranges_contain_values();
    const int64_t limit = (int64_t)KIR_INT32_LIMIT; /* 2^31 - 1 - 2^27: headroom for loop overshoot */
    int idx;
    Kernel *k;
    /* 61440 * 32768 = limit + 1: the largest index is exactly the limit */
    k = k_reach(61440, 32768, 0, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_at_the_32bit_limit", k, idx, false, false);
    k = k_reach(61440, 32768, 1, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_just_past_the_limit", k, idx, true, false);
    /* 65536 * 32768 = 2^31: indices reach 2^31 - 1, then 2^31 */
    k = k_reach(65536, 32768, 0, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_below_2e31", k, idx, true, false);
    k = k_reach(65536, 32768, 1, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_at_2e31", k, idx, true, false);
    /* loops of 2^31 and of limit iterations: the counters are 64-bit, then 32-bit, in both */
    k = k_reach(INT64_C(1) << 31, 1, 0, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_loop_of_2e31", k, idx, true, true);
    k = k_reach(limit, 1, 0, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_loop_at_the_limit", k, idx, false, false);
    /* idiv, mod and abs: the analyses used to disagree, now one rule each */
    k = k_pointwise_at("nested_div", 100352, 8 * 200000, nested_div_index, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_nested_idiv", k, idx, false, false);
    k = k_pointwise_at("mod_index", 1 << 21, 1, mod_index, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_mod", k, idx, false, false);
    k = k_pointwise_at("abs_index", 1 << 20, 3 << 20, abs_index, &idx);
    expect_same_widths("index_width_same_in_c_and_cuda_abs", k, idx, false, false);
}

/* ---- the JIT cache ---------------------------------------------------------------- */

static void test_cache(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/cache-test-%ld", cache_dir, (long)getpid());
    const char *src = "int rxc_probe(void) { return 42; }\n";
    JitOptions o = {.cache_dir = dir};
    JitInfo i1, i2, i3, i4, i5;
    Error err = {0};
    JitLib *l1 = jit_load(src, &o, &i1, &err);
    JitLib *l2 = l1 ? jit_load(src, &o, &i2, &err) : NULL;
    bool ok = l1 && l2 && !i1.cache_hit && i2.cache_hit && !strcmp(i1.key, i2.key);
    int (*probe)(void) = l2 ? (int (*)(void))jit_symbol(l2, "rxc_probe") : NULL;
    ok &= probe && probe() == 42;
    if (ok) pass("cache_second_load_hits");
    else failf("cache_second_load_hits", "first hit %d, second hit %d (%s)", l1 ? i1.cache_hit : -1, l2 ? i2.cache_hit : -1, l1 && l2 ? "" : err.msg);
    printf("# jit: cold %.3f s, warm %.3f s\n", i1.seconds, l2 ? i2.seconds : -1.0);
    jit_free(l1);
    jit_free(l2);

    JitOptions o2 = o;
    o2.flags = "-O1 -fPIC -shared -std=c11";
    JitLib *l3 = jit_load(src, &o2, &i3, &err);
    JitLib *l4 = jit_load("int rxc_probe(void) { return 43; }\n", &o, &i4, &err);
    if (l3 && l4 && !i3.cache_hit && !i4.cache_hit && strcmp(i3.key, i1.key) && strcmp(i4.key, i1.key))
        pass("cache_flags_or_source_change_misses");
    else failf("cache_flags_or_source_change_misses", "flags-change hit %d, source-change hit %d", l3 ? i3.cache_hit : -1, l4 ? i4.cache_hit : -1);
    jit_free(l3);
    jit_free(l4);

    /* corrupt the cached object: flip bytes in the middle */
    FILE *f = fopen(i1.so_path, "r+b");
    if (f) {
        fseek(f, 2000, SEEK_SET);
        fputs("garbage garbage garbage", f);
        fclose(f);
    }
    JitLib *l5 = jit_load(src, &o, &i5, &err);
    int (*p5)(void) = l5 ? (int (*)(void))jit_symbol(l5, "rxc_probe") : NULL;
    if (f && l5 && !i5.cache_hit && i5.rebuilt_corrupt && p5 && p5() == 42) pass("cache_corrupt_object_rebuilt");
    else failf("cache_corrupt_object_rebuilt", "hit %d, rebuilt %d, %s", l5 ? i5.cache_hit : -1, l5 ? i5.rebuilt_corrupt : -1, l5 ? "" : err.msg);
    jit_free(l5);

    /* a cache directory that cannot be created: a per-user one under /tmp instead */
    JitOptions o3 = {.cache_dir = "/proc/rxc-cannot-create-this"};
    JitInfo i7;
    JitLib *l7 = jit_load(src, &o3, &i7, &err);
    if (l7 && !strncmp(i7.so_path, "/tmp/rxc-cache-", 15)) pass("cache_unwritable_dir_falls_back");
    else failf("cache_unwritable_dir_falls_back", "%s", l7 ? i7.so_path : err.msg);
    jit_free(l7);

    /* a compile error names the kernel and carries the compiler's log */
    const char *bad = "#include <stdio.h>\n\n/* kernel broken */\nvoid broken(void *const *bufs, const double *sc) {\n"
                      "    (void)bufs; (void)sc;\n    this is not C;\n}\n";
    JitLib *l6 = jit_load(bad, &o, NULL, &err);
    if (!l6 && strstr(err.msg, "kernel broken") && strstr(err.msg, "error")) pass("compile_error_reported");
    else failf("compile_error_reported", "%s", l6 ? "bad source compiled" : err.msg);
    jit_free(l6);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- the executor ------------------------------------------------------------------- */

static int add_buf(Program *p, const char *name, BufSpace space, int64_t *space_used, int64_t numel) {
    GROW(p->bufs, p->cap_bufs, p->n_bufs + 1);
    BufDesc *b = &p->bufs[p->n_bufs];
    b->name = xstrdup(name);
    b->space = space;
    b->offset = space_used[space];
    b->numel = numel;
    b->dtype = KD_F32;
    space_used[space] += (numel * 4 + 63) / 64 * 64;
    return p->n_bufs++;
}

static void add_step(Program *p, Phase ph, Step s) {
    GROW(p->steps[ph], p->cap_steps[ph], p->n_steps[ph] + 1);
    p->steps[ph][p->n_steps[ph]++] = s;
}

enum { GB = 3, GM = 200, GN = 45, GK = 33, LM = 300, LN = 500, LK = 70 };
enum { QG = 4, QM = 700, QN = 6, QK = 40 }; /* grouped: groups side by side within rows */

static void test_executor(void) {
    Program p;
    memset(&p, 0, sizeof p);
    int64_t used[SPACE_COUNT] = {0};
    int A = add_buf(&p, "A", SPACE_ARENA, used, GB * GM * GK);      /* [b][m][k] */
    int B = add_buf(&p, "B", SPACE_PARAMS, used, GB * GN * GK);     /* [b][n][k]: trans_b */
    int A2 = add_buf(&p, "A2", SPACE_ARENA, used, GB * GK * GM);    /* [b][k][m]: trans_a */
    int B2 = add_buf(&p, "B2", SPACE_PARAMS, used, GB * GK * GN);   /* [b][k][n] */
    int Cb = add_buf(&p, "C", SPACE_ARENA, used, GB * GM * GN);
    int bias = add_buf(&p, "bias", SPACE_PARAMS, used, GN);
    int out = add_buf(&p, "out", SPACE_ARENA, used, GB * GM * GN);
    int LA = add_buf(&p, "LA", SPACE_ARENA, used, LM * LK), LB = add_buf(&p, "LB", SPACE_ARENA, used, LK * LN);
    int LC = add_buf(&p, "LC", SPACE_ARENA, used, LM * LN);
    int QA = add_buf(&p, "QA", SPACE_ARENA, used, QM * QG * QK), QB = add_buf(&p, "QB", SPACE_PARAMS, used, QG * QN * QK);
    int QC = add_buf(&p, "QC", SPACE_ARENA, used, QM * QG * QN);
    for (int s = 0; s < SPACE_COUNT; s++) p.space_bytes[s] = used[s];

    Kernel *k = kir_kernel_new("bias_relu", KF_ROWS, GB * GM, GN);
    int kc = kir_buf(k, "c", KD_F32, GB * GM * GN, false), kb = kir_buf(k, "bias", KD_F32, GN, false);
    int ko = kir_buf(k, "out", KD_F32, GB * GM * GN, true);
    int idx = add(k, mul(k, kir_var(k, KV_OUTER), C(k, GN)), kir_var(k, KV_INNER));
    int v = kir_bin(k, KB_MAX, add(k, kir_load(k, kc, idx), kir_load(k, kb, kir_var(k, KV_INNER))), F(k, 0));
    kir_store(k, kir_stage(k, KS_MAP), ko, idx, v, false);
    finish_or_die(k);
    p.module = kir_module_new();
    int kid = kir_module_add(p.module, k);

    Step g1 = {.kind = STEP_GEMM, .note = "C = A B^T"};
    g1.gemm = (GemmStep){.a = A, .b = B, .c = Cb, .trans_a = false, .trans_b = true, .m = GM, .n = GN, .k = GK,
                         .lda = GK, .ldb = GK, .ldc = GN, .alpha = 1, .beta = 0, .batch = GB,
                         .stride_a = GM * GK, .stride_b = GN * GK, .stride_c = GM * GN};
    Step g2 = {.kind = STEP_GEMM, .note = "C += 0.5 A2^T B2"};
    g2.gemm = (GemmStep){.a = A2, .b = B2, .c = Cb, .trans_a = true, .trans_b = false, .m = GM, .n = GN, .k = GK,
                         .lda = GM, .ldb = GN, .ldc = GN, .alpha = 0.5f, .beta = 1, .batch = GB,
                         .stride_a = GK * GM, .stride_b = GK * GN, .stride_c = GM * GN};
    int args[] = {Cb, bias, out};
    Step ks = {.kind = STEP_KERNEL, .kernel = kid, .args = args, .n_args = 3, .note = "bias + relu"};
    Step g3 = {.kind = STEP_GEMM, .note = "LC = LA LB"};
    g3.gemm = (GemmStep){.a = LA, .b = LB, .c = LC, .m = LM, .n = LN, .k = LK, .lda = LK, .ldb = LN, .ldc = LN,
                         .alpha = 1, .beta = 0, .batch = 1};
    add_step(&p, PHASE_FORWARD_TRAIN, g1);
    add_step(&p, PHASE_FORWARD_TRAIN, g2);
    add_step(&p, PHASE_FORWARD_TRAIN, ks);
    add_step(&p, PHASE_BACKWARD, g3);
    Step g4 = {.kind = STEP_GEMM, .note = "grouped: QC_g = QA_g QB_g^T"};
    g4.gemm = (GemmStep){.a = QA, .b = QB, .c = QC, .trans_b = true, .m = QM, .n = QN, .k = QK, .lda = QG * QK,
                         .ldb = QK, .ldc = QG * QN, .alpha = 1, .beta = 0, .batch = QG, .stride_a = QK,
                         .stride_b = QN * QK, .stride_c = QN};
    add_step(&p, PHASE_BACKWARD, g4);

    Error err = {0};
    Executor *e = exec_cpu_new(&p, &err);
    if (!e) {
        failf("exec_cpu_gemm_and_kernel", "exec_cpu_new: %s", err.msg);
        return;
    }
    uint64_t st = 6;
    float *host[SPACE_COUNT];
    for (int s = 0; s < SPACE_COUNT; s++) host[s] = e->host_ptr(e, (BufSpace)s);
    int fill[] = {A, B, A2, B2, bias, LA, LB, QA, QB};
    for (size_t q = 0; q < sizeof fill / sizeof fill[0]; q++) {
        BufDesc *b = &p.bufs[fill[q]];
        float *tmp = malloc(b->numel * 4);
        for (int64_t z = 0; z < b->numel; z++) tmp[z] = (float)frand(&st);
        e->write(e, b->space, b->offset, tmp, b->numel * 4);
        free(tmp);
    }
    double sc[SC_COUNT] = {0};
    int rc = e->run(e, PHASE_FORWARD_TRAIN, sc, &err);
    rc |= e->run(e, PHASE_BACKWARD, sc, &err);
    /* inputs and results of this run, for the thread-count comparison below */
    int64_t arena_bytes = p.space_bytes[SPACE_ARENA], param_bytes = p.space_bytes[SPACE_PARAMS];
    unsigned char *arena0 = malloc(arena_bytes), *params0 = malloc(param_bytes);
    memcpy(arena0, host[SPACE_ARENA], arena_bytes);
    memcpy(params0, host[SPACE_PARAMS], param_bytes);
#define AT(id) ((float *)((char *)host[p.bufs[id].space] + p.bufs[id].offset))
    float *a = AT(A), *b = AT(B), *a2 = AT(A2), *b2 = AT(B2), *bi = AT(bias);
    float *o = malloc(GB * GM * GN * 4);
    e->read(e, p.bufs[out].space, p.bufs[out].offset, o, GB * GM * GN * 4);
    double worst = 0;
    for (int bb = 0; bb < GB; bb++)
        for (int r = 0; r < GM; r++)
            for (int c = 0; c < GN; c++) {
                double s1 = 0, s2 = 0;
                for (int q = 0; q < GK; q++) {
                    s1 += (double)a[bb * GM * GK + r * GK + q] * b[bb * GN * GK + c * GK + q];
                    s2 += (double)a2[bb * GK * GM + q * GM + r] * b2[bb * GK * GN + q * GN + c];
                }
                double ref = fmax(s1 + 0.5 * s2 + bi[c], 0);
                worst = fmax(worst, fabs(o[(bb * GM + r) * GN + c] - ref));
            }
    float *la = AT(LA), *lb = AT(LB), *lc = AT(LC);
    for (int r = 0; r < LM; r++)
        for (int c = 0; c < LN; c++) {
            double s = 0;
            for (int q = 0; q < LK; q++) s += (double)la[r * LK + q] * lb[q * LN + c];
            worst = fmax(worst, fabs(lc[r * LN + c] - s));
        }
    float *qa = AT(QA), *qb = AT(QB), *qc = AT(QC);
    for (int gq = 0; gq < QG; gq++)
        for (int r = 0; r < QM; r++)
            for (int c = 0; c < QN; c++) {
                double s = 0;
                for (int q = 0; q < QK; q++) s += (double)qa[r * QG * QK + gq * QK + q] * qb[(gq * QN + c) * QK + q];
                worst = fmax(worst, fabs(qc[r * QG * QN + gq * QN + c] - s));
            }
    /* dot products of 33-70 terms in [-1, 1], float: 1e-4 absolute */
    if (rc == 0 && worst <= 1e-4) pass("exec_cpu_gemm_and_kernel");
    else failf("exec_cpu_gemm_and_kernel", "rc %d, max abs error %g > 1e-4 (%s)", rc, worst, rc ? err.msg : "");
    bool bounds = e->write(e, SPACE_PARAMS, p.space_bytes[SPACE_PARAMS] - 4, o, 8) == -1 &&
                  e->read(e, SPACE_ARENA, -4, o, 4) == -1 && e->write(e, SPACE_PARAMS, 0, o, 4) == 0;
    if (bounds && strstr(e->device_name, "cpu (")) pass("exec_cpu_read_write_bounds");
    else failf("exec_cpu_read_write_bounds", "out-of-range copies accepted or bad device name '%s'", e->device_name);
    e->free(e);
    /* the same program with 1, 3, 2 and 1 threads: bit-identical results
     * (GEMM tiles and OpenBLAS's own threading never split k) */
    int saved_threads = omp_get_max_threads(), thread_counts[4] = {1, 3, 2, 1}, differs = 0;
    for (int t = 0; t < 4; t++) {
        omp_set_num_threads(thread_counts[t]);
        Executor *et = exec_cpu_new(&p, &err);
        if (!et) {
            differs = -1;
            break;
        }
        unsigned char *ar = et->host_ptr(et, SPACE_ARENA), *pa = et->host_ptr(et, SPACE_PARAMS);
        /* fresh inputs from the first run's buffers; outputs recomputed */
        memcpy(pa, params0, param_bytes);
        memcpy(ar, arena0, arena_bytes);
        memset(ar + p.bufs[out].offset, 0, GB * GM * GN * 4);
        memset(ar + p.bufs[LC].offset, 0, LM * LN * 4);
        memset(ar + p.bufs[QC].offset, 0, QM * QG * QN * 4);
        memset(ar + p.bufs[Cb].offset, 0, GB * GM * GN * 4);
        et->run(et, PHASE_FORWARD_TRAIN, sc, &err);
        et->run(et, PHASE_BACKWARD, sc, &err);
        differs += memcmp(ar + p.bufs[out].offset, arena0 + p.bufs[out].offset, GB * GM * GN * 4) != 0;
        differs += memcmp(ar + p.bufs[LC].offset, arena0 + p.bufs[LC].offset, LM * LN * 4) != 0;
        differs += memcmp(ar + p.bufs[QC].offset, arena0 + p.bufs[QC].offset, QM * QG * QN * 4) != 0;
        et->free(et);
    }
    omp_set_num_threads(saved_threads);
    if (differs == 0) pass("exec_cpu_thread_count_independent");
    else failf("exec_cpu_thread_count_independent", "%s", differs < 0 ? err.msg : "results with 1 or 3 threads differ from the default");
    free(arena0);
    free(params0);
    free(o);

    /* a step whose GEMM reaches past its buffer is refused at creation */
    p.steps[PHASE_BACKWARD][0].gemm.m = LM + 1;
    Executor *e2 = exec_cpu_new(&p, &err);
    if (!e2 && strstr(err.msg, "reaches element")) pass("exec_cpu_rejects_out_of_bounds_gemm");
    else failf("exec_cpu_rejects_out_of_bounds_gemm", "%s", e2 ? "accepted" : err.msg);
    if (e2) e2->free(e2);
    kir_module_free(p.module);
    for (int q = 0; q < p.n_bufs; q++) free(p.bufs[q].name);
    free(p.bufs);
    for (int ph = 0; ph < PHASE_COUNT; ph++) free(p.steps[ph]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_kir CACHE_DIR\n");
        return 2;
    }
    snprintf(cache_dir, sizeof cache_dir, "%s", argv[1]);
    mkdir(cache_dir, 0755);
    test_dedupe();
    test_finish_rejects();
    test_index_widths();

    KirModule *m = kir_module_new();
    kir_module_add(m, k_pointwise_rows());
    kir_module_add(m, k_pointwise_flat());
    kir_module_add(m, k_window());
    kir_module_add(m, k_softmax());
    kir_module_add(m, k_im2col());
    kir_module_add(m, k_map_accumulate());
    kir_module_add(m, k_every_op());
    kir_module_add(m, k_cols_int());
    kir_module_add(m, k_cols_wide());
    kir_module_add(m, k_cols());
    kir_module_add(m, k_to_bf16());
    kir_module_add(m, k_from_bf16());
    kir_module_add(m, k_rand());
    Error err = {0};
    JitInfo info;
    JitLib *lib = compile_module(m, &info, &err);
    if (!lib) {
        failf("render_and_compile_module", "%s", err.msg);
    } else {
        pass("render_and_compile_module");
        test_pointwise(lib);
        test_window(lib);
        test_softmax(lib);
        test_im2col(lib);
        test_map_accumulate(lib);
        test_every_op(lib);
        test_cols_int(lib);
        test_cols_wide(lib);
        test_cols(lib);
        test_bf16(lib);
        test_rand(lib);
        jit_free(lib);
    }
    kir_module_free(m);
    test_cache();
    test_executor();
    return harness_status();
}
