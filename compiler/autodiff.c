/*
 * autodiff.c — reverse-mode differentiation of the training graph.
 *
 * Materialized nodes are visited in reverse topological order; each applies
 * its primitive's gradient rule to the gradient of its output and adds the
 * result into its inputs' gradients (the first contribution writes, later
 * ones accumulate; parameter gradients always accumulate into SPACE_GRADS,
 * which the update kernel zeroes). There is no per-model backward.
 *
 * Elementwise trees (fuse.c) are differentiated as expressions: the
 * gradient at each inner node is built from its consumer's (ReLU masks
 * from the ReLU output, sigmoid from its output, mul from the other
 * operand, dropout from the regenerated mask), so one tree's backward is one
 * group: a KF_COLS kernel with the BatchNorm gradient sums (which also
 * accumulates dgamma and dbeta), then one elementwise kernel writing every
 * leaf's gradient — e.g. BN backward + ReLU mask + the residual gradient
 * split in one pass — and a reduction kernel per broadcast operand.
 *
 * Structured rules: convolution (data gradient by GEMM, + gather-form
 * col2im when not 1x1; weight gradient by GEMM over im2col columns; bias
 * by a column sum), linear, max-pool (first-max index saved by forward,
 * PyTorch's tie rule), avg-pool, global avg-pool, flatten, concat.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kir_analysis.h"
#include "lower.h"
#include "util.h"


int grad_target(Lower *L, int v, bool *accumulate) {
    const Node *n = &L->g->nodes[v];
    if (!L->fp.needs_grad[v]) return -1;
    if (n->op == OP_PARAM) {
        *accumulate = true;
        return L->pgrad_buf[n->a.param.index];
    }
    int b = grad_claim(L, v);
    *accumulate = L->grad_written[v];
    L->grad_written[v] = true;
    return b;
}

int grad_claim(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    if (!L->fp.needs_grad[v]) return -1;
    if (n->op == OP_PARAM) return L->pgrad_buf[n->a.param.index];
    if (L->grad_buf[v] >= 0) return L->grad_buf[v];
    char *lab = lw_label(L, v);
    char *nm = xasprintf("%s:grad", lab);
    /* the input gradient is read back by the caller as f32 */
    L->grad_buf[v] = n->op == OP_INPUT ? lw_arena(L, nm, (int64_t)L->N * lw_per_sample(L, v))
                                       : lw_act(L, nm, (int64_t)L->N * lw_per_sample(L, v));
    free(nm);
    free(lab);
    return L->grad_buf[v];
}

/* ---- elementwise trees ------------------------------------------------------- */

typedef struct Tree {
    int root;
    int nodes[MAX_TREE_NODES];
    int n_nodes;
    /* The ReLU mask at the root is recomputed from the tree's inputs instead
     * of loaded from the root's buffer (Target.backward_masks_from_inputs). */
    bool root_mask_from_inputs;
} Tree;

static void tree_collect(const Lower *L, Tree *t, int v) {
    if (t->n_nodes < MAX_TREE_NODES) t->nodes[t->n_nodes++] = v; /* fuse.c bounds trees */
    const Node *n = &L->g->nodes[v];
    for (int i = 0; i < n->n_in; i++)
        if (L->fp.inlined[n->in[i]]) tree_collect(L, t, n->in[i]);
}

static int slot_of(const Node *u, int v) {
    for (int i = 0; i < u->n_in; i++)
        if (u->in[i] == v) return i;
    return -1;
}

static int grad_expr(Lower *L, KB *kb, const Tree *t, int v, int idx);

/* The gradient flowing into input `slot` of tree node u at index idx (u's layout). */
static int edge_grad(Lower *L, KB *kb, const Tree *t, int u, int slot, int idx) {
    Kernel *k = kb->k;
    const Node *n = &L->g->nodes[u];
    int gu = grad_expr(L, kb, t, u, idx);
    switch (n->op) {
    case OP_RELU: {
        int zero = e_f(k, 0); /* first, as before: the CPU's emitted C keeps its numbering */
        int y = u == t->root && t->root_mask_from_inputs ? lw_value_expand(L, kb, u, idx, EM_BWD)
                                                         : lw_value(L, kb, u, idx, EM_BWD);
        return kir_select(k, kir_bin(k, KB_LT, zero, y), gu, zero);
    }
    case OP_SIGMOID: {
        int y = lw_value(L, kb, u, idx, EM_BWD);
        return e_mul(k, gu, e_mul(k, e_sub(k, e_f(k, 1), y), y));
    }
    case OP_ADD:
        return gu;
    case OP_SUB:
        return slot == 0 ? gu : kir_un(k, KU_NEG, gu);
    case OP_DIV: {
        /* PyTorch's div backward: g / b, and -g * ((a / b) / b) */
        int b = lw_value(L, kb, n->in[1], lw_operand_index(L, k, u, n->in[1], idx), EM_BWD);
        if (slot == 0) return e_div(k, gu, b);
        int a = lw_value(L, kb, n->in[0], lw_operand_index(L, k, u, n->in[0], idx), EM_BWD);
        return e_mul(k, kir_un(k, KU_NEG, gu), e_div(k, e_div(k, a, b), b));
    }
    case OP_MUL: {
        int other = n->in[1 - slot];
        return e_mul(k, gu, lw_value(L, kb, other, lw_operand_index(L, k, u, other, idx), EM_BWD));
    }
    case OP_DROPOUT:
    case OP_DROP_PATH:
        return n->a.dropout.p == 0 ? gu : lw_random_drop(L, k, u, idx, gu);
    default:
        if (op_is_pointwise(n->op)) {
            /* an unused operand would leave dead loads in the kernel */
            int x = pw_grad_reads_input(n->op) ? lw_value(L, kb, n->in[0], idx, EM_BWD) : -1;
            return pw_grad(k, n, x, gu);
        }
        lw_fail(L, "internal error: no elementwise gradient rule for %s", op_name(n->op));
        return e_f(k, 0);
    }
}

