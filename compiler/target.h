/*
 * target.h — what the compiler asks a target.
 *
 * A target is one folder under target/ (cpu, cuda) that holds everything
 * that knows about one kind of device: its renderer, its compiler driver,
 * its executor and its libraries. Each exports one Target (target_cpu.h,
 * target_cuda.h). compile_training reads it through CompileOptions.target
 * and never guesses what a device can do: where two targets lower an
 * operation differently, the difference is a field here.
 */
#ifndef RXC_TARGET_H
#define RXC_TARGET_H

#include <stdbool.h>

#include "error.h"
#include "kir.h"
#include "program.h"
#include "recipe.h"

typedef struct Target {
    const char *name;          /* "cpu", "cuda": as --device and `rxc emit --target` spell it */
    const char *source_file;   /* what `rxc emit` names the rendered kernels: "kernels.c", "kernels.cu" */
    unsigned precisions;       /* bit (1u << p) for each Precision the target runs */
    /* What `precision auto` means on a device of this target whose compute
     * capability is sm_`arch` (CUDA); arch 0: no device known (the CPU, or
     * compiling without one), where every target answers fp32. The caller
     * that knows the device resolves (target_precision): the compiler
     * itself never sees PREC_AUTO. */
    Precision (*auto_precision)(int arch);
    /* Every arena buffer starts on a multiple of this many bytes (memplan.c),
     * so that the renderer's widest vector access is aligned: 64 on the CPU
     * (a cache line, AVX-512), 16 suffices for CUDA's float4. */
    int buffer_align;
    /* Every GEMM operand's leading dimension and per-group stride is a
     * multiple of this many bytes, so that cuBLAS's tensor-core kernels are
     * always eligible (16 on CUDA: 8 bf16 or 4 f32 elements); im2col columns
     * are padded and narrow groups merged to get it (lower.h, ConvCols).
     * 0: the plain layout (the CPU's BLAS has no such rule). */
    int gemm_stride_align_bytes;
    /* The input batch crosses to the device as uint8 and the first kernel
     * normalizes it, when the augment pipeline ends in a normalize: a
     * quarter of the bytes to copy to a GPU; on the CPU there is no copy. */
    bool u8_input;
    /* How many residual blocks' elementwise trees one backward recompute
     * kernel may expand inline (fuse.c): a recomputed tree whose input is
     * itself recomputed reads that input's inputs again, so a chain of k
     * blocks reads k activations to write one. A large limit keeps only the
     * convolution outputs (least memory: the CPU, where arithmetic and not
     * bytes is the cost); 1 keeps every other block's output from forward
     * instead, so that no recompute reads more than one block's tensors
     * (CUDA, where the elementwise kernels are bound by memory traffic).
     * 0 keeps every tree's output. This is for f32 activations; a recipe's
     * `recompute` setting overrides both fields (recipe.h Recompute). */
    int recompute_chain_limit;
    /* The same for bf16 activations: CUDA keeps every output (0), since a
     * kept bf16 activation costs half an f32 one's memory and every
     * recompute kernel is a pass over memory; the CPU still keeps the least. */
    int recompute_chain_limit_bf16;
    /* The backward of an elementwise tree rooted at a ReLU whose only tensor
     * inputs are BatchNorm inputs (BN + ReLU, BN + BN + add + ReLU) takes the
     * ReLU's mask from recomputing BN-apply on the inputs it reads anyway,
     * instead of loading the ReLU's output: one activation fewer read by both
     * of its kernels, for a few multiplies (CUDA). false: the mask is loaded
     * (the CPU, where the multiplies cost more than the bytes). */
    bool backward_masks_from_inputs;
    /* The BatchNorm-gradient sums kernel of an elementwise tree also writes,
     * per element, every leaf gradient that needs no sums (a residual add's
     * skip edge), and the BN gradient kernel after it reads that gradient
     * back as its dy when it is exactly dy: one pass fewer over the tree's
     * output gradient and ReLU output (CUDA). false: the leaf kernel
     * computes every leaf gradient (the CPU, its summation order as before). */
    bool bn_sums_write_grads;
    /* How the target runs all three passes of this grouped convolution as
     * STEP_CONV library steps (program.h) for activations of type act: on
     * which cores, or CONV_ENGINE_NONE for im2col + GEMM, or (1x1 strided
     * convs) CONV_ENGINE_STRIDED_GEMM. NULL: it runs none. */
    ConvEngine (*conv_library_step)(const ConvGeom *g, KDType act);
    /* Whether the forward and weight-gradient STEP_CONVs of this geometry
     * on this engine can apply the BatchNorm-apply (+ ReLU) that produces
     * their input as they read it (program.h ConvInputNorm), so that the
     * BN's output is never written in training, nor recomputed for the
     * weight gradient (conv_bn.c): on CUDA, where those passes are
     * memory-bound and the tree's kernel moves two activations' bytes.
     * NULL: never (the CPU, whose conv passes read a materialized x). */
    bool (*conv_input_norm)(const ConvGeom *g, ConvEngine engine);
    /* How many rows of per-channel partial sums the data-gradient STEP_CONV
     * of this geometry on this engine writes when it also sums for the BN
     * whose output gradient it writes (program.h ConvGradSums), or 0 if it
     * cannot: the tree's gradient-sums kernel then reduces those rows instead
     * of rereading the whole gradient (CUDA's tensor-core grouped form).
     * NULL: never. */
    int (*conv_dgrad_sums_rows)(const ConvGeom *g, ConvEngine engine);
    /* The same for the forward STEP_CONV's output statistics, when a BN
     * normalizes its output (program.h ConvOutStats): the BN's statistics
     * kernel then reduces those rows instead of rereading the output. NULL:
     * never. */
    int (*conv_forward_stats_rows)(const ConvGeom *g, ConvEngine engine);
    /* The program's kernel source, malloc'd (the target's renderer: the
     * module's kernels, and the library steps it generates code for);
     * NULL with a message in err. */
    char *(*render)(const Program *p, Error *err);
} Target;

static inline bool target_runs_precision(const Target *t, Precision p) { return t->precisions >> p & 1u; }

/* The precision a program for device sm_`arch` of target t runs when the
 * recipe asks for `requested` (see Target.auto_precision). */
static inline Precision target_precision(const Target *t, Precision requested, int arch) {
    return requested == PREC_AUTO ? t->auto_precision(arch) : requested;
}

#endif
