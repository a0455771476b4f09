/*
 * lower.c — forward lowering of the training compiler: the elementwise
 * expression builder shared with autodiff.c, and the forward steps of every
 * primitive (train and eval variants). Building blocks are in
 * kernel_builder.c, the loss in loss.c, the update in optimizer.c.
 *
 * Layout: activations are NHWC with the batch outermost, so a value of
 * per-sample shape {H,W,C} occupies N*H*W*C floats and flat index
 * ((n*H + h)*W + w)*C + c. Convolutions and linear layers become GEMMs on
 * that layout (1x1 stride-1 convolutions directly; others through a
 * generated im2col kernel whose column order (ci, kh, kw) matches
 * PyTorch's weight layout, so each group is one GEMM of a batched step).
 * Grouped convolutions that the target runs as library steps
 * (Target.conv_library_step) become STEP_CONVs instead, in all three passes.
 */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "util.h"

/* ---- values ------------------------------------------------------------------- */

static bool flatten_is_alias(const Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    if (n->op != OP_FLATTEN) return false;
    const Node *x = &L->g->nodes[n->in[0]];
    return x->rank == 1 || (x->dim[0] == 1 && x->dim[1] == 1);
}

int need_bwd(Lower *L, int v) {
    if (L->bwd_buf[v] >= 0) return L->bwd_buf[v];
    const Node *n = &L->g->nodes[v];
    if (n->op == OP_PARAM) return L->param_buf[n->a.param.index];
    if (flatten_is_alias(L, v)) return L->bwd_buf[v] = need_bwd(L, n->in[0]);
    if (L->fp.recompute[v]) {
        char *lab = lw_label(L, v);
        char *nm = xasprintf("%s:recomputed", lab);
        int b = lw_act(L, nm, (int64_t)L->N * lw_per_sample(L, v));
        free(nm);
        free(lab);
        lower_tree_store(L, v, b, EM_BWD, PH(PHASE_BACKWARD));
        return L->bwd_buf[v] = b;
    }
    if (L->fwd_buf[v] < 0) lw_fail(L, "internal error: node %d has no forward buffer", v);
    return L->bwd_buf[v] = L->fwd_buf[v];
}

int lw_value_buf(Lower *L, int v, ExprMode mode) {
    if (mode == EM_BWD) return need_bwd(L, v);
    const Node *n = &L->g->nodes[v];
    if (n->op == OP_PARAM) return L->param_buf[n->a.param.index];
    return L->fwd_buf[v];
}

int lw_bcast_index(Lower *L, Kernel *k, int u, int b, int idx) {
    int64_t Cb = lw_per_sample(L, b), F = lw_per_sample(L, u);
    if (Cb == 1) return e_idiv(k, idx, F); /* one value per sample */
    return e_add(k, e_muli(k, e_idiv(k, idx, F), Cb), e_mod(k, idx, Cb));
}

/* The draw behind element idx of dropout (one per element) or drop_path (one
 * per sample), from the step's counter-based RNG keyed by node v, so that the
 * backward regenerates the forward's mask. x survives scaled by 1/(1-p). */
int lw_random_drop(Lower *L, Kernel *k, int v, int idx, int x) {
    const Node *n = &L->g->nodes[v];
    float p = n->a.dropout.p;
    int draw_index = n->op == OP_DROP_PATH ? e_idiv(k, idx, lw_per_sample(L, v)) : idx;
    int keep = kir_bin(k, KB_LE, e_f(k, p), kir_rand(k, v, draw_index));
    return kir_select(k, keep, e_mul(k, x, e_f(k, (float)(1.0 / (1.0 - (double)p)))), e_f(k, 0));
}

static bool expandable(const Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    return L->fp.elementwise[v] || (n->op == OP_INPUT && (L->o->normalize_u8_input || L->act != KD_F32));
}

int lw_value(Lower *L, KB *kb, int v, int idx, ExprMode mode) {
    Kernel *k = kb->k;
    const Node *n = &L->g->nodes[v];
    if (L->fp.inlined[v]) return lw_value_expand(L, kb, v, idx, mode);
    /* In backward, a recomputable value nobody materialized yet is cheaper
     * to expand in place than to rematerialize just for this read. */
    if (mode == EM_BWD && L->fp.recompute[v] && L->bwd_buf[v] < 0 && expandable(L, v))
        return lw_value_expand(L, kb, v, idx, mode);
    if (n->op == OP_PARAM) return kir_load(k, kb_buf(kb, L, L->param_buf[n->a.param.index], false), idx);
    int b = lw_value_buf(L, v, mode);
    if (b < 0) {
        lw_fail(L, "internal error: no buffer for node %d (%s)", v, op_name(n->op));
        return e_f(k, 0);
    }
    return kir_load(k, kb_buf(kb, L, b, false), idx);
}

int lw_operand_index(Lower *L, Kernel *k, int u, int x, int idx) {
    return fuse_is_broadcast(L->g, u, x) ? lw_bcast_index(L, k, u, x, idx) : idx;
}

static int pick3(Kernel *k, int c, const float v[3]) {
    return kir_select(k, kir_bin(k, KB_EQ, c, e_i(k, 0)), e_f(k, v[0]),
                      kir_select(k, kir_bin(k, KB_EQ, c, e_i(k, 1)), e_f(k, v[1]), e_f(k, v[2])));
}

