/*
 * nvrtc_compile.h — compiling generated CUDA source to a cubin with NVRTC,
 * with an on-disk cache, per-kernel resource reports and clear errors.
 *
 * One call compiles one module: everything render_cuda wrote for one
 * (model, batch size, precision) for one architecture sm_XX. NVRTC compiles
 * one translation unit on one thread, so the module is split at kernel
 * boundaries (the "/ * NAME: " header render_cuda writes before each kernel,
 * without the space) into parts of similar size, each with the shared
 * prelude, compiled on parallel threads (one per online core, or
 * RXC_NVRTC_THREADS; one part for a source under 64 KiB unless the thread
 * count is given). Each part is its own cubin, which the executor loads as
 * its own module. Each part's cache key is the SHA-256 of its source, the
 * NVRTC version, every option and the architecture, so a stale cubin can
 * never be loaded. Cache entries live in
 * NvrtcOptions.cache_dir, else the "cuda" folder of rxc's cache directory
 * ($RXC_CACHE_DIR/cuda, else $XDG_CACHE_HOME/rxc/cuda, else
 * ~/.cache/rxc/cuda: cache_dir_resolve in util.h), and are written
 * atomically (temporary file + rename).
 *
 * Works on any machine with NVRTC; no GPU is needed. RXC_NVRTC_DUMP=PATH
 * writes the exact text behind the cache key (for debugging cache misses).
 */
#ifndef RXC_NVRTC_COMPILE_H
#define RXC_NVRTC_COMPILE_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_api.h"
#include "error.h"

typedef struct CudaKernelStats {
    char name[128];
    int registers;
    int shared_bytes;     /* static shared memory */
    int stack_bytes;
    int spill_stores, spill_loads;  /* bytes */
} CudaKernelStats;

typedef struct NvrtcPart {
    char *cubin;
    size_t cubin_size;
    char key[65];
    bool from_cache;
    char **entries;            /* the entry points (extern "C" __global__) it defines */
    int n_entries;
} NvrtcPart;

typedef struct NvrtcModule {
    NvrtcPart *parts;          /* in source order */
    int n_parts;
    char *log;                 /* NVRTC + ptxas logs of every part, in order (cached ones on hits) */
    CudaKernelStats *kernels;  /* from ptxas's -v report */
    int n_kernels;
    int n_warnings;            /* warnings in the log: generated code must have none */
    double seconds;            /* compile (miss) or cache load (hit) time, wall clock */
    bool from_cache;           /* every part came from the cache */
    int sm;
    int threads;               /* compile threads used (parts compiled at once) */
    char key[65];              /* one part: its key; else the SHA-256 of the part keys */
    int nvrtc_major, nvrtc_minor;
} NvrtcModule;

typedef struct NvrtcOptions {
    int sm;                    /* e.g. 80, 90 */
    bool use_cache;
    bool refresh;              /* with use_cache: compile even on a hit, then rewrite the entry */
    const char *cache_dir;     /* NULL: the default directory above */
    int threads;               /* > 0: split into this many parts at most; 0: RXC_NVRTC_THREADS, else the cores */
} NvrtcOptions;

/* Compiles source (needs api->loaded & CUDA_LIB_NVRTC). Returns 0, or -1
 * with a message: a compile error names the generated kernel it is in and
 * carries the NVRTC log. */
int nvrtc_compile(const CudaApi *api, const char *source, const NvrtcOptions *opt, NvrtcModule *out, Error *err);
void nvrtc_module_free(NvrtcModule *m);

/* The part that defines entry point `name`, or -1. */
int nvrtc_module_part_of(const NvrtcModule *m, const char *name);

/* Parses "sm_90" / "90" / "9.0" into 90; -1 when malformed. */
int nvrtc_parse_arch(const char *s);

#endif
