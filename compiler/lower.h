/*
 * lower.h — the training compiler's back half, pass by pass, in the order
 * compile_training (compile.c) runs them. Internal: other users call
 * compile.h. Graph in, Program (program.h) out; there is no training graph:
 * each pass emits kernel IR (kir.h) and library steps directly.
 *
 *   1. fuse.c       decides, per graph node, whether its value is
 *                   materialized (has a buffer) or inlined into its single
 *                   consumer's kernel (elementwise chains: BN-apply, ReLU,
 *                   sigmoid, add, mul, dropout), and which materialized
 *                   values are recomputed in backward instead of kept.
 *      conv_bn.c    then which BN (+ ReLU) trees the target's convs
 *                   apply as they read them, so that training never
 *                   writes them (Target.conv_input_norm); lowering and
 *                   autodiff then ask it which BN sums a conv step adds up.
 *   2. lower.c      the forward steps (train and eval variants) of every
 *                   materialized node: its elementwise tree as one kernel
 *                   (after the BN statistics kernels it needs), or the
 *                   structured op (GEMMs, im2col, the target's conv steps,
 *                   pooling, ...);
 *      loss.c       then the loss kernel and the output gradient.
 *   3. autodiff.c   walks the materialized nodes in reverse and emits each
 *                   primitive's gradient rule; elementwise trees are
 *                   differentiated as expressions, so the backward of a
 *                   fused group is again a fused group.
 *   4. optimizer.c  the single fused update of every parameter.
 *   5. memplan.c    arena offsets from buffer lifetimes over the schedule.
 *
 * kernel_builder.c holds the building blocks all of them use: buffers,
 * kernels under construction, steps and expression helpers. Expression
 * helpers build kir expressions for a node's forward value at a flat batch
 * index: a materialized value is a load of its buffer; an inlined one is
 * expanded from its inputs. In backward, a load of a value that was not
 * kept triggers its recompute kernel first (need_bwd).
 *
 * Wherever targets differ (which convolutions are library steps, buffer
 * alignment), the passes ask CompileOptions.target (target.h).
 */
#ifndef RXC_LOWER_H
#define RXC_LOWER_H

#include <stdbool.h>
#include <stddef.h>

#include "compile.h"
#include "graph.h"
#include "kir.h"
#include "program.h"
#include "error.h"

/* ---- 1. fusion plan (fuse.c) --------------------------------------------- */
/* Most nodes in one elementwise tree (one fused kernel); larger chains are
 * split by materializing inner nodes. Node inputs are at most 3, so a tree
 * has fewer than 3 * MAX_TREE_NODES leaf edges. */
#define MAX_TREE_NODES 64
typedef struct FusePlan {
    int n;
    int *n_uses;        /* edges into consumers (a node used twice by one op counts 2) */
    int *user;          /* the consumer when n_uses == 1, else -1 */
    bool *inlined;      /* value computed inside its consumer's kernel, no buffer */
    bool *recompute;    /* materialized, but rematerialized in backward instead of kept */
    bool *needs_grad;   /* a trainable parameter (or the wanted input) lies upstream */
    bool *elementwise;  /* op kind is an elementwise primitive */
    bool *conv_applies; /* a BN (+ ReLU) root its convs apply to their x (conv_bn.c): training never writes it */
} FusePlan;

int fuse_plan(const Graph *g, const CompileOptions *o, FusePlan *fp, Error *err);
void fuse_plan_free(FusePlan *fp);
/* true if node b (an input of elementwise node u) is broadcast over u */
bool fuse_is_broadcast(const Graph *g, int u, int b);

/* ---- lowering state ------------------------------------------------------ */
typedef enum ExprMode { EM_TRAIN, EM_EVAL, EM_BWD } ExprMode;

