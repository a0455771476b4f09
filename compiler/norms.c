/*
 * norms.c — forward and backward lowering of the per-sample norms:
 * groupnorm (statistics per sample and group of channels, PyTorch's
 * GroupNorm) and layernorm over the channels of each pixel (ConvNeXt's
 * LayerNorm2d). Neither keeps running statistics, so train and eval compute
 * the same thing. Biased variance, eps inside the square root, as PyTorch.
 *
 * Both normalize "rows": groupnorm has N * G rows of H*W*C/G elements,
 * layernorm N * H*W rows of C. Forward: a statistics kernel (mean, invstd
 * per row; sums shifted by the row's first element, as the BatchNorm
 * statistics are) and an apply kernel. Backward: per-row sums of g = dy *
 * weight and g * xhat, then dx = invstd (g - mean(g) - xhat mean(g xhat)) in
 * one elementwise kernel, and the weight and bias gradients as column sums.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "util.h"

typedef struct NormRows {
    int64_t R, M;          /* rows, elements per row */
    int64_t C, P, G, Cg;   /* channels, pixels per sample, groups, channels per group */
    bool per_pixel;        /* layernorm */
} NormRows;

static NormRows norm_rows(const Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    NormRows r = {.C = lw_channels(n), .per_pixel = n->op == OP_LAYERNORM};
    r.P = lw_per_sample(L, v) / r.C;
    r.G = r.per_pixel ? 1 : n->a.norm.groups;
    r.Cg = r.C / r.G;
    r.R = r.per_pixel ? (int64_t)L->N * r.P : (int64_t)L->N * r.G;
    r.M = r.per_pixel ? r.C : r.P * r.Cg;
    return r;
}

/* the flat index of element j of row r */
static int row_elem(Kernel *k, const NormRows *nr, int r, int j) {
    if (nr->per_pixel) return e_add(k, e_muli(k, r, nr->C), j);
    int pixel = e_add(k, e_muli(k, e_idiv(k, r, nr->G), nr->P), e_idiv(k, j, nr->Cg));
    int c = e_add(k, e_muli(k, e_mod(k, r, nr->G), nr->Cg), e_mod(k, j, nr->Cg));
    return e_add(k, e_muli(k, pixel, nr->C), c);
}

/* the row of flat index i */
static int row_of(Kernel *k, const NormRows *nr, int i) {
    if (nr->per_pixel) return e_idiv(k, i, nr->C);
    return e_add(k, e_muli(k, e_idiv(k, i, nr->P * nr->C), nr->G), e_idiv(k, e_mod(k, i, nr->C), nr->Cg));
}

/* xhat at flat index i: (x - mean) * invstd from the statistics buffer sb */
static int norm_xhat(Lower *L, KB *kb, const NormRows *nr, int x, int sb, int i, int row, ExprMode mode) {
    Kernel *k = kb->k;
    int xv = lw_value(L, kb, x, i, mode);
    return e_mul(k, e_sub(k, xv, kir_load(k, sb, row)), kir_load(k, sb, e_addi(k, row, nr->R)));
}

static void norm_stats(Lower *L, int v, const NormRows *nr, unsigned ph, const char *lab) {
    const Node *n = &L->g->nodes[v];
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, nr->R, nr->M);
    Kernel *k = kb.k;
    int r = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int xb = kb_buf(&kb, L, L->fwd_buf[n->in[0]], false);
    int shift = kir_load(k, xb, row_elem(k, nr, r, e_i(k, 0)));
    int d = e_sub(k, kir_load(k, xb, row_elem(k, nr, r, j)), shift);
    int st = kir_stage(k, KS_REDUCE);
    int s1 = kir_acc(k, st, KR_SUM, d);
    int s2 = kir_acc(k, st, KR_SUM, e_mul(k, d, d));
    int so = kir_stage(k, KS_STORE);
    int md = e_div(k, s1, e_f(k, (double)nr->M));
    int var = kir_bin(k, KB_MAX, e_sub(k, e_div(k, s2, e_f(k, (double)nr->M)), e_mul(k, md, md)), e_f(k, 0));
    int sb = kb_buf(&kb, L, L->stats_buf[v], true);
    kir_store(k, so, sb, r, e_add(k, shift, md), false);
    kir_store(k, so, sb, e_addi(k, r, nr->R), kir_un(k, KU_RSQRT, e_add(k, var, e_f(k, n->a.norm.eps))), false);
    kb_end(&kb, L, nr->per_pixel ? "layernorm statistics (mean, invstd over the channels of each pixel)"
                                 : "groupnorm statistics (mean, invstd per sample and group)", ph, false);
}

