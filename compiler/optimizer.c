/*
 * optimizer.c — the single fused optimizer update (lower.h): one kernel over
 * every trainable parameter that applies SGD (momentum, nesterov, coupled
 * weight decay), Adam (L2 in the gradient) or AdamW (decoupled decay), with
 * the runtime scalars (kir.h ScalarId) the trainer sets each step, and
 * zeroes the gradients for the next accumulation. Parameters before
 * Program.n_decayed get weight decay, the rest none. With clip_grad_norm,
 * two kernels before it compute torch.nn.utils.clip_grad_norm_'s factor
 * from the gradients' global L2 norm, and the update scales every gradient
 * by it. Under PREC_BF16 the same pass stores each new value rounded to
 * bf16 into SPACE_PARAM_COPY, the GEMMs' operand (program.h), so no step
 * casts weights. LAMB's update is optimizer_lamb.c's; its own global-norm
 * clipping (timm's max_grad_norm) joins clip_grad_norm's factor here.
 */
#include <stdlib.h>

#include "lower.h"
#include "util.h"

/* Gradient elements per partial sum of squares: small enough that a float
 * accumulator keeps the norm to ~1e-6 relative, large enough that the
 * second kernel's serial sum stays short (P / 4096 terms). */
#define NORM_CHUNK 4096

/* Emits sum-of-squares partials over chunks of the gradients, then their
 * sum into min(1, max_norm / (norm + 1e-6)); returns the buffer holding
 * that factor (one element), or -1. The sums run in a fixed order, so the
 * factor does not depend on the thread count. */
