/*
 * executor.h — runs a compiled Program on one device.
 *
 * The trainer talks to every device through this interface: it writes the
 * input batch and labels, runs phases with the step's runtime scalars, and
 * reads back logits, losses and (for checkpoints) parameters and state.
 * Implementations: target/cpu/exec_cpu.c (generated C + OpenBLAS) and
 * target/cuda/exec_cuda.c (generated CUDA + cuBLAS).
 */
#ifndef RXC_EXECUTOR_H
#define RXC_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "program.h"
#include "error.h"

typedef struct Executor Executor;

/* A bucket of SPACE_GRADS for the overlapped gradient all-reduce: float
 * elements [lo, hi), final after backward step `ready` (-1: before the
 * first). grad_buckets.h makes the plan. */
typedef struct ExecBucket {
    int64_t lo, hi;
    int ready;
} ExecBucket;

/* Calls from inside a run back into the runtime, which is how collectives
 * happen mid-phase without the compiler or the executors knowing MPI
 * (runtime/distributed.h provides them). Every member may be NULL. */
typedef struct ExecHooks {
    void *ctx;
    /* After each step of a phase (step = its index in the phase), for an
     * executor whose steps finish on the host as they return (the CPU
     * executor; the CUDA executor never calls it). Data-parallel training
     * starts the all-reduce of gradient buckets here while backward goes on. */
    int (*after_step)(void *ctx, Executor *e, Phase phase, int step, Error *err);
    /* A STEP_ALLREDUCE (program.h): sums n floats at data (host memory)
     * over every process, in place. NULL: one process, nothing to do. */
    int (*allreduce)(void *ctx, float *data, int64_t n, Error *err);

    /* For an executor that reduces on its own device (CUDA with NCCL,
     * target/cuda/exec_cuda_nccl.c); ranks <= 1 or NULL members: none. */
    int ranks, rank;
    /* Copies bytes from rank 0 to every rank over the launcher's MPI (how
     * NCCL's uniqueId travels). Every rank calls it at the same point. */
    int (*broadcast)(void *ctx, void *buf, int64_t bytes, Error *err);
    /* Asked as backward starts: true when this backward is the last
     * micro-batch before an update, in which case the executor sums
     * SPACE_GRADS over the ranks itself (the runtime then finds it done). */
    bool (*take_grad_reduce)(void *ctx);
    /* The gradient buckets of p in start order (*out malloc'ed); the count. */
    int (*grad_bucket_plan)(void *ctx, const Program *p, ExecBucket **out);
} ExecHooks;

struct Executor {
    const char *device_name;   /* "cpu (2 threads)", "cuda:0 NVIDIA H200" */
    const Program *program;    /* not owned */
    /* Runs one phase. sc has SC_COUNT entries (kir.h). Returns 0, or -1
     * with a message in err. */
    int (*run)(Executor *e, Phase phase, const double *sc, Error *err);
    /* Copies bytes between host memory and a space (program.h). Return 0 or -1.
     * A write of SPACE_PARAMS also updates its bf16 copy, SPACE_PARAM_COPY,
     * when the program has one (whole floats only). */
    int (*read)(Executor *e, BufSpace space, int64_t offset, void *dst, int64_t bytes);
    int (*write)(Executor *e, BufSpace space, int64_t offset, const void *src, int64_t bytes);
    /* Host address of a space when the device shares host memory (CPU), else
     * NULL; NULL for SPACE_PARAMS when it has a bf16 copy (write() keeps it). */
    void *(*host_ptr)(Executor *e, BufSpace space);
    void (*free)(Executor *e);
    ExecHooks hooks;           /* set by the owner; zero: none */
    void *impl;
};

/* Builds the executor: compiles (or loads from the cache) the program's
 * kernels and allocates every space once. NULL with a message on failure. */
Executor *exec_cpu_new(const Program *p, Error *err);
Executor *exec_cuda_new(const Program *p, int device, Error *err);

#endif