typedef struct Lower {
    const Graph *g;
    const CompileOptions *o;
    FusePlan fp;
    Program *p;
    int N;
    int *fwd_buf;        /* per node: buffer of its forward value (forward phases), -1 */
    int *bwd_buf;        /* per node: buffer usable in backward, -1 until known */
    int *grad_buf;       /* per node: its gradient buffer, -1 until the first contribution */
    bool *grad_written;  /* per node: a contribution has been emitted into grad_buf (the next one accumulates) */
    int *grad_deferred;  /* per node: the strided conv whose data gradient into it waits for the others
                          * (conv_strided.c), -1 */
    int *sums_partials;  /* per BN (+ ReLU) tree root: the partial gradient sums its conv's data gradient
                          * writes (program.h ConvGradSums), -1 */
    int *sums_rows;      /* and their rows */
    int *stats_partials; /* per conv node: the partial statistics of its output its forward writes
                          * (program.h ConvOutStats), -1 */
    int *stats_rows;     /* and their rows */
    int *stats_buf;      /* per BN node: [2C] batch mean then invstd; with sync_bn [5C]: those, then the
                          * sums over every rank: of x, the sample count, of (x - mean)^2 (lower.c) */
    int *aux_buf;        /* per max-pool node: index of the max inside its window */
    int *param_buf;      /* per graph parameter: SPACE_PARAMS or SPACE_BUFFERS buffer, -1 */
    int *pgrad_buf;      /* per graph parameter: SPACE_GRADS buffer, -1 */
    int *param_copy_buf; /* per graph parameter: its SPACE_PARAM_COPY buffer once a GEMM reads it, -1 */
    bool *inplace[PHASE_COUNT]; /* per step of a phase: a single-store elementwise kernel (kb_end) */
    int cap_inplace[PHASE_COUNT];
    bool *buf_pin_start, *buf_pin_end; /* per buffer: live from the first / to the last step */
    int cap_pins;
    int counter;         /* for unique kernel names */
    KDType act;          /* activations and their gradients: KD_BF16 under PREC_BF16, else KD_F32 */
    Error *err;          /* never NULL; the pass's first error, and its failure flag */
} Lower;

/* A kernel under construction: the kir kernel plus the Program buffer that
 * each kernel buffer binds to. */
typedef struct KB {
    Kernel *k;
    int *args;
    int n_args, cap_args;
} KB;

/* ---- building blocks (kernel_builder.c) ---------------------------------- */

/* buffers */
int lw_new_buf(Lower *L, const char *name, BufSpace space, int64_t offset, int64_t numel, KDType dt);
int lw_arena(Lower *L, const char *name, int64_t numel);
/* an activation or activation-gradient buffer: bf16 under PREC_BF16, else f32 */
int lw_act(Lower *L, const char *name, int64_t numel);
/* the forward buffer of node v: f32 for the network output (the caller reads logits), else lw_act */
int lw_value_out(Lower *L, int v, const char *name, int64_t numel);
/* v's whole forward value (N samples), named "<lab>:out": its fwd_buf */
int lw_forward_out(Lower *L, int v, const char *lab);
/* kernels and steps */
void kb_begin(KB *kb, Lower *L, const char *base, KernelForm form, int64_t outer, int64_t inner);
int kb_buf(KB *kb, Lower *L, int pbuf, bool written);   /* kernel buffer index for a Program buffer */
/* Finishes the kernel and appends a step to each phase in `phases` (bit mask
 * of 1 << Phase). inplace: a single-store kernel that reads and writes
 * element i only, so a dying input may share bytes with its output. */
void kb_end(KB *kb, Lower *L, const char *fuses, unsigned phases, bool inplace);
void kb_abort(KB *kb);
void lw_gemm(Lower *L, unsigned phases, const GemmStep *gs, const char *note);
/* appends a STEP_CONV to the given phases */
void lw_conv(Lower *L, unsigned phases, const ConvStep *cs, const char *note);
/* appends a STEP_ALLREDUCE of elements [offset, offset + count) of buf (sync_bn) */
void lw_allreduce(Lower *L, unsigned phases, int buf, int64_t offset, int64_t count, const char *note);
#define PH(x) (1u << (x))
/* node v's name for buffers and kernels, malloc'd */
char *lw_label(const Lower *L, int v);
int64_t lw_per_sample(const Lower *L, int v);  /* elements of one sample of v */
int64_t lw_channels(const Node *n);            /* C of an {H,W,C} or {C} node */
/* records the pass's first error in L->err; later ones are dropped, since
 * they usually follow from the first */