int lw_value_expand(Lower *L, KB *kb, int v, int idx, ExprMode mode) {
    Kernel *k = kb->k;
    const Node *n = &L->g->nodes[v];
    switch (n->op) {
    case OP_INPUT: {
        if (!L->o->normalize_u8_input) {
            if (L->act == KD_F32) return lw_value(L, kb, v, idx, mode);
            return kir_load(k, kb_buf(kb, L, L->p->input_buf, false), idx); /* the bf16 copy reads the f32 input */
        }
        int raw = kir_load(k, kb_buf(kb, L, L->p->input_buf, false), idx);
        int c = e_mod(k, idx, n->dim[2]);
        float mean[3], rstd[3];
        for (int i = 0; i < 3; i++) {
            mean[i] = L->o->mean[i];
            rstd[i] = L->o->std[i];
        }
        return e_div(k, e_sub(k, e_div(k, raw, e_f(k, 255.0)), pick3(k, c, mean)), pick3(k, c, rstd));
    }
    case OP_RELU:
        return kir_bin(k, KB_MAX, lw_value(L, kb, n->in[0], idx, mode), e_f(k, 0));
    case OP_SIGMOID:
        return kir_un(k, KU_SIGMOID, lw_value(L, kb, n->in[0], idx, mode));
    case OP_ADD:
    case OP_MUL:
    case OP_SUB:
    case OP_DIV: {
        static const KBinOp kop[OP_COUNT] = {[OP_ADD] = KB_ADD, [OP_MUL] = KB_MUL, [OP_SUB] = KB_SUB, [OP_DIV] = KB_DIV};
        int a = lw_value(L, kb, n->in[0], lw_operand_index(L, k, v, n->in[0], idx), mode);
        int b = lw_value(L, kb, n->in[1], lw_operand_index(L, k, v, n->in[1], idx), mode);
        return kir_bin(k, kop[n->op], a, b);
    }
    case OP_DROPOUT:
    case OP_DROP_PATH: {
        int x = lw_value(L, kb, n->in[0], idx, mode);
        if (mode == EM_EVAL || n->a.dropout.p == 0) return x;
        return lw_random_drop(L, k, v, idx, x);
    }
    case OP_BATCHNORM: {
        int64_t C = lw_channels(n);
        int c = e_mod(k, idx, C);
        int x = lw_value(L, kb, n->in[0], idx, mode);
        int gamma = lw_value(L, kb, n->in[1], c, mode);
        int beta = lw_value(L, kb, n->in[2], c, mode);
        int mean, invstd;
        if (mode == EM_EVAL) {
            int rm = kb_buf(kb, L, L->param_buf[n->a.bn.running_mean], false);
            int rv = kb_buf(kb, L, L->param_buf[n->a.bn.running_var], false);
            mean = kir_load(k, rm, c);
            invstd = kir_un(k, KU_RSQRT, e_add(k, kir_load(k, rv, c), e_f(k, n->a.bn.eps)));
        } else {
            int sb = kb_buf(kb, L, L->stats_buf[v], false);
            mean = kir_load(k, sb, c);
            invstd = kir_load(k, sb, e_addi(k, c, C));
        }
        return e_add(k, e_mul(k, e_mul(k, e_sub(k, x, mean), invstd), gamma), beta);
    }
    default:
        if (op_is_pointwise(n->op)) return pw_forward(k, n, lw_value(L, kb, n->in[0], idx, mode));
        lw_fail(L, "internal error: %s cannot be evaluated inside a fused kernel", op_name(n->op));
        return e_f(k, 0);
    }
}

/* ---- elementwise trees ---------------------------------------------------------- */

static void collect_bns(const Lower *L, int v, int *out, int *n) {
    const Node *nd = &L->g->nodes[v];
    if (nd->op == OP_BATCHNORM) out[(*n)++] = v;
    if (!L->fp.elementwise[v]) return;
    for (int i = 0; i < nd->n_in; i++)
        if (L->fp.inlined[nd->in[i]]) collect_bns(L, nd->in[i], out, n);
}

/* A description of what the tree of v fuses, e.g. "batchnorm+relu". */
static void describe_tree(const Lower *L, int v, StrBuf *sb) {
    const Node *nd = &L->g->nodes[v];
    bool first = true;
    for (int i = 0; i < nd->n_in; i++)
        if (L->fp.inlined[nd->in[i]]) {
            describe_tree(L, nd->in[i], sb);
            sb_puts(sb, "+");
            first = false;
        }
    (void)first;
    if (nd->op == OP_INPUT) sb_puts(sb, "normalize_u8");
    else if (nd->op == OP_ADD) sb_puts(sb, "add(residual)");
    else sb_puts(sb, op_name(nd->op));
}

/* The sums of bn_stats_kernel from a conv's per-block partials (program.h
 * ConvOutStats: row j's sums about its own first value k_j): about row 0's
 * k, the column's first element, as the kernel's own shift,
 *     sum (x - k0) = sum_j s1_j + n_j (k_j - k0),
 *     sum (x - k0)^2 = sum_j s2_j + 2 (k_j - k0) s1_j + n_j (k_j - k0)^2. */
