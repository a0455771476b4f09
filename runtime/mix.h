/*
 * mix.h — mixup and cutmix of a training batch, as timm's Mixup does them
 * (mode 'batch', correct_lam): per micro-batch, with probability mix_prob,
 * either mixup or cutmix (cutmix with probability mix_switch_prob when both
 * are on) with lam ~ Beta(alpha, alpha); each sample i is mixed with sample
 * n-1-i (the batch flipped). Mixup: x = lam x + (1 - lam) x_flipped, in
 * float32 as timm's in-place ops; cutmix: a box of the flipped batch pasted
 * (timm's rand_bbox), lam corrected to the box's area. The labels mix with
 * the same weights: the loss kernel reads the partner's label at n-1-i and
 * its weight 1 - lam (SC_MIX_PARTNER), timm's mixup_target with the loss's
 * label smoothing, soft-target cross-entropy.
 *
 * The draws are a pure function of (seed, micro-batch index): a resumed run
 * mixes exactly as an uninterrupted one.
 */
#ifndef RXC_MIX_H
#define RXC_MIX_H

#include <stdbool.h>
#include <stdint.h>

#include "recipe.h"

typedef struct MixDraw {
    bool cutmix;        /* else mixup (or nothing, when partner_weight is 0) */
    double lam;         /* the weight of the sample itself; 1: no mixing */
    int y0, y1, x0, x1; /* cutmix: rows [y0, y1) and columns [x0, x1) pasted */
} MixDraw;

/* Whether the recipe mixes at all (mixup or cutmix alpha > 0). */
bool mix_enabled(const Recipe *r);

/* The draws for micro-batch `micro_step` (0-based over the run) of h x w images. */
MixDraw mix_draw(const Recipe *r, int h, int w, int64_t micro_step);

/* Mixes n NHWC float samples of h x w x c in place; returns the partner
 * label's weight, 1 - lam (0 when nothing was mixed). */
double mix_apply(const MixDraw *m, float *x, int n, int h, int w, int c);

/* Beta(a, a) from uniform draws (Marsaglia-Tsang gammas), for the draws and their test. */
double mix_beta(double a, uint64_t key);

#endif
