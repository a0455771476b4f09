/*
 * cuda_api.h — the CUDA driver, NVRTC and cuBLAS entry points rxc uses,
 * loaded at run time with dlopen so that one binary runs with or without a
 * GPU and builds without the CUDA toolkit.
 *
 * Only the functions rxc calls are resolved. Types are declared here with
 * their ABI (opaque handles, int enums) so that the build needs no toolkit;
 * tests/cuda checks every constant against the toolkit's headers.
 *
 * Search order for each library: $CUDA_HOME/lib64, the toolkit the build
 * saw (RXC_CUDA_HOME/lib64), then the dynamic loader's default path, trying
 * the known soname versions newest first. NVRTC loads its builtins library
 * (libnvrtc-builtins.so.MAJOR.MINOR) by soname at its first compile, which
 * fails when the toolkit's lib directory is not on the loader's path; so
 * the builtins are loaded here first from libnvrtc's own directory.
 */
#ifndef RXC_CUDA_API_H
#define RXC_CUDA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef int CUresult;                 /* 0 = CUDA_SUCCESS */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

typedef int nvrtcResult;              /* 0 = NVRTC_SUCCESS */
typedef struct _nvrtcProgram *nvrtcProgram;

typedef int cublasStatus_t;           /* 0 = CUBLAS_STATUS_SUCCESS */
typedef struct cublasContext *cublasHandle_t;

enum {
    RXC_CUDA_ERROR_STUB_LIBRARY = 34,
    RXC_CUDA_ERROR_NO_DEVICE = 100,
    RXC_CUDA_ERROR_INVALID_HANDLE = 400,
    RXC_CUDA_ERROR_NOT_READY = 600,
    RXC_CUBLAS_STATUS_NOT_INITIALIZED = 1,
    RXC_CUBLAS_STATUS_ALLOC_FAILED = 3,
    RXC_CUBLAS_STATUS_INVALID_VALUE = 7,
    RXC_CUBLAS_STATUS_ARCH_MISMATCH = 8,
    RXC_CUBLAS_STATUS_MAPPING_ERROR = 11,
    RXC_CUBLAS_STATUS_EXECUTION_FAILED = 13,
    RXC_CUBLAS_STATUS_INTERNAL_ERROR = 14,
    RXC_CUBLAS_STATUS_NOT_SUPPORTED = 15,
    RXC_CUBLAS_STATUS_LICENSE_ERROR = 16,
    RXC_MAJOR_VERSION = 0,
    RXC_MINOR_VERSION = 1,
    RXC_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    RXC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    RXC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    RXC_CU_STREAM_NON_BLOCKING = 1,
    RXC_CU_EVENT_DISABLE_TIMING = 2,
    RXC_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    RXC_CUBLAS_OP_N = 0,
    RXC_CUBLAS_OP_T = 1,
    RXC_CUBLAS_DEFAULT_MATH = 0,
    RXC_CUBLAS_TF32_TENSOR_OP_MATH = 3,
    RXC_CUBLAS_COMPUTE_32F = 68,
    RXC_CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
    RXC_CUBLAS_GEMM_DEFAULT = -1,
    RXC_CUDA_R_32F = 0,
    RXC_CUDA_R_16BF = 14,
};

enum { CUDA_LIB_DRIVER = 1, CUDA_LIB_NVRTC = 2, CUDA_LIB_CUBLAS = 4 };