static void bn_stats_from_partials(Lower *L, KB *kb, int partials, int64_t rows, int64_t C, int st, int *shift,
                                   int *s1, int *s2) {
    Kernel *k = kb->k;
    const int pb = kb_buf(kb, L, partials, false);
    const int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    const int64_t plane = rows * C;
    const int at = e_add(k, e_muli(k, j, C), i);
    *shift = kir_load(k, pb, e_addi(k, i, 3 * plane));
    int ps1 = kir_load(k, pb, at), ps2 = kir_load(k, pb, e_addi(k, at, plane));
    int count = kir_load(k, pb, e_addi(k, at, 2 * plane));
    int delta = e_sub(k, kir_load(k, pb, e_addi(k, at, 3 * plane)), *shift);
    *s1 = kir_acc(k, st, KR_SUM, e_add(k, ps1, e_mul(k, count, delta)));
    *s2 = kir_acc(k, st, KR_SUM, e_add(k, e_add(k, ps2, e_mul(k, e_mul(k, e_f(k, 2), delta), ps1)),
                                       e_mul(k, count, e_mul(k, delta, delta))));
}

static void bn_stats_kernel(Lower *L, int b) {
    const Node *n = &L->g->nodes[b];
    int64_t C = lw_channels(n), M = (int64_t)L->N * lw_per_sample(L, b) / C;
    char *lab = lw_label(L, b);
    char *nm = xasprintf("%s:stats", lab);
    L->stats_buf[b] = lw_arena(L, nm, 2 * C);
    free(nm);
    const int partials = L->stats_partials[n->in[0]]; /* the conv that wrote x summed them (ConvOutStats) */
    KB kb;
    kb_begin(&kb, L, lab, KF_COLS, C, partials >= 0 ? L->stats_rows[n->in[0]] : M);
    Kernel *k = kb.k;
    int sb = kb_buf(&kb, L, L->stats_buf[b], true);
    int rm = kb_buf(&kb, L, L->param_buf[n->a.bn.running_mean], true);
    int rv = kb_buf(&kb, L, L->param_buf[n->a.bn.running_var], true);
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_REDUCE);
    int shift, s1, s2;
    if (partials >= 0) {
        bn_stats_from_partials(L, &kb, partials, L->stats_rows[n->in[0]], C, st, &shift, &s1, &s2);
    } else {
        /* Shifted sums (by the column's first element) keep the one-pass
         * variance accurate when the mean is large against the spread. */
        int xb = kb_buf(&kb, L, L->fwd_buf[n->in[0]], false);
        int j = kir_var(k, KV_INNER);
        shift = kir_load(k, xb, i);
        int d = e_sub(k, kir_load(k, xb, e_add(k, e_muli(k, j, C), i)), shift);
        s1 = kir_acc(k, st, KR_SUM, d);
        s2 = kir_acc(k, st, KR_SUM, e_mul(k, d, d));
    }
    int out = kir_stage(k, KS_STORE);
    int md = e_div(k, s1, e_f(k, (double)M));
    int var = kir_bin(k, KB_MAX, e_sub(k, e_div(k, s2, e_f(k, (double)M)), e_mul(k, md, md)), e_f(k, 0));
    int mean = e_add(k, shift, md);
    int invstd = kir_un(k, KU_RSQRT, e_add(k, var, e_f(k, n->a.bn.eps)));
    double mom = n->a.bn.momentum;
    double unbias = M > 1 ? (double)M / (double)(M - 1) : 1.0;
    kir_store(k, out, sb, i, mean, false);
    kir_store(k, out, sb, e_addi(k, i, C), invstd, false);
    kir_store(k, out, rm, i, e_add(k, e_mul(k, e_f(k, 1 - mom), kir_load(k, rm, i)), e_mul(k, e_f(k, mom), mean)), false);
    kir_store(k, out, rv, i,
              e_add(k, e_mul(k, e_f(k, 1 - mom), kir_load(k, rv, i)), e_mul(k, e_f(k, mom * unbias), var)), false);
    kb_end(&kb, L,
           partials >= 0 ? "batchnorm statistics from the rows of partial sums the conv wrote (batch mean, biased var -> "
                           "invstd; running mean/var update)"
                         : "batchnorm statistics (batch mean, biased var -> invstd; running mean/var update)",
           PH(PHASE_FORWARD_TRAIN), false);
    free(lab);
}

/* The running statistics' update from a batch mean and biased variance. */
static void bn_running_update(Kernel *k, int out, const Node *n, int rm, int rv, int i, int mean, int var,
                              int unbias) {
    double mom = n->a.bn.momentum;
    kir_store(k, out, rm, i, e_add(k, e_mul(k, e_f(k, 1 - mom), kir_load(k, rm, i)), e_mul(k, e_f(k, mom), mean)), false);
    kir_store(k, out, rv, i,
              e_add(k, e_mul(k, e_f(k, 1 - mom), kir_load(k, rv, i)), e_mul(k, e_mul(k, e_f(k, mom), unbias), var)),
              false);
}

/* sync_bn: the statistics over every rank's samples, as PyTorch's
 * SyncBatchNorm has them, in two passes around two all-reduces (no shift
 * has to agree between the ranks, and the variance is taken about the
 * global mean). stats_buf is [5C]:
 *   pass 1   [2C, 3C) this rank's sum of x, [3C, 4C) its sample count; all-reduced
 *   pass 2   [4C, 5C) its sum of (x - global mean)^2; all-reduced
 *   finish   [0, C) mean, [C, 2C) invstd, the running statistics (unbiased by the global count).
 * Backward reads the global count at [3C, 4C) (autodiff.c). */
