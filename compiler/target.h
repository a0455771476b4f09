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
    /* How the target runs all three passes of this grouped convolution as
     * STEP_CONV library steps (program.h) for activations of type act: on
     * which cores, or CONV_ENGINE_NONE for im2col + GEMM, or (1x1 strided
     * convs) CONV_ENGINE_STRIDED_GEMM. NULL: it runs none. */
    ConvEngine (*conv_library_step)(const ConvGeom *g, KDType act);
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