static int grad_expr(Lower *L, KB *kb, const Tree *t, int v, int idx) {
    if (v == t->root) return kir_load(kb->k, kb_buf(kb, L, L->grad_buf[v], false), idx);
    int u = L->fp.user[v];
    return edge_grad(L, kb, t, u, slot_of(&L->g->nodes[u], v), idx);
}

static void bn_param_index(const Lower *L, int b, int *gamma, int *beta) {
    const Node *n = &L->g->nodes[b];
    *gamma = n->in[1];
    *beta = n->in[2];
}

/* The BatchNorms of a tree, in tree order, and per BN its gradient-sums
 * buffer and, where the sums kernel wrote exactly the gradient flowing into
 * the BN (dy) as some leaf's gradient, that buffer (else -1). Leaves whose
 * gradient needs no BN sums (a residual split's skip edge) are written by the
 * sums kernel when the target fuses them there (Target.bn_sums_write_grads). */
typedef struct TreeBns {
    int node[MAX_TREE_NODES], sums[MAX_TREE_NODES], dy_buf[MAX_TREE_NODES], n;
    int early_leaf[3 * MAX_TREE_NODES], n_early;
} TreeBns;

static int leaf_grad(Lower *L, KB *kb, const Tree *t, const TreeBns *bn, int x, int i, int64_t total);
static int tree_leaves(const Lower *L, const Tree *t, int *leaves);

/* Does leaf x receive gradient through a BatchNorm's data input? */
static bool leaf_through_bn(const Lower *L, const Tree *t, int x) {
    for (int q = 0; q < t->n_nodes; q++) {
        const Node *u = &L->g->nodes[t->nodes[q]];
        if (u->op == OP_BATCHNORM && u->in[0] == x) return true;
    }
    return false;
}

/* In the sums kernel's reduce stage: each leaf gradient that needs no sums,
 * stored per element (a KF_COLS element store, kir.h), so that the leaf
 * kernel does not reread what the sums kernel already read. A BN whose dy is
 * exactly such a stored gradient reads it back instead of recomputing it. */
static void tree_early_leaf_grads(Lower *L, KB *kb, const Tree *t, TreeBns *bn, int st, int idx, const int *dy,
                                  int64_t total) {
    Kernel *k = kb->k;
    int leaves[3 * MAX_TREE_NODES];
    int nl = tree_leaves(L, t, leaves);
    for (int z = 0; z < nl; z++) {
        if (leaf_through_bn(L, t, leaves[z])) continue;
        int val = leaf_grad(L, kb, t, bn, leaves[z], idx, total);
        bool acc;
        int tb = grad_target(L, leaves[z], &acc);
        kir_store(k, st, kb_buf(kb, L, tb, true), idx, val, acc);
        bn->early_leaf[bn->n_early++] = leaves[z];
        for (int q = 0; q < bn->n; q++)
            if (!acc && dy[q] == val && kir_value_exact_in(k, val, L->p->bufs[tb].dtype)) bn->dy_buf[q] = tb;
    }
}

/* 1. BatchNorm gradient sums (+ dgamma, dbeta) in one column kernel: over
 * every element, or over the rows of partial sums a conv's data gradient
 * wrote (ConvGradSums; a tree of one BN, Lower.sums_partials). */
