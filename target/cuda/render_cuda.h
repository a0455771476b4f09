/*
 * render_cuda.h — the CUDA renderer of the kernel IR (kir.h) and the launch
 * geometry of every kernel it writes.
 *
 * render_cuda turns a KirModule into one CUDA C++ translation unit (for
 * NVRTC). Each kir Kernel becomes an extern "C" __global__ function NAME
 * whose parameters are, in order:
 *     one typed pointer per KBuf (float, __nv_bfloat16, unsigned char,
 *     long long; const when the kernel does not write it),
 *     const double *sc        the runtime scalars (kir.h ScalarId), on the device,
 *     float *scratch          KF_COLS kernels only: chunk partials.
 * Pointwise kernels may have NAME_v4 (see CudaLaunch.has_vec4).
 * KF_COLS kernels have a second function NAME_finish with the same
 * parameters that combines the chunk partials in chunk order and runs the
 * store stage; launch NAME then NAME_finish on the same stream.
 *
 * Shapes, strides and constants are literals in the source. Each integer
 * (loop counter, node, accumulator) is 32-bit unless the shared range
 * analysis (kir_analysis.h) finds it may not fit, then 64-bit: the widths
 * render_c gives the same kernel.
 *
 * Two hooks let the CPU emulator (tests/emu) instrument the source without a
 * second renderer: RXC_GLOBAL(T) (a global pointer parameter, default `T *`)
 * and RXC_SHARED(T, name, n) (a shared array, default `__shared__ T name[n]`).
 * RXC_EMU skips the cuda_bf16.h include (the emulator provides the type).
 */
#ifndef RXC_RENDER_CUDA_H
#define RXC_RENDER_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "kir.h"

typedef enum CudaMapping {
    CM_THREAD_PER_ROW, /* KF_ROWS: grid-stride over outer, inner loops inside the thread */
    CM_BLOCK_PER_ROW,  /* KF_ROWS: one block per outer index, block reductions over inner */
    CM_WARP_PER_ROW,   /* KF_ROWS: one warp per outer index (short rows read contiguously), warp reductions */
    CM_COLUMN_TILES,   /* KF_COLS: blocks of (columns x row chunk), then NAME_finish */
} CudaMapping;

typedef struct CudaLaunch {
    CudaMapping mapping;
    unsigned grid[3], block[3];   /* for NAME */
    unsigned shared_bytes;        /* static shared memory of NAME (informational) */
    bool has_finish;              /* KF_COLS: NAME_finish follows */
    unsigned finish_grid, finish_block;
    int64_t scratch_floats;       /* KF_COLS: floats of scratch NAME and NAME_finish share */
    int64_t row_chunks;           /* KF_COLS: the GPU's row chunks (the IR's, each split 2^s ways) */
    bool wide_index;              /* 64-bit loop counters (KirWidths.loops_wide) */
    /* CM_THREAD_PER_ROW pointwise kernels: NAME_v4, the vector variant (same
     * parameters), does vec_width consecutive outer indices per thread with
     * 16-byte accesses to the buffers in vec4_bufs (bit b = kernel buffer b):
     * 4 wide (one float4 per f32 buffer) when those are all f32, 8 wide when
     * one is bf16 (one uint4 of 8 bf16 per bf16 buffer, two float4 per f32
     * buffer). Use it only when every such buffer's address is 16-byte
     * aligned; else NAME. */
    bool has_vec4;
    uint64_t vec4_bufs;
    int vec_width;                /* 4 or 8 */
    unsigned vec4_grid;           /* block size as NAME's */
} CudaLaunch;

/* Renders the module. When launches is not NULL, *launches receives a
 * malloc'd array of m->n entries (one per kernel, in module order). */
char *render_cuda(const KirModule *m, CudaLaunch **launches);

/* The geometry of one kernel (what render_cuda puts in the table). */
CudaLaunch render_cuda_launch(const Kernel *k); /* launch_cuda.c */

/* The C type of a buffer element in the generated CUDA source. */
const char *render_cuda_ctype(KDType t);

#endif
