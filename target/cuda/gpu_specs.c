/*
 * gpu_specs.c — the GPU table (published peaks, each with its source) and
 * the roofline estimate of one step on a GPU (gpu_specs.h). How many
 * launches a kernel makes and the scratch its chunked reductions use come
 * from the CUDA renderer's launch table, so the estimate follows the code
 * that actually runs.
 */
#include "gpu_specs.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "render_cuda.h"
#include "util.h"

static const GpuSpec gpus[] = {
    /* NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column, 2024): BF16
     * Tensor Core 1,979 TFLOPS and TF32 Tensor Core 989 TFLOPS, both "with
     * sparsity", so dense is half; FP32 67 TFLOPS; GPU memory bandwidth 4.8 TB/s. */
    {"h200", "NVIDIA H200 SXM 141GB", 989.5e12, 494.5e12, 67e12, 4.8e12},
    /* NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column): BF16 Tensor
     * Core 1,979 TFLOPS and TF32 989 TFLOPS with sparsity (dense: half);
     * FP32 67 TFLOPS; GPU memory bandwidth 3.35 TB/s. */
    {"h100", "NVIDIA H100 SXM 80GB", 989.5e12, 494.5e12, 67e12, 3.35e12},
    /* NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM column): BF16
     * Tensor Core 312 TFLOPS and TF32 Tensor Core 156 TFLOPS dense (624 and
     * 312 with sparsity); FP32 19.5 TFLOPS; GPU memory bandwidth 2,039 GB/s. */
    {"a100", "NVIDIA A100 SXM 80GB", 312e12, 156e12, 19.5e12, 2.039e12},
};

const GpuSpec *gpu_spec_find(const char *name) {
    for (size_t i = 0; name && i < sizeof gpus / sizeof gpus[0]; i++)
        if (!strcmp(gpus[i].name, name)) return &gpus[i];
    return NULL;
}

const char *gpu_spec_names(void) { return "h200|h100|a100"; }

/* Whether text contains word, ignoring case. */
static bool contains_nocase(const char *text, const char *word) {
    size_t n = strlen(word);
    for (const char *t = text; *t; t++) {
        size_t i = 0;
        while (i < n && t[i] && tolower((unsigned char)t[i]) == tolower((unsigned char)word[i])) i++;
        if (i == n) return true;
    }
    return false;
}

const GpuSpec *gpu_spec_for_device(const char *device_name, int sm, char *note, size_t note_len) {
    note[0] = 0;
    for (size_t i = 0; device_name && i < sizeof gpus / sizeof gpus[0]; i++)
        if (contains_nocase(device_name, gpus[i].name)) return &gpus[i];
    const GpuSpec *nearest = gpu_spec_find(sm >= 100 ? "h200" : sm >= 90 ? "h100" : "a100");
    snprintf(note, note_len,
             "the cost model's table has no GPU named in \"%s\": its times are for the nearest known by compute "
             "capability (sm_%d): %s",
             device_name ? device_name : "?", sm, nearest->full_name);
    return nearest;
}

const char *gpu_phase_key(Phase ph) {
    static const char *const keys[PHASE_COUNT] = {"forward", "backward", "update", "eval"};
    return (int)ph >= 0 && ph < PHASE_COUNT ? keys[ph] : "?";
}

const char *gpu_step_kind(const Step *s) {
    return s->kind == STEP_KERNEL ? "kernel" : s->kind == STEP_GEMM ? "gemm" : s->kind == STEP_CONV ? "conv" : "allreduce";
}

char *gpu_step_label(const Program *p, const Step *s) {
    static const char *const conv_pass_names[] = {"forward", "data-grad", "weight-grad"};
    if (s->kind == STEP_KERNEL) return xstrdup(p->module->kernels[s->kernel]->name);
    if (s->kind == STEP_CONV) return xasprintf("conv %s", conv_pass_names[s->conv.pass]);
    if (s->kind != STEP_GEMM) return xstrdup(gpu_step_kind(s));
    const GemmStep *g = &s->gemm;
    if (g->batch > 1) return xasprintf("gemm %dx%dx%d x%d", g->m, g->n, g->k, g->batch);
    return xasprintf("gemm %dx%dx%d", g->m, g->n, g->k);
}

static double peak_flops(const GpuSpec *gpu, CostMath math) {
    return math == COST_MATH_BF16 ? gpu->bf16_tensor_flops
           : math == COST_MATH_TF32 ? gpu->tf32_tensor_flops
                                    : gpu->fp32_flops;
}

StepEstimate gpu_estimate_step(const GpuSpec *gpu, const Program *p, const Step *s, bool tf32) {
    StepEstimate e = {.cost = cost_of_step(p, s, tf32), .launches = 1};
    if (s->kind == STEP_KERNEL && p->module && s->kernel >= 0 && s->kernel < p->module->n) {
        CudaLaunch l = render_cuda_launch(p->module->kernels[s->kernel]);
        if (l.has_finish) {
            /* NAME writes the chunk partials, NAME_finish reads them back */
            e.launches = 2;
            e.scratch_bytes = (double)l.scratch_floats * sizeof(float);
            e.cost.bytes_written += e.scratch_bytes;
            e.cost.bytes_read += e.scratch_bytes;
        }
    } else if (s->kind == STEP_CONV && s->conv.pass == CONV_WEIGHT_GRAD) {
        e.launches = 2; /* issue 13: the weight gradient reduces in two deterministic stages */
    }
    double math_s = e.cost.flops / peak_flops(gpu, e.cost.math);
    double memory_s = (e.cost.bytes_read + e.cost.bytes_written) / gpu->hbm_bytes_per_s;
    e.seconds = (math_s > memory_s ? math_s : memory_s) + e.launches * GPU_LAUNCH_OVERHEAD_S;
    return e;
}