static void bn_sync_stats_kernels(Lower *L, int b) {
    const Node *n = &L->g->nodes[b];
    int64_t C = lw_channels(n), M = (int64_t)L->N * lw_per_sample(L, b) / C;
    char *lab = lw_label(L, b);
    char *nm = xasprintf("%s:stats", lab);
    int stats = L->stats_buf[b] = lw_arena(L, nm, 5 * C);
    free(nm);
    for (int pass = 1; pass <= 2; pass++) {
        KB kb;
        kb_begin(&kb, L, lab, KF_COLS, C, M);
        Kernel *k = kb.k;
        int xb = kb_buf(&kb, L, L->fwd_buf[n->in[0]], false);
        int sb = kb_buf(&kb, L, stats, true);
        int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
        int x = kir_load(k, xb, e_add(k, e_muli(k, j, C), i));
        int st = kir_stage(k, KS_REDUCE);
        int mean = pass == 2 ? e_div(k, kir_load(k, sb, e_addi(k, i, 2 * C)), kir_load(k, sb, e_addi(k, i, 3 * C))) : -1;
        int d = pass == 2 ? e_sub(k, x, mean) : -1;
        int sum = kir_acc(k, st, KR_SUM, pass == 1 ? x : e_mul(k, d, d));
        int out = kir_stage(k, KS_STORE);
        kir_store(k, out, sb, e_addi(k, i, pass == 1 ? 2 * C : 4 * C), sum, false);
        if (pass == 1) kir_store(k, out, sb, e_addi(k, i, 3 * C), e_f(k, (double)M), false);
        kb_end(&kb, L, pass == 1 ? "batchnorm statistics, sync_bn pass 1 (this rank's sum and sample count)"
                                 : "batchnorm statistics, sync_bn pass 2 (sum of squares about the global mean)",
               PH(PHASE_FORWARD_TRAIN), false);
        lw_allreduce(L, PH(PHASE_FORWARD_TRAIN), stats, pass == 1 ? 2 * C : 4 * C, pass == 1 ? 2 * C : C,
                     pass == 1 ? "sync_bn: sums and counts over the ranks" : "sync_bn: sums of squares over the ranks");
    }
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, C, 1);
    Kernel *k = kb.k;
    int sb = kb_buf(&kb, L, stats, true);
    int rm = kb_buf(&kb, L, L->param_buf[n->a.bn.running_mean], true);
    int rv = kb_buf(&kb, L, L->param_buf[n->a.bn.running_var], true);
    int i = kir_var(k, KV_OUTER);
    int out = kir_stage(k, KS_STORE);
    int count = kir_load(k, sb, e_addi(k, i, 3 * C));
    int mean = e_div(k, kir_load(k, sb, e_addi(k, i, 2 * C)), count);
    int var = e_div(k, kir_load(k, sb, e_addi(k, i, 4 * C)), count);
    int unbias = e_div(k, count, kir_bin(k, KB_MAX, e_sub(k, count, e_f(k, 1)), e_f(k, 1)));
    kir_store(k, out, sb, i, mean, false);
    kir_store(k, out, sb, e_addi(k, i, C), kir_un(k, KU_RSQRT, e_add(k, var, e_f(k, n->a.bn.eps))), false);
    bn_running_update(k, out, n, rm, rv, i, mean, var, unbias);
    kb_end(&kb, L, "batchnorm statistics, sync_bn: mean, invstd, running mean/var update", PH(PHASE_FORWARD_TRAIN),
           false);
    free(lab);
}

/* The batch statistics of every BN in v's tree (training forward). */
static void tree_bn_stats(Lower *L, int v) {
    int bns[MAX_TREE_NODES], nb = 0;
    collect_bns(L, v, bns, &nb);
    for (int i = 0; i < nb; i++) {
        if (L->o->sync_bn) bn_sync_stats_kernels(L, bns[i]);
        else bn_stats_kernel(L, bns[i]);
    }
}

void lower_tree_store(Lower *L, int v, int out, ExprMode mode, unsigned phases) {
    if (mode == EM_TRAIN) tree_bn_stats(L, v);
    StrBuf sb = {0};
    describe_tree(L, v, &sb);
    char *desc = sb_take(&sb);
    if (strlen(desc) > 100) { /* long chains: keep the listing readable */
        int ops = 1;
        for (const char *c = desc; *c; c++) ops += *c == '+';
        char *d2 = xasprintf("%.80s... (%d fused elementwise ops)", desc, ops);
        free(desc);
        desc = d2;
    }
    char *lab = lw_label(L, v);
    int64_t total = (int64_t)L->N * lw_per_sample(L, v);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, total, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    int val = lw_value_expand(L, &kb, v, i, mode);
    kir_store(k, st, kb_buf(&kb, L, out, true), i, val, false);
    char *fuses = xasprintf("%s%s%s", desc, mode == EM_EVAL ? " (eval mode)" : "",
                            mode == EM_BWD ? " (recomputed for backward)" : "");
    kb_end(&kb, L, fuses, phases, true);
    free(fuses);
    free(desc);
    free(lab);
}

/* ---- convolutions ----------------------------------------------------------------- */

