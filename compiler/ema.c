/*
 * ema.c — the exponential moving average of the weights (the recipe's
 * `ema`, lower.h pass 4b): PHASE_EMA's kernels, which move SPACE_EMA
 * (program.h) towards the f32 master parameters and the BN running buffers,
 * ema += (1 - decay) * (value - ema), element for element. That is
 * torch.lerp(ema, value, 1 - decay), the form of torch's
 * get_ema_multi_avg_fn (AveragedModel with use_buffers=True) and of timm's
 * ModelEmaV3, and equal in exact arithmetic to timm ModelEmaV2's
 * decay * ema + (1 - decay) * value. The trainer decides when the phase
 * runs (after every `ema_every`-th optimizer step), so a step without it
 * costs nothing; the weight 1 - decay is a constant of the program.
 */
#include <stdlib.h>

#include "lower.h"
#include "util.h"

/* One kernel over n elements of `space` starting at byte 0, averaged into
 * SPACE_EMA from byte ema_offset. */
static void ema_kernel(Lower *L, const char *name, BufSpace space, int64_t ema_offset, int64_t n, const char *what) {
    if (n <= 0 || lw_failed(L)) return;
    int src = lw_new_buf(L, space == SPACE_PARAMS ? "params" : "bn_buffers", space, 0, n, KD_F32);
    int avg = lw_new_buf(L, space == SPACE_PARAMS ? "ema:params" : "ema:bn_buffers", SPACE_EMA, ema_offset, n, KD_F32);
    KB kb;
    kb_begin(&kb, L, name, KF_ROWS, n, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int si = kb_buf(&kb, L, src, false), ai = kb_buf(&kb, L, avg, true);
    int old = kir_load(k, ai, i);
    int moved = e_add(k, old, e_mul(k, e_f(k, 1.0 - L->o->ema_decay), e_sub(k, kir_load(k, si, i), old)));
    kir_store(k, kir_stage(k, KS_STORE), ai, i, moved, false);
    kb_end(&kb, L, what, PH(PHASE_EMA), false);
}

int lower_ema(Lower *L) {
    const Program *p = L->p;
    if (L->o->ema_decay <= 0) return 0;
    int64_t params = p->space_bytes[SPACE_PARAMS];
    ema_kernel(L, "ema_params", SPACE_PARAMS, 0, params / 4,
               "EMA of the parameters: ema += (1 - decay) * (param - ema)");
    ema_kernel(L, "ema_bn_buffers", SPACE_BUFFERS, params, p->space_bytes[SPACE_BUFFERS] / 4,
               "EMA of the BatchNorm running statistics: ema += (1 - decay) * (buffer - ema)");
    return lw_failed(L) ? -1 : 0;
}
