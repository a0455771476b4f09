/*
 * target_cuda.h — the CUDA target: generated CUDA C compiled at run time
 * with NVRTC (render_cuda.c, nvrtc_compile.c), cuBLAS for GEMMs, run by
 * exec_cuda.c; the driver libraries are loaded with dlopen (cuda_api.c).
 */
#ifndef RXC_TARGET_CUDA_H
#define RXC_TARGET_CUDA_H

#include "target.h"

extern const Target target_cuda;

/* The compute capability of CUDA device `ordinal` as sm_XX (e.g. 90), for
 * resolving `precision auto` before compiling for it; -1 with the reason
 * ("cuda requested but no GPU: ...") when there is none. */
int target_cuda_device_arch(int ordinal, Error *err);

#endif
