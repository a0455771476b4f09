/*
 * target_cuda.c — the CUDA target's answers to the compiler (target.h).
 */
#include "target_cuda.h"

#include <stddef.h>

#include "cuda_api.h"
#include "render_cuda.h"

static char *render_cuda_source(const KirModule *m) { return render_cuda(m, NULL); }

/* As PyTorch's AMP: bf16 mixed precision where bf16 tensor cores exist
 * (Ampere, sm_80, and newer), fp32 on older GPUs and with no device known. */
static Precision cuda_auto_precision(int arch) { return arch >= 80 ? PREC_BF16 : PREC_FP32; }

int target_cuda_device_arch(int ordinal, Error *err) {
    if (!cuda_available(err)) {
        error_prefix(err, "cuda requested but no GPU");
        return -1;
    }
    CudaApi api = {0};
    int sm = -1;
    if (cuda_api_load(&api, CUDA_LIB_DRIVER, err) == 0) {
        CUresult r = api.cuInit(0);
        if (r != 0) error_set(err, "cuInit: %s", cuda_result_text(&api, r));
        else sm = cuda_device_sm(&api, ordinal, err);
    }
    cuda_api_unload(&api);
    return sm;
}

/* No library convolutions yet: every convolution is im2col + cuBLAS GEMMs.
 * Buffers are 64-byte aligned, a multiple of float4's 16 bytes. */
const Target target_cuda = {
    .name = "cuda",
    .source_file = "kernels.cu",
    .precisions = 1u << PREC_FP32 | 1u << PREC_TF32 | 1u << PREC_BF16,
    .auto_precision = cuda_auto_precision,
    .buffer_align = 64,
    .gemm_stride_align_bytes = 16,
    .u8_input = true,
    .conv_library_step = NULL,
    .render = render_cuda_source,
};
