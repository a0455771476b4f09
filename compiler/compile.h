/*
 * compile.h — the training compiler's entry point: Graph -> Program.
 *
 * compile_training runs the back half of the compiler for one graph, batch
 * size and optimizer: fusion decisions (fuse.c), forward lowering to kernel
 * IR + GEMM steps (lower.c), reverse-mode differentiation of every primitive
 * (autodiff.c), the fused optimizer update, and memory planning (memplan.c).
 * The result runs on any executor (runtime/executor.h); the trainer sets
 * the runtime scalars (kir.h ScalarId) each step.
 *
 * Loss modes:
 *   LOSS_CROSS_ENTROPY  torch.nn.CrossEntropyLoss(label_smoothing=eps), mean
 *                       reduction: per-sample losses go to Program.loss_buf,
 *                       the gradient is scaled by sc[SC_GRAD_SCALE]
 *                       (= 1 / (batch * accum_steps), set by the trainer).
 *   LOSS_EXTERNAL_GRAD  for op-level gradient checks: the gradient of the
 *                       loss w.r.t. the network output is given in the arena
 *                       buffer Program.dy_buf (same layout as the output:
 *                       N x H x W x C, NHWC, or N x C), written by the caller
 *                       before PHASE_FORWARD_TRAIN and used as is (NOT
 *                       scaled by SC_GRAD_SCALE). loss_buf[n] = sum over the
 *                       sample's outputs of output * dy, so the gradients
 *                       are exactly those of that loss. Labels are unused.
 *
 * Buffers the caller reads (ids into Program.bufs, arena buffers stay valid
 * until the next PHASE_FORWARD_*): logits_buf (the network output, N x
 * numel(output node), NHWC order), loss_buf, and with want_input_grad the
 * gradient w.r.t. the (normalized, f32) input image, input_grad_buf
 * (N x H x W x C, NHWC), valid after PHASE_BACKWARD.
 */
#ifndef RXC_COMPILE_H
#define RXC_COMPILE_H

#include <stdbool.h>
#include <stddef.h>

#include "graph.h"
#include "program.h"
#include "recipe.h"
#include "target.h"
#include "error.h"

typedef enum LossMode { LOSS_CROSS_ENTROPY, LOSS_EXTERNAL_GRAD } LossMode;

typedef struct CompileOptions {
    int batch;                 /* N, >= 1 */
    Precision precision;       /* PREC_FP32; PREC_TF32 (GEMM policy only); PREC_BF16: bf16 activations,
                                  activation gradients and GEMM weight copies, fp32 master weights,
                                  gradients, optimizer state, BN statistics, logits and loss */
    LossMode loss;
    double label_smoothing;    /* cross-entropy only, in [0, 1) */
    OptKind opt;               /* SGD (momentum, nesterov, coupled decay), Adam (L2), AdamW, LAMB */
    bool nesterov;
    double lamb_max_grad_norm; /* LAMB: > 0: timm's in-optimizer global-norm clipping (optimizer_lamb.c) */
    bool lamb_trust_clip;      /* LAMB: trust ratio clamped to at most 1 */
    bool lamb_always_adapt;    /* LAMB: trust ratio on tensors without weight decay too */
    double clip_grad_norm;     /* > 0: gradients scaled so that their global L2 norm is at most this */
    double ema_decay;          /* > 0: SPACE_EMA and PHASE_EMA (program.h), the EMA of the weights and BN
                                  buffers with this decay */
    bool mix_labels;           /* cross-entropy against sample i's label mixed with sample N-1-i's, weight
                                  SC_MIX_PARTNER (mixup/cutmix, runtime/mix.h) */
    bool no_decay_bn_bias;     /* BN weights/biases and conv/linear biases get no weight decay */
    bool normalize_u8_input;   /* SPACE_INPUT holds uint8 NHWC; the first kernel computes (x/255 - mean)/std */
    float mean[3], std[3];     /* in 0..1 units, as torchvision's Normalize */
    bool want_input_grad;      /* also compute d loss / d input into input_grad_buf */
    bool no_recompute;         /* keep every activation backward reads instead of recomputing BN-apply/ReLU */
    Recompute recompute;       /* how far backward recomputes elementwise trees (recipe.h); auto: the target's */
    bool sync_bn;              /* BatchNorm's per-channel sums go through STEP_ALLREDUCEs (program.h), so that
                                  in data-parallel training they cover every process's samples (SyncBatchNorm) */
    const Target *target;      /* the device the program is for: what it can run and how (target.h) */
} CompileOptions;

/* Defaults from a recipe for a target: batch, precision, optimizer,
 * smoothing, no-decay, cross-entropy loss, f32 input, recompute on.
 * `precision auto` becomes what it means with no device known (fp32);
 * a caller that knows its device sets target_precision(target,
 * r->precision, arch) instead. */
void compile_options_from_recipe(CompileOptions *o, const Recipe *r, int batch, const Target *target);

/* Returns the Program, or NULL with a one-line message in err. */
Program *compile_training(const Graph *g, const CompileOptions *o, Error *err);
void program_free(Program *p);

/* Re-derives buffer lifetimes from the step lists (independently of the
 * planner) and checks that no two arena buffers that are live at the same
 * step share bytes, that every buffer fits in its space, and that
 * peak <= naive. Returns 0, or -1 with the first violation in err. */
int memplan_verify(const Program *p, Error *err);

#endif