static void tree_bn_sums(Lower *L, const Tree *t, TreeBns *bn, int64_t total, const char *lab) {
    const Graph *g = L->g;
    const int partials = L->sums_partials[t->root];
    int64_t C = lw_channels(&g->nodes[bn->node[0]]), M = partials >= 0 ? L->sums_rows[t->root] : total / C;
    KB kb;
    kb_begin(&kb, L, lab, KF_COLS, C, M);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int idx = e_add(k, e_muli(k, j, C), i);
    int st = kir_stage(k, KS_REDUCE);
    int a0[MAX_TREE_NODES], a1[MAX_TREE_NODES], dy[MAX_TREE_NODES];
    bn->n_early = 0;
    if (partials >= 0) {
        assert(bn->n == 1);
        int pb = kb_buf(&kb, L, partials, false);
        a0[0] = kir_acc(k, st, KR_SUM, kir_load(k, pb, idx));
        a1[0] = kir_acc(k, st, KR_SUM, kir_load(k, pb, e_addi(k, idx, M * C)));
        bn->dy_buf[0] = -1;
    }
    for (int q = 0; q < bn->n && partials < 0; q++) {
        const Node *n = &g->nodes[bn->node[q]];
        int gv = grad_expr(L, &kb, t, bn->node[q], idx);
        int sb = kb_buf(&kb, L, L->stats_buf[bn->node[q]], false);
        int x = lw_value(L, &kb, n->in[0], idx, EM_BWD);
        int xhat = e_mul(k, e_sub(k, x, kir_load(k, sb, i)), kir_load(k, sb, e_addi(k, i, C)));
        a0[q] = kir_acc(k, st, KR_SUM, gv);
        a1[q] = kir_acc(k, st, KR_SUM, e_mul(k, gv, xhat));
        dy[q] = gv;
        bn->dy_buf[q] = -1;
    }
    if (L->o->target->bn_sums_write_grads && partials < 0) tree_early_leaf_grads(L, &kb, t, bn, st, idx, dy, total);
    int so = kir_stage(k, KS_STORE);
    for (int q = 0; q < bn->n; q++) {
        int gp, bp;
        bool acc;
        bn_param_index(L, bn->node[q], &gp, &bp);
        int gt = grad_target(L, gp, &acc);
        if (gt >= 0) kir_store(k, so, kb_buf(&kb, L, gt, true), i, a1[q], acc);
        int bt = grad_target(L, bp, &acc);
        if (bt >= 0) kir_store(k, so, kb_buf(&kb, L, bt, true), i, a0[q], acc);
        bn->sums[q] = -1;
        if (L->fp.needs_grad[g->nodes[bn->node[q]].in[0]]) {
            char *bl = lw_label(L, bn->node[q]);
            char *nm = xasprintf("%s:grad_sums", bl);
            bn->sums[q] = lw_arena(L, nm, 2 * C);
            free(nm);
            free(bl);
            int sbuf = kb_buf(&kb, L, bn->sums[q], true);
            kir_store(k, so, sbuf, i, a0[q], false);
            kir_store(k, so, sbuf, e_addi(k, i, C), a1[q], false);
        }
    }
    char *what = partials >= 0
                     ? xstrdup("batchnorm backward sums (sum dy, sum dy*xhat; + dgamma, dbeta) from the rows of partial "
                               "sums the conv's data gradient wrote")
                     : xasprintf("batchnorm backward sums (sum dy, sum dy*xhat; + dgamma, dbeta) through the fused ops "
                                 "above it%s", bn->n_early ? "; + the input gradients that need no sums (residual split)" : "");
    kb_end(&kb, L, what, PH(PHASE_BACKWARD), false);
    free(what);
    /* sync_bn: the input gradient uses the sums over every rank (SyncBatchNorm); dgamma and dbeta
     * stay this rank's, for the gradient all-reduce to average like every other parameter's */
    for (int q = 0; q < bn->n && L->o->sync_bn; q++)
        if (bn->sums[q] >= 0)
            lw_allreduce(L, PH(PHASE_BACKWARD), bn->sums[q], 0, 2 * C, "sync_bn: gradient sums over the ranks");
}

/* The gradient of BatchNorm node un's input at flat index i, from its sums. */
static int bn_input_grad(Lower *L, KB *kb, const Tree *t, const TreeBns *bn, int un, int i, int64_t total) {
    Kernel *k = kb->k;
    const Node *u = &L->g->nodes[un];
    int qb = 0;
    while (bn->node[qb] != un) qb++;
    int64_t C = lw_channels(u), M = total / C;
    int ch = e_mod(k, i, C);
    int sb = kb_buf(kb, L, L->stats_buf[un], false);
    int sm = kb_buf(kb, L, bn->sums[qb], false);
    int invstd = kir_load(k, sb, e_addi(k, ch, C));
    int xhat = e_mul(k, e_sub(k, lw_value(L, kb, u->in[0], i, EM_BWD), kir_load(k, sb, ch)), invstd);
    int gamma = lw_value(L, kb, u->in[1], ch, EM_BWD);
    int gv = bn->dy_buf[qb] >= 0 ? kir_load(k, kb_buf(kb, L, bn->dy_buf[qb], false), i) : grad_expr(L, kb, t, un, i);
    int inner;
    if (L->o->sync_bn) { /* sums over every rank: divided by the global count (lower.c's stats layout) */
        int count = kir_load(k, sb, e_addi(k, ch, 3 * C));
        int mean_dy = e_div(k, kir_load(k, sm, ch), count);
        int mean_dy_xhat = e_div(k, kir_load(k, sm, e_addi(k, ch, C)), count);
        inner = e_sub(k, e_sub(k, gv, mean_dy), e_mul(k, xhat, mean_dy_xhat));
    } else {
        inner = e_sub(k, e_sub(k, gv, e_mul(k, kir_load(k, sm, ch), e_f(k, 1.0 / (double)M))),
                      e_mul(k, xhat, e_mul(k, kir_load(k, sm, e_addi(k, ch, C)), e_f(k, 1.0 / (double)M))));
    }
    return e_mul(k, e_mul(k, gamma, invstd), inner);
}

/* The tree's same-shape leaves that need a gradient (no BN parameters, no
 * broadcast operands), each once. */
static int tree_leaves(const Lower *L, const Tree *t, int *leaves) {
    int nl = 0;
    for (int q = 0; q < t->n_nodes; q++) {
        const Node *u = &L->g->nodes[t->nodes[q]];
        for (int s = 0; s < u->n_in; s++) {
            int x = u->in[s];
            if (L->fp.inlined[x] || !L->fp.needs_grad[x]) continue;
            if (u->op == OP_BATCHNORM && s > 0) continue;
            if (fuse_is_broadcast(L->g, t->nodes[q], x)) continue;
            bool seen = false;
            for (int z = 0; z < nl; z++) seen |= leaves[z] == x;
            if (!seen) leaves[nl++] = x;
        }
    }
    return nl;
}

