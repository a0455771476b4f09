/*
 * pointwise.c — the one-input elementwise ops of the graph as kernel-IR
 * expressions: the activations (silu, gelu, hardswish, hardsigmoid, relu6,
 * tanh, leaky_relu, elu) and tensor-number arithmetic (OP_AFFINE). Each has
 * its forward formula and its gradient rule, both PyTorch's (torch 1.13's
 * CPU kernels): the same constants, the same operation order where it
 * matters for rounding, and the same choice at every kink (which side of
 * x = 0 or x = +-3 a tie falls on). lower.c builds forward values with
 * pw_forward and autodiff.c builds the gradients of fused trees with pw_grad.
 */
#include <math.h>

#include "lower.h"

/* erf's and tanh-gelu's constants, as PyTorch spells them (M_SQRT1_2 etc.) */
#define SQRT1_2 0.70710678118654752440
#define GELU_PDF_SCALE (1.12837916709551257390 * SQRT1_2 * 0.5) /* M_2_SQRTPI * M_SQRT1_2 / 2 */
#define GELU_TANH_BETA (1.41421356237309504880 * 1.12837916709551257390 * 0.5) /* sqrt(2 / pi) */
#define GELU_TANH_KAPPA 0.044715

bool pw_grad_reads_input(OpKind op) { return op != OP_AFFINE; }

static int lt(Kernel *k, int a, int b) { return kir_bin(k, KB_LT, a, b); }
static int le(Kernel *k, int a, int b) { return kir_bin(k, KB_LE, a, b); }
static int clamp(Kernel *k, int x, double lo, double hi) {
    return kir_bin(k, KB_MIN, kir_bin(k, KB_MAX, x, e_f(k, lo)), e_f(k, hi));
}
static int sigmoid(Kernel *k, int x) {
    return e_div(k, e_f(k, 1), e_add(k, e_f(k, 1), kir_un(k, KU_EXP, kir_un(k, KU_NEG, x))));
}
/* tanh(sqrt(2/pi) * (x + 0.044715 x^3)) */
static int gelu_tanh_inner(Kernel *k, int x) {
    int cube = e_mul(k, e_mul(k, x, x), x);
    return kir_un(k, KU_TANH, e_mul(k, e_f(k, GELU_TANH_BETA), e_add(k, x, e_mul(k, e_f(k, GELU_TANH_KAPPA), cube))));
}

int pw_forward(Kernel *k, const Node *n, int x) {
    switch (n->op) {
    case OP_AFFINE: {
        int y = n->a.affine.scale == 1 ? x : e_mul(k, x, e_f(k, n->a.affine.scale));
        return n->a.affine.shift == 0 ? y : e_add(k, y, e_f(k, n->a.affine.shift));
    }
    case OP_SILU: /* x / (1 + exp(-x)) */
        return e_div(k, x, e_add(k, e_f(k, 1), kir_un(k, KU_EXP, kir_un(k, KU_NEG, x))));
    case OP_GELU:
        return e_mul(k, e_mul(k, x, e_f(k, 0.5)),
                     e_add(k, e_f(k, 1), kir_un(k, KU_ERF, e_mul(k, x, e_f(k, SQRT1_2)))));
    case OP_GELU_TANH:
        return e_mul(k, e_mul(k, e_f(k, 0.5), x), e_add(k, e_f(k, 1), gelu_tanh_inner(k, x)));
    case OP_HARDSWISH: return e_div(k, e_mul(k, x, clamp(k, e_add(k, x, e_f(k, 3)), 0, 6)), e_f(k, 6));
    case OP_HARDSIGMOID: return e_div(k, clamp(k, e_add(k, x, e_f(k, 3)), 0, 6), e_f(k, 6));
    case OP_RELU6: return clamp(k, x, 0, 6);
    case OP_TANH: return kir_un(k, KU_TANH, x);
    case OP_LEAKY_RELU:
        return kir_select(k, lt(k, e_f(k, 0), x), x, e_mul(k, x, e_f(k, n->a.act.alpha)));
    case OP_ELU:
        return kir_select(k, le(k, x, e_f(k, 0)), e_mul(k, kir_un(k, KU_EXPM1, x), e_f(k, n->a.act.alpha)), x);
    default: return -1;
    }
}

