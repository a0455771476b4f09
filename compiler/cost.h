/*
 * cost.h — what one step of a compiled Program (program.h) costs, in work
 * and in memory traffic, independent of any device: FLOPs, the bytes it
 * reads and the bytes it writes, and whether its math is matrix math a
 * tensor core could do. A target turns these into time with its own peak
 * figures (target/cuda/gpu_specs.h: the roofline of `rxc compile --estimate`).
 *
 * Counting rules (an estimate, stated so that it can be argued with):
 *
 *   bytes     Each distinct byte a step touches counts once per direction.
 *             STEP_KERNEL: per Program buffer (kernel buffers bound to the
 *             same buffer are merged), the index range of every load (for
 *             reads) and every store (for writes; an accumulating store
 *             reads too) comes from the shared range analysis
 *             (kir_analysis.h); a buffer's bytes are the length of the
 *             union of its ranges, at most its numel, times its element
 *             size. A range the analysis cannot bound counts the whole
 *             buffer. Strided accesses count their whole span: a GPU reads
 *             whole 32-byte sectors, so a stride of a few elements moves the
 *             span anyway. Caches are not modelled: a byte read twice by
 *             one kernel counts once, a byte read by two kernels counts
 *             twice.
 *             STEP_GEMM: per operand, batch x rows x cols elements, or the
 *             span of the strided batch when that is smaller (operands
 *             shared between batch entries); C is read too when beta != 0.
 *             STEP_CONV: x, w and y once each; the output is read too when
 *             the pass accumulates.
 *   flops     STEP_GEMM: 2 m n k per batch entry. STEP_CONV: 2 N OH OW Cout
 *             (Cin/groups) KH KW per pass. STEP_KERNEL: every float
 *             operation node (unary, binary, a reduce's add, an
 *             accumulator's update) once per value of the loop variables it
 *             depends on (the hoisting the renderers do); transcendentals
 *             count as one; integer index arithmetic is not counted.
 *   tensor    A GEMM runs on tensor cores when both operands are bf16, or
 *   cores     when they are f32 and TF32 is on (tf32 below), and every
 *             operand's leading dimension, batch stride and offset are
 *             multiples of 16 bytes: cuBLAS documents those alignments for
 *             its tensor-core paths, and a GEMM without them is counted as
 *             running on CUDA cores (an assumption). A STEP_CONV is
 *             assumed to when x and w are bf16 and both of a group's widths
 *             (Cin/groups, Cout/groups) are at least 16, the smallest bf16
 *             MMA tile; narrower groups run on CUDA cores. Kernels never do.
 */
#ifndef RXC_COST_H
#define RXC_COST_H

#include <stdbool.h>

#include "program.h"

typedef enum CostMath {
    COST_MATH_SCALAR,     /* float math on ordinary (CUDA) cores, f32 */
    COST_MATH_TF32,       /* tensor cores, tf32 inputs, f32 accumulate */
    COST_MATH_BF16,       /* tensor cores, bf16 inputs, f32 accumulate */
} CostMath;

typedef struct StepCost {
    double flops;
    double bytes_read, bytes_written;
    bool matmul;          /* a GEMM or a convolution: counts in the tensor-core share */
    CostMath math;        /* where its FLOPs run */
} StepCost;

/* The cost of step s of program p. tf32: f32 GEMMs run as TF32 (precision
 * tf32, a setting of the executor rather than of the program). */
StepCost cost_of_step(const Program *p, const Step *s, bool tf32);

#endif
