/*
 * program.h — a compiled training step: kernels, library steps and buffers.
 *
 * The compiler's back half (compile.h; its passes in order are listed in
 * lower.h: fuse -> lower + loss -> autodiff -> optimizer -> memplan) turns
 * one Graph into a Program for one (recipe, batch size, precision, target).
 * No training graph sits in between: each pass emits kernel IR (kir.h) and
 * library steps straight into the Program. The target's executor runs it:
 * target/cpu/exec_cpu.c (generated C + OpenBLAS + direct conv steps) or
 * target/cuda/exec_cuda.c (generated CUDA + cuBLAS). A Program knows
 * nothing about files, data loading or schedules: the trainer sets the
 * runtime scalars (kir.h ScalarId) and the input buffers, then runs phases.
 *
 * Storage spaces. Every buffer lives in one space at a byte offset:
 *   SPACE_ARENA    activations, saved tensors and temporaries; offsets come
 *                  from the memory plan, so buffers with disjoint lifetimes
 *                  share bytes
 *   SPACE_PARAMS   all trainable parameters, contiguous, f32; decayed
 *                  parameters first, then those without weight decay
 *   SPACE_GRADS    the same layout as SPACE_PARAMS
 *   SPACE_STATE    optimizer state (momentum; or Adam's m then v), same layout; LAMB
 *                  appends its per-chunk sums and per-tensor trust ratios
 *   SPACE_BUFFERS  BatchNorm running statistics, f32
 *   SPACE_INPUT    the input batch, N*H*W*C (f32, or u8 when normalize is fused)
 *   SPACE_LABELS   N int64 class indices
 *   SPACE_PARAM_COPY  under PREC_BF16 only (else empty): a bf16 copy of
 *                  SPACE_PARAMS, element for element, that the GEMMs read.
 *                  It lives across steps: the update kernel stores it with
 *                  the new f32 value, and the executors' write() of
 *                  SPACE_PARAMS rounds what it writes into it (init,
 *                  checkpoint loads, broadcasts), so it always equals
 *                  bf16(SPACE_PARAMS) when a phase starts.
 *   SPACE_EMA      with the recipe's `ema` only (else empty): the
 *                  exponential moving average of SPACE_PARAMS (f32, the
 *                  master weights, same layout) followed by that of
 *                  SPACE_BUFFERS (same layout), which PHASE_EMA updates.
 * Parameter p of the graph lives at param_offset[p] (elements) in
 * SPACE_PARAMS (trainable) or SPACE_BUFFERS (buffers; num_batches_tracked is
 * counted by the trainer, not stored here).
 */
#ifndef RXC_PROGRAM_H
#define RXC_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>

#include "kir.h"

typedef enum BufSpace {
    SPACE_ARENA, SPACE_PARAMS, SPACE_GRADS, SPACE_STATE, SPACE_BUFFERS,
    SPACE_INPUT, SPACE_LABELS, SPACE_PARAM_COPY, SPACE_EMA, SPACE_COUNT
} BufSpace;

typedef struct BufDesc {
    char *name;        /* "layer1.0.conv2:out", "layer1.0.bn2:saved_invstd", ... */
    BufSpace space;
    int64_t offset;    /* bytes from the start of the space */
    int64_t numel;
    KDType dtype;
} BufDesc;

/* Row-major C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, repeated
 * `batch` times with the given element strides (grouped convolutions). */
typedef struct GemmStep {
    int a, b, c;                  /* buffer ids */
    int64_t off_a, off_b, off_c;  /* element offsets into those buffers */
    bool trans_a, trans_b;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
    int batch;
    int64_t stride_a, stride_b, stride_c;
} GemmStep;

/* A direct convolution on NHWC f32 (or bf16) tensors, PyTorch's weight layout
 * [cout][cin/groups][kh][kw]: one pass of one conv node. The buffers keep
 * the conv's roles whatever the pass computes:
 *   CONV_FORWARD      y  (=, or += with accumulate) conv(x, w)
 *   CONV_DATA_GRAD    x  (=, or +=) d loss/dx from y (= dy) and w
 *   CONV_WEIGHT_GRAD  w  (=, or +=) d loss/dw from x and y (= dy)
 * The executors run them with the target's own code (target/cpu/conv_cpu.c,
 * target/cuda/conv_cuda.c); the compiler emits them for the convolutions
 * the target asks for (Target.conv_library_step, compiler/target.h). */
typedef enum ConvPass { CONV_FORWARD, CONV_DATA_GRAD, CONV_WEIGHT_GRAD } ConvPass;

typedef struct ConvGeom {
    int n, h, w, cin;             /* input  N x H x W x Cin */
    int oh, ow, cout;             /* output N x OH x OW x Cout */
    int groups, kh, kw, sh, sw, ph, pw;
} ConvGeom;

/* What computes a direct convolution's products: the target's answer
 * (Target.conv_library_step), which lowering stores in every pass's step
 * so that the renderer and the cost model (cost.c) read it, not guess it. */