/* PyTorch's gelu_backward: dy * (cdf + x * pdf), or its tanh form. */
static int gelu_grad(Kernel *k, const Node *n, int x, int gy) {
    if (n->op == OP_GELU) {
        int cdf = e_mul(k, e_f(k, 0.5), e_add(k, e_f(k, 1), kir_un(k, KU_ERF, e_mul(k, x, e_f(k, SQRT1_2)))));
        int pdf = e_mul(k, e_f(k, GELU_PDF_SCALE), kir_un(k, KU_EXP, e_mul(k, e_f(k, -0.5), e_mul(k, x, x))));
        return e_mul(k, gy, e_add(k, cdf, e_mul(k, x, pdf)));
    }
    int t = gelu_tanh_inner(k, x);
    int left_d = e_mul(k, e_f(k, 0.5), e_add(k, e_f(k, 1), t));
    int inner_d = e_mul(k, e_f(k, GELU_TANH_BETA), e_add(k, e_f(k, 1), e_mul(k, e_f(k, 3 * GELU_TANH_KAPPA), e_mul(k, x, x))));
    int right_d = e_mul(k, e_mul(k, e_mul(k, e_f(k, 0.5), x), e_sub(k, e_f(k, 1), e_mul(k, t, t))), inner_d);
    return e_mul(k, gy, e_add(k, left_d, right_d));
}

int pw_grad(Kernel *k, const Node *n, int x, int gy) {
    int zero = e_f(k, 0);
    switch (n->op) {
    case OP_AFFINE: return n->a.affine.scale == 1 ? gy : e_mul(k, gy, e_f(k, n->a.affine.scale));
    case OP_SILU: {
        int s = sigmoid(k, x);
        return e_mul(k, e_mul(k, gy, s), e_add(k, e_f(k, 1), e_mul(k, x, e_sub(k, e_f(k, 1), s))));
    }
    case OP_GELU:
    case OP_GELU_TANH: return gelu_grad(k, n, x, gy);
    case OP_HARDSWISH:
        /* 0 below -3, dy * (x/3 + 1/2) on [-3, 3), dy from 3 on. At exactly 3
         * PyTorch disagrees with itself: the vectorized CPU kernel (every
         * element but a tensor's last few) gives dy, the scalar tail and CUDA
         * 1.5 dy. rxc follows the vectorized kernel. */
        return kir_select(k, lt(k, x, e_f(k, -3)), zero,
                          kir_select(k, lt(k, x, e_f(k, 3)),
                                     e_mul(k, gy, e_add(k, e_div(k, x, e_f(k, 3)), e_f(k, 0.5))), gy));
    case OP_HARDSIGMOID: /* dy / 6 strictly inside (-3, 3) */
        return kir_select(k, kir_bin(k, KB_AND, lt(k, e_f(k, -3), x), lt(k, x, e_f(k, 3))), e_div(k, gy, e_f(k, 6)),
                          zero);
    case OP_RELU6: /* hardtanh_backward: dy strictly inside (0, 6) */
        return kir_select(k, kir_bin(k, KB_AND, lt(k, zero, x), lt(k, x, e_f(k, 6))), gy, zero);
    case OP_TANH: {
        int y = kir_un(k, KU_TANH, x);
        return e_mul(k, gy, e_sub(k, e_f(k, 1), e_mul(k, y, y)));
    }
    case OP_LEAKY_RELU: return kir_select(k, lt(k, zero, x), gy, e_mul(k, gy, e_f(k, n->a.act.alpha)));
    case OP_ELU: /* elu_backward with is_result = false: dy * alpha * exp(x) for x <= 0 */
        return kir_select(k, le(k, x, zero), e_mul(k, gy, e_mul(k, e_f(k, n->a.act.alpha), kir_un(k, KU_EXP, x))), gy);
    default: return -1;
    }
}
