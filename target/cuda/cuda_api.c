/*
 * cuda_api.c — dlopen of libcuda, NVRTC and cuBLAS and resolution of the
 * entry points rxc uses (cuda_api.h); device availability checks.
 */
#include "cuda_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#ifndef RXC_CUDA_HOME
#define RXC_CUDA_HOME "/usr/local/cuda"
#endif

/* Tries $CUDA_HOME/lib64, the build's toolkit, then the loader's path, for
 * every soname in names (newest first). */
static void *open_library(const char *const *names, char *found, size_t found_len, char *tried, size_t tried_len) {
    const char *dirs[3] = {getenv("CUDA_HOME"), RXC_CUDA_HOME, NULL};
    size_t used = 0;
    tried[0] = 0;
    for (int d = 0; d < 3; d++) {
        if (d < 2 && (!dirs[d] || !*dirs[d])) continue;
        for (int i = 0; names[i]; i++) {
            char path[512];
            if (d < 2) snprintf(path, sizeof path, "%s/lib64/%s", dirs[d], names[i]);
            else snprintf(path, sizeof path, "%s", names[i]);
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h) {
                if (found) snprintf(found, found_len, "%s", path);
                return h;
            }
            if (used < tried_len) {
                int n = snprintf(tried + used, tried_len - used, "%s%s", used ? ", " : "", path);
                if (n > 0) used += (size_t)n;
            }
        }
    }
    return NULL;
}

static int resolve(void *lib, const char *libname, const char *sym, void **slot, Error *err) {
    *slot = dlsym(lib, sym);
    if (!*slot) {
        error_set(err, "%s has no function %s (library too old?)", libname, sym);
        return -1;
    }
    return 0;
}

#define RESOLVE(lib, libname, field, sym)                                                  \
    do {                                                                                  \
        if (resolve(lib, libname, sym, (void **)&api->field, err)) return -1;     \
    } while (0)

