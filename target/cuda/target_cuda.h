/*
 * target_cuda.h — the CUDA target: generated CUDA C compiled at run time
 * with NVRTC (render_cuda.c, nvrtc_compile.c), cuBLAS for GEMMs, run by
 * exec_cuda.c; the driver libraries are loaded with dlopen (cuda_api.c).
 */
#ifndef RXC_TARGET_CUDA_H
#define RXC_TARGET_CUDA_H

#include "target.h"

extern const Target target_cuda;

#endif