/* The sum of every edge's gradient into leaf x at flat index i. */
static int leaf_grad(Lower *L, KB *kb, const Tree *t, const TreeBns *bn, int x, int i, int64_t total) {
    int val = -1;
    for (int q = 0; q < t->n_nodes; q++) {
        int un = t->nodes[q];
        const Node *u = &L->g->nodes[un];
        for (int s = 0; s < u->n_in; s++) {
            if (u->in[s] != x || (u->op == OP_BATCHNORM && s > 0) || fuse_is_broadcast(L->g, un, x)) continue;
            int c = u->op == OP_BATCHNORM ? bn_input_grad(L, kb, t, bn, un, i, total) : edge_grad(L, kb, t, un, s, i);
            val = val < 0 ? c : e_add(kb->k, val, c);
        }
    }
    return val;
}

/* 2. every same-shape leaf's gradient in one elementwise pass */
static void tree_leaf_grads(Lower *L, const Tree *t, const TreeBns *bn, int64_t total, const char *lab) {
    const Graph *g = L->g;
    int leaves[3 * MAX_TREE_NODES];
    int nl = 0;
    for (int z = 0, all = tree_leaves(L, t, leaves); z < all; z++) {
        bool early = false;
        for (int e = 0; e < bn->n_early; e++) early |= bn->early_leaf[e] == leaves[z];
        if (!early) leaves[nl++] = leaves[z];
    }
    if (nl == 0) return;
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, total, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    StrBuf desc = {0};
    sb_puts(&desc, "backward of ");
    for (int q = t->n_nodes - 1; q >= 0; q--) {
        const Node *u = &g->nodes[t->nodes[q]];
        sb_puts(&desc, u->op == OP_ADD ? "add(residual split)" : op_name(u->op));
        if (q) sb_puts(&desc, "+");
    }
    sb_printf(&desc, " -> %d input gradient%s", nl, nl > 1 ? "s" : "");
    for (int z = 0; z < nl; z++) {
        int val = leaf_grad(L, &kb, t, bn, leaves[z], i, total);
        bool acc;
        int tb = grad_target(L, leaves[z], &acc);
        kir_store(k, st, kb_buf(&kb, L, tb, true), i, val, acc);
    }
    char *d = sb_take(&desc);
    kb_end(&kb, L, d, PH(PHASE_BACKWARD), true);
    free(d);
}

/* 3. broadcast operands: reduce over the spatial positions */
static void tree_broadcast_grads(Lower *L, const Tree *t, const char *lab) {
    const Graph *g = L->g;
    for (int q = 0; q < t->n_nodes; q++) {
        int un = t->nodes[q];
        const Node *u = &g->nodes[un];
        for (int s = 0; s < u->n_in; s++) {
            int b = u->in[s];
            if (!fuse_is_broadcast(g, un, b) || !L->fp.needs_grad[b] || (u->op == OP_BATCHNORM && s > 0)) continue;
            /* b holds C values per sample (per channel) or one (per sample) */
            int64_t C = lw_per_sample(L, b), HW = lw_per_sample(L, un) / C;
            KB kb;
            kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * C, HW);
            Kernel *k = kb.k;
            int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
            int idx = C == 1 ? e_add(k, e_muli(k, i, HW), j)
                             : e_add(k, e_muli(k, e_add(k, e_muli(k, e_idiv(k, i, C), HW), j), C), e_mod(k, i, C));
            int st = kir_stage(k, KS_REDUCE);
            int a = kir_acc(k, st, KR_SUM, edge_grad(L, &kb, t, un, s, idx));
            int so = kir_stage(k, KS_STORE);
            bool acc;
            int tb = grad_target(L, b, &acc);
            kir_store(k, so, kb_buf(&kb, L, tb, true), i, a, acc);
            char *what = xasprintf("%s backward: broadcast operand (sum over %s)", op_name(u->op),
                                   C == 1 ? "the sample" : "H,W");
            kb_end(&kb, L, what, PH(PHASE_BACKWARD), false);
            free(what);
        }
    }
}

/* Does recomputing the tree's root read nothing its backward does not read
 * anyway? True when every tensor input of the tree is a BatchNorm's data
 * input (the BN gradient reads it for xhat); parameters are per channel. */
static bool tree_inputs_all_bn_data(const Lower *L, const Tree *t) {
    for (int q = 0; q < t->n_nodes; q++) {
        const Node *u = &L->g->nodes[t->nodes[q]];
        for (int s = 0; s < u->n_in; s++) {
            int x = u->in[s];
            if (L->fp.inlined[x] || L->g->nodes[x].op == OP_PARAM) continue;
            if (u->op != OP_BATCHNORM || s != 0) return false;
        }
    }
    return true;
}

static void tree_backward(Lower *L, int r) {
    Tree t = {.root = r};
    tree_collect(L, &t, r);
    t.root_mask_from_inputs = L->o->target->backward_masks_from_inputs && L->g->nodes[r].op == OP_RELU &&
                              tree_inputs_all_bn_data(L, &t);
    int64_t total = (int64_t)L->N * lw_per_sample(L, r);
    char *lab = lw_label(L, r);
    TreeBns bn = {.n = 0, .n_early = 0};
    for (int i = 0; i < t.n_nodes; i++)
        if (L->g->nodes[t.nodes[i]].op == OP_BATCHNORM) bn.node[bn.n++] = t.nodes[i];
    if (bn.n > 0) tree_bn_sums(L, &t, &bn, total, lab);
    tree_leaf_grads(L, &t, &bn, total, lab);
    tree_broadcast_grads(L, &t, lab);
    free(lab);
}