static int load_driver(CudaApi *api, Error *err) {
    static const char *const names[] = {"libcuda.so.1", "libcuda.so", NULL};
    char tried[1024];
    /* the driver belongs to the system, not the toolkit: only the loader's path */
    api->libcuda = dlopen(names[0], RTLD_NOW | RTLD_LOCAL);
    if (!api->libcuda) {
        snprintf(tried, sizeof tried, "%s", dlerror());
        error_set(err, "the NVIDIA driver library libcuda.so.1 is not installed (%s)", tried);
        return -1;
    }
    const char *l = "libcuda.so.1";
    RESOLVE(api->libcuda, l, cuInit, "cuInit");
    RESOLVE(api->libcuda, l, cuDriverGetVersion, "cuDriverGetVersion");
    RESOLVE(api->libcuda, l, cuGetErrorString, "cuGetErrorString");
    RESOLVE(api->libcuda, l, cuDeviceGetCount, "cuDeviceGetCount");
    RESOLVE(api->libcuda, l, cuDeviceGet, "cuDeviceGet");
    RESOLVE(api->libcuda, l, cuDeviceGetName, "cuDeviceGetName");
    RESOLVE(api->libcuda, l, cuDeviceGetAttribute, "cuDeviceGetAttribute");
    RESOLVE(api->libcuda, l, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    RESOLVE(api->libcuda, l, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    RESOLVE(api->libcuda, l, cuCtxSetCurrent, "cuCtxSetCurrent");
    RESOLVE(api->libcuda, l, cuCtxSynchronize, "cuCtxSynchronize");
    RESOLVE(api->libcuda, l, cuMemGetInfo, "cuMemGetInfo_v2");
    RESOLVE(api->libcuda, l, cuMemAlloc, "cuMemAlloc_v2");
    RESOLVE(api->libcuda, l, cuMemFree, "cuMemFree_v2");
    RESOLVE(api->libcuda, l, cuMemAllocHost, "cuMemAllocHost_v2");
    RESOLVE(api->libcuda, l, cuMemFreeHost, "cuMemFreeHost");
    RESOLVE(api->libcuda, l, cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    RESOLVE(api->libcuda, l, cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    RESOLVE(api->libcuda, l, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    RESOLVE(api->libcuda, l, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    RESOLVE(api->libcuda, l, cuMemsetD8Async, "cuMemsetD8Async");
    RESOLVE(api->libcuda, l, cuModuleLoadData, "cuModuleLoadData");
    RESOLVE(api->libcuda, l, cuModuleUnload, "cuModuleUnload");
    RESOLVE(api->libcuda, l, cuModuleGetFunction, "cuModuleGetFunction");
    RESOLVE(api->libcuda, l, cuLaunchKernel, "cuLaunchKernel");
    RESOLVE(api->libcuda, l, cuStreamCreate, "cuStreamCreate");
    RESOLVE(api->libcuda, l, cuStreamDestroy, "cuStreamDestroy_v2");
    RESOLVE(api->libcuda, l, cuStreamSynchronize, "cuStreamSynchronize");
    RESOLVE(api->libcuda, l, cuStreamWaitEvent, "cuStreamWaitEvent");
    RESOLVE(api->libcuda, l, cuEventCreate, "cuEventCreate");
    RESOLVE(api->libcuda, l, cuEventRecord, "cuEventRecord");
    RESOLVE(api->libcuda, l, cuEventSynchronize, "cuEventSynchronize");
    RESOLVE(api->libcuda, l, cuEventDestroy, "cuEventDestroy_v2");
    RESOLVE(api->libcuda, l, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    RESOLVE(api->libcuda, l, cuStreamEndCapture, "cuStreamEndCapture");
    RESOLVE(api->libcuda, l, cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    RESOLVE(api->libcuda, l, cuGraphLaunch, "cuGraphLaunch");
    RESOLVE(api->libcuda, l, cuGraphExecDestroy, "cuGraphExecDestroy");
    RESOLVE(api->libcuda, l, cuGraphDestroy, "cuGraphDestroy");
    return 0;
}

static int load_nvrtc(CudaApi *api, Error *err) {
    static const char *const names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", NULL};
    char tried[1024];
    api->libnvrtc = open_library(names, api->nvrtc_path, sizeof api->nvrtc_path, tried, sizeof tried);
    if (!api->libnvrtc) {
        error_set(err, "NVRTC (libnvrtc.so) not found; tried %s. Set CUDA_HOME to a CUDA toolkit", tried);
        return -1;
    }
    const char *l = "libnvrtc";
    RESOLVE(api->libnvrtc, l, nvrtcVersion, "nvrtcVersion");
    RESOLVE(api->libnvrtc, l, nvrtcGetErrorString, "nvrtcGetErrorString");
    RESOLVE(api->libnvrtc, l, nvrtcCreateProgram, "nvrtcCreateProgram");
    RESOLVE(api->libnvrtc, l, nvrtcCompileProgram, "nvrtcCompileProgram");
    RESOLVE(api->libnvrtc, l, nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
    RESOLVE(api->libnvrtc, l, nvrtcGetProgramLog, "nvrtcGetProgramLog");
    RESOLVE(api->libnvrtc, l, nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
    RESOLVE(api->libnvrtc, l, nvrtcGetCUBIN, "nvrtcGetCUBIN");
    RESOLVE(api->libnvrtc, l, nvrtcDestroyProgram, "nvrtcDestroyProgram");
    return 0;
}

static int load_cublas(CudaApi *api, Error *err) {
    static const char *const names[] = {"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11", NULL};
    char tried[1024];
    api->libcublas = open_library(names, NULL, 0, tried, sizeof tried);
    if (!api->libcublas) {
        error_set(err, "cuBLAS (libcublas.so) not found; tried %s. Set CUDA_HOME to a CUDA toolkit", tried);
        return -1;
    }
    const char *l = "libcublas";
    RESOLVE(api->libcublas, l, cublasCreate, "cublasCreate_v2");
    RESOLVE(api->libcublas, l, cublasDestroy, "cublasDestroy_v2");
    RESOLVE(api->libcublas, l, cublasSetStream, "cublasSetStream_v2");
    RESOLVE(api->libcublas, l, cublasSetMathMode, "cublasSetMathMode");
    RESOLVE(api->libcublas, l, cublasSetWorkspace, "cublasSetWorkspace_v2");
    RESOLVE(api->libcublas, l, cublasSgemm, "cublasSgemm_v2");
    RESOLVE(api->libcublas, l, cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx");
    return 0;
}

int cuda_api_load(CudaApi *api, unsigned what, Error *err) {
    if ((what & CUDA_LIB_DRIVER) && !(api->loaded & CUDA_LIB_DRIVER)) {
        if (load_driver(api, err)) return -1;
        api->loaded |= CUDA_LIB_DRIVER;
    }
    if ((what & CUDA_LIB_NVRTC) && !(api->loaded & CUDA_LIB_NVRTC)) {
        if (load_nvrtc(api, err)) return -1;
        api->loaded |= CUDA_LIB_NVRTC;
    }
    if ((what & CUDA_LIB_CUBLAS) && !(api->loaded & CUDA_LIB_CUBLAS)) {
        if (load_cublas(api, err)) return -1;
        api->loaded |= CUDA_LIB_CUBLAS;
    }
    return 0;
}

void cuda_api_unload(CudaApi *api) {
    if (api->libcublas) dlclose(api->libcublas);
    if (api->libnvrtc) dlclose(api->libnvrtc);
    if (api->libcuda) dlclose(api->libcuda);
    memset(api, 0, sizeof *api);
}

const char *cuda_result_text(const CudaApi *api, CUresult r) {
    const char *s = NULL;
    if (api->cuGetErrorString && api->cuGetErrorString(r, &s) == 0 && s) return s;
    return "unknown CUDA error";
}

int cuda_available(Error *why) {
    CudaApi api = {0};
    int ok = 0;
    if (cuda_api_load(&api, CUDA_LIB_DRIVER, why) == 0) {
        CUresult r = api.cuInit(0);
        int count = 0;
        if (r == RXC_CUDA_ERROR_STUB_LIBRARY)
            error_set(why, "libcuda.so.1 is the toolkit's stub library, not an NVIDIA driver");
        else if (r == RXC_CUDA_ERROR_NO_DEVICE)
            error_set(why, "the NVIDIA driver is installed but finds no CUDA device");
        else if (r != 0)
            error_set(why, "cuInit failed: %s (error %d)", cuda_result_text(&api, r), r);
        else if ((r = api.cuDeviceGetCount(&count)) != 0 || count < 1)
            error_set(why, "no CUDA device found%s%s", r ? ": " : "", r ? cuda_result_text(&api, r) : "");
        else
            ok = 1;
    }
    cuda_api_unload(&api);
    return ok;
}

int cuda_device_sm(const CudaApi *api, int ordinal, Error *err) {
    CUdevice d;
    int major = 0, minor = 0;
    CUresult r = api->cuDeviceGet(&d, ordinal);
    if (r == 0) r = api->cuDeviceGetAttribute(&major, RXC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d);
    if (r == 0) r = api->cuDeviceGetAttribute(&minor, RXC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d);
    if (r != 0) {
        error_set(err, "cuda:%d: %s", ordinal, cuda_result_text(api, r));
        return -1;
    }
    return major * 10 + minor;
}
