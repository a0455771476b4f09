/*
 * layer_ops.c — forward and backward lowering of the graph's newer
 * structured ops (the per-op switch of lower.c and autodiff.c calls in):
 * learnable tensors as values (param). Each is a plain kernel of kernel IR,
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
    char *nm = xasprintf("%s:out", lab);
    int out = L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * F);
    free(nm);
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