/* ---- gather-form window gradients ------------------------------------------------
 * An input row h is read by the window taps kh of outputs oh with
 * oh*s - p + kh == h. Only kh = (h + p) mod s + s*t can match, so the gather
 * enumerates t in [0, ceil(KH/s)) (and likewise for w): strided ops visit
 * each candidate once instead of testing all KH*KW taps. */
typedef struct Taps {
    int64_t extent; /* reduce extent: ceil(KH/sh) * ceil(KW/sw) */
    int kh, kw;     /* the tap inside the window */
    int oh, ow;     /* the output that reads it */
    int ok;         /* a real tap of an existing output */
} Taps;

static Taps window_taps(Kernel *k, int h, int w, int rv, int KH, int KW, int sh, int sw, int ph, int pw, int64_t OH,
                        int64_t OW) {
    Taps t;
    int64_t RH = (KH + sh - 1) / sh, RW = (KW + sw - 1) / sw;
    t.extent = RH * RW;
    int th = e_addi(k, h, ph), tw = e_addi(k, w, pw); /* >= 0 */
    int ih = e_idiv(k, rv, RW), iw = e_mod(k, rv, RW);
    t.kh = e_add(k, e_mod(k, th, sh), e_muli(k, ih, sh));
    t.kw = e_add(k, e_mod(k, tw, sw), e_muli(k, iw, sw));
    t.oh = e_sub(k, e_idiv(k, th, sh), ih);
    t.ow = e_sub(k, e_idiv(k, tw, sw), iw);
    t.ok = e_and(k, e_and(k, e_inrange(k, t.oh, 0, OH), e_inrange(k, t.ow, 0, OW)),
                 e_and(k, kir_bin(k, KB_LT, t.kh, e_i(k, KH)), kir_bin(k, KB_LT, t.kw, e_i(k, KW))));
    return t;
}

/* A dilated conv's taps: every one of the KH*KW taps is tested (input row h
 * is read by tap kh of output oh when oh*s - p + kh*d == h). */
static Taps dilated_taps(Kernel *k, int h, int w, int rv, const ConvAttr *a, int64_t OH, int64_t OW) {
    Taps t;
    t.extent = (int64_t)a->kh * a->kw;
    t.kh = e_idiv(k, rv, a->kw);
    t.kw = e_mod(k, rv, a->kw);
    int th = e_sub(k, e_addi(k, h, a->ph), e_muli(k, t.kh, a->dh)); /* oh * sh */
    int tw = e_sub(k, e_addi(k, w, a->pw), e_muli(k, t.kw, a->dw));
    int th0 = kir_bin(k, KB_MAX, th, e_i(k, 0)), tw0 = kir_bin(k, KB_MAX, tw, e_i(k, 0)); /* no negative division */
    t.oh = e_idiv(k, th0, a->sh);
    t.ow = e_idiv(k, tw0, a->sw);
    int on_stride = e_and(k, kir_bin(k, KB_EQ, e_mod(k, th0, a->sh), e_i(k, 0)),
                          kir_bin(k, KB_EQ, e_mod(k, tw0, a->sw), e_i(k, 0)));
    t.ok = e_and(k, e_and(k, kir_bin(k, KB_LE, e_i(k, 0), th), kir_bin(k, KB_LE, e_i(k, 0), tw)),
                 e_and(k, on_stride, e_and(k, kir_bin(k, KB_LT, t.oh, e_i(k, OH)), kir_bin(k, KB_LT, t.ow, e_i(k, OW)))));
    return t;
}

/* ---- structured rules ---------------------------------------------------------- */

/* bias gradient: column sums of dy (rows x C) */
static void bias_grad(Lower *L, int dy, int bias_node, int64_t rows, int64_t C, const char *lab) {
    bool acc;
    int tb = grad_target(L, bias_node, &acc);
    if (tb < 0) return;
    KB kb;
    kb_begin(&kb, L, lab, KF_COLS, C, rows);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int st = kir_stage(k, KS_REDUCE);
    int a = kir_acc(k, st, KR_SUM, kir_load(k, kb_buf(&kb, L, dy, false), e_add(k, e_muli(k, j, C), i)));
    int so = kir_stage(k, KS_STORE);
    kir_store(k, so, kb_buf(&kb, L, tb, true), i, a, acc);
    kb_end(&kb, L, "bias gradient (column sum of dy)", PH(PHASE_BACKWARD), false);
}

/* The target's direct passes (STEP_CONVs): no columns, in either direction. */
static void conv_backward_direct(Lower *L, int v, ConvEngine engine, int dy, int wg, const char *lab) {
    const Node *n = &L->g->nodes[v];
    bool acc;
    int wparam_buf = L->param_buf[L->g->nodes[n->in[1]].a.param.index];
    /* a strided GEMM conv's weight gradient runs on the target's tensor-core form (program.h) */
    const bool strided = engine == CONV_ENGINE_STRIDED_GEMM;
    if (wg >= 0) {
        ConvStep cs = {.pass = CONV_WEIGHT_GRAD, .g = conv_geom(L, v), .w = wg, .y = dy, .accumulate = true,
                       .engine = strided ? CONV_ENGINE_TENSOR_CORES : engine};
        cs.x = conv_norm_x(L, v, EM_BWD, &cs.norm);
        char *note = xasprintf("%s: conv weight gradient, direct%s", lab,
                               cs.norm.on ? ", applying its input's batchnorm" : "");
        lw_conv(L, PH(PHASE_BACKWARD), &cs, note);
        free(note);
    }
    if (strided) {
        conv_strided_data_grad(L, v);
        return;
    }
    int xt = grad_target(L, n->in[0], &acc);
    if (xt >= 0) {
        ConvStep cs = {.pass = CONV_DATA_GRAD, .g = conv_geom(L, v), .x = xt, .w = wparam_buf, .y = dy,
                       .accumulate = acc, .engine = engine};
        conv_dgrad_sums(L, v, &cs);
        char *note = xasprintf("%s: conv data gradient, direct%s", lab,
                               cs.sums.on ? ", summing for its input's batchnorm backward" : "");
        lw_conv(L, PH(PHASE_BACKWARD), &cs, note);
        free(note);
    }
}

