/*
 * target_cuda.c — the CUDA target's answers to the compiler (target.h).
 */
#include "target_cuda.h"

#include <stddef.h>

#include "conv_cuda.h"
#include "cuda_api.h"
#include "render_cuda.h"

static char *render_cuda_source(const Program *p, Error *err) { return render_cuda_program(p, NULL, NULL, err); }

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

/* Grouped convolutions that conv_cuda.c has kernels for (power-of-two
 * group widths up to 64: ResNeXt's 3x3s) run as direct STEP_CONVs, in f32
 * or bf16 activations: no column buffers; bf16 on tensor cores where the
 * channel counts allow 16-wide tiles (conv_cuda_engine). Every other
 * convolution is im2col + cuBLAS GEMMs (dense 1x1s directly). */
static ConvEngine cuda_conv_library_step(const ConvGeom *g, KDType act) {
    return conv_cuda_engine(g, act);
}

/* Buffers are 64-byte aligned, a multiple of float4's 16 bytes. */
const Target target_cuda = {
    .name = "cuda",
    .source_file = "kernels.cu",
    .precisions = 1u << PREC_FP32 | 1u << PREC_TF32 | 1u << PREC_BF16,
    .auto_precision = cuda_auto_precision,
    .buffer_align = 64,
    .gemm_stride_align_bytes = 16,
    .u8_input = true,
    .recompute_chain_limit = 1,
    .recompute_chain_limit_bf16 = 0,
    .backward_masks_from_inputs = true,
    .bn_sums_write_grads = true,
    .conv_library_step = cuda_conv_library_step,
    .conv_input_norm = conv_cuda_input_norm,
    .conv_dgrad_sums_rows = conv_cuda_dgrad_sums_rows,
    .conv_forward_stats_rows = conv_cuda_forward_stats_rows,
    .render = render_cuda_source,
};
