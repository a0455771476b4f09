/*
 * gpu_specs.h — published peak figures of the GPUs rxc is tuned for, and
 * the roofline that turns a step's cost (compiler/cost.h) into a time on
 * one of them: what `rxc compile --estimate` prints, a cost model estimate,
 * never a measurement.
 *
 * Roofline time of a step = max(flops / peak of the math it runs on,
 * bytes read + written / HBM bandwidth) + launches x GPU_LAUNCH_OVERHEAD_S.
 * Peaks are the datasheets' dense figures (no 2:4 sparsity); real kernels
 * reach a fraction of them, so the bound is optimistic by construction.
 */
#ifndef RXC_GPU_SPECS_H
#define RXC_GPU_SPECS_H

#include <stdbool.h>
#include <stddef.h>

#include "cost.h"
#include "program.h"

/* An assumption, not a datasheet figure: the GPU-side cost of one kernel
 * launch (a CUDA graph replays launches, so no CPU time): the tail of one
 * kernel, the ramp of the next, about 2-3 us for small grids on Hopper. */
#define GPU_LAUNCH_OVERHEAD_S 2.5e-6

typedef struct GpuSpec {
    const char *name;          /* "h200", as --gpu spells it */
    const char *full_name;
    double bf16_tensor_flops;  /* dense bf16 tensor-core FLOP/s (f32 accumulate) */
    double tf32_tensor_flops;  /* dense tf32 tensor-core FLOP/s */
    double fp32_flops;         /* f32 FLOP/s on CUDA cores (FMA = 2) */
    double hbm_bytes_per_s;
} GpuSpec;

/* The GPU named name (case-sensitive: h200, h100, a100), or NULL. */
const GpuSpec *gpu_spec_find(const char *name);
/* The names gpu_spec_find knows, "h200|h100|a100", for usage messages. */
const char *gpu_spec_names(void);
/* The GPU the driver names device_name (cuDeviceGetName): the table's GPU
 * whose model ("H200", "H100", "A100", any case) the name contains; else
 * the nearest known by compute capability sm (sm_100 and newer: h200, sm_90:
 * h100, older: a100) with a sentence saying so in note ("" when matched). */
const GpuSpec *gpu_spec_for_device(const char *device_name, int sm, char *note, size_t note_len);

/* How `rxc compile --estimate` and RXC_PROFILE name a step: "forward",
 * "backward", "update", "eval"; "kernel", "gemm", "conv", "allreduce"; the
 * kernel's name, "conv data-grad" or "gemm MxNxK[ xBATCH]" (malloc'd). */
const char *gpu_phase_key(Phase ph);
const char *gpu_step_kind(const Step *s);
char *gpu_step_label(const Program *p, const Step *s);

typedef struct StepEstimate {
    StepCost cost;
    int launches;              /* kernel launches the step makes */
    double scratch_bytes;      /* KF_COLS chunk partials written then read back (in cost's bytes) */
    double seconds;            /* roofline time on the GPU */
} StepEstimate;

/* Step s of program p on gpu, with f32 GEMMs as TF32 when tf32. */
StepEstimate gpu_estimate_step(const GpuSpec *gpu, const Program *p, const Step *s, bool tf32);

#endif
