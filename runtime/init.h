/*
 * init.h — parameter initialisation.
 *
 * Every trainable parameter is filled according to its InitKind (graph.h)
 * from a deterministic counter-based stream keyed by (seed, hash of the
 * parameter's name), so a value depends only on the seed and the name: not
 * on the thread count, the order of initialisation, or other layers.
 * BatchNorm buffers start as PyTorch's do: running_mean 0, running_var 1,
 * num_batches_tracked 0 (counted by the trainer, as an int64).
 */
#ifndef RXC_INIT_H
#define RXC_INIT_H

#include <stdint.h>

#include "graph.h"

/* Fills p->numel floats at out. For ROLE_NUM_BATCHES writes nothing (the
 * count is an int64 held by the trainer). */
void init_param(const Param *p, uint64_t seed, float *out);

#endif
