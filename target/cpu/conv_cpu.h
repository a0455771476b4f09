/*
 * conv_cpu.h — direct convolution on the CPU: the CPU executor's STEP_CONV
 * (program.h), for grouped convolutions with narrow groups.
 */
#ifndef RXC_CONV_CPU_H
#define RXC_CONV_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "program.h"

/* Bytes of scratch one run of the step needs (tap tables, packed weights,
 * a row of zeros); the caller allocates it once, 64-byte aligned. */
size_t conv_cpu_scratch_bytes(const ConvStep *s);

/* Runs one pass of the step (see ConvPass) on the given tensors, with the
 * current OpenMP team size. Every output element is summed by one thread
 * in a fixed order, so results do not depend on the thread count. */
void conv_cpu_run(const ConvStep *s, float *x, float *w, float *y, void *scratch);

/* Whether all three passes of a convolution of this geometry have a vector
 * form (the rest run scalar loops, correct but slow). */
bool conv_cpu_has_vector_form(const ConvGeom *g);

/* Which kernel a pass uses: "8 channels per vector", "two groups of 4 per
 * vector" or "generic" (scalar, any shape), for listings and tests. */
const char *conv_cpu_kernel_name(const ConvStep *s);

#endif