typedef enum ConvEngine {
    CONV_ENGINE_NONE,         /* no direct form: im2col + GEMMs */
    CONV_ENGINE_CUDA_CORES,   /* f32 FMAs on ordinary cores (the CPU's vector units too) */
    CONV_ENGINE_TENSOR_CORES, /* bf16 MMAs, f32 accumulate (conv_cuda.c's wmma form) */
    /* A 1x1 conv with stride and no padding, H = OH * sh: the forward and data
     * gradient as GEMMs over the strided pixels in place (conv_strided.c), the
     * weight gradient a CONV_ENGINE_TENSOR_CORES step. Never in a step. */
    CONV_ENGINE_STRIDED_GEMM,
} ConvEngine;

/* A BatchNorm-apply (and ReLU) that a conv applies to x as it reads it, in
 * its forward and weight-gradient passes, in place of reading that
 * elementwise tree's materialized output (Target.conv_input_norm; decided
 * by conv_bn.c):
 *     x' = (x - mean[c]) * invstd[c] * gamma[c] + beta[c], then max(x', 0) with relu,
 * rounded to x's dtype, as the tree's own kernel would have stored it.
 * `stats` is the BN's batch statistics buffer (mean in [0, C), invstd in
 * [C, 2C)), gamma and beta its f32 parameters. Padding pads x', so it stays
 * zero. In a data-gradient pass, which writes x, it is on only with
 * ConvGradSums and names the tree whose output gradient x is. */
typedef struct ConvInputNorm {
    bool on, relu;
    int stats, gamma, beta;       /* buffer ids */
} ConvInputNorm;

/* A data-gradient pass (=, not +=) whose dx is the whole output gradient of
 * the BN (+ ReLU) tree in its `norm` also sums, per channel c of dx and per
 * block of the pass (its pixel tile `row` of `rows`), what that BN's
 * backward needs (Target.conv_dgrad_sums_rows; conv_bn.c):
 *     g = dx as stored, times the ReLU's mask (xhat * gamma[c] + beta[c] > 0) with relu,
 *     xhat = (bn_x - mean[c]) * invstd[c],
 *     partials[row][c] = sum of g,  partials[rows + row][c] = sum of g * xhat,
 * bn_x being the BN's input (x's shape). A kernel-IR reduction over the rows
 * then finishes them: the BN's own gradient-sums pass over dx and bn_x is gone. */
typedef struct ConvGradSums {
    bool on;
    int bn_x, partials;           /* buffer ids: the BN's input; f32 [2][rows][C] */
    int rows;
} ConvGradSums;

/* A forward pass (=) whose output y a BatchNorm normalizes also sums, per
 * channel c and per block of the pass (its pixel tile `row` of `rows`),
 * what the BN's batch statistics need (Target.conv_forward_stats_rows):
 * with k the block's first pixel's y as stored,
 *     partials[0][row][c] = sum of (y - k), [1][row][c] = sum of (y - k)^2,
 *     [2][row][c] = the pixels summed, [3][row][c] = k.
 * A kernel-IR reduction over the rows gives the sums about row 0's k, the
 * first element of y, which is the shift the BN's own statistics kernel
 * takes (lower.c): the pass over y that kernel made is gone. */
typedef struct ConvOutStats {
    bool on;
    int partials;                 /* buffer id: f32 [4][rows][Cout] */
    int rows;
} ConvOutStats;

typedef struct ConvStep {
    ConvPass pass;
    ConvGeom g;
    int x, w, y;                  /* buffer ids, see above */
    bool accumulate;
    ConvEngine engine;            /* never CONV_ENGINE_NONE in a step */
    ConvInputNorm norm;           /* off unless the target applies x's BN (see above) */
    ConvGradSums sums;            /* off unless a data-gradient pass sums for x's BN (see above) */
    ConvOutStats stats;           /* off unless a forward pass sums for y's BN (see above) */
} ConvStep;

/* A sum over every process of a data-parallel run, in place, of elements
 * [offset, offset + count) of f32 buffer `buf` (SyncBatchNorm's per-channel
 * sums). The executor hands it to the runtime (executor.h ExecHooks), which
 * alone knows the processes; in a single process it changes nothing. */
typedef struct AllreduceStep {
    int buf;
    int64_t offset, count;
} AllreduceStep;

typedef enum StepKind { STEP_KERNEL, STEP_GEMM, STEP_CONV, STEP_ALLREDUCE } StepKind;

typedef struct Step {
    StepKind kind;
    int kernel;        /* STEP_KERNEL: index into module */
    int *args;         /* STEP_KERNEL: buffer ids, one per kernel KBuf, in order */
    int n_args;
    GemmStep gemm;     /* STEP_GEMM */
    ConvStep conv;     /* STEP_CONV */
    AllreduceStep allreduce; /* STEP_ALLREDUCE */
    char *note;        /* what this step computes, for listings */
} Step;