int gemm_weight(Lower *L, int param, unsigned phases) {
    (void)phases; /* the copy is persistent: valid in every phase */
    if (L->act == KD_F32) return L->param_buf[param];
    if (L->param_copy_buf[param] < 0) {
        const Param *pr = &L->g->params[param];
        assert(pr->trainable); /* SPACE_PARAM_COPY mirrors SPACE_PARAMS only */
        char *nm = xasprintf("%s:bf16", pr->name);
        L->param_copy_buf[param] =
            lw_new_buf(L, nm, SPACE_PARAM_COPY, L->p->param_offset[param] * 2, pr->numel, KD_BF16);
        free(nm);
    }
    return L->param_copy_buf[param];
}

bool conv_is_pointwise(const ConvAttr *a) {
    return a->kh == 1 && a->kw == 1 && a->sh == 1 && a->sw == 1 && a->ph == 0 && a->pw == 0 && a->groups == 1;
}

ConvGeom conv_geom(const Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const Node *x = &L->g->nodes[n->in[0]];
    const ConvAttr *a = &n->a.conv;
    return (ConvGeom){.n = L->N, .h = (int)x->dim[0], .w = (int)x->dim[1], .cin = a->cin, .oh = (int)n->dim[0],
                      .ow = (int)n->dim[1], .cout = a->cout, .groups = a->groups, .kh = a->kh, .kw = a->kw,
                      .sh = a->sh, .sw = a->sw, .ph = a->ph, .pw = a->pw};
}

ConvEngine conv_as_library_step(const Lower *L, int v) {
    const Target *t = L->o->target;
    const ConvAttr *a = &L->g->nodes[v].a.conv;
    /* ConvGeom has no dilation: dilated convs take im2col + GEMM on every target */
    if (!t->conv_library_step || conv_is_pointwise(a) || a->dh != 1 || a->dw != 1) return CONV_ENGINE_NONE;
    ConvGeom g = conv_geom(L, v);
    return t->conv_library_step(&g, L->act);
}

/* out[i] = bias[i % C] for every row: the GEMM then accumulates with beta 1 */
static void bias_fill(Lower *L, int out, int bias_param, int64_t rows, int64_t C, unsigned phases, const char *lab) {
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, rows * C, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    int v = kir_load(k, kb_buf(&kb, L, L->param_buf[bias_param], false), e_mod(k, i, C));
    kir_store(k, st, kb_buf(&kb, L, out, true), i, v, false);
    kb_end(&kb, L, "bias broadcast (the GEMM adds onto it)", phases, false);
}

static void lower_conv(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const ConvAttr *a = &n->a.conv;
    const unsigned ph = PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL);
    int64_t OH = n->dim[0], OW = n->dim[1], M = (int64_t)L->N * OH * OW;
    int G = a->groups, Cog = a->cout / G, Cig = a->cin / G;
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, M * a->cout);
    free(nm);
    int wparam = L->g->nodes[n->in[1]].a.param.index;
    float beta = 0;
    if (a->bias) {
        bias_fill(L, out, L->g->nodes[n->in[2]].a.param.index, M, a->cout, ph, lab);
        beta = 1;
    }
    ConvEngine engine = conv_as_library_step(L, v);
    if (engine == CONV_ENGINE_STRIDED_GEMM) {
        lower_conv_strided_forward(L, v, out, beta, ph, lab);
        free(lab);
        return;
    }
    if (engine != CONV_ENGINE_NONE) {
        ConvStep cs = {.pass = CONV_FORWARD, .g = conv_geom(L, v), .w = L->param_buf[wparam], .y = out,
                       .accumulate = beta != 0, .engine = engine};
        cs.x = conv_norm_x(L, v, EM_TRAIN, &cs.norm);
        conv_out_stats(L, v, &cs);
        char *note = xasprintf("%s: conv %dx%d/%d forward, direct, %d groups of %d -> %d channels", lab, a->kh, a->kw,
                               a->sh, G, Cig, Cog);
        if (cs.norm.on || cs.stats.on) { /* training reads the BN's input (and sums); eval the tree's output, as ever */
            char *train = xasprintf("%s%s%s", note, cs.norm.on ? ", applying its input's batchnorm" : "",
                                    cs.stats.on ? ", summing its output's batchnorm statistics" : "");
            lw_conv(L, PH(PHASE_FORWARD_TRAIN), &cs, train);
            free(train);
            cs.x = conv_norm_x(L, v, EM_EVAL, &cs.norm);
            cs.stats = (ConvOutStats){.on = false};
            lw_conv(L, PH(PHASE_FORWARD_EVAL), &cs, note);
        } else {
            lw_conv(L, ph, &cs, note);
        }
        free(note);
        free(lab);
        return;
    }
    int xb = L->fwd_buf[n->in[0]];
    GemmStep gs = {0};
    gs.c = out;
    gs.beta = beta;
    gs.alpha = 1;
    gs.b = conv_gemm_weight(L, v, ph);
    gs.trans_b = true;
    gs.m = (int)M;
    gs.n = Cog;
    gs.ldc = a->cout;
    gs.batch = 1;
    char *note;
    if (conv_is_pointwise(a)) {
        gs.a = xb;
        gs.k = a->cin;
        gs.lda = a->cin;
        gs.ldb = (int)conv_cols(L, v).kb; /* the weight's rows as conv_gemm_weight lays them out (padded or not) */
        note = xasprintf("%s: 1x1 conv forward as GEMM on NHWC (%lldx%dx%d)", lab, (long long)M, a->cout, a->cin);
    } else {
        /* one batch entry per group (or per `merge` groups, block-diagonal: ConvCols) */
        ConvCols c = conv_cols(L, v);
        gs.a = lower_im2col(L, v, xb, ph);
        gs.n = c.nb;
        gs.k = (int)c.kb;
        gs.lda = (int)c.row;
        gs.ldb = (int)c.kb;
        gs.batch = c.batch;
        gs.stride_a = c.kb;
        gs.stride_b = (int64_t)c.nb * c.kb;
        gs.stride_c = c.nb;
        note = xasprintf("%s: conv %dx%d/%d forward, %d group GEMM(s) of %lldx%dx%lld", lab, a->kh, a->kw, a->sh,
                         c.batch, (long long)M, c.nb, (long long)c.kb);
    }
    lw_gemm(L, ph, &gs, note);
    free(note);
    free(lab);
}

