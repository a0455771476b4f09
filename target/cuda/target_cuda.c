/*
 * target_cuda.c — the CUDA target's answers to the compiler (target.h).
 */
#include "target_cuda.h"

#include <stddef.h>

#include "render_cuda.h"

static char *render_cuda_source(const KirModule *m) { return render_cuda(m, NULL); }

/* No library convolutions yet: every convolution is im2col + cuBLAS GEMMs.
 * Buffers are 64-byte aligned, a multiple of float4's 16 bytes. */
const Target target_cuda = {
    .name = "cuda",
    .source_file = "kernels.cu",
    .precisions = 1u << PREC_FP32 | 1u << PREC_TF32 | 1u << PREC_BF16,
    .buffer_align = 64,
    .u8_input = true,
    .conv_library_step = NULL,
    .render = render_cuda_source,
};