/* "kernel", "gemm", "conv" or "allreduce", for listings. */
static inline const char *step_kind_name(StepKind k) {
    return k == STEP_KERNEL ? "kernel" : k == STEP_GEMM ? "gemm" : k == STEP_CONV ? "conv" : "allreduce";
}

/* The buffers of a library step into bufs: GEMM (a, b, c) or conv (x, w,
 * y), then a conv's input-norm buffers (stats, gamma, beta), which it only
 * reads, its gradient sums' (bn_x, read; partials, written) and its output
 * statistics' partials (written); -1 where a step has fewer. Returns the
 * index of the one it writes (a conv with sums or statistics also writes
 * bufs[7] or bufs[8]: library_step_writes). An all-reduce reads and writes
 * its one buffer: the first three are it, the first written. */
enum { LIBRARY_STEP_BUFS = 9 };
static inline int library_step_buffers(const Step *s, int bufs[LIBRARY_STEP_BUFS]) {
    for (int q = 3; q < LIBRARY_STEP_BUFS; q++) bufs[q] = -1;
    if (s->kind == STEP_ALLREDUCE) {
        bufs[0] = bufs[1] = bufs[2] = s->allreduce.buf;
        return 0;
    }
    if (s->kind == STEP_CONV) {
        bufs[0] = s->conv.x, bufs[1] = s->conv.w, bufs[2] = s->conv.y;
        if (s->conv.norm.on) bufs[3] = s->conv.norm.stats, bufs[4] = s->conv.norm.gamma, bufs[5] = s->conv.norm.beta;
        if (s->conv.sums.on) bufs[6] = s->conv.sums.bn_x, bufs[7] = s->conv.sums.partials;
        if (s->conv.stats.on) bufs[8] = s->conv.stats.partials;
        return s->conv.pass == CONV_FORWARD ? 2 : s->conv.pass == CONV_DATA_GRAD ? 0 : 1;
    }
    bufs[0] = s->gemm.a, bufs[1] = s->gemm.b, bufs[2] = s->gemm.c;
    return 2;
}

/* The elements a conv step's pass indexes in each slot of
 * library_step_buffers (x, w, y, the norm's three, the sums' two, the
 * statistics' partials); the executor checks its buffers against them, the
 * cost model and the fake GPU's bounds checks read them. */
static inline void conv_step_extents(const ConvStep *c, int64_t e[LIBRARY_STEP_BUFS]) {
    const ConvGeom *g = &c->g;
    const int64_t x = (int64_t)g->n * g->h * g->w * g->cin;
    e[0] = x, e[1] = (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw, e[2] = (int64_t)g->n * g->oh * g->ow * g->cout;
    e[3] = 2 * (int64_t)g->cin, e[4] = e[5] = g->cin;
    e[6] = x, e[7] = 2 * (int64_t)c->sums.rows * g->cin, e[8] = 4 * (int64_t)c->stats.rows * g->cout;
}

/* Whether bufs[q] of library_step_buffers is written, given its `out`. */
static inline bool library_step_writes(int q, int out) { return q == out || q == 7 || q == 8; }

typedef enum Phase {
    PHASE_FORWARD_TRAIN, /* forward in train mode + loss; writes logits, losses, BN running stats */
    PHASE_BACKWARD,      /* gradients, accumulated (+=) into SPACE_GRADS */
    PHASE_UPDATE,        /* the fused optimizer update of all parameters; zeroes SPACE_GRADS */
    PHASE_FORWARD_EVAL,  /* forward in eval mode + loss */
    PHASE_EMA,           /* with `ema` only (else no steps): SPACE_EMA moves towards SPACE_PARAMS and
                            SPACE_BUFFERS; the trainer runs it after every `every`-th update */
    PHASE_COUNT
} Phase;

typedef struct Program {
    KirModule *module;
    BufDesc *bufs;
    int n_bufs, cap_bufs;
    Step *steps[PHASE_COUNT];
    int n_steps[PHASE_COUNT], cap_steps[PHASE_COUNT];
    int64_t space_bytes[SPACE_COUNT];
    int64_t *param_offset;  /* per graph parameter, see above */
    int n_params;
    int64_t n_decayed;      /* SPACE_PARAMS elements [0, n_decayed) get weight decay */
    int batch;
    int input_buf, labels_buf;
    int logits_buf;         /* N x classes, f32, written by both forward phases */
    int loss_buf;           /* N per-sample losses (label smoothing included), f32 */
    /* memory report (bytes), filled by the memory planner */
    int64_t peak_bytes;     /* planned arena size */
    int64_t saved_bytes;    /* kept from forward for backward, at the forward/backward boundary */
    int64_t naive_bytes;    /* sum of all arena buffers without sharing */
    int64_t state_bytes;    /* weights + gradients + optimizer state + BN buffers (+ their EMA) */
    /* additive (compile.h): LOSS_EXTERNAL_GRAD's output gradient (arena,
     * written by the caller before forward) and the input gradient (arena,
     * with CompileOptions.want_input_grad); -1 when absent */
    int dy_buf;
    int input_grad_buf;
} Program;

#endif