typedef struct CudaApi {
    unsigned loaded;               /* CUDA_LIB_* bits */
    void *libcuda, *libnvrtc, *libcublas;
    void *libnvrtc_builtins;       /* NULL when not found next to libnvrtc */
    char nvrtc_path[512];
    /* "libnvrtc-builtins.so.13.0 in /dir[, /realdir]": where the builtins
     * were looked for, for the error when NVRTC cannot load them */
    char nvrtc_builtins_sought[8400];

    /* driver */
    CUresult (*cuInit)(unsigned flags);
    CUresult (*cuDriverGetVersion)(int *version);
    CUresult (*cuGetErrorString)(CUresult r, const char **s);
    CUresult (*cuGetErrorName)(CUresult r, const char **s);
    CUresult (*cuDeviceGetCount)(int *n);
    CUresult (*cuDeviceGet)(CUdevice *d, int ordinal);
    CUresult (*cuDeviceGetName)(char *name, int len, CUdevice d);
    CUresult (*cuDeviceGetAttribute)(int *v, int attrib, CUdevice d);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *ctx, CUdevice d);
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice d);
    CUresult (*cuCtxSetCurrent)(CUcontext ctx);
    CUresult (*cuCtxSynchronize)(void);
    CUresult (*cuMemGetInfo)(size_t *free_bytes, size_t *total_bytes);
    CUresult (*cuMemAlloc)(CUdeviceptr *p, size_t bytes);
    CUresult (*cuMemFree)(CUdeviceptr p);
    CUresult (*cuMemAllocHost)(void **p, size_t bytes);
    CUresult (*cuMemFreeHost)(void *p);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
    CUresult (*cuMemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes, CUstream s);
    CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s);
    CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char v, size_t n, CUstream s);
    CUresult (*cuModuleLoadData)(CUmodule *m, const void *image);
    CUresult (*cuModuleUnload)(CUmodule m);
    CUresult (*cuModuleGetFunction)(CUfunction *f, CUmodule m, const char *name);
    CUresult (*cuLaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                               unsigned bz, unsigned shared, CUstream s, void **params, void **extra);
    CUresult (*cuStreamCreate)(CUstream *s, unsigned flags);
    CUresult (*cuStreamDestroy)(CUstream s);
    CUresult (*cuStreamSynchronize)(CUstream s);
    CUresult (*cuStreamWaitEvent)(CUstream s, CUevent e, unsigned flags);
    CUresult (*cuEventCreate)(CUevent *e, unsigned flags);
    CUresult (*cuEventRecord)(CUevent e, CUstream s);
    CUresult (*cuEventSynchronize)(CUevent e);
    CUresult (*cuEventDestroy)(CUevent e);
    CUresult (*cuEventElapsedTime)(float *ms, CUevent start, CUevent end); /* _v2 where the driver has it */
    CUresult (*cuStreamBeginCapture)(CUstream s, int mode);
    CUresult (*cuStreamEndCapture)(CUstream s, CUgraph *g);
    CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *ge, CUgraph g, unsigned long long flags);
    CUresult (*cuGraphLaunch)(CUgraphExec ge, CUstream s);
    CUresult (*cuGraphExecDestroy)(CUgraphExec ge);
    CUresult (*cuGraphDestroy)(CUgraph g);

    /* NVRTC */
    nvrtcResult (*nvrtcVersion)(int *major, int *minor);
    const char *(*nvrtcGetErrorString)(nvrtcResult r);
    nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *p, const char *src, const char *name, int n_headers,
                                      const char *const *headers, const char *const *include_names);
    nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram p, int n_options, const char *const *options);
    nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram p, size_t *n);
    nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram p, char *log);
    nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram p, size_t *n);
    nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram p, char *cubin);
    nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *p);

    /* cuBLAS */
    cublasStatus_t (*cublasCreate)(cublasHandle_t *h);
    cublasStatus_t (*cublasDestroy)(cublasHandle_t h);
    cublasStatus_t (*cublasSetStream)(cublasHandle_t h, CUstream s);
    cublasStatus_t (*cublasGetProperty)(int type, int *value);
    cublasStatus_t (*cublasSetMathMode)(cublasHandle_t h, int mode);
    cublasStatus_t (*cublasSetWorkspace)(cublasHandle_t h, void *ws, size_t bytes);
    cublasStatus_t (*cublasSgemm)(cublasHandle_t h, int ta, int tb, int m, int n, int k, const float *alpha,
                                  const float *a, int lda, const float *b, int ldb, const float *beta, float *c,
                                  int ldc);
    cublasStatus_t (*cublasGemmStridedBatchedEx)(cublasHandle_t h, int ta, int tb, int m, int n, int k,
                                                 const void *alpha, const void *a, int a_type, int lda,
                                                 long long stride_a, const void *b, int b_type, int ldb,
                                                 long long stride_b, const void *beta, void *c, int c_type,
                                                 int ldc, long long stride_c, int batch, int compute, int algo);
} CudaApi;

/* Loads the libraries named by `what` (CUDA_LIB_* bits) into *api (zeroed
 * first by the caller or by an earlier call). Returns 0, or -1 with a
 * message naming the library or function that is missing. */
int cuda_api_load(CudaApi *api, unsigned what, Error *err);
void cuda_api_unload(CudaApi *api);

/* The driver's description of a result ("an illegal memory access was
 * encountered"), and its name ("CUDA_ERROR_ILLEGAL_ADDRESS"). */
const char *cuda_result_text(const CudaApi *api, CUresult r);
const char *cuda_result_name(const CudaApi *api, CUresult r);
/* "CUBLAS_STATUS_NOT_SUPPORTED" for 15. */
const char *cublas_status_name(cublasStatus_t s);

/* Sets err to "WHAT: NAME (code): description", WHAT formatted from fmt;
 * returns -1. Every driver and cuBLAS failure is reported this way. */
int cuda_error_set(Error *err, const CudaApi *api, CUresult r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cublas_error_set(Error *err, cublasStatus_t s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checks that the driver runs what the loaded NVRTC and cuBLAS produce
 * (needs the driver; NVRTC and cuBLAS when loaded). CUDA's minor-version
 * compatibility lets a driver run a toolkit of its own major version, so an
 * older driver major is an error naming both versions and what to install;
 * an older minor is a warning line in *warning ("" when none). */
int cuda_check_versions(const CudaApi *api, char *warning, size_t warning_len, Error *err);

/* The driver's CUDA version as major * 1000 + minor * 10 (13000 = 13.0), or -1. */
int cuda_driver_version(const CudaApi *api);

/* 1 when a CUDA device can be used (driver loads, cuInit succeeds, at least
 * one device), else 0 with the reason in why: the trainer's
 * "cuda requested but no GPU: <reason>". */
int cuda_available(Error *why);

/* How many CUDA devices the driver sees; 0 without a usable driver. */
int cuda_device_count(void);

/* The device's compute capability as sm_XX (e.g. 90), or -1 with a message. */
int cuda_device_sm(const CudaApi *api, int ordinal, Error *err);

#endif
