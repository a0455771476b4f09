/*
 * layer_ops.c — forward and backward lowering of the graph's newer
 * structured ops (the per-op switch of lower.c and autodiff.c calls in):
 * learnable tensors as values (param), channel slices and shuffles. Each is a plain kernel of kernel IR,
 * so both renderers and the emulator take it like every other kernel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "util.h"

/* ---- param: a learnable tensor seen by every sample ------------------------------ */

/* The parameter's flat index (PyTorch's C,H,W order) of per-sample index f
 * (NHWC order) of OP_PARAM_VALUE node n. */
static int param_value_src(Kernel *k, const Node *n, int f) {
    if (n->rank == 1 || (n->dim[0] == 1 && n->dim[1] == 1)) return f;
    int64_t HW = n->dim[0] * n->dim[1], C = n->dim[2];
    return e_add(k, e_muli(k, e_mod(k, f, C), HW), e_idiv(k, f, C));
}

void lower_param_value(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    int64_t F = lw_per_sample(L, v);
    char *lab = lw_label(L, v);
    int out = lw_forward_out(L, v, lab);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * F, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int p = kb_buf(&kb, L, L->param_buf[L->g->nodes[n->in[0]].a.param.index], false);
    int val = kir_load(k, p, param_value_src(k, n, e_mod(k, i, F)));
    kir_store(k, kir_stage(k, KS_STORE), kb_buf(&kb, L, out, true), i, val, false);
    kb_end(&kb, L, "param: the learnable tensor for every sample", PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL),
           false);
    free(lab);
}

void param_value_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    bool acc;
    int pg = grad_target(L, n->in[0], &acc);
    if (pg < 0) return;
    int64_t F = lw_per_sample(L, v);
    char *lab = lw_label(L, v);
    KB kb;
    kb_begin(&kb, L, lab, KF_COLS, F, L->N);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int st = kir_stage(k, KS_REDUCE);
    int a = kir_acc(k, st, KR_SUM, kir_load(k, kb_buf(&kb, L, L->grad_buf[v], false), e_add(k, e_muli(k, j, F), i)));
    int so = kir_stage(k, KS_STORE);
    kir_store(k, so, kb_buf(&kb, L, pg, true), param_value_src(k, n, i), a, acc);
    kb_end(&kb, L, "param backward (sum over the batch)", PH(PHASE_BACKWARD), false);
    free(lab);
}

/* ---- channel slices and shuffles: out[pixel, c] = x[pixel, src(c)] ------------------ */

/* the input channel of output channel c */
static int chan_src(Kernel *k, const Node *n, int64_t Cin, int c) {
    if (n->op == OP_CHANNEL_SLICE) return e_addi(k, c, n->a.chan.offset);
    int64_t G = n->a.chan.groups, Cg = Cin / G; /* c = i * G + j reads j * Cg + i */
    return e_add(k, e_muli(k, e_mod(k, c, G), Cg), e_idiv(k, c, G));
}

void lower_channel_gather(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    int64_t Co = lw_channels(n), Cin = lw_channels(&L->g->nodes[n->in[0]]), total = (int64_t)L->N * lw_per_sample(L, v);
    char *lab = lw_label(L, v);
    int out = lw_forward_out(L, v, lab);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, total, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int src = e_add(k, e_muli(k, e_idiv(k, i, Co), Cin), chan_src(k, n, Cin, e_mod(k, i, Co)));
    int val = kir_load(k, kb_buf(&kb, L, L->fwd_buf[n->in[0]], false), src);
    kir_store(k, kir_stage(k, KS_STORE), kb_buf(&kb, L, out, true), i, val, false);
    kb_end(&kb, L, n->op == OP_CHANNEL_SLICE ? "channel slice" : "channel shuffle",
           PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL), false);
    free(lab);
}

void channel_gather_backward(Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    bool acc;
    int xt = grad_target(L, n->in[0], &acc);
    if (xt < 0) return;
    int64_t Co = lw_channels(n), Cin = lw_channels(&L->g->nodes[n->in[0]]), pixels = lw_per_sample(L, v) / Co;
    bool slice = n->op == OP_CHANNEL_SLICE;
    /* a slice adds into its channels of a gradient that exists; a first
     * contribution writes every channel (zeros outside the slice) */
    bool own_channels_only = slice && acc;
    int64_t width = own_channels_only ? Co : Cin;
    char *lab = lw_label(L, v);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)L->N * pixels * width, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int pix = e_idiv(k, i, width), c = e_mod(k, i, width);
    int dy = kb_buf(&kb, L, L->grad_buf[v], false);
    int st = kir_stage(k, KS_STORE), xb = kb_buf(&kb, L, xt, true);
    if (own_channels_only) {
        int dst = e_add(k, e_muli(k, pix, Cin), e_addi(k, c, n->a.chan.offset));
        kir_store(k, st, xb, dst, kir_load(k, dy, i), true);
    } else if (slice) {
        int co = e_addi(k, c, -n->a.chan.offset);
        int inside = e_inrange(k, co, 0, Co);
        int clamped = kir_bin(k, KB_MIN, kir_bin(k, KB_MAX, co, e_i(k, 0)), e_i(k, Co - 1)); /* loads stay in bounds */
        int src = e_add(k, e_muli(k, pix, Co), clamped);
        kir_store(k, st, xb, i, kir_select(k, inside, kir_load(k, dy, src), e_f(k, 0)), acc);
    } else {
        int64_t G = n->a.chan.groups, Cg = Cin / G; /* input channel j * Cg + i went to i * G + j */
        int co = e_add(k, e_muli(k, e_mod(k, c, Cg), G), e_idiv(k, c, Cg));
        kir_store(k, st, xb, i, kir_load(k, dy, e_add(k, e_muli(k, pix, Co), co)), acc);
    }
    kb_end(&kb, L, slice ? "channel slice backward" : "channel shuffle backward (the inverse permutation)",
           PH(PHASE_BACKWARD), false);
    free(lab);
}
