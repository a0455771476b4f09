/*
 * randaugment.h — torchvision's RandAugment and TrivialAugmentWide
 * (transforms/autoaugment.py, torchvision 0.14) on uint8 RGB images: their
 * augmentation spaces (the same 14 ops, magnitude bins as torch.linspace
 * computes them in float32), their random choices from the sample's stream,
 * and the ops of autoaugment.c's tv_apply_op.
 */
#ifndef RXC_DATA_RANDAUGMENT_H
#define RXC_DATA_RANDAUGMENT_H

#include <stdbool.h>

#include "data/autoaugment.h"
#include "data/transforms.h"

/* Whether op takes a random sign, and whether it has magnitude bins
 * (Identity, AutoContrast and Equalize have none). */
bool tv_op_signed(TvOp op);
bool tv_op_has_bins(TvOp op);
const char *tv_op_name(TvOp op); /* torchvision's spelling: "ShearX", ... */
int tv_op_from_name(const char *name); /* -1 if unknown */

/* The unsigned magnitude of bin `bin` (0 <= bin < bins) of op in
 * RandAugment's space (wide = false; translations scale with the w x h
 * image) or TrivialAugmentWide's (wide = true): a float32 value, widened. */
double tv_magnitude(bool wide, TvOp op, int bins, int bin, int w, int h);

/* torch.linspace(start, end, n)[i] in float32 as PyTorch 1.13's CPU kernel
 * computes it (AVX2 build: 8-wide aranges from a base two vectors at a time,
 * the tail element by element with a fused multiply-add). */
float torch_linspace_f32(double start, double end, int n, int i);

typedef struct TvChoice {
    TvOp op;
    int bin;   /* magnitude bin */
    int sign;  /* +1 or -1 */
} TvChoice;

/* The choices of one op: RandAugment (bin = magnitude) or TrivialAugmentWide
 * (bin uniform in [0, bins) when the op has bins). */
TvChoice randaugment_choose(int magnitude, SampleRng *rng);
TvChoice trivialaugment_choose(int bins, SampleRng *rng);
/* Applies one chosen op to im. */
void tv_apply_choice(Image *im, bool wide, int bins, TvChoice c, int fill);

/* RandAugment(num_ops, magnitude, num_magnitude_bins, fill) and
 * TrivialAugmentWide(num_magnitude_bins, fill). */
void randaugment_apply(Image *im, int num_ops, int magnitude, int bins, int fill, SampleRng *rng);
void trivialaugment_apply(Image *im, int bins, int fill, SampleRng *rng);

#endif