static void conv_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const Node *xn = &L->g->nodes[n->in[0]];
    const ConvAttr *a = &n->a.conv;
    int64_t H = xn->dim[0], W = xn->dim[1], OH = n->dim[0], OW = n->dim[1], M = (int64_t)L->N * OH * OW;
    int G = a->groups, Cog = a->cout / G;
    ConvCols cc = conv_cols(L, v);
    int dy = L->grad_buf[v];
    char *lab = lw_label(L, v);
    bool pw = conv_is_pointwise(a);
    if (a->bias) bias_grad(L, dy, n->in[2], M, a->cout, lab);
    bool acc;
    int wg = grad_target(L, n->in[1], &acc);
    ConvEngine engine = conv_as_library_step(L, v);
    if (engine != CONV_ENGINE_NONE) {
        conv_backward_direct(L, v, engine, dy, wg, lab);
        free(lab);
        return;
    }
    if (wg >= 0) {
        int xb = need_bwd(L, n->in[0]);
        GemmStep gs = {.a = dy, .trans_a = true, .m = Cog, .k = (int)M, .lda = a->cout, .c = wg, .alpha = 1, .beta = 1,
                       .batch = 1};
        char *note;
        if (pw) {
            gs.b = xb;
            gs.n = a->cin;
            gs.ldb = a->cin;
            gs.ldc = a->cin;
            note = xasprintf("%s: 1x1 conv weight gradient GEMM dy^T x", lab);
        } else {
            gs.b = lower_im2col(L, v, xb, PH(PHASE_BACKWARD));
            gs.m = cc.nb;
            gs.n = (int)cc.kb;
            gs.ldb = (int)cc.row;
            gs.ldc = (int)cc.kb;
            gs.batch = cc.batch;
            gs.stride_a = cc.nb;
            gs.stride_b = cc.kb;
            gs.stride_c = (int64_t)cc.nb * cc.kb;
            if (!conv_cols_plain(&cc)) {
                /* the padded, block-diagonal result lands in f32 scratch; its diagonal blocks go to wg */
                char *nm = xasprintf("%s:wgrad_blocks", lab);
                gs.c = lw_arena(L, nm, (int64_t)cc.batch * cc.nb * cc.kb);
                free(nm);
                gs.beta = 0;
            }
            note = xasprintf("%s: conv weight gradient, %d group GEMM(s) dy^T cols", lab, cc.batch);
        }
        lw_gemm(L, PH(PHASE_BACKWARD), &gs, note);
        free(note);
        if (gs.c != wg) conv_wgrad_scatter(L, v, gs.c, wg, lab);
    }
    int xt = grad_target(L, n->in[0], &acc);
    if (xt >= 0) {
        if (pw) {
            GemmStep gs = {.a = dy, .b = gemm_weight(L, L->g->nodes[n->in[1]].a.param.index, PH(PHASE_BACKWARD)), .c = xt,
                           .m = (int)M, .n = a->cin, .k = a->cout, .lda = a->cout,
                           .ldb = a->cin, .ldc = a->cin, .alpha = 1, .beta = acc ? 1.0f : 0.0f, .batch = 1};
            char *note = xasprintf("%s: 1x1 conv data gradient GEMM dy W", lab);
            lw_gemm(L, PH(PHASE_BACKWARD), &gs, note);
            free(note);
        } else {
            char *nm = xasprintf("%s:dcols", lab);
            int dcols = lw_act(L, nm, M * cc.row);
            free(nm);
            GemmStep gs = {.a = dy, .b = conv_gemm_weight(L, v, PH(PHASE_BACKWARD)), .c = dcols, .m = (int)M,
                           .n = (int)cc.kb, .k = cc.nb, .lda = a->cout, .ldb = (int)cc.kb, .ldc = (int)cc.row,
                           .alpha = 1, .beta = 0, .batch = cc.batch, .stride_a = cc.nb,
                           .stride_b = (int64_t)cc.nb * cc.kb, .stride_c = cc.kb};
            char *note = xasprintf("%s: conv data gradient, %d group GEMM(s) dy W -> columns", lab, cc.batch);
            lw_gemm(L, PH(PHASE_BACKWARD), &gs, note);
            free(note);
            /* col2im in gather form: each input element sums the columns that read it */
            int64_t Cin = a->cin;
            KB kb;
            kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * H * W * Cin, 1);
            Kernel *k = kb.k;
            int i = kir_var(k, KV_OUTER), nn, h, w, ci;
            ci = e_mod(k, i, Cin);
            int tt = e_idiv(k, i, Cin);
            w = e_mod(k, tt, W);
            tt = e_idiv(k, tt, W);
            h = e_mod(k, tt, H);
            nn = e_idiv(k, tt, H);
            int r = kir_reduce_var(k), rv = kir_var(k, r);
            Taps tp = a->dh == 1 && a->dw == 1 ? window_taps(k, h, w, rv, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw, OH, OW)
                                               : dilated_taps(k, h, w, rv, a, OH, OW);
            int src = e_add(k, e_muli(k, e_add(k, e_muli(k, e_add(k, e_muli(k, nn, OH), tp.oh), OW), tp.ow), cc.row),
                            conv_col_index(k, &cc, a, ci, tp.kh, tp.kw));
            int body = kir_select(k, tp.ok, kir_load(k, kb_buf(&kb, L, dcols, false), src), e_f(k, 0));
            int sum = kir_reduce(k, KR_SUM, r, tp.extent, body);
            int st = kir_stage(k, KS_STORE);
            kir_store(k, st, kb_buf(&kb, L, xt, true), i, sum, acc);
            kb_end(&kb, L, "col2im (gather form): conv data gradient", PH(PHASE_BACKWARD), false);
        }
    }
    free(lab);
}