int linear_padded_width(const Lower *L, int out_features) {
    int align = L->o->target->gemm_stride_align_bytes;
    if (align <= 0 || out_features * 2 % align == 0) return out_features; /* aligned for bf16 and f32 */
    return (out_features + align / 2 - 1) / (align / 2) * (align / 2);
}

/* The forward of a linear layer whose output rows are too short for an
 * aligned leading dimension: the GEMM writes f32 rows of Op, and a kernel
 * copies them to out, adding the bias. */
static void linear_padded_forward(Lower *L, int v, int out, int Op, unsigned ph, const char *lab) {
    const Node *n = &L->g->nodes[v];
    int I = n->a.linear.in_features, O = n->a.linear.out_features;
    char *nm = xasprintf("%s:padded_out", lab);
    int wide = lw_arena(L, nm, (int64_t)L->N * Op);
    free(nm);
    GemmStep gs = {.a = L->fwd_buf[n->in[0]], .b = gemm_weight(L, L->g->nodes[n->in[1]].a.param.index, ph), .c = wide,
                   .trans_b = true, .m = L->N, .n = O, .k = I, .lda = I, .ldb = I, .ldc = Op, .alpha = 1, .beta = 0,
                   .batch = 1};
    char *note = xasprintf("%s: linear forward GEMM (%dx%dx%d, rows padded to %d)", lab, L->N, O, I, Op);
    lw_gemm(L, ph, &gs, note);
    free(note);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * O, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int c = e_mod(k, i, O);
    int val = kir_load(k, kb_buf(&kb, L, wide, false), e_add(k, e_muli(k, e_idiv(k, i, O), Op), c));
    if (n->a.linear.bias)
        val = e_add(k, val, kir_load(k, kb_buf(&kb, L, L->param_buf[L->g->nodes[n->in[2]].a.param.index], false), c));
    kir_store(k, kir_stage(k, KS_STORE), kb_buf(&kb, L, out, true), i, val, false);
    kb_end(&kb, L, n->a.linear.bias ? "linear output: padded GEMM rows + bias" : "linear output: padded GEMM rows", ph,
           false);
}

static void lower_linear(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const unsigned ph = PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL);
    int I = n->a.linear.in_features, O = n->a.linear.out_features;
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * O);
    free(nm);
    int Op = linear_padded_width(L, O);
    if (Op != O) {
        linear_padded_forward(L, v, out, Op, ph, lab);
        free(lab);
        return;
    }
    float beta = 0;
    if (n->a.linear.bias) {
        bias_fill(L, out, L->g->nodes[n->in[2]].a.param.index, L->N, O, ph, lab);
        beta = 1;
    }
    GemmStep gs = {.a = L->fwd_buf[n->in[0]], .b = gemm_weight(L, L->g->nodes[n->in[1]].a.param.index, ph), .c = out,
                   .trans_b = true, .m = L->N, .n = O, .k = I, .lda = I, .ldb = I, .ldc = O,
                   .alpha = 1, .beta = beta, .batch = 1};
    char *note = xasprintf("%s: linear forward GEMM (%dx%dx%d)", lab, L->N, O, I);
    lw_gemm(L, ph, &gs, note);
    free(note);
    free(lab);
}

/* ---- pooling and reshaping ------------------------------------------------------------ */

/* decomposes flat i of an N x OH x OW x C map */
static void nhwc(Kernel *k, int i, int64_t OH, int64_t OW, int64_t C, int *n, int *oh, int *ow, int *c) {
    *c = e_mod(k, i, C);
    int t = e_idiv(k, i, C);
    *ow = e_mod(k, t, OW);
    t = e_idiv(k, t, OW);
    *oh = e_mod(k, t, OH);
    *n = e_idiv(k, t, OH);
}

/* PyTorch's avg_pool2d divisor for output (oh, ow), as a float expression */
int pool_divisor(Kernel *k, const PoolAttr *p, int64_t H, int64_t W, int oh, int ow) {
    int hs = e_addi(k, e_muli(k, oh, p->sh), -p->ph), ws = e_addi(k, e_muli(k, ow, p->sw), -p->pw);
    int he = kir_bin(k, KB_MIN, e_addi(k, hs, p->kh), e_i(k, H + p->ph));
    int we = kir_bin(k, KB_MIN, e_addi(k, ws, p->kw), e_i(k, W + p->pw));
    if (!p->count_include_pad) {
        hs = kir_bin(k, KB_MAX, hs, e_i(k, 0));
        ws = kir_bin(k, KB_MAX, ws, e_i(k, 0));
        he = kir_bin(k, KB_MIN, he, e_i(k, H));
        we = kir_bin(k, KB_MIN, we, e_i(k, W));
    }
    return kir_un(k, KU_TO_FLOAT, e_mul(k, e_sub(k, he, hs), e_sub(k, we, ws)));
}

