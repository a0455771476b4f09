/*
 * nccl_api.h — NCCL, loaded at run time with dlopen (as cuda_api.h loads
 * the driver, NVRTC and cuBLAS), so that rxc builds and runs without it and
 * needs it only for data-parallel training on GPUs.
 *
 * Only the calls the GPU executor's collectives make are resolved
 * (exec_cuda_nccl.c). Types and constants are declared with NCCL's ABI
 * (nccl.h, stable since NCCL 2.0); tests/cuda checks them against the
 * toolkit's header. Search order: $CUDA_HOME/lib64 and lib, the toolkit the
 * build saw, then the loader's path (where Debian's libnccl2 puts it);
 * RXC_NCCL_LIB names the library to load instead.
 */
#ifndef RXC_NCCL_API_H
#define RXC_NCCL_API_H

#include <stddef.h>
#include "cuda_api.h"
#include "error.h"

typedef int ncclResult_t; /* 0 = ncclSuccess */
typedef struct ncclComm *ncclComm_t;
typedef struct { char internal[128]; } ncclUniqueId;

enum {
    RXC_NCCL_UNIQUE_ID_BYTES = 128,
    RXC_NCCL_SUCCESS = 0,
    RXC_NCCL_IN_PROGRESS = 7,
    RXC_NCCL_FLOAT32 = 7,
    RXC_NCCL_SUM = 0,
    /* NCCL 2.9 (code 20900) is the first whose collectives may be captured in a CUDA graph */
    RXC_NCCL_GRAPH_CAPTURE_VERSION = 20900,
};

typedef struct NcclApi {
    void *lib;
    char path[512];
    int version;  /* ncclGetVersion: major * 10000 + minor * 100 + patch since 2.9; 2.8 and older: *1000 */
    ncclResult_t (*ncclGetVersion)(int *version);
    ncclResult_t (*ncclGetUniqueId)(ncclUniqueId *id);
    ncclResult_t (*ncclCommInitRank)(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
    ncclResult_t (*ncclCommDestroy)(ncclComm_t comm);
    ncclResult_t (*ncclCommAbort)(ncclComm_t comm);
    ncclResult_t (*ncclCommGetAsyncError)(ncclComm_t comm, ncclResult_t *async_error);
    ncclResult_t (*ncclAllReduce)(const void *send, void *recv, size_t count, int datatype, int op, ncclComm_t comm,
                                  CUstream stream);
    const char *(*ncclGetErrorString)(ncclResult_t r);
} NcclApi;

/* Loads libnccl and resolves every entry. Returns 0, or -1 with a message
 * naming the library or function that is missing. */
int nccl_api_load(NcclApi *api, Error *err);
void nccl_api_unload(NcclApi *api);

/* "2.28.9" for 22809. */
void nccl_version_text(int version, char *buf, size_t len);

/* Sets err to "WHAT: NAME (code): description" and returns -1, as
 * cuda_error_set does for the driver. */
int nccl_error_set(Error *err, const NcclApi *api, ncclResult_t r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
