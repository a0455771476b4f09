/*
 * target_cuda.c — the CUDA target's answers to the compiler (target.h).
 */
#include "target_cuda.h"

#include <stddef.h>

#include "conv_cuda.h"
#include "render_cuda.h"

static char *render_cuda_source(const Program *p, Error *err) { return render_cuda_program(p, NULL, NULL, err); }

/* Grouped convolutions that conv_cuda.c has kernels for (power-of-two
 * group widths up to 64: ResNeXt's 3x3s) run as direct STEP_CONVs, in f32
 * or bf16 activations: no column buffers. Every other convolution is
 * im2col + cuBLAS GEMMs (dense 1x1s directly). */
static bool cuda_conv_library_step(const ConvGeom *g, KDType act) {
    return (act == KD_F32 || act == KD_BF16) && conv_cuda_supported(g);
}

/* Buffers are 64-byte aligned, a multiple of float4's 16 bytes. */
const Target target_cuda = {
    .name = "cuda",
    .source_file = "kernels.cu",
    .precisions = 1u << PREC_FP32 | 1u << PREC_TF32 | 1u << PREC_BF16,
    .buffer_align = 64,
    .u8_input = true,
    .conv_library_step = cuda_conv_library_step,
    .render = render_cuda_source,
};