static void lower_pool(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const Node *x = &L->g->nodes[n->in[0]];
    const PoolAttr *p = &n->a.pool;
    const unsigned ph = PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL);
    int64_t H = x->dim[0], W = x->dim[1], C = x->dim[2], OH = n->dim[0], OW = n->dim[1];
    int64_t total = (int64_t)L->N * OH * OW * C;
    bool is_max = n->op != OP_AVGPOOL; /* maxpool, global_maxpool */
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, total);
    free(nm);
    if (is_max) {
        nm = xasprintf("%s:argmax", lab);
        L->aux_buf[v] = lw_arena(L, nm, total);
        free(nm);
    }
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, total, 1);
    Kernel *k = kb.k;
    int xb = kb_buf(&kb, L, L->fwd_buf[n->in[0]], false);
    int i = kir_var(k, KV_OUTER), nn, oh, ow, c;
    nhwc(k, i, OH, OW, C, &nn, &oh, &ow, &c);
    int KK = p->kh * p->kw;
    /* one window element r = kh*KW + kw: in-bounds flag and guarded load */
    int r = kir_reduce_var(k), rv = kir_var(k, r);
    int ih = e_add(k, e_addi(k, e_muli(k, oh, p->sh), -p->ph), e_idiv(k, rv, p->kw));
    int iw = e_add(k, e_addi(k, e_muli(k, ow, p->sw), -p->pw), e_mod(k, rv, p->kw));
    int inb = e_and(k, e_inrange(k, ih, 0, H), e_inrange(k, iw, 0, W));
    int src = e_add(k, e_muli(k, e_add(k, e_muli(k, e_add(k, e_muli(k, nn, H), ih), W), iw), C), c);
    int st = kir_stage(k, KS_STORE);
    int ob = kb_buf(&kb, L, out, true);
    if (is_max) {
        int m = kir_reduce(k, KR_MAX, r, KK, kir_select(k, inb, kir_load(k, xb, src), e_f(k, -FLT_MAX)));
        /* PyTorch's tie rule: the first maximal element of the window */
        int r2 = kir_reduce_var(k), rv2 = kir_var(k, r2);
        int ih2 = e_add(k, e_addi(k, e_muli(k, oh, p->sh), -p->ph), e_idiv(k, rv2, p->kw));
        int iw2 = e_add(k, e_addi(k, e_muli(k, ow, p->sw), -p->pw), e_mod(k, rv2, p->kw));
        int inb2 = e_and(k, e_inrange(k, ih2, 0, H), e_inrange(k, iw2, 0, W));
        int src2 = e_add(k, e_muli(k, e_add(k, e_muli(k, e_add(k, e_muli(k, nn, H), ih2), W), iw2), C), c);
        int hit = kir_select(k, inb2,
                             kir_select(k, kir_bin(k, KB_EQ, kir_load(k, xb, src2), m),
                                        kir_un(k, KU_TO_FLOAT, e_sub(k, e_i(k, KK), rv2)), e_f(k, 0)),
                             e_f(k, 0));
        int first = e_sub(k, e_f(k, KK), kir_reduce(k, KR_MAX, r2, KK, hit));
        kir_store(k, st, ob, i, m, false);
        kir_store(k, st, kb_buf(&kb, L, L->aux_buf[v], true), i, first, false);
    } else {
        int s = kir_reduce(k, KR_SUM, r, KK, kir_select(k, inb, kir_load(k, xb, src), e_f(k, 0)));
        kir_store(k, st, ob, i, e_div(k, s, pool_divisor(k, p, H, W, oh, ow)), false);
    }
    char *fuses = xasprintf("%s %dx%d stride %d pad %d%s", op_name(n->op), p->kh, p->kw, p->sh, p->ph,
                            is_max ? " (+ first-max index for backward)" : "");
    kb_end(&kb, L, fuses, ph, false);
    free(fuses);
    free(lab);
}

static void lower_gap(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const Node *x = &L->g->nodes[n->in[0]];
    int64_t HW = x->dim[0] * x->dim[1], C = x->dim[2];
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * C);
    free(nm);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * C, HW);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int xb = kb_buf(&kb, L, L->fwd_buf[n->in[0]], false);
    int src = e_add(k, e_muli(k, e_add(k, e_muli(k, e_idiv(k, i, C), HW), j), C), e_mod(k, i, C));
    int st = kir_stage(k, KS_REDUCE);
    int s = kir_acc(k, st, KR_SUM, kir_load(k, xb, src));
    int so = kir_stage(k, KS_STORE);
    kir_store(k, so, kb_buf(&kb, L, out, true), i, e_div(k, s, e_f(k, (double)HW)), false);
    kb_end(&kb, L, "global average pool", PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL), false);
    free(lab);
}

