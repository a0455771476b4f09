/*
 * nvrtc_compile.h — compiling generated CUDA source to a cubin with NVRTC,
 * with an on-disk cache, per-kernel resource reports and clear errors.
 *
 * One call compiles one module: everything render_cuda wrote for one
 * (model, batch size, precision) for one architecture sm_XX. The cache key
 * is the SHA-256 of the source, the NVRTC version, every option and the
 * architecture, so a stale cubin can never be loaded. Cache entries live in
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

typedef struct NvrtcModule {
    char *cubin;
    size_t cubin_size;
    char *log;                 /* NVRTC + ptxas log (the cached one on a hit) */
    CudaKernelStats *kernels;  /* from ptxas's -v report */
    int n_kernels;
    int n_warnings;            /* warnings in the log: generated code must have none */
    double seconds;            /* compile (miss) or cache load (hit) time */
    bool from_cache;
    int sm;
    char key[65];
    int nvrtc_major, nvrtc_minor;
} NvrtcModule;

typedef struct NvrtcOptions {
    int sm;                    /* e.g. 80, 90 */
    bool use_cache;
    bool refresh;              /* with use_cache: compile even on a hit, then rewrite the entry */
    const char *cache_dir;     /* NULL: the default directory above */
} NvrtcOptions;

/* Compiles source (needs api->loaded & CUDA_LIB_NVRTC). Returns 0, or -1
 * with a message: a compile error names the generated kernel it is in and
 * carries the NVRTC log. */
int nvrtc_compile(const CudaApi *api, const char *source, const NvrtcOptions *opt, NvrtcModule *out, Error *err);
void nvrtc_module_free(NvrtcModule *m);

/* Parses "sm_90" / "90" / "9.0" into 90; -1 when malformed. */
int nvrtc_parse_arch(const char *s);

#endif
