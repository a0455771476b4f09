/*
 * loss.c — the loss kernel at the end of the forward phases (lower.h):
 * softmax cross-entropy with label smoothing and its gradient (against
 * labels mixed with the flipped batch's under mixup/cutmix), or, for
 * op-level gradient checks, an external output gradient (compile.h).
 */
#include <stdlib.h>

#include "lower.h"
#include "util.h"

void lower_loss(Lower *L) {
    const Graph *g = L->g;
    int out = g->output;
    int64_t K = lw_per_sample(L, out);
    int lb = L->fwd_buf[out];
    KB kb;
    if (L->o->loss == LOSS_EXTERNAL_GRAD) {
        kb_begin(&kb, L, "loss_dot", KF_ROWS, L->N, K);
        Kernel *k = kb.k;
        int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
        int idx = e_add(k, e_muli(k, i, K), j);
        int st = kir_stage(k, KS_REDUCE);
        int s = kir_acc(k, st, KR_SUM,
                        e_mul(k, kir_load(k, kb_buf(&kb, L, lb, false), idx), kir_load(k, kb_buf(&kb, L, L->p->dy_buf, false), idx)));
        int so = kir_stage(k, KS_STORE);
        kir_store(k, so, kb_buf(&kb, L, L->p->loss_buf, true), i, s, false);
        kb_end(&kb, L, "external loss: per-sample sum of output * dy", PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL), false);
        L->grad_buf[out] = L->p->dy_buf;
        L->grad_written[out] = true; /* the output's gradient is complete: nothing adds to it */
        if (L->act != KD_F32) { /* GEMM operands must share one type: a bf16 copy of dy */
            L->grad_buf[out] = lw_act(L, "dy:bf16", (int64_t)L->N * K);
            kb_begin(&kb, L, "dy_cast", KF_ROWS, (int64_t)L->N * K, 1);
            k = kb.k;
            int ii = kir_var(k, KV_OUTER);
            int st2 = kir_stage(k, KS_STORE);
            kir_store(k, st2, kb_buf(&kb, L, L->grad_buf[out], true), ii, kir_load(k, kb_buf(&kb, L, L->p->dy_buf, false), ii),
                      false);
            kb_end(&kb, L, "cast the output gradient to bf16", PH(PHASE_FORWARD_TRAIN), true);
        }
        return;
    }
    char *nm = xasprintf("%s:grad", g->nodes[out].name ? g->nodes[out].name : "logits");
    int dl = L->grad_buf[out] = lw_act(L, nm, (int64_t)L->N * K);
    L->grad_written[out] = true;
    free(nm);
    double eps = L->o->label_smoothing;
    kb_begin(&kb, L, "softmax_cross_entropy", KF_ROWS, L->N, K);
    Kernel *k = kb.k;
    int li = kb_buf(&kb, L, lb, false);
    int yi = kb_buf(&kb, L, L->p->labels_buf, false);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int l = kir_load(k, li, e_add(k, e_muli(k, i, K), j));
    int s0 = kir_stage(k, KS_REDUCE);
    int m = kir_acc(k, s0, KR_MAX, l);
    int s1 = kir_stage(k, KS_REDUCE);
    int ex = kir_un(k, KU_EXP, e_sub(k, l, m));
    int se = kir_acc(k, s1, KR_SUM, ex);
    int sl = kir_acc(k, s1, KR_SUM, l);
    int y = kir_load(k, yi, i);
    int s2 = kir_stage(k, KS_MAP);
    int target = kir_select(k, kir_bin(k, KB_EQ, j, y), e_f(k, 1 - eps + eps / (double)K), e_f(k, eps / (double)K));
    int partner = -1, wp = -1; /* mixup/cutmix: sample N-1-i's label, and its weight */
    if (L->o->mix_labels) {
        partner = kir_load(k, yi, e_sub(k, e_i(k, L->N - 1), i));
        wp = kir_scalar(k, SC_MIX_PARTNER);
        int partner_target =
            kir_select(k, kir_bin(k, KB_EQ, j, partner), e_f(k, 1 - eps + eps / (double)K), e_f(k, eps / (double)K));
        target = e_add(k, e_mul(k, e_sub(k, e_f(k, 1), wp), target), e_mul(k, wp, partner_target));
    }
    int grad = e_mul(k, e_sub(k, e_div(k, ex, se), target), kir_scalar(k, SC_GRAD_SCALE));
    kir_store(k, s2, kb_buf(&kb, L, dl, true), e_add(k, e_muli(k, i, K), j), grad, false);
    int s3 = kir_stage(k, KS_STORE);
    int lse = e_add(k, m, kir_un(k, KU_LOG, se));
    int ly = kir_load(k, li, e_add(k, e_muli(k, i, K), y));
    if (partner >= 0) /* timm's mixup_target: the two smoothed one-hot targets, weighted */
        ly = e_add(k, e_mul(k, e_sub(k, e_f(k, 1), wp), ly), e_mul(k, wp, kir_load(k, li, e_add(k, e_muli(k, i, K), partner))));
    int loss = e_sub(k, e_sub(k, lse, e_mul(k, e_f(k, 1 - eps), ly)), e_mul(k, e_f(k, eps / (double)K), sl));
    kir_store(k, s3, kb_buf(&kb, L, L->p->loss_buf, true), i, loss, false);
    kb_end(&kb, L, "softmax + cross-entropy (label smoothing) + its gradient", PH(PHASE_FORWARD_TRAIN) | PH(PHASE_FORWARD_EVAL),
           false);
}
