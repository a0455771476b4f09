/*
 * cuda_api.c — dlopen of libcuda, NVRTC (with its builtins) and cuBLAS and
 * resolution of the entry points rxc uses (cuda_api.h); device
 * availability, the driver-versus-toolkit version check, and error
 * messages that carry status names and codes.
 */
#include "cuda_api.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
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
    RESOLVE(api->libcuda, l, cuGetErrorName, "cuGetErrorName");
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
    /* cuda.h maps cuEventElapsedTime to _v2 from CUDA 12.8; older drivers have the plain name only */
    *(void **)&api->cuEventElapsedTime = dlsym(api->libcuda, "cuEventElapsedTime_v2");
    if (!api->cuEventElapsedTime) RESOLVE(api->libcuda, l, cuEventElapsedTime, "cuEventElapsedTime");
    RESOLVE(api->libcuda, l, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    RESOLVE(api->libcuda, l, cuStreamEndCapture, "cuStreamEndCapture");
    RESOLVE(api->libcuda, l, cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    RESOLVE(api->libcuda, l, cuGraphLaunch, "cuGraphLaunch");
    RESOLVE(api->libcuda, l, cuGraphExecDestroy, "cuGraphExecDestroy");
    RESOLVE(api->libcuda, l, cuGraphDestroy, "cuGraphDestroy");
    return 0;
}

/* The directory of the file libnvrtc was loaded from (the loader's own
 * record, so a library found on the loader's path has one too), and the
 * directory of that file's real path (a symbolic link may lead elsewhere).
 * Returns how many distinct directories (0 when unknown). */
static int nvrtc_directories(const CudaApi *api, char dirs[2][PATH_MAX]) {
    Dl_info info;
    if (!dladdr((void *)api->nvrtcVersion, &info) || !info.dli_fname || !strchr(info.dli_fname, '/')) return 0;
    snprintf(dirs[0], PATH_MAX, "%s", info.dli_fname);
    *strrchr(dirs[0], '/') = 0;
    if (!realpath(info.dli_fname, dirs[1]) || !strchr(dirs[1], '/')) return 1;
    *strrchr(dirs[1], '/') = 0;
    return strcmp(dirs[0], dirs[1]) ? 2 : 1;
}

/* Loads libnvrtc-builtins.so.MAJOR.MINOR from libnvrtc's directory: NVRTC
 * then finds it already loaded by its soname. Not finding it is no error
 * here (NVRTC may still find it on the loader's path); nvrtc_builtins_sought
 * says where rxc looked, for the error if NVRTC cannot load it either. */
static void load_nvrtc_builtins(CudaApi *api) {
    int major = 0, minor = 0;
    char dirs[2][PATH_MAX], soname[64];
    if (api->nvrtcVersion(&major, &minor) != 0) return;
    snprintf(soname, sizeof soname, "libnvrtc-builtins.so.%d.%d", major, minor);
    int n_dirs = nvrtc_directories(api, dirs);
    if (n_dirs == 0) {
        snprintf(api->nvrtc_builtins_sought, sizeof api->nvrtc_builtins_sought, "%s (libnvrtc's directory unknown)",
                 soname);
        return;
    }
    snprintf(api->nvrtc_builtins_sought, sizeof api->nvrtc_builtins_sought, "%s in %s%s%s", soname, dirs[0],
             n_dirs > 1 ? " and " : "", n_dirs > 1 ? dirs[1] : "");
    for (int d = 0; d < n_dirs && !api->libnvrtc_builtins; d++) {
        char path[sizeof dirs + 80];
        snprintf(path, sizeof path, "%s/%s", dirs[d], soname);
        api->libnvrtc_builtins = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
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
    load_nvrtc_builtins(api);
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
    RESOLVE(api->libcublas, l, cublasGetProperty, "cublasGetProperty");
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
    if (api->libnvrtc_builtins) dlclose(api->libnvrtc_builtins);
    if (api->libcuda) dlclose(api->libcuda);
    memset(api, 0, sizeof *api);
}

const char *cuda_result_text(const CudaApi *api, CUresult r) {
    const char *s = NULL;
    if (api->cuGetErrorString && api->cuGetErrorString(r, &s) == 0 && s) return s;
    return "unknown CUDA error";
}

const char *cuda_result_name(const CudaApi *api, CUresult r) {
    const char *s = NULL;
    if (api->cuGetErrorName && api->cuGetErrorName(r, &s) == 0 && s) return s;
    return "CUDA_ERROR_UNKNOWN_CODE";
}

const char *cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case RXC_CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case RXC_CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case RXC_CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case RXC_CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case RXC_CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case RXC_CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case RXC_CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case RXC_CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case RXC_CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

int cuda_error_set(Error *err, const CudaApi *api, CUresult r, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return error_set(err, "%s: %s (%d): %s", what, cuda_result_name(api, r), r, cuda_result_text(api, r));
}

int cublas_error_set(Error *err, cublasStatus_t s, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return error_set(err, "%s: %s (%d)", what, cublas_status_name(s), s);
}

int cuda_driver_version(const CudaApi *api) {
    int v = 0;
    if (!api->cuDriverGetVersion || api->cuDriverGetVersion(&v) != 0 || v <= 0) return -1;
    return v;
}

/* One library's version (major, minor) against the driver's; 0, or -1 with
 * an error for an older driver major, or a warning for an older minor. */
static int check_one(int driver, const char *lib, int major, int minor, char *warning, size_t warning_len,
                     Error *err) {
    int dmaj = driver / 1000, dmin = driver % 1000 / 10;
    if (dmaj < major)
        return error_set(err,
                         "the NVIDIA driver supports CUDA %d.%d, but %s is CUDA %d.%d, which needs a driver for CUDA "
                         "%d.0 or newer: install a newer NVIDIA driver (one for CUDA %d.%d or newer), or point "
                         "CUDA_HOME at a CUDA %d.x toolkit that matches the driver",
                         dmaj, dmin, lib, major, minor, major, major, minor, dmaj);
    if (dmaj == major && dmin < minor && warning[0] == 0)
        snprintf(warning, warning_len,
                 "rxc: warning: the NVIDIA driver supports CUDA %d.%d, %s is CUDA %d.%d: running on CUDA's "
                 "minor-version compatibility; if kernels fail to load, install a driver for CUDA %d.%d or newer",
                 dmaj, dmin, lib, major, minor, major, minor);
    return 0;
}

int cuda_check_versions(const CudaApi *api, char *warning, size_t warning_len, Error *err) {
    warning[0] = 0;
    int driver = cuda_driver_version(api);
    if (driver < 0) return error_set(err, "cuDriverGetVersion failed: cannot tell which CUDA the driver supports");
    int major = 0, minor = 0;
    if ((api->loaded & CUDA_LIB_NVRTC) && api->nvrtcVersion(&major, &minor) == 0 &&
        check_one(driver, "NVRTC", major, minor, warning, warning_len, err))
        return -1;
    if ((api->loaded & CUDA_LIB_CUBLAS) && api->cublasGetProperty(RXC_MAJOR_VERSION, &major) == 0 &&
        api->cublasGetProperty(RXC_MINOR_VERSION, &minor) == 0) {
        /* cuBLAS 11.x minors ran ahead of CUDA's (CUDA 11.8 ships cuBLAS 11.11): only its major says which CUDA */
        if (check_one(driver, "cuBLAS", major, major >= 12 ? minor : 0, warning, warning_len, err)) return -1;
    }
    return 0;
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
            cuda_error_set(why, &api, r, "cuInit failed");
        else if ((r = api.cuDeviceGetCount(&count)) != 0)
            cuda_error_set(why, &api, r, "no CUDA device found");
        else if (count < 1)
            error_set(why, "no CUDA device found");
        else
            ok = 1;
    }
    cuda_api_unload(&api);
    return ok;
}

int cuda_device_count(void) {
    CudaApi api = {0};
    Error ignored = {0};
    int count = 0;
    if (cuda_api_load(&api, CUDA_LIB_DRIVER, &ignored) != 0 || api.cuInit(0) != 0 || api.cuDeviceGetCount(&count) != 0)
        count = 0;
    cuda_api_unload(&api);
    return count;
}

int cuda_device_sm(const CudaApi *api, int ordinal, Error *err) {
    CUdevice d;
    int major = 0, minor = 0;
    CUresult r = api->cuDeviceGet(&d, ordinal);
    if (r == 0) r = api->cuDeviceGetAttribute(&major, RXC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d);
    if (r == 0) r = api->cuDeviceGetAttribute(&minor, RXC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d);
    if (r != 0) return cuda_error_set(err, api, r, "cuda:%d", ordinal);
    return major * 10 + minor;
}
