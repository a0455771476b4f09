/*
 * target_cpu.c — the CPU target's answers to the compiler (target.h).
 */
#include "target_cpu.h"

#include "conv_cpu.h"
#include "render_c.h"

/* The CPU's conv steps are library calls (conv_cpu.c): only the module is source. */
static char *render_cpu_program(const Program *p, Error *err) {
    (void)err;
    return render_c(p->module);
}

/* Grouped convolutions with a vector form in conv_cpu.c run as direct
 * steps: no column buffers, 1.3-1.7x the im2col + GEMM path on ResNeXt's
 * grouped 3x3s (docs/performance.md). Dense convolutions stay on GEMMs,
 * which run near the machine's peak (the 3-channel stem too: its direct
 * forward measured slower than columns + GEMM). conv_cpu works on f32. */
static ConvEngine cpu_conv_library_step(const ConvGeom *g, KDType act) {
    return act == KD_F32 && g->groups > 1 && conv_cpu_has_vector_form(g) ? CONV_ENGINE_CUDA_CORES : CONV_ENGINE_NONE;
}

/* fp32 on every CPU: bf16 here only reproduces a GPU's rounding, and is no faster. */
static Precision cpu_auto_precision(int arch) {
    (void)arch;
    return PREC_FP32;
}

/* bf16 runs as on a GPU, rounding every stored activation (for verifying
 * the GPU's numerics here); tf32 is a GEMM policy the CPU has no hardware
 * for, so its GEMMs stay fp32. */
const Target target_cpu = {
    .name = "cpu",
    .source_file = "kernels.c",
    .precisions = 1u << PREC_FP32 | 1u << PREC_TF32 | 1u << PREC_BF16,
    .auto_precision = cpu_auto_precision,
    .buffer_align = 64,
    .gemm_stride_align_bytes = 0,
    .u8_input = false,
    .recompute_chain_limit = 8,
    .recompute_chain_limit_bf16 = 8,
    .backward_masks_from_inputs = false,
    .bn_sums_write_grads = false,
    .conv_library_step = cpu_conv_library_step,
    .render = render_cpu_program,
};
