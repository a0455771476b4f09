/*
 * sample_kernels.c — see sample_kernels.h. Each builder writes the kernel as
 * the lowering would: NHWC indices, guarded loads as select(in_bounds, load, 0).
 */
#include "sample_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define I(v) kir_const_i(k, (v))
#define F(v) kir_const_f(k, (v))
#define ADD(a, b) kir_bin(k, KB_ADD, (a), (b))
#define SUB(a, b) kir_bin(k, KB_SUB, (a), (b))
#define MUL(a, b) kir_bin(k, KB_MUL, (a), (b))
#define DIV(a, b) kir_bin(k, KB_DIV, (a), (b))
#define IDIV(a, b) kir_bin(k, KB_IDIV, (a), (b))
#define MOD(a, b) kir_bin(k, KB_MOD, (a), (b))
#define LT(a, b) kir_bin(k, KB_LT, (a), (b))
#define LE(a, b) kir_bin(k, KB_LE, (a), (b))
#define AND(a, b) kir_bin(k, KB_AND, (a), (b))
#define LOAD(b, idx) kir_load(k, (b), (idx))

/* y = relu(x * gamma[c] + beta[c]) over N*H*W*C, in dtype dt. */
static Kernel *affine_relu(const char *name, KDType dt, int64_t n) {
    const int64_t c = 8;
    Kernel *k = kir_kernel_new(name, KF_ROWS, n, 1);
    kir_set_fuses(k, "batchnorm (eval) + relu");
    int x = kir_buf(k, "x", dt, n, false), g = kir_buf(k, "gamma", KD_F32, c, false);
    int b = kir_buf(k, "beta", KD_F32, c, false), y = kir_buf(k, "y", dt, n, true);
    int i = kir_var(k, KV_OUTER), ch = MOD(i, I(c));
    int v = ADD(MUL(LOAD(x, i), LOAD(g, ch)), LOAD(b, ch));
    int s = kir_stage(k, KS_STORE);
    kir_store(k, s, y, i, kir_bin(k, KB_MAX, v, F(0)), false);
    return k;
}

/* normalize fused into the first kernel: uint8 NHWC -> (x/255 - mean) / std */
static Kernel *normalize_u8(void) {
    const int64_t n = 2 * 4 * 4 * 3;
    Kernel *k = kir_kernel_new("normalize_u8", KF_ROWS, n, 1);
    int x = kir_buf(k, "image", KD_U8, n, false), y = kir_buf(k, "out", KD_F32, n, true);
    int i = kir_var(k, KV_OUTER), ch = MOD(i, I(3));
    int mean = kir_select(k, kir_bin(k, KB_EQ, ch, I(0)), F(0.485),
                          kir_select(k, kir_bin(k, KB_EQ, ch, I(1)), F(0.456), F(0.406)));
    int v = MUL(SUB(MUL(LOAD(x, i), F(1.0 / 255)), mean), F(1.0 / 0.226));
    kir_store(k, kir_stage(k, KS_STORE), y, i, v, false);
    return k;
}

/* Grouped 3x3 convolution, stride s, padding 1, NHWC, weight [Cout, d, 3, 3]. */
static Kernel *conv3x3_grouped(const char *name, int stride) {
    const int N = 2, H = 5, W = 5, Cin = 8, G = 2, d = Cin / G, Cout = 8;
    const int Ho = (H + 2 - 3) / stride + 1, Wo = (W + 2 - 3) / stride + 1;
    Kernel *k = kir_kernel_new(name, KF_ROWS, (int64_t)N * Ho * Wo * Cout, 1);
    kir_set_fuses(k, "grouped conv3x3 forward");
    int x = kir_buf(k, "x", KD_F32, (int64_t)N * H * W * Cin, false);
    int w = kir_buf(k, "w", KD_F32, (int64_t)Cout * d * 9, false);
    int y = kir_buf(k, "y", KD_F32, (int64_t)N * Ho * Wo * Cout, true);
    int i = kir_var(k, KV_OUTER);
    int co = MOD(i, I(Cout)), wo = MOD(IDIV(i, I(Cout)), I(Wo)), ho = MOD(IDIV(i, I(Cout * Wo)), I(Ho));
    int n = IDIV(i, I(Cout * Wo * Ho)), g = IDIV(co, I(Cout / G));
    int t = kir_reduce_var(k), cv = kir_reduce_var(k);
    int tv = kir_var(k, t), cvar = kir_var(k, cv);
    int kh = IDIV(tv, I(3)), kw = MOD(tv, I(3));
    int hi = ADD(MUL(ho, I(stride)), SUB(kh, I(1))), wi = ADD(MUL(wo, I(stride)), SUB(kw, I(1)));
    int inb = AND(AND(LE(I(0), hi), LT(hi, I(H))), AND(LE(I(0), wi), LT(wi, I(W))));
    int xi = ADD(MUL(ADD(MUL(ADD(MUL(n, I(H)), hi), I(W)), wi), I(Cin)), ADD(MUL(g, I(d)), cvar));
    int wi_ = ADD(MUL(ADD(MUL(co, I(d)), cvar), I(9)), tv);
    int term = MUL(kir_select(k, inb, LOAD(x, xi), F(0)), LOAD(w, wi_));
    int inner = kir_reduce(k, KR_SUM, cv, d, term);
    int sum = kir_reduce(k, KR_SUM, t, 9, inner);
    kir_store(k, kir_stage(k, KS_STORE), y, i, sum, false);
    return k;
}