/* x's rows [rows x w] copied into rows of ld (zero-filled beyond w): a GEMM
 * operand with an aligned leading dimension (linear_padded_width) */
static int padded_rows(Lower *L, int x, int64_t rows, int w, int ld, const char *lab) {
    char *nm = xasprintf("%s:padded_grad", lab);
    int out = lw_act(L, nm, rows * ld);
    free(nm);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, rows * ld, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int c = e_mod(k, i, ld);
    int val = kir_load(k, kb_buf(&kb, L, x, false), e_add(k, e_muli(k, e_idiv(k, i, ld), w), c));
    val = kir_select(k, e_inrange(k, c, 0, w), val, e_f(k, 0));
    kir_store(k, kir_stage(k, KS_STORE), kb_buf(&kb, L, out, true), i, val, false);
    kb_end(&kb, L, "output gradient rows padded for the GEMMs", PH(PHASE_BACKWARD), false);
    return out;
}

static void linear_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    int I = n->a.linear.in_features, O = n->a.linear.out_features;
    int dy = L->grad_buf[v];
    char *lab = lw_label(L, v);
    if (n->a.linear.bias) bias_grad(L, dy, n->in[2], L->N, O, lab);
    bool acc;
    int wg = grad_target(L, n->in[1], &acc);
    int ld = linear_padded_width(L, O);
    if (ld != O) dy = padded_rows(L, dy, L->N, O, ld, lab);
    if (wg >= 0) {
        GemmStep gs = {.a = dy, .b = need_bwd(L, n->in[0]), .c = wg, .trans_a = true, .m = O, .n = I, .k = L->N,
                       .lda = ld, .ldb = I, .ldc = I, .alpha = 1, .beta = 1, .batch = 1};
        char *note = xasprintf("%s: linear weight gradient GEMM dy^T x", lab);
        lw_gemm(L, PH(PHASE_BACKWARD), &gs, note);
        free(note);
    }
    int xt = grad_target(L, n->in[0], &acc);
    if (xt >= 0) {
        GemmStep gs = {.a = dy, .b = gemm_weight(L, L->g->nodes[n->in[1]].a.param.index, PH(PHASE_BACKWARD)), .c = xt,
                       .m = L->N, .n = I,
                       .k = O, .lda = ld, .ldb = I, .ldc = I, .alpha = 1, .beta = acc ? 1.0f : 0.0f, .batch = 1};
        char *note = xasprintf("%s: linear data gradient GEMM dy W", lab);
        lw_gemm(L, PH(PHASE_BACKWARD), &gs, note);
        free(note);
    }
    free(lab);
}

static void pool_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    const Node *xn = &L->g->nodes[n->in[0]];
    const PoolAttr *p = &n->a.pool;
    bool acc;
    int xt = grad_target(L, n->in[0], &acc);
    if (xt < 0) return;
    int64_t H = xn->dim[0], W = xn->dim[1], C = xn->dim[2], OH = n->dim[0], OW = n->dim[1];
    char *lab = lw_label(L, v);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * H * W * C, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int c = e_mod(k, i, C), t = e_idiv(k, i, C), w = e_mod(k, t, W);
    t = e_idiv(k, t, W);
    int h = e_mod(k, t, H), nn = e_idiv(k, t, H);
    int r = kir_reduce_var(k), rv = kir_var(k, r);
    Taps tp = window_taps(k, h, w, rv, p->kh, p->kw, p->sh, p->sw, p->ph, p->pw, OH, OW);
    int oidx = e_add(k, e_muli(k, e_add(k, e_muli(k, e_add(k, e_muli(k, nn, OH), tp.oh), OW), tp.ow), C), c);
    int g = kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), oidx);
    int body;
    bool is_max = n->op != OP_AVGPOOL; /* maxpool, global_maxpool */
    if (is_max) {
        int am = kir_load(k, kb_buf(&kb, L, L->aux_buf[v], false), oidx);
        int tap = kir_un(k, KU_TO_FLOAT, e_add(k, e_muli(k, tp.kh, p->kw), tp.kw));
        body = kir_select(k, tp.ok, kir_select(k, kir_bin(k, KB_EQ, am, tap), g, e_f(k, 0)), e_f(k, 0));
    } else {
        body = kir_select(k, tp.ok, e_div(k, g, pool_divisor(k, p, H, W, tp.oh, tp.ow)), e_f(k, 0));
    }
    int sum = kir_reduce(k, KR_SUM, r, tp.extent, body);
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, kb_buf(&kb, L, xt, true), i, sum, acc);
    kb_end(&kb, L, is_max ? "maxpool backward (gather; first-max index)" : "avgpool backward (gather)",
           PH(PHASE_BACKWARD), false);
    free(lab);
}

