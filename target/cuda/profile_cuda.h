/*
 * profile_cuda.h — RXC_PROFILE on the GPU: every step of a training step
 * (generated kernels, cuBLAS GEMMs, direct convolutions, the update) timed
 * with CUDA events and set against the cost model's time for the same step
 * (compiler/cost.h, gpu_specs.h: the rows of `rxc compile --estimate`).
 *
 * The executor (exec_cuda.c) skips the first run of each training phase
 * (cuBLAS settles its heuristics, the first launches load the modules),
 * then times RXC_PROFILE_STEPS runs (default 3) of forward, backward and
 * update with direct launches, CUDA graphs held back until the report is
 * out: an event records on the stream before every step and after the
 * last, and step i's time is the elapsed time between boundaries i and
 * i + 1, read once the phase finished. The report, on stderr, lists every
 * step once with its mean measured time, the model's, the efficiency
 * (model / measured) and the lost time (measured - model), largest loss
 * first, and the totals; RXC_PROFILE_JSON=FILE writes the same as JSON
 * lines. It prints when the last profiled run is read, or when the
 * executor is freed with fewer runs profiled (it says how many). Training
 * then continues, with graphs again.
 *
 * An entry's time runs from the event before it to the event after it on
 * the GPU: when the host launches more slowly than the GPU runs (small
 * kernels, direct launches), the GPU's wait for the launch counts too.
 */
#ifndef RXC_PROFILE_CUDA_H
#define RXC_PROFILE_CUDA_H

#include <stdbool.h>

#include "cuda_api.h"
#include "error.h"
#include "program.h"

typedef struct CudaProfile CudaProfile;

/* *out = the profile when RXC_PROFILE is set (and not "0"), else NULL; the
 * events are created here. device: the executor's label of the device
 * ("cuda:0 (NAME, sm_90, ...)"), device_name: the driver's name, which
 * picks the cost model's GPU. Returns 0, or -1 with a message. */
int cuda_profile_open(CudaProfile **out, const CudaApi *api, const Program *p, const char *device,
                      const char *device_name, int sm, Error *err);

/* Whether run `run` (0 = first) of phase ph is timed. */
bool cuda_profile_times(const CudaProfile *prof, Phase ph, int run);

/* Whether the report is still to come (the executor holds graphs back). */
bool cuda_profile_pending(const CudaProfile *prof);

/* Records boundary b (0 .. n_steps) of a timed run of ph on stream s. */
int cuda_profile_mark(CudaProfile *prof, Phase ph, int b, CUstream s, Error *err);

/* After a timed run of ph was enqueued, boundaries included: waits for it,
 * adds its times, and prints the report once every phase has its runs.
 * tf32: f32 GEMMs run as TF32 (the model's times follow). */
int cuda_profile_collect(CudaProfile *prof, Phase ph, bool tf32, Error *err);

/* Prints the report if runs were timed but it is not out yet, and frees
 * the profile (NULL is fine). */
void cuda_profile_close(CudaProfile *prof, bool tf32);

#endif