/* 3x3 stride-2 max-pool with padding 1 (padding never wins). */
static Kernel *maxpool(void) {
    const int N = 2, H = 7, W = 7, C = 4, Ho = 4, Wo = 4;
    Kernel *k = kir_kernel_new("maxpool3x3s2", KF_ROWS, (int64_t)N * Ho * Wo * C, 1);
    int x = kir_buf(k, "x", KD_F32, (int64_t)N * H * W * C, false);
    int y = kir_buf(k, "y", KD_F32, (int64_t)N * Ho * Wo * C, true);
    int i = kir_var(k, KV_OUTER);
    int c = MOD(i, I(C)), wo = MOD(IDIV(i, I(C)), I(Wo)), ho = MOD(IDIV(i, I(C * Wo)), I(Ho));
    int n = IDIV(i, I(C * Wo * Ho));
    int t = kir_reduce_var(k), tv = kir_var(k, t);
    int hi = ADD(MUL(ho, I(2)), SUB(IDIV(tv, I(3)), I(1))), wi = ADD(MUL(wo, I(2)), SUB(MOD(tv, I(3)), I(1)));
    int inb = AND(AND(LE(I(0), hi), LT(hi, I(H))), AND(LE(I(0), wi), LT(wi, I(W))));
    int xi = ADD(MUL(ADD(MUL(ADD(MUL(n, I(H)), hi), I(W)), wi), I(C)), c);
    int v = kir_select(k, inb, LOAD(x, xi), F(-INFINITY));
    kir_store(k, kir_stage(k, KS_STORE), y, i, kir_reduce(k, KR_MAX, t, 9, v), false);
    return k;
}

