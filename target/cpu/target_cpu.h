/*
 * target_cpu.h — the CPU target: generated C compiled at run time
 * (render_c.c, jit.c), OpenBLAS for GEMMs (blas_cpu.c), direct vector
 * kernels for grouped convolutions (conv_cpu.c), run by exec_cpu.c.
 */
#ifndef RXC_TARGET_CPU_H
#define RXC_TARGET_CPU_H

#include "target.h"

extern const Target target_cpu;

#endif