static void lower_flatten(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    if (flatten_is_alias(L, v)) {
        L->fwd_buf[v] = L->fwd_buf[n->in[0]];
        return;
    }
    const Node *x = &L->g->nodes[n->in[0]];
    int64_t HW = x->dim[0] * x->dim[1], C = x->dim[2], F = HW * C;
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * F);
    free(nm);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * F, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int f = e_mod(k, i, F), c = e_idiv(k, f, HW), hw = e_mod(k, f, HW);
    int src = e_add(k, e_muli(k, e_add(k, e_muli(k, e_idiv(k, i, F), HW), hw), C), c);
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, kb_buf(&kb, L, out, true), i, kir_load(k, kb_buf(&kb, L, L->fwd_buf[n->in[0]], false), src), false);
    kb_end(&kb, L, "flatten (NHWC -> PyTorch's C,H,W order)", PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL), false);
    free(lab);
}

static void lower_concat(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    int64_t HW = n->dim[0] * n->dim[1], Ct = n->dim[2], off = 0;
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * HW * Ct);
    free(nm);
    for (int t = 0; t < n->n_in; t++) {
        int64_t Ci = L->g->nodes[n->in[t]].dim[2];
        KB kb;
        kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * HW * Ci, 1);
        Kernel *k = kb.k;
        int i = kir_var(k, KV_OUTER);
        int dst = e_add(k, e_muli(k, e_idiv(k, i, Ci), Ct), e_addi(k, e_mod(k, i, Ci), off));
        int st = kir_stage(k, KS_STORE);
        kir_store(k, st, kb_buf(&kb, L, out, true), dst, kir_load(k, kb_buf(&kb, L, L->fwd_buf[n->in[t]], false), i), false);
        kb_end(&kb, L, "concat: copy one input into its channel slice", PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL),
               false);
        off += Ci;
    }
    free(lab);
}

/* ---- forward ------------------------------------------------------------------------------ */

/* The root of an elementwise tree: one kernel per mode writes its buffer. */
static int lower_elementwise_root(Lower *L, int v) {
    const Graph *g = L->g;
    const Node *n = &g->nodes[v];
    for (int t = 0; t < n->n_in; t++) {
        int x = n->in[t];
        if (g->nodes[x].op == OP_PARAM && !(n->op == OP_BATCHNORM && t > 0)) {
            lw_fail(L, "a parameter used directly as an operand of %s is not supported", op_name(n->op));
            return -1;
        }
    }
    if (L->fp.conv_applies[v]) {
        /* A tree its convs apply (conv_bn.c) needs only its statistics in training. The eval
         * forward writes it over its BN's input, which nothing else reads (conv_bn.c): a buffer
         * only eval used would have no lifetime in the memory plan, which plans training. */
        int bns[MAX_TREE_NODES], nb = 0;
        collect_bns(L, v, bns, &nb);
        assert(nb == 1);
        L->fwd_buf[v] = L->fwd_buf[L->g->nodes[bns[0]].in[0]];
        tree_bn_stats(L, v);
    } else {
        char *lab = lw_label(L, v);
        char *nm = xasprintf("%s:out", lab);
        L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * lw_per_sample(L, v));
        free(nm);
        free(lab);
        lower_tree_store(L, v, L->fwd_buf[v], EM_TRAIN, PH(PHASE_FORWARD_TRAIN));
    }
    lower_tree_store(L, v, L->fwd_buf[v], EM_EVAL, PH(PHASE_FORWARD_EVAL));
    return 0;
}

int lower_forward(Lower *L) {
    const Graph *g = L->g;
    for (int v = 0; v < g->n_nodes && !lw_failed(L); v++) {
        const Node *n = &g->nodes[v];
        if (L->fp.inlined[v]) continue;
        switch (n->op) {
        case OP_PARAM:
            L->fwd_buf[v] = L->param_buf[n->a.param.index];
            break;
        case OP_INPUT:
            if (L->o->normalize_u8_input || L->act != KD_F32) {
                L->fwd_buf[v] = lw_act(L, L->o->normalize_u8_input ? "input:normalized" : "input:bf16",
                                       (int64_t)L->N * lw_per_sample(L, v));
                lower_tree_store(L, v, L->fwd_buf[v], EM_TRAIN, PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL));
            } else {
                L->fwd_buf[v] = L->p->input_buf;
            }
            break;
        case OP_CONV2D: lower_conv(L, v); break;
        case OP_LINEAR: lower_linear(L, v); break;
        case OP_MAXPOOL:
        case OP_AVGPOOL:
        case OP_GLOBAL_MAXPOOL: lower_pool(L, v); break;
        case OP_GLOBAL_AVGPOOL: lower_gap(L, v); break;
        case OP_FLATTEN: lower_flatten(L, v); break;
        case OP_CONCAT: lower_concat(L, v); break;
        case OP_PARAM_VALUE: lower_param_value(L, v); break;
        case OP_CHANNEL_SLICE:
        case OP_CHANNEL_SHUFFLE: lower_channel_gather(L, v); break;
        case OP_GROUPNORM:
        case OP_LAYERNORM: lower_norm(L, v); break;
        case OP_BATCHNORM:
        case OP_RELU:
        case OP_SIGMOID:
        case OP_ADD:
        case OP_MUL:
        case OP_SUB:
        case OP_DIV:
        case OP_DROPOUT:
        case OP_DROP_PATH:
            if (lower_elementwise_root(L, v) < 0) return -1;
            break;
        default:
            if (!op_is_pointwise(n->op)) lw_fail(L, "cannot lower %s", op_name(n->op));
            else if (lower_elementwise_root(L, v) < 0) return -1;
        }
    }
    if (!lw_failed(L)) lower_loss(L);
    return lw_failed(L) ? -1 : 0;
}