/* Softmax cross-entropy: loss and logits gradient, rows of K classes. */
static Kernel *softmax_xent(const char *name, int64_t N, int64_t K) {
    Kernel *k = kir_kernel_new(name, KF_ROWS, N, K);
    kir_set_fuses(k, "log_softmax + nll loss + gradient");
    int x = kir_buf(k, "logits", KD_F32, N * K, false), lab = kir_buf(k, "labels", KD_I64, N, false);
    int dx = kir_buf(k, "dlogits", KD_F32, N * K, true), loss = kir_buf(k, "loss", KD_F32, N, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int xij = LOAD(x, ADD(MUL(i, I(K)), j));
    int s0 = kir_stage(k, KS_REDUCE);
    int m = kir_acc(k, s0, KR_MAX, xij);
    int s1 = kir_stage(k, KS_REDUCE);
    int e = kir_un(k, KU_EXP, SUB(xij, m));
    int sum = kir_acc(k, s1, KR_SUM, e);
    int s2 = kir_stage(k, KS_MAP);
    int label = LOAD(lab, i);
    int onehot = kir_select(k, kir_bin(k, KB_EQ, j, label), F(1), F(0));
    int grad = MUL(SUB(DIV(e, sum), onehot), kir_scalar(k, SC_GRAD_SCALE));
    kir_store(k, s2, dx, ADD(MUL(i, I(K)), j), grad, false);
    int s3 = kir_stage(k, KS_STORE);
    int xl = LOAD(x, ADD(MUL(i, I(K)), label));
    kir_store(k, s3, loss, i, SUB(ADD(kir_un(k, KU_LOG, sum), m), xl), false);
    return k;
}

/* A long-row map without a reduction: y[i, j] = x[i, j] * s[i] (block per row). */
static Kernel *rows_scale(void) {
    const int64_t N = 6, L = 70;
    Kernel *k = kir_kernel_new("rows_scale", KF_ROWS, N, L);
    int x = kir_buf(k, "x", KD_F32, N * L, false), s = kir_buf(k, "s", KD_F32, N, false);
    int y = kir_buf(k, "y", KD_F32, N * L, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER), idx = ADD(MUL(i, I(L)), j);
    kir_store(k, kir_stage(k, KS_MAP), y, idx, MUL(LOAD(x, idx), LOAD(s, i)), false);
    return k;
}

/* Two map stages where the second reads what other threads of the block
 * stored in the first (reversed rows): needs a barrier between the stages. */
static Kernel *rows_two_maps(void) {
    const int64_t N = 3, L = 96;
    Kernel *k = kir_kernel_new("rows_two_maps", KF_ROWS, N, L);
    int x = kir_buf(k, "x", KD_F32, N * L, false), y = kir_buf(k, "y", KD_F32, N * L, true);
    int z = kir_buf(k, "z", KD_F32, N * L, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER), idx = ADD(MUL(i, I(L)), j);
    kir_store(k, kir_stage(k, KS_MAP), y, idx, MUL(LOAD(x, idx), F(2)), false);
    int rev = ADD(MUL(i, I(L)), SUB(I(L - 1), j));
    kir_store(k, kir_stage(k, KS_MAP), z, idx, ADD(LOAD(y, rev), F(1)), false);
    return k;
}

/* Column statistics of NHWC data: sum, sum of squares and max per channel. */
static Kernel *col_stats(void) {
    const int64_t C = 40, R = 300;
    Kernel *k = kir_kernel_new("col_stats", KF_COLS, C, R);
    k->row_chunks = 3;
    kir_set_fuses(k, "batchnorm statistics");
    int x = kir_buf(k, "x", KD_F32, R * C, false);
    int mean = kir_buf(k, "mean", KD_F32, C, true), var = kir_buf(k, "var", KD_F32, C, true);
    int mx = kir_buf(k, "max", KD_F32, C, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int v = LOAD(x, ADD(MUL(j, I(C)), i));
    int s0 = kir_stage(k, KS_REDUCE);
    int a0 = kir_acc(k, s0, KR_SUM, v), a1 = kir_acc(k, s0, KR_SUM, MUL(v, v)), a2 = kir_acc(k, s0, KR_MAX, v);
    int s1 = kir_stage(k, KS_STORE);
    int mu = DIV(a0, F((double)R));
    kir_store(k, s1, mean, i, mu, false);
    kir_store(k, s1, var, i, SUB(DIV(a1, F((double)R)), MUL(mu, mu)), false);
    kir_store(k, s1, mx, i, a2, false);
    return k;
}

/* Long columns: the GPU splits each IR row chunk further (uneven row count). */
static Kernel *col_sum_long(void) {
    const int64_t C = 8, R = 5003;
    Kernel *k = kir_kernel_new("col_sum_long", KF_COLS, C, R);
    k->row_chunks = 2;
    int x = kir_buf(k, "x", KD_F32, R * C, false), out = kir_buf(k, "sum", KD_F32, C, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int s0 = kir_stage(k, KS_REDUCE);
    int a = kir_acc(k, s0, KR_SUM, LOAD(x, ADD(MUL(j, I(C)), i)));
    kir_store(k, kir_stage(k, KS_STORE), out, i, a, false);
    return k;
}

/* Many row chunks (70, more than a warp's 32 lanes, not a multiple) and
 * columns spread over several finish blocks: every lane of NAME_finish's
 * warp strides over two or three chunks before the shuffle tree. */
static Kernel *col_many_chunks(void) {
    const int64_t C = 37, R = 700;
    Kernel *k = kir_kernel_new("col_many_chunks", KF_COLS, C, R);
    k->row_chunks = 70;
    int x = kir_buf(k, "x", KD_F32, R * C, false);
    int sum = kir_buf(k, "sum", KD_F32, C, true), mx = kir_buf(k, "max", KD_F32, C, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int v = LOAD(x, ADD(MUL(j, I(C)), i));
    int s0 = kir_stage(k, KS_REDUCE);
    int a0 = kir_acc(k, s0, KR_SUM, v), a1 = kir_acc(k, s0, KR_MAX, v);
    int s1 = kir_stage(k, KS_STORE);
    kir_store(k, s1, sum, i, a0, false);
    kir_store(k, s1, mx, i, a1, false);
    return k;
}

/* bf16 column reduction with an accumulating fp32 store (a bias gradient). */
static Kernel *col_bias_grad_bf16(void) {
    const int64_t C = 20, R = 130;
    Kernel *k = kir_kernel_new("col_bias_grad_bf16", KF_COLS, C, R);
    int dy = kir_buf(k, "dy", KD_BF16, R * C, false), g = kir_buf(k, "grad", KD_F32, C, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int s0 = kir_stage(k, KS_REDUCE);
    int a = kir_acc(k, s0, KR_SUM, LOAD(dy, ADD(MUL(j, I(C)), i)));
    kir_store(k, kir_stage(k, KS_STORE), g, i, a, true);
    return k;
}

/* BatchNorm backward sums fused with the elementwise gradient (autodiff.c's
 * sums kernel on CUDA): dy = relu mask * g, summed as sum dy and
 * sum dy * xhat per channel, and written per element from the reduce stage
 * (bf16, and accumulated into an f32 buffer). */
static Kernel *col_grad_sums_bf16(void) {
    const int64_t C = 24, R = 260;
    Kernel *k = kir_kernel_new("col_grad_sums_bf16", KF_COLS, C, R);
    k->row_chunks = 4;
    kir_set_fuses(k, "batchnorm backward sums + residual gradient");
    int g = kir_buf(k, "g", KD_BF16, R * C, false), y = kir_buf(k, "y", KD_BF16, R * C, false);
    int x = kir_buf(k, "x", KD_BF16, R * C, false), stats = kir_buf(k, "stats", KD_F32, 2 * C, false);
    int sums = kir_buf(k, "sums", KD_F32, 2 * C, true), dres = kir_buf(k, "dres", KD_BF16, R * C, true);
    int dacc = kir_buf(k, "dacc", KD_F32, R * C, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER), idx = ADD(MUL(j, I(C)), i);
    int dy = kir_select(k, LT(F(0), LOAD(y, idx)), LOAD(g, idx), F(0));
    int xhat = MUL(SUB(LOAD(x, idx), LOAD(stats, i)), LOAD(stats, ADD(i, I(C))));
    int s0 = kir_stage(k, KS_REDUCE);
    int a0 = kir_acc(k, s0, KR_SUM, dy), a1 = kir_acc(k, s0, KR_SUM, MUL(dy, xhat));
    kir_store(k, s0, dres, idx, dy, false);
    kir_store(k, s0, dacc, idx, MUL(dy, F(2)), true);
    int s1 = kir_stage(k, KS_STORE);
    kir_store(k, s1, sums, i, a0, false);
    kir_store(k, s1, sums, ADD(i, I(C)), a1, false);
    return k;
}

/* Inverted dropout with p = 0.3. */
static Kernel *dropout(void) {
    const int64_t n = 300;
    Kernel *k = kir_kernel_new("dropout", KF_ROWS, n, 1);
    int x = kir_buf(k, "x", KD_F32, n, false), y = kir_buf(k, "y", KD_F32, n, true);
    int i = kir_var(k, KV_OUTER);
    int keep = kir_bin(k, KB_LE, F(0.3), kir_rand(k, 17, i));
    kir_store(k, kir_stage(k, KS_STORE), y, i, kir_select(k, keep, MUL(LOAD(x, i), F(1 / 0.7)), F(0)), false);
    return k;
}

/* The multi-tensor SGD update: momentum, weight decay, and zeroed gradients. */
static Kernel *sgd_update(void) {
    const int64_t n = 333;
    Kernel *k = kir_kernel_new("sgd_update", KF_ROWS, n, 1);
    int p = kir_buf(k, "params", KD_F32, n, true), g = kir_buf(k, "grads", KD_F32, n, true);
    int m = kir_buf(k, "momentum", KD_F32, n, true), pb = kir_buf(k, "params_bf16", KD_BF16, n, true);
    int i = kir_var(k, KV_OUTER);
    int pv = LOAD(p, i);
    int gv = ADD(LOAD(g, i), MUL(kir_scalar(k, SC_WEIGHT_DECAY), pv));
    int first = kir_bin(k, KB_LT, F(0.5), kir_scalar(k, SC_FIRST_STEP));
    int mv = kir_select(k, first, gv, ADD(MUL(kir_scalar(k, SC_MOMENTUM), LOAD(m, i)), gv));
    int np = SUB(pv, MUL(kir_scalar(k, SC_LR), mv));
    int s = kir_stage(k, KS_STORE);
    kir_store(k, s, m, i, mv, false);
    kir_store(k, s, p, i, np, false);
    kir_store(k, s, pb, i, np, false);
    kir_store(k, s, g, i, F(0), false);
    return k;
}

/* Gradient accumulation into an existing buffer (+=); the large one gets a
 * float4 variant. */
static Kernel *accumulate(const char *name, int64_t n) {
    Kernel *k = kir_kernel_new(name, KF_ROWS, n, 1);
    int x = kir_buf(k, "x", KD_F32, n, false), g = kir_buf(k, "g", KD_F32, n, true);
    int i = kir_var(k, KV_OUTER);
    kir_store(k, kir_stage(k, KS_STORE), g, i, MUL(LOAD(x, i), kir_un(k, KU_SIGMOID, LOAD(x, i))), true);
    return k;
}

/* f32 and bf16 at [i] in one kernel: the 8-wide vector variant (two float4
 * per f32 buffer, a uint4 of 8 bf16 per bf16 buffer), with an accumulating
 * f32 store and a bf16 store. */
static Kernel *mixed_f32_bf16(void) {
    const int64_t n = 8192;
    Kernel *k = kir_kernel_new("mixed_f32_bf16", KF_ROWS, n, 1);
    int x = kir_buf(k, "x", KD_F32, n, false), r = kir_buf(k, "r", KD_BF16, n, false);
    int y = kir_buf(k, "y", KD_BF16, n, true), s = kir_buf(k, "s", KD_F32, n, true);
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, y, i, MUL(LOAD(x, i), kir_un(k, KU_SIGMOID, LOAD(r, i))), false);
    kir_store(k, st, s, i, ADD(LOAD(x, i), LOAD(r, i)), true);
    return k;
}

KirModule *sample_module(Error *err) {
    Kernel *ks[] = {
        affine_relu("affine_relu", KD_F32, 144), affine_relu("affine_relu_bf16", KD_BF16, 144),
        affine_relu("affine_relu_large", KD_F32, 8192), normalize_u8(),
        conv3x3_grouped("conv3x3_g2", 1), conv3x3_grouped("conv3x3_g2_s2", 2), maxpool(),
        softmax_xent("softmax_xent_block", 3, 1000), softmax_xent("softmax_xent_thread", 37, 5),
        softmax_xent("softmax_xent_warp", 37, 10),
        rows_scale(), rows_two_maps(), col_stats(), col_sum_long(), col_many_chunks(), col_bias_grad_bf16(), col_grad_sums_bf16(), dropout(), sgd_update(), accumulate("grad_accumulate", 77),
        accumulate("grad_accumulate_large", 4096), affine_relu("affine_relu_bf16_large", KD_BF16, 8192),
        mixed_f32_bf16(),
    };
    KirModule *m = kir_module_new();
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        if (kir_finish(ks[i], err)) {
            for (size_t j = i; j < sizeof ks / sizeof ks[0]; j++) kir_kernel_free(ks[j]);
            kir_module_free(m);
            return NULL;
        }
        kir_module_add(m, ks[i]);
    }
    return m;
}

Kernel *sample_wide_kernel(void) {
    const int64_t n = 3000000000LL;
    Kernel *k = kir_kernel_new("wide_copy", KF_ROWS, n, 1);
    int x = kir_buf(k, "x", KD_BF16, n, false), y = kir_buf(k, "y", KD_F32, n, true);
    int i = kir_var(k, KV_OUTER);
    kir_store(k, kir_stage(k, KS_STORE), y, i, LOAD(x, i), false);
    Error err = {0};
    if (kir_finish(k, &err)) fprintf(stderr, "%s\n", err.msg);
    return k;
}
