/*
 * autoaugment.h — AutoAugment (Cubuk et al. 2019) as the reference
 * experiment applies it: the ImageNet policy of shared/seed/autoaugment.md,
 * the CIFAR-10 and SVHN policies of the same paper, and every operation with
 * PIL's exact semantics (ImageOps, ImageEnhance, Image.transform/rotate).
 */
#ifndef RXC_DATA_AUTOAUGMENT_H
#define RXC_DATA_AUTOAUGMENT_H

#include <stdbool.h>

#include "data/image.h"
#include "data/transforms.h"
#include "recipe.h"

typedef enum AAOp {
    AA_SHEARX, AA_SHEARY, AA_TRANSLATEX, AA_TRANSLATEY, AA_ROTATE,
    AA_COLOR, AA_POSTERIZE, AA_SOLARIZE, AA_CONTRAST, AA_SHARPNESS, AA_BRIGHTNESS,
    AA_AUTOCONTRAST, AA_EQUALIZE, AA_INVERT, AA_NUM_OPS
} AAOp;

typedef struct AASubPolicy {
    float p1;
    AAOp op1;
    int m1;
    float p2;
    AAOp op2;
    int m2;
} AASubPolicy;

/* The 25 sub-policies of a policy. */
const AASubPolicy *aa_policy(AutoAugmentPolicy policy, int *n);
const char *aa_op_name(AAOp op);  /* the table's spelling: "shearX", "rotate", ... */
int aa_op_from_name(const char *name); /* -1 if unknown */
/* Value of magnitude index m (0..9): numpy linspace over the op's range. */
double aa_magnitude(AAOp op, int m);
/* Whether the op takes a random sign (shear, translate, rotate, enhancers). */
int aa_op_signed(AAOp op);

/* Applies one op with magnitude index m and sign (+1/-1) in place; fill is
 * the grey level of uncovered pixels of geometric ops. */
void aa_apply_op(Image *im, AAOp op, int m, int sign, int fill);

/* torchvision's operations (transforms/autoaugment.py, _apply_op on PIL
 * images), in the order of RandAugment's augmentation space: affine ops as
 * F.affine (nearest; shears about the origin by atan(magnitude) degrees,
 * translations by int(magnitude) pixels) and F.rotate, enhancers with
 * factor 1 + magnitude, posterize to int(magnitude) bits, solarize at
 * threshold magnitude. */
typedef enum TvOp {
    TV_IDENTITY, TV_SHEARX, TV_SHEARY, TV_TRANSLATEX, TV_TRANSLATEY, TV_ROTATE, TV_BRIGHTNESS, TV_COLOR,
    TV_CONTRAST, TV_SHARPNESS, TV_POSTERIZE, TV_SOLARIZE, TV_AUTOCONTRAST, TV_EQUALIZE, TV_NUM_OPS
} TvOp;
/* Applies op with its signed magnitude in place; fill is the grey level of
 * uncovered pixels (torchvision's fill=None is 0). */
void tv_apply_op(Image *im, TvOp op, double magnitude, int fill);

/* The random choices of one application: which sub-policy, whether each
 * step applies, and each step's sign. */
typedef struct AAChoice {
    int index;
    bool apply1, apply2;
    int sign1, sign2;
} AAChoice;
AAChoice autoaugment_choose(AutoAugmentPolicy policy, SampleRng *rng);

/* Picks a sub-policy uniformly and applies its two steps, each with its
 * probability, drawing from rng. */
void autoaugment_apply(Image *im, AutoAugmentPolicy policy, int fill, SampleRng *rng);

#endif
