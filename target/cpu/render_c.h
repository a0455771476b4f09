/*
 * render_c.h — the CPU target's renderer of the kernel IR (kir.h).
 *
 * render_c returns one malloc'd C11 translation unit for the whole module:
 * each kernel is `void NAME(void *const *bufs, const double *sc)`, OpenMP
 * parallel over its outer loop. target/cpu/jit.c compiles it and
 * target/cpu/exec_cpu.c runs it.
 */
#ifndef RXC_RENDER_C_H
#define RXC_RENDER_C_H

#include "kir.h"

char *render_c(const KirModule *m);

#endif
