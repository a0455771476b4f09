/*
 * init.c — parameter initialisation (see init.h).
 *
 * The distributions are PyTorch's:
 *   INIT_KAIMING_NORMAL_FAN_OUT  N(0, sqrt(2 / fan_out)), torchvision's
 *                                kaiming_normal_(mode="fan_out", nonlinearity="relu")
 *   INIT_PYTORCH_DEFAULT         U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Conv2d and
 *                                nn.Linear's kaiming_uniform_(a=sqrt(5)) for the
 *                                weight and the same bound for the bias
 *   INIT_ZEROS, INIT_ONES        constants (BN gamma 1, beta 0)
 *   INIT_CONSTANT ... INIT_KAIMING_NORMAL_FAN_IN  the file's own (init=...):
 *                                constant, normal, uniform, truncated normal,
 *                                kaiming_normal(mode="fan_in")
 * The streams differ from PyTorch's generator, so the values do not; tests
 * that compare with PyTorch load the same weights into both.
 */
#include "init.h"

#include <math.h>
#include <string.h>

#include "util.h"

/* a double in [0, 1) from the top 53 bits of a draw */
static double uniform01(Rng *rng) { return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); }

/* The initialisers a file names with init=... (Param.init_arg). */
static void init_from_file(const Param *p, Rng *rng, float *out) {
    const double *a = p->init_arg;
    for (int64_t i = 0; i < p->numel; i++) {
        double v = 0;
        switch (p->init) {
        case INIT_CONSTANT: v = a[0]; break;
        case INIT_NORMAL: v = a[0] + a[1] * rng_normal(rng); break;
        case INIT_UNIFORM: v = a[0] + (a[1] - a[0]) * uniform01(rng); break;
        case INIT_TRUNC_NORMAL:
            /* redrawn until inside [a, b], as the truncated distribution is defined;
             * after 64 misses (a window far in a tail) the nearest bound */
            v = a[0] + a[1] * rng_normal(rng);
            for (int t = 0; t < 64 && (v < a[2] || v > a[3]); t++) v = a[0] + a[1] * rng_normal(rng);
            v = v < a[2] ? a[2] : v > a[3] ? a[3] : v;
            break;
        case INIT_KAIMING_NORMAL_FAN_IN: v = sqrt(2.0 / (double)(p->fan_in > 0 ? p->fan_in : 1)) * rng_normal(rng); break;
        default: break;
        }
        out[i] = (float)v;
    }
}

void init_param(const Param *p, uint64_t seed, float *out) {
    int64_t n = p->numel;
    switch (p->role) {
    case ROLE_NUM_BATCHES: return;
    case ROLE_RUNNING_MEAN:
        for (int64_t i = 0; i < n; i++) out[i] = 0.0f;
        return;
    case ROLE_RUNNING_VAR:
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f;
        return;
    default: break;
    }
    Rng rng = {seed, fnv1a64(p->name, strlen(p->name), FNV1A64_INIT), 0};
    switch (p->init) {
    case INIT_ZEROS:
        for (int64_t i = 0; i < n; i++) out[i] = 0.0f;
        break;
    case INIT_ONES:
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f;
        break;
    case INIT_KAIMING_NORMAL_FAN_OUT: {
        double std = sqrt(2.0 / (double)(p->fan_out > 0 ? p->fan_out : 1));
        for (int64_t i = 0; i < n; i++) out[i] = (float)(std * rng_normal(&rng));
        break;
    }
    case INIT_PYTORCH_DEFAULT: {
        double bound = 1.0 / sqrt((double)(p->fan_in > 0 ? p->fan_in : 1));
        for (int64_t i = 0; i < n; i++) out[i] = (float)((2.0 * uniform01(&rng) - 1.0) * bound);
        break;
    }
    default: init_from_file(p, &rng, out); break;
    }
}