void lower_norm(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const unsigned ph = PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL);
    NormRows nr = norm_rows(L, v);
    int64_t total = nr.R * nr.M;
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:stats", lab);
    L->stats_buf[v] = lw_arena(L, nm, 2 * nr.R);
    free(nm);
    int out = lw_forward_out(L, v, lab);
    norm_stats(L, v, &nr, ph, lab);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, total, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), c = e_mod(k, i, nr.C);
    int sb = kb_buf(&kb, L, L->stats_buf[v], false);
    int xhat = norm_xhat(L, &kb, &nr, n->in[0], sb, i, row_of(k, &nr, i), EM_TRAIN);
    int y = e_add(k, e_mul(k, xhat, lw_value(L, &kb, n->in[1], c, EM_TRAIN)), lw_value(L, &kb, n->in[2], c, EM_TRAIN));
    kir_store(k, kir_stage(k, KS_STORE), kb_buf(&kb, L, out, true), i, y, false);
    kb_end(&kb, L, nr.per_pixel ? "layernorm apply" : "groupnorm apply", ph, false);
    free(lab);
}

/* dgamma = sum dy * xhat, dbeta = sum dy, per channel */
static void norm_param_grads(Lower *L, int v, const NormRows *nr, const char *lab) {
    const Node *n = &L->g->nodes[v];
    bool wacc, bacc;
    int wt = grad_target(L, n->in[1], &wacc), bt = grad_target(L, n->in[2], &bacc);
    if (wt < 0 && bt < 0) return;
    int64_t rows = nr->R * nr->M / nr->C;
    KB kb;
    kb_begin(&kb, L, lab, KF_COLS, nr->C, rows);
    Kernel *k = kb.k;
    int c = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int idx = e_add(k, e_muli(k, j, nr->C), c);
    int dy = kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), idx);
    int sb = kb_buf(&kb, L, L->stats_buf[v], false);
    int xhat = norm_xhat(L, &kb, nr, n->in[0], sb, idx, row_of(k, nr, idx), EM_BWD);
    int st = kir_stage(k, KS_REDUCE);
    int a_w = kir_acc(k, st, KR_SUM, e_mul(k, dy, xhat));
    int a_b = kir_acc(k, st, KR_SUM, dy);
    int so = kir_stage(k, KS_STORE);
    if (wt >= 0) kir_store(k, so, kb_buf(&kb, L, wt, true), c, a_w, wacc);
    if (bt >= 0) kir_store(k, so, kb_buf(&kb, L, bt, true), c, a_b, bacc);
    kb_end(&kb, L, "norm weight and bias gradients (sum dy*xhat, sum dy)", PH(PHASE_BACKWARD), false);
}

void norm_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    NormRows nr = norm_rows(L, v);
    char *lab = lw_label(L, v);
    norm_param_grads(L, v, &nr, lab);
    bool acc;
    int xt = grad_target(L, n->in[0], &acc);
    if (xt < 0) {
        free(lab);
        return;
    }
    char *nm = xasprintf("%s:grad_sums", lab);
    int sums = lw_arena(L, nm, 2 * nr.R);
    free(nm);
    /* 1. per row: sum g and sum g * xhat, g = dy * weight */
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, nr.R, nr.M);
    Kernel *k = kb.k;
    int r = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int idx = row_elem(k, &nr, r, j);
    int sb = kb_buf(&kb, L, L->stats_buf[v], false);
    int g = e_mul(k, kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), idx),
                  lw_value(L, &kb, n->in[1], e_mod(k, idx, nr.C), EM_BWD));
    int xhat = norm_xhat(L, &kb, &nr, n->in[0], sb, idx, r, EM_BWD);
    int st = kir_stage(k, KS_REDUCE);
    int s1 = kir_acc(k, st, KR_SUM, g), s2 = kir_acc(k, st, KR_SUM, e_mul(k, g, xhat));
    int so = kir_stage(k, KS_STORE);
    int smb = kb_buf(&kb, L, sums, true);
    kir_store(k, so, smb, r, s1, false);
    kir_store(k, so, smb, e_addi(k, r, nr.R), s2, false);
    kb_end(&kb, L, "norm backward sums (sum g, sum g*xhat per row)", PH(PHASE_BACKWARD), false);
    /* 2. dx = invstd * (g - sum g / M - xhat * sum(g xhat) / M) */
    kb_begin(&kb, L, lab, KF_ROWS, nr.R * nr.M, 1);
    k = kb.k;
    int i = kir_var(k, KV_OUTER), row = row_of(k, &nr, i);
    sb = kb_buf(&kb, L, L->stats_buf[v], false);
    smb = kb_buf(&kb, L, sums, false);
    g = e_mul(k, kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), i), lw_value(L, &kb, n->in[1], e_mod(k, i, nr.C), EM_BWD));
    xhat = norm_xhat(L, &kb, &nr, n->in[0], sb, i, row, EM_BWD);
    double inv_m = 1.0 / (double)nr.M;
    int inner = e_sub(k, e_sub(k, g, e_mul(k, kir_load(k, smb, row), e_f(k, inv_m))),
                      e_mul(k, xhat, e_mul(k, kir_load(k, smb, e_addi(k, row, nr.R)), e_f(k, inv_m))));
    int dx = e_mul(k, kir_load(k, sb, e_addi(k, row, nr.R)), inner);
    kir_store(k, kir_stage(k, KS_STORE), kb_buf(&kb, L, xt, true), i, dx, acc);
    kb_end(&kb, L, "norm input gradient", PH(PHASE_BACKWARD), false);
    free(lab);
}
