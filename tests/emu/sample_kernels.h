/*
 * sample_kernels.h — hand-built kernels of every kind the lowering emits
 * (pointwise maps in f32/bf16/u8, grouped 3x3 window reductions, max-pool
 * windows, softmax-cross-entropy rows with a block or a thread per row,
 * long-row maps, column reductions, dropout masks, multi-store optimizer
 * updates, accumulating stores), at small shapes. Shared by tests/cuda (NVRTC
 * compile checks) and tests/emu (CPU emulation against a reference).
 */
#ifndef RXC_TEST_SAMPLE_KERNELS_H
#define RXC_TEST_SAMPLE_KERNELS_H

#include "kir.h"
#include "error.h"

/* A module with every sample kernel; NULL with a message if one fails
 * kir_finish (a test bug). */
KirModule *sample_module(Error *err);

/* A kernel whose indices need 64-bit arithmetic (for compile checks only:
 * its buffers are far too large to run in a test). */
Kernel *sample_wide_kernel(void);

#endif