/* dx[i] (+)= dy[src(i)] for index maps of reshaping ops */
static void gather_grad(Lower *L, int v, int x, int64_t total, int (*src)(Lower *, Kernel *, int, int), const char *what) {
    bool acc;
    int xt = grad_target(L, x, &acc);
    if (xt < 0) return;
    char *lab = lw_label(L, v);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, total, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    int val = kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), src(L, k, v, i));
    if (L->g->nodes[v].op == OP_GLOBAL_AVGPOOL) {
        const Node *xn = &L->g->nodes[x];
        val = e_div(k, val, e_f(k, (double)(xn->dim[0] * xn->dim[1])));
    }
    kir_store(k, st, kb_buf(&kb, L, xt, true), i, val, acc);
    kb_end(&kb, L, what, PH(PHASE_BACKWARD), false);
    free(lab);
}

static int gap_src(Lower *L, Kernel *k, int v, int i) {
    const Node *xn = &L->g->nodes[L->g->nodes[v].in[0]];
    int64_t C = xn->dim[2], F = node_numel(xn);
    return e_add(k, e_muli(k, e_idiv(k, i, F), C), e_mod(k, i, C));
}

static int flatten_src(Lower *L, Kernel *k, int v, int i) {
    const Node *xn = &L->g->nodes[L->g->nodes[v].in[0]];
    if (xn->rank == 1) return i;
    int64_t HW = xn->dim[0] * xn->dim[1], C = xn->dim[2], F = HW * C;
    int c = e_mod(k, i, C), hw = e_mod(k, e_idiv(k, i, C), HW);
    return e_add(k, e_muli(k, e_idiv(k, i, F), F), e_add(k, e_muli(k, c, HW), hw));
}

static void concat_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    int64_t HW = n->dim[0] * n->dim[1], Ct = n->dim[2], off = 0;
    char *lab = lw_label(L, v);
    for (int t = 0; t < n->n_in; t++) {
        int x = n->in[t];
        int64_t Ci = L->g->nodes[x].dim[2];
        bool acc;
        int xt = grad_target(L, x, &acc);
        if (xt >= 0) {
            KB kb;
            kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * HW * Ci, 1);
            Kernel *k = kb.k;
            int i = kir_var(k, KV_OUTER);
            int src = e_add(k, e_muli(k, e_idiv(k, i, Ci), Ct), e_addi(k, e_mod(k, i, Ci), off));
            int st = kir_stage(k, KS_STORE);
            kir_store(k, st, kb_buf(&kb, L, xt, true), i, kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), src), acc);
            kb_end(&kb, L, "concat backward: one input's channel slice", PH(PHASE_BACKWARD), false);
        }
        off += Ci;
    }
    free(lab);
}

int autodiff_backward(Lower *L) {
    const Graph *g = L->g;
    for (int v = g->n_nodes - 1; v >= 0 && !lw_failed(L); v--) {
        const Node *n = &g->nodes[v];
        if (L->fp.inlined[v] || !L->fp.needs_grad[v] || L->grad_buf[v] < 0) continue;
        if (L->grad_deferred[v] >= 0) conv_strided_flush(L, v); /* v's gradient is complete after it */
        switch (n->op) {
        case OP_PARAM:
        case OP_INPUT: break;
        case OP_CONV2D: conv_backward(L, v); break;
        case OP_LINEAR: linear_backward(L, v); break;
        case OP_MAXPOOL:
        case OP_AVGPOOL:
        case OP_GLOBAL_MAXPOOL: pool_backward(L, v); break;
        case OP_GLOBAL_AVGPOOL:
            gather_grad(L, v, n->in[0], (int64_t)L->N * node_numel(&g->nodes[n->in[0]]), gap_src,
                        "global avgpool backward");
            break;
        case OP_FLATTEN:
            gather_grad(L, v, n->in[0], (int64_t)L->N * node_numel(n), flatten_src, "flatten backward (C,H,W -> NHWC)");
            break;
        case OP_CONCAT: concat_backward(L, v); break;
        case OP_PARAM_VALUE: param_value_backward(L, v); break;
        case OP_CHANNEL_SLICE:
        case OP_CHANNEL_SHUFFLE: channel_gather_backward(L, v); break;
        case OP_GROUPNORM:
        case OP_LAYERNORM: norm_backward(L, v); break;
        case OP_BATCHNORM:
        case OP_RELU:
        case OP_SIGMOID:
        case OP_ADD:
        case OP_MUL:
        case OP_SUB:
        case OP_DIV:
        case OP_DROPOUT:
        case OP_DROP_PATH: tree_backward(L, v); break;
        default:
            if (op_is_pointwise(n->op)) tree_backward(L, v);
            else lw_fail(L, "no gradient rule for %s", op_name(n->op));
        }
    }
    if (L->o->want_input_grad && g->input >= 0) L->p->input_grad_buf = L->grad_buf[g->input];
    return lw_failed(L) ? -1 : 0;
}
