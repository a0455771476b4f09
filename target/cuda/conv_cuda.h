/*
 * conv_cuda.h — direct grouped convolutions on the GPU: the CUDA source of
 * the STEP_CONV passes (program.h) of a Program, specialised to each conv's
 * geometry, and the launch of every kernel.
 *
 * Each distinct (pass, geometry, accumulate, engine, activation dtypes) of the
 * Program's conv steps is one kernel (equal steps share it: ResNeXt repeats
 * its blocks). Every kernel has the parameters
 *     RXC_GLOBAL(X) x, RXC_GLOBAL(const float) w / RXC_GLOBAL(float) w,
 *     RXC_GLOBAL(Y) y, const double *sc, RXC_GLOBAL(float) scratch
 * with the ConvStep's roles (x: the input or its gradient, w: the f32
 * weight or its gradient, y: the output or its gradient), and with an input
 * norm (ConvInputNorm) three more: RXC_GLOBAL(const float) norm_stats,
 * norm_gamma, norm_beta, and with gradient sums (ConvGradSums) two more:
 * RXC_GLOBAL(const X) sums_bn_x, RXC_GLOBAL(float) sums_partials, and with
 * output statistics (ConvOutStats) RXC_GLOBAL(float) stats_partials; the weight
 * gradient also has NAME_finish, launched after NAME on the same stream.
 * The source follows render_cuda's prelude (RXC_GLOBAL, RXC_SHARED, bf16);
 * with tensor-core kernels it includes <mma.h> (tests/emu/wmma_emu.h under
 * the emulator) and needs the toolkit's headers.
 */
#ifndef RXC_CONV_CUDA_H
#define RXC_CONV_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "program.h"
#include "render_cuda.h"

/* Whether conv_cuda has kernels for all three passes of this geometry
 * (groups > 1, power-of-two group widths up to 64, tiles that fit in 48 KB
 * of shared memory, tensors indexable with 32 bits). */
bool conv_cuda_supported(const ConvGeom *g);

/* Which cores the three passes of a supported geometry use for activations
 * of type act: tensor cores for bf16 where every pass has a wmma form (16-wide
 * channel tiles: group widths of 16 or more, or narrower groups packed
 * block-diagonally), CUDA cores otherwise; CONV_ENGINE_NONE when unsupported. */
ConvEngine conv_cuda_engine(const ConvGeom *g, KDType act);

/* Whether the forward and weight-gradient passes of this geometry on this
 * engine can apply x's input norm (program.h ConvInputNorm) as they stage
 * x: the grouped forms can, the implicit-GEMM form cannot. */
bool conv_cuda_input_norm(const ConvGeom *g, ConvEngine engine);

/* The rows of per-channel partial sums (program.h ConvGradSums) the
 * data-gradient pass of this geometry on this engine writes: one per block's
 * pixel tile, on the tensor-core form; 0 where it cannot. */
int conv_cuda_dgrad_sums_rows(const ConvGeom *g, ConvEngine engine);

/* The same for the forward pass's output statistics (program.h ConvOutStats). */
int conv_cuda_forward_stats_rows(const ConvGeom *g, ConvEngine engine);

typedef struct ConvCudaKernel {
    char name[160];
    ConvStep step;            /* the key: pass, geometry, accumulate (buffer ids of the first user) */
    KDType x_type, y_type;    /* f32 or bf16; the weight is f32 */
    CudaLaunch launch;        /* grid, block, has_finish, finish_grid/_block, scratch_floats */
} ConvCudaKernel;

typedef struct ConvCudaSet {
    ConvCudaKernel *kernels;
    int n;
    int *step_kernel[PHASE_COUNT]; /* per step of each phase: its kernel, or -1 when not a STEP_CONV */
} ConvCudaSet;

/* Renders one kernel per distinct conv step of p into *source (malloc'd)
 * and fills set (free with conv_cuda_set_free). Returns -1 with a message
 * for a step conv_cuda cannot run (its buffers' dtypes or an unsupported
 * geometry). */
int conv_cuda_render(const Program *p, ConvCudaSet *set, char **source, Error *err);

void conv_cuda_set_free(ConvCudaSet *set);

/* The whole CUDA translation unit of p: with tensor-core convs the wmma
 * preamble, render_cuda's kernels of the module (launches as render_cuda
 * gives them), then the conv kernels (convs may be NULL). NULL when a conv
 * step cannot be rendered. */
char *render_cuda_program(const Program *p, CudaLaunch **launches, ConvCudaSet *convs, Error *err);

/* Bytes a pass of the step reads and writes on the GPU (each tensor once:
 * x + w + y, scratch partials included), for the traffic report. */
int64_t conv_cuda_bytes(const ConvStep *s, KDType x_type, KDType y_type);

#endif