void lw_fail(Lower *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool lw_failed(const Lower *L) { return error_is_set(L->err); }

/* expressions */
int e_i(Kernel *k, int64_t v);
int e_f(Kernel *k, double v);
int e_add(Kernel *k, int a, int b);
int e_sub(Kernel *k, int a, int b);
int e_mul(Kernel *k, int a, int b);
int e_div(Kernel *k, int a, int b);
int e_idiv(Kernel *k, int a, int64_t b);
int e_mod(Kernel *k, int a, int64_t b);
int e_muli(Kernel *k, int a, int64_t b);
int e_addi(Kernel *k, int a, int64_t b);
int e_and(Kernel *k, int a, int b);
int e_inrange(Kernel *k, int a, int64_t lo, int64_t hi); /* lo <= a < hi */

/* The one-input elementwise ops (pointwise.c, op_is_pointwise): activations
 * and tensor-number arithmetic. pw_forward is node n's value for input value x; pw_grad the
 * gradient into x for output gradient gy (PyTorch's rule, kinks included). */
int pw_forward(Kernel *k, const Node *n, int x);
int pw_grad(Kernel *k, const Node *n, int x, int gy);
bool pw_grad_reads_input(OpKind op); /* false: pw_grad takes x = -1 */

/* ---- 2. forward (lower.c, loss.c) ----------------------------------------- */

/* value of node v at flat batch index idx (its own N x numel layout) */
int lw_value(Lower *L, KB *kb, int v, int idx, ExprMode mode);
/* the same, but expands v's own elementwise definition even when v has a buffer */
int lw_value_expand(Lower *L, KB *kb, int v, int idx, ExprMode mode);
/* index of broadcast operand b (per channel: {1,1,C} or {C}; per sample:
 * {1,1,1} or {1}) for flat index idx of the node u it broadcasts over */
int lw_bcast_index(Lower *L, Kernel *k, int u, int b, int idx);
/* index of operand x of elementwise node u for u's flat index idx: idx, or
 * lw_bcast_index when x broadcasts */
int lw_operand_index(Lower *L, Kernel *k, int u, int x, int idx);
/* x at flat index idx after dropout or drop_path node v's mask (the forward and its
 * gradient draw the same numbers) */
int lw_random_drop(Lower *L, Kernel *k, int v, int idx, int x);
/* backward: the buffer holding v's forward value, recomputing it first if it was not kept */
int need_bwd(Lower *L, int v);
/* the buffer of v's forward value in mode */
int lw_value_buf(Lower *L, int v, ExprMode mode);

/* every materialized node's forward steps, then lower_loss */
int lower_forward(Lower *L);
/* emits v's elementwise tree into out (mode EM_BWD: a recompute) */
void lower_tree_store(Lower *L, int v, int out, ExprMode mode, unsigned phases);
/* The im2col + GEMM form of a convolution (conv_cols.c). Columns are
 * (group, ci, kh, kw), PyTorch's weight order. Where the target wants GEMM
 * operands aligned (Target.gemm_stride_align_bytes), each group's kg
 * columns are padded with zero columns to kgp, and groups too narrow for an
 * aligned per-group stride of the output are merged `merge` at a time into
 * one GEMM of a batched step with a block-diagonal weight; elsewhere
 * kgp == kg and merge == 1, the plain layout. */
typedef struct ConvCols {
    int groups, cog, cig;     /* the conv's groups and channels per group */
    int64_t kg, kgp;          /* a group's columns, and its columns in the column buffer */
    int64_t row;              /* columns per row of the buffer: groups * kgp */
    int merge, batch;         /* conv groups per GEMM batch entry; batch entries (groups / merge) */
    int nb;                   /* output channels per entry: merge * cog */
    int64_t kb;               /* columns per entry: merge * kgp */
} ConvCols;
ConvCols conv_cols(const Lower *L, int conv);
/* whether the layout is the plain one (no padding, no merging) */
static inline bool conv_cols_plain(const ConvCols *c) { return c->kgp == c->kg && c->merge == 1; }
/* im2col of x (buffer xb, node geometry of conv c) into a new buffer; returns it */
int lower_im2col(Lower *L, int conv, int xb, unsigned phases);
/* the B operand of conv's GEMMs: gemm_weight for the plain layout, else a
 * copy [batch][nb][kb] in the activation type, block-diagonal and padded */
int conv_gemm_weight(Lower *L, int conv, unsigned phases);
/* wg (conv's [G][cog][kg] f32 weight gradient) += the diagonal blocks of
 * t, the [batch][nb][kb] f32 result of the weight-gradient GEMMs */
void conv_wgrad_scatter(Lower *L, int conv, int t, int wg, const char *lab);
/* the column of input channel ci, tap (kh, kw) in a row of conv's buffer */
int conv_col_index(Kernel *k, const ConvCols *c, const ConvAttr *a, int ci, int kh, int kw);

bool conv_is_pointwise(const ConvAttr *a); /* 1x1, stride 1, no padding, one group: a plain GEMM */
/* whether (and on which cores) conv node v's three passes run as STEP_CONVs:
 * the target's call (Target.conv_library_step); plain 1x1 convs are always
 * GEMMs (CONV_ENGINE_NONE) */
ConvEngine conv_as_library_step(const Lower *L, int v);
/* conv_strided.c, for CONV_ENGINE_STRIDED_GEMM: out (+)= the forward (beta
 * 0 or 1, over a bias fill), and xt (= or += with acc) the data gradient
 * from dy */
void lower_conv_strided_forward(Lower *L, int v, int out, float beta, unsigned phases, const char *lab);
/* the data gradient of strided conv v: now when its input's gradient has a
 * contribution already, else deferred (Lower.grad_deferred) until autodiff
 * reaches the input, which conv_strided_flush then emits */
void conv_strided_data_grad(Lower *L, int v);
void conv_strided_flush(Lower *L, int x);
/* the STEP_CONV geometry of conv node v */
ConvGeom conv_geom(const Lower *L, int v);
/* conv_bn.c: sets FusePlan.conv_applies (after fuse_plan, before
 * lower_forward); then, for a STEP_CONV of conv node `conv` in mode (EM_TRAIN
 * forward, EM_BWD weight gradient), the buffer its x reads and its input
 * norm: the BN's input and the BN where the conv applies its input's tree,
 * else the input's own buffer and no norm (always in EM_EVAL) */
void plan_conv_norm_inputs(Lower *L);
int conv_norm_x(Lower *L, int conv, ExprMode mode, ConvInputNorm *norm);
/* For the data-gradient step cs of conv node `conv`: where its input is a
 * tree the conv applies, it alone feeds, and the target can, cs also writes
 * that BN's gradient sums (program.h ConvGradSums; cs->norm, cs->sums), and
 * Lower.sums_partials records them for the tree's backward */
void conv_dgrad_sums(Lower *L, int conv, ConvStep *cs);
/* For the training forward step cs of conv node `conv`: where a BN reads its
 * output and the target can, cs also writes that output's statistics
 * (program.h ConvOutStats; cs->stats), and Lower.stats_partials records them
 * for the BN's statistics kernel */
void conv_out_stats(Lower *L, int conv, ConvStep *cs);
/* the B operand of a GEMM with parameter p: the f32 parameter, or under
 * PREC_BF16 its bf16 copy in SPACE_PARAM_COPY (program.h), which the update
 * keeps current, so no phase casts it (`phases` is where the GEMM runs) */
int gemm_weight(Lower *L, int param, unsigned phases);
/* the leading dimension a linear layer's GEMMs give its output rows (and
 * their gradient): out_features, padded where the target aligns GEMM
 * operands (Target.gemm_stride_align_bytes) and out_features misses it */
int linear_padded_width(const Lower *L, int out_features);
/* PyTorch's avg_pool2d divisor of output (oh, ow), a float expression */
int pool_divisor(Kernel *k, const PoolAttr *p, int64_t H, int64_t W, int oh, int ow);

/* the loss kernel (loss.c): per-sample losses and the output gradient */
void lower_loss(Lower *L);

/* ---- the newer structured ops, forward and backward (layer_ops.c) ------------ */
void lower_param_value(Lower *L, int v);
void param_value_backward(Lower *L, int v);
/* OP_CHANNEL_SLICE and OP_CHANNEL_SHUFFLE */
void lower_channel_gather(Lower *L, int v);
void channel_gather_backward(Lower *L, int v);
/* OP_GROUPNORM and OP_LAYERNORM (norms.c) */
void lower_norm(Lower *L, int v);
void norm_backward(Lower *L, int v);

/* ---- 3. backward (autodiff.c) ---------------------------------------------- */
int autodiff_backward(Lower *L);
/* gradient target of v: the buffer, and whether this contribution accumulates */
int grad_target(Lower *L, int v, bool *accumulate);
/* v's gradient buffer, allocated if need be, without emitting a contribution (-1: v needs none) */
int grad_claim(Lower *L, int v);

/* ---- 4. the optimizer update (optimizer.c) ---------------------------------- */
int lower_update(Lower *L);
/* 4b. with CompileOptions.ema_decay: PHASE_EMA's kernels (ema.c) */
int lower_ema(Lower *L);
/* LAMB's kernels (optimizer_lamb.c) over the params and grads buffers;
 * factor_buf: the gradient clipping factor's buffer, or -1 */
int lower_update_lamb(Lower *L, int params_buf, int grads_buf, int factor_buf);
/* SPACE_STATE floats LAMB needs after its m and v: per-chunk sums and per-tensor ratios */
int64_t lamb_scratch_floats(const Graph *g);

/* ---- 5. memory planning (memplan.c) ----------------------------------------- */
int memplan_run(Lower *L, Error *err);

#endif