static int lower_clip_factor(Lower *L, int grads_buf, int64_t P) {
    int64_t chunks = (P + NORM_CHUNK - 1) / NORM_CHUNK;
    int partial = lw_arena(L, "grad_sqnorm_partial", chunks);
    int factor = lw_arena(L, "grad_clip_factor", 1);
    KB kb;
    kb_begin(&kb, L, "grad_sqnorm", KF_ROWS, chunks, NORM_CHUNK);
    Kernel *k = kb.k;
    int gi = kb_buf(&kb, L, grads_buf, false), pi = kb_buf(&kb, L, partial, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int at = e_add(k, e_muli(k, i, NORM_CHUNK), j);
    int red = kir_stage(k, KS_REDUCE);
    int g = kir_load(k, gi, at);
    int sq = kir_acc(k, red, KR_SUM, kir_select(k, kir_bin(k, KB_LT, at, e_i(k, P)), e_mul(k, g, g), e_f(k, 0)));
    kir_store(k, kir_stage(k, KS_STORE), pi, i, sq, false);
    kb_end(&kb, L, "sum of squares of the gradients, per chunk (global-norm clipping)", PH(PHASE_UPDATE), false);

    kb_begin(&kb, L, "grad_clip_factor", KF_ROWS, 1, chunks);
    k = kb.k;
    int si = kb_buf(&kb, L, partial, false), fi = kb_buf(&kb, L, factor, true);
    red = kir_stage(k, KS_REDUCE);
    int total = kir_acc(k, red, KR_SUM, kir_load(k, si, kir_var(k, KV_INNER)));
    int norm = kir_un(k, KU_SQRT, total);
    int coef = L->o->clip_grad_norm > 0
                   ? kir_bin(k, KB_MIN, e_div(k, e_f(k, L->o->clip_grad_norm), e_add(k, norm, e_f(k, 1e-6))), e_f(k, 1))
                   : e_f(k, 1);
    double lamb_max = L->o->opt == OPT_LAMB ? L->o->lamb_max_grad_norm : 0;
    /* timm's Lamb divides the gradients that clip_grad_norm_ left by
     * max(1, their norm / max_grad_norm); their norm is norm * coef */
    if (lamb_max > 0)
        coef = e_div(k, coef, kir_bin(k, KB_MAX, e_f(k, 1), e_div(k, e_mul(k, norm, coef), e_f(k, lamb_max))));
    kir_store(k, kir_stage(k, KS_STORE), fi, kir_var(k, KV_OUTER), coef, false);
    kb_end(&kb, L,
           lamb_max > 0 ? "the gradients' factor: clip_grad_norm_'s (if any), then timm Lamb's 1 / max(1, norm / max_grad_norm)"
                        : "clip_grad_norm_'s factor: min(1, max_norm / (global L2 norm + 1e-6))",
           PH(PHASE_UPDATE), false);
    return lw_failed(L) ? -1 : factor;
}

int lower_update(Lower *L) {
    Program *p = L->p;
    int64_t P = p->space_bytes[SPACE_PARAMS] / 4;
    if (P == 0) return 0;
    int pb = lw_new_buf(L, "params", SPACE_PARAMS, 0, P, KD_F32);
    int gb = lw_new_buf(L, "grads", SPACE_GRADS, 0, P, KD_F32);
    bool lamb_clips = L->o->opt == OPT_LAMB && L->o->lamb_max_grad_norm > 0;
    if (L->o->opt == OPT_LAMB) {
        int factor = L->o->clip_grad_norm > 0 || lamb_clips ? lower_clip_factor(L, gb, P) : -1;
        return lw_failed(L) ? -1 : lower_update_lamb(L, pb, gb, factor);
    }
    int mb = lw_new_buf(L, L->o->opt == OPT_SGD ? "momentum" : "adam_m", SPACE_STATE, 0, P, KD_F32);
    int vb = L->o->opt == OPT_SGD ? -1 : lw_new_buf(L, "adam_v", SPACE_STATE, P * 4, P, KD_F32);
    int clip = L->o->clip_grad_norm > 0 ? lower_clip_factor(L, gb, P) : -1;
    if (lw_failed(L)) return -1;
    KB kb;
    kb_begin(&kb, L, L->o->opt == OPT_SGD ? "sgd_update" : L->o->opt == OPT_ADAM ? "adam_update" : "adamw_update", KF_ROWS,
             P, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int pi = kb_buf(&kb, L, pb, true), gi = kb_buf(&kb, L, gb, true), mi = kb_buf(&kb, L, mb, true);
    int vi = vb >= 0 ? kb_buf(&kb, L, vb, true) : -1;
    int copy = p->space_bytes[SPACE_PARAM_COPY] > 0
                   ? kb_buf(&kb, L, lw_new_buf(L, "params:bf16", SPACE_PARAM_COPY, 0, P, KD_BF16), true)
                   : -1;
    int st = kir_stage(k, KS_STORE);
    int par = kir_load(k, pi, i), grad = kir_load(k, gi, i);
    if (clip >= 0) grad = e_mul(k, grad, kir_load(k, kb_buf(&kb, L, clip, false), e_i(k, 0)));
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
        int np = e_sub(k, par, e_mul(k, lr, step));
        kir_store(k, st, pi, i, np, false);
        if (copy >= 0) kir_store(k, st, copy, i, np, false);
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
        int np = e_sub(k, base, e_mul(k, stepsz, e_div(k, m, denom)));
        kir_store(k, st, pi, i, np, false);
        if (copy >= 0) kir_store(k, st, copy, i, np, false);
        kir_store(k, st, mi, i, m, false);
        kir_store(k, st, vi, i, vv, false);
        what = L->o->opt == OPT_ADAM ? "Adam (L2 in the gradient, bias correction) of all parameters + zero grads"
                                     : "AdamW (decoupled decay, bias correction) of all parameters + zero grads";
    }
    kir_store(k, st, gi, i, e_f(k, 0), false);
    char *described = xasprintf("%s%s%s", what, clip >= 0 ? ", gradients clipped by global norm" : "",
                                copy >= 0 ? " + their bf16 copy" : "");
    kb_end(&kb, L, described, PH(PHASE_UPDATE), false);
    free(described);
    return lw_failed(L) ? -1 : 0;
}
