/*
 * nccl_api.c — dlopen of libnccl, resolution of the entry points nccl_api.h
 * lists, its version, and error messages that carry NCCL's status names.
 */
#include "nccl_api.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RXC_CUDA_HOME
#define RXC_CUDA_HOME "/usr/local/cuda"
#endif

/* RXC_NCCL_LIB alone when set; else $CUDA_HOME and the build's toolkit
 * (lib64, then lib: some toolkits keep NCCL there), then the loader's path. */
static void *open_nccl(NcclApi *api, char *tried, size_t tried_len) {
    const char *override = getenv("RXC_NCCL_LIB");
    const char *homes[2] = {getenv("CUDA_HOME"), RXC_CUDA_HOME}, *subdirs[2] = {"lib64", "lib"};
    const char *names[2] = {"libnccl.so.2", "libnccl.so"};
    char candidates[10][512];
    int n = 0;
    if (override && *override) snprintf(candidates[n++], sizeof candidates[0], "%.500s", override);
    else {
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 2 && homes[h] && *homes[h]; s++)
                snprintf(candidates[n++], sizeof candidates[0], "%.480s/%s/%s", homes[h], subdirs[s], names[0]);
        for (int i = 0; i < 2; i++) snprintf(candidates[n++], sizeof candidates[0], "%s", names[i]);
    }
    size_t used = 0;
    tried[0] = 0;
    for (int i = 0; i < n; i++) {
        void *lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (lib) {
            snprintf(api->path, sizeof api->path, "%.500s", candidates[i]);
            return lib;
        }
        int k = snprintf(tried + used, tried_len - used, "%s%s", used ? ", " : "", candidates[i]);
        if (k > 0 && (size_t)k < tried_len - used) used += (size_t)k;
    }
    return NULL;
}

int nccl_api_load(NcclApi *api, Error *err) {
    memset(api, 0, sizeof *api);
    char tried[2048];
    api->lib = open_nccl(api, tried, sizeof tried);
    if (!api->lib)
        return error_set(err,
                         "NCCL (libnccl.so.2) not found; tried %s. Data-parallel training on GPUs needs NCCL "
                         "(the CUDA toolkit's, or Debian's libnccl2; RXC_NCCL_LIB names the file; "
                         "RXC_NCCL=off reduces through the host and MPI instead)",
                         tried);
    struct { void **slot; const char *name; } want[] = {
        {(void **)&api->ncclGetVersion, "ncclGetVersion"},
        {(void **)&api->ncclGetUniqueId, "ncclGetUniqueId"},
        {(void **)&api->ncclCommInitRank, "ncclCommInitRank"},
        {(void **)&api->ncclCommDestroy, "ncclCommDestroy"},
        {(void **)&api->ncclCommAbort, "ncclCommAbort"},
        {(void **)&api->ncclCommGetAsyncError, "ncclCommGetAsyncError"},
        {(void **)&api->ncclAllReduce, "ncclAllReduce"},
        {(void **)&api->ncclGetErrorString, "ncclGetErrorString"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].slot = dlsym(api->lib, want[i].name);
        if (!*want[i].slot) {
            int rc = error_set(err, "%s has no function %s (an NCCL older than 2.4?)", api->path, want[i].name);
            nccl_api_unload(api);
            return rc;
        }
    }
    if (api->ncclGetVersion(&api->version) != 0) api->version = 0;
    return 0;
}

void nccl_api_unload(NcclApi *api) {
    if (api->lib) dlclose(api->lib);
    memset(api, 0, sizeof *api);
}

void nccl_version_text(int v, char *buf, size_t len) {
    /* NCCL_VERSION(X,Y,Z) is X*1000+Y*100+Z up to 2.8, X*10000+Y*100+Z from 2.9 */
    if (v >= 10000) snprintf(buf, len, "%d.%d.%d", v / 10000, v % 10000 / 100, v % 100);
    else snprintf(buf, len, "%d.%d.%d", v / 1000, v % 1000 / 100, v % 100);
}

static const char *result_name(ncclResult_t r) {
    static const char *const names[] = {"ncclSuccess",         "ncclUnhandledCudaError", "ncclSystemError",
                                        "ncclInternalError",   "ncclInvalidArgument",    "ncclInvalidUsage",
                                        "ncclRemoteError",     "ncclInProgress"};
    return r >= 0 && r < (int)(sizeof names / sizeof names[0]) ? names[r] : "ncclUnknownResult";
}

int nccl_error_set(Error *err, const NcclApi *api, ncclResult_t r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, fmt, ap);
    va_end(ap);
    const char *text = api->ncclGetErrorString ? api->ncclGetErrorString(r) : NULL;
    return error_append(err, ": %s (%d): %s", result_name(r), r, text ? text : "unknown NCCL error");
}
