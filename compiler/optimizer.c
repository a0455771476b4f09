/*
 * optimizer.c — the single fused optimizer update (lower.h): one kernel over
 * every trainable parameter that applies SGD (momentum, nesterov, coupled
 * weight decay), Adam (L2 in the gradient) or AdamW (decoupled decay), with
 * the runtime scalars (kir.h ScalarId) the trainer sets each step, and
 * zeroes the gradients for the next accumulation. Parameters before
 * Program.n_decayed get weight decay, the rest none.
 */
#include "lower.h"

int lower_update(Lower *L) {
    Program *p = L->p;
    int64_t P = p->space_bytes[SPACE_PARAMS] / 4;
    if (P == 0) return 0;
    int pb = lw_new_buf(L, "params", SPACE_PARAMS, 0, P, KD_F32);
    int gb = lw_new_buf(L, "grads", SPACE_GRADS, 0, P, KD_F32);
    int mb = lw_new_buf(L, L->o->opt == OPT_SGD ? "momentum" : "adam_m", SPACE_STATE, 0, P, KD_F32);
    int vb = L->o->opt == OPT_SGD ? -1 : lw_new_buf(L, "adam_v", SPACE_STATE, P * 4, P, KD_F32);
    KB kb;
    kb_begin(&kb, L, L->o->opt == OPT_SGD ? "sgd_update" : L->o->opt == OPT_ADAM ? "adam_update" : "adamw_update", KF_ROWS,
             P, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int pi = kb_buf(&kb, L, pb, true), gi = kb_buf(&kb, L, gb, true), mi = kb_buf(&kb, L, mb, true);
    int vi = vb >= 0 ? kb_buf(&kb, L, vb, true) : -1;
    int st = kir_stage(k, KS_STORE);
    int par = kir_load(k, pi, i), grad = kir_load(k, gi, i);
    int decay = p->n_decayed >= P ? kir_scalar(k, SC_WEIGHT_DECAY)
                                  : kir_select(k, kir_bin(k, KB_LT, i, e_i(k, p->n_decayed)), kir_scalar(k, SC_WEIGHT_DECAY),
                                               e_f(k, 0));
    int lr = kir_scalar(k, SC_LR);
    const char *what;
    /* new values are expressions of the old loads only; the parameter is
     * stored first and the gradient is zeroed last */
    if (L->o->opt == OPT_SGD) {
        int mom = kir_scalar(k, SC_MOMENTUM);
        int d = e_add(k, grad, e_mul(k, decay, par));
        int buf = kir_select(k, kir_bin(k, KB_LT, e_f(k, 0.5), kir_scalar(k, SC_FIRST_STEP)), d,
                             e_add(k, e_mul(k, mom, kir_load(k, mi, i)), d));
        int step = L->o->nesterov ? e_add(k, d, e_mul(k, mom, buf)) : buf;
        kir_store(k, st, pi, i, e_sub(k, par, e_mul(k, lr, step)), false);
        kir_store(k, st, mi, i, buf, false);
        what = L->o->nesterov ? "SGD (momentum, nesterov, coupled weight decay) of all parameters + zero grads"
                              : "SGD (momentum, coupled weight decay) of all parameters + zero grads";
    } else {
        int b1 = kir_scalar(k, SC_BETA1), b2 = kir_scalar(k, SC_BETA2);
        int g2 = L->o->opt == OPT_ADAM ? e_add(k, grad, e_mul(k, decay, par)) : grad;
        int base = L->o->opt == OPT_ADAMW ? e_mul(k, par, e_sub(k, e_f(k, 1), e_mul(k, lr, decay))) : par;
        int m = e_add(k, e_mul(k, kir_load(k, mi, i), b1), e_mul(k, g2, e_sub(k, e_f(k, 1), b1)));
        int vv = e_add(k, e_mul(k, kir_load(k, vi, i), b2), e_mul(k, e_mul(k, g2, g2), e_sub(k, e_f(k, 1), b2)));
        int denom = e_add(k, e_div(k, kir_un(k, KU_SQRT, vv), kir_un(k, KU_SQRT, kir_scalar(k, SC_BIAS_CORR2))),
                          kir_scalar(k, SC_EPS));
        int stepsz = e_div(k, lr, kir_scalar(k, SC_BIAS_CORR1));
        kir_store(k, st, pi, i, e_sub(k, base, e_mul(k, stepsz, e_div(k, m, denom))), false);
        kir_store(k, st, mi, i, m, false);
        kir_store(k, st, vi, i, vv, false);
        what = L->o->opt == OPT_ADAM ? "Adam (L2 in the gradient, bias correction) of all parameters + zero grads"
                                     : "AdamW (decoupled decay, bias correction) of all parameters + zero grads";
    }
    kir_store(k, st, gi, i, e_f(k, 0), false);
    kb_end(&kb, L, what, PH(PHASE_UPDATE), false);
    return lw_failed(L) ? -1 : 0;
}
