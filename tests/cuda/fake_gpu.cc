/*
 * fake_gpu.cc — a stand-in for libcuda.so.1, libnvrtc.so and libcublas.so
 * that runs on the CPU, so that the GPU executor (target/cuda/exec_cuda.c)
 * can be exercised end to end on a machine without a GPU.
 *
 * It implements exactly the entry points cuda_api.c resolves, with their
 * ABI. "NVRTC" keeps the source and hands it back as the "cubin";
 * cuModuleLoadData compiles that source with g++ against tests/emu's
 * cuda_emu.h (every CUDA thread a fiber) plus glue derived from the kernel
 * signatures, and cuLaunchKernel runs the grid there. Device memory is host
 * memory. Streams execute in issue order at once; stream capture records
 * operations into a graph that cuGraphLaunch replays, and operations that
 * are illegal while capturing (synchronous copies, synchronising a capturing
 * stream) fail as on a GPU. cuBLAS GEMMs are column-major reference loops.
 *
 * Environment: RXC_FAKE_GPU_EMU_INCLUDE (directory of cuda_emu.h, required),
 * RXC_FAKE_GPU_DIR (work directory, default /tmp), RXC_FAKE_GPU_VERBOSE=1
 * (a line of counts on stderr at exit: kernels launched, graph replays).
 * RXC_FAKE_GPU_FAIL=FUNCTION:CODE makes cuLaunchKernel, cuStreamEndCapture
 * or cublasGemmStridedBatchedEx return CODE; RXC_FAKE_GPU_DRIVER_VERSION
 * is what cuDriverGetVersion reports (default 99000, as new as the fake
 * NVRTC and cuBLAS, which say 99.0).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

namespace {

enum { OK = 0, ERR_INVALID_VALUE = 1, ERR_NOT_FOUND = 500, ERR_CAPTURE_UNSUPPORTED = 900, ERR_UNKNOWN = 999 };

struct Graph {
    std::vector<std::function<int()>> ops;
};

struct Stream {
    bool capturing = false;
    Graph *graph = nullptr;
};

struct Entry {
    std::string name;
    std::vector<std::string> types; /* "" for the scalar pointer */
};

struct Module {
    std::vector<Entry> entries;
    void *so = nullptr;
    int (*launch)(const char *, const unsigned *, const unsigned *, void **, char *, size_t) = nullptr;
};

struct Function {
    Module *module;
    std::string name;
    size_t n_params;
};

struct Counts {
    long kernels = 0, graph_launches = 0, gemms = 0, float4_kernels = 0, tf32_gemms = 0;
    ~Counts() {
        const char *v = getenv("RXC_FAKE_GPU_VERBOSE");
        if (v && *v == '1')
            fprintf(stderr, "fake gpu: %ld kernel launches (%ld float4), %ld graph launches, %ld gemms (%ld tf32)\n",
                    kernels, float4_kernels, graph_launches, gemms, tf32_gemms);
    }
};
Counts counts;
Stream null_stream;

Stream *stream_of(void *s) { return s ? (Stream *)s : &null_stream; }

/* Runs op now, or records it when the stream is being captured. */
int issue(void *s, std::function<int()> op) {
    Stream *st = stream_of(s);
    if (st->capturing) {
        st->graph->ops.push_back(std::move(op));
        return OK;
    }
    return op();
}

bool any_capturing(void *s) { return stream_of(s)->capturing; }

/* The code RXC_FAKE_GPU_FAIL=FUNCTION:CODE asks `function` to fail with, or 0. */
int injected_failure(const char *function) {
    const char *v = getenv("RXC_FAKE_GPU_FAIL");
    size_t n = strlen(function);
    return v && !strncmp(v, function, n) && v[n] == ':' ? atoi(v + n + 1) : 0;
}

/* ---- module building: glue from the kernel signatures ------------------------ */

std::vector<Entry> parse_entries(const std::string &src) {
    std::vector<Entry> out;
    const std::string head = "extern \"C\" __global__ void __launch_bounds__(";
    size_t pos = 0;
    while ((pos = src.find(head, pos)) != std::string::npos) {
        size_t name_start = src.find(") ", pos + head.size()) + 2;
        size_t open = src.find('(', name_start);
        size_t close = src.find(") {", open);
        Entry e;
        e.name = src.substr(name_start, open - name_start);
        std::string params = src.substr(open + 1, close - open - 1);
        size_t p = 0;
        while (p < params.size()) {
            size_t comma = params.find(", ", p);
            std::string one = params.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
            if (one.rfind("RXC_GLOBAL(", 0) == 0) e.types.push_back(one.substr(11, one.find(')') - 11));
            else e.types.push_back("");
            if (comma == std::string::npos) break;
            p = comma + 2;
        }
        out.push_back(e);
        pos = close;
    }
    return out;
}

std::string glue(const std::vector<Entry> &entries) {
    std::string g;
    for (size_t i = 0; i < entries.size(); i++) {
        const Entry &e = entries[i];
        g += "static void fake_call_" + std::to_string(i) + "(rxc_emu::Launch *L) {\n    " + e.name + "(";
        for (size_t a = 0; a < e.types.size(); a++) {
            if (a) g += ", ";
            if (e.types[a].empty()) g += "L->sc";
            else g += "rxc_emu::GPtr<" + e.types[a] + ">(L, " + std::to_string(a) + ")";
        }
        g += ");\n}\n";
    }
    g += "extern \"C\" int rxc_fake_launch(const char *name, const unsigned *grid, const unsigned *block, void **params,\n"
         "                                 char *err, size_t errlen) {\n"
         "    static const struct { const char *name; void (*call)(rxc_emu::Launch *); int n, sc; } table[] = {\n";
    for (size_t i = 0; i < entries.size(); i++) {
        int sc = -1;
        for (size_t a = 0; a < entries[i].types.size(); a++)
            if (entries[i].types[a].empty()) sc = (int)a;
        g += "        {\"" + entries[i].name + "\", fake_call_" + std::to_string(i) + ", " +
             std::to_string(entries[i].types.size()) + ", " + std::to_string(sc) + "},\n";
    }
    g += "    };\n"
         "    for (const auto &t : table) {\n"
         "        if (strcmp(t.name, name)) continue;\n"
         "        void *bufs[64]; long long numel[64]; const char *names[64];\n"
         "        for (int a = 0; a < t.n && a < 64; a++) { bufs[a] = *(void **)params[a]; numel[a] = -1; names[a] = \"arg\"; }\n"
         "        return rxc_emu_launch(t.call, grid, block, bufs, numel, names, t.n, (const double *)bufs[t.sc], err, errlen);\n"
         "    }\n"
         "    snprintf(err, errlen, \"no kernel %s\", name);\n"
         "    return 1;\n"
         "}\n";
    return g;
}

int build_module(const char *source, Module *m) {
    const char *inc = getenv("RXC_FAKE_GPU_EMU_INCLUDE");
    const char *dir = getenv("RXC_FAKE_GPU_DIR");
    if (!inc) {
        fprintf(stderr, "fake gpu: set RXC_FAKE_GPU_EMU_INCLUDE to the directory of cuda_emu.h\n");
        return ERR_INVALID_VALUE;
    }
    static int serial = 0;
    std::string base = std::string(dir ? dir : "/tmp") + "/fake_module_" + std::to_string(getpid()) + "_" +
                       std::to_string(serial++);
    std::string src = source;
    FILE *f = fopen((base + ".cc").c_str(), "w");
    if (!f) return ERR_UNKNOWN;
    m->entries = parse_entries(src);
    fprintf(f, "#include \"cuda_emu.h\"\n%s\n%s", src.c_str(), glue(m->entries).c_str());
    fclose(f);
    std::string cmd = "g++ -std=c++17 -O1 -shared -fPIC -w -I" + std::string(inc) + " -o " + base + ".so " + base +
                      ".cc 2>" + base + ".log";
    if (system(cmd.c_str()) != 0) {
        fprintf(stderr, "fake gpu: the module does not compile as C++, see %s.log\n", base.c_str());
        return ERR_INVALID_VALUE;
    }
    m->so = dlopen((base + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!m->so) return ERR_UNKNOWN;
    m->launch = (int (*)(const char *, const unsigned *, const unsigned *, void **, char *, size_t))dlsym(
        m->so, "rxc_fake_launch");
    return m->launch ? OK : ERR_UNKNOWN;
}

float load(const void *p, int type, long long i) {
    if (type == 14) { /* CUDA_R_16BF */
        uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return ((const float *)p)[i];
}

void store(void *p, int type, long long i, float v) {
    if (type == 14) {
        uint32_t u;
        memcpy(&u, &v, 4);
        ((uint16_t *)p)[i] = (u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0 : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    } else {
        ((float *)p)[i] = v;
    }
}

/* Column-major C = alpha op(A) op(B) + beta C, batched. */
void gemm(int ta, int tb, int m, int n, int k, float alpha, const void *A, int at, int lda, long long sa, const void *B,
          int bt, int ldb, long long sb, float beta, void *C, int ct, int ldc, long long sc, int batch) {
    for (int b = 0; b < batch; b++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double acc = 0;
                for (int l = 0; l < k; l++) {
                    long long ai = ta ? (long long)l + (long long)i * lda : (long long)i + (long long)l * lda;
                    long long bi = tb ? (long long)j + (long long)l * ldb : (long long)l + (long long)j * ldb;
                    acc += (double)load(A, at, b * sa + ai) * (double)load(B, bt, b * sb + bi);
                }
                long long ci = b * sc + i + (long long)j * ldc;
                float old = beta != 0 ? load(C, ct, ci) : 0.0f;
                store(C, ct, ci, (float)(alpha * acc + (beta != 0 ? beta * old : 0.0)));
            }
}

} /* namespace */

extern "C" {

/* ---- driver ------------------------------------------------------------------ */
int cuInit(unsigned) { return OK; }
int cuDriverGetVersion(int *v) {
    const char *env = getenv("RXC_FAKE_GPU_DRIVER_VERSION");
    *v = env ? atoi(env) : 99000;
    return OK;
}
int cuGetErrorString(int r, const char **s) {
    *s = r == ERR_CAPTURE_UNSUPPORTED ? "operation not permitted when stream is capturing (fake gpu)"
         : r == 700                   ? "an illegal memory access was encountered (fake gpu)"
                                      : "fake gpu error";
    return OK;
}
int cuGetErrorName(int r, const char **s) {
    *s = r == ERR_INVALID_VALUE         ? "CUDA_ERROR_INVALID_VALUE"
         : r == ERR_NOT_FOUND           ? "CUDA_ERROR_NOT_FOUND"
         : r == 700                     ? "CUDA_ERROR_ILLEGAL_ADDRESS"
         : r == ERR_CAPTURE_UNSUPPORTED ? "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"
         : r == 901                     ? "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"
                                        : "CUDA_ERROR_UNKNOWN";
    return OK;
}
int cuDeviceGetCount(int *n) { *n = 1; return OK; }
int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return ordinal == 0 ? OK : ERR_INVALID_VALUE; }
int cuDeviceGetName(char *name, int len, int) { snprintf(name, (size_t)len, "fake GPU (CPU emulation)"); return OK; }
int cuDeviceGetAttribute(int *v, int attrib, int) {
    *v = attrib == 75 ? 9 : attrib == 76 ? 0 : attrib == 16 ? 4 : 0;
    return OK;
}
int cuDevicePrimaryCtxRetain(void **ctx, int) { *ctx = (void *)&null_stream; return OK; }
int cuDevicePrimaryCtxRelease_v2(int) { return OK; }
int cuCtxSetCurrent(void *) { return OK; }
int cuCtxSynchronize(void) { return OK; }
int cuMemGetInfo_v2(size_t *f, size_t *t) { *f = (size_t)1 << 34; *t = (size_t)1 << 35; return OK; }
int cuMemAlloc_v2(unsigned long long *p, size_t n) {
    void *q = aligned_alloc(256, (n + 255) / 256 * 256 + 256);
    if (!q) return 2;
    memset(q, 0xa5, (n + 255) / 256 * 256); /* device memory starts as garbage */
    *p = (unsigned long long)(uintptr_t)q;
    return OK;
}
int cuMemFree_v2(unsigned long long p) { free((void *)(uintptr_t)p); return OK; }
int cuMemAllocHost_v2(void **p, size_t n) { *p = malloc(n ? n : 1); return *p ? OK : 2; }
int cuMemFreeHost(void *p) { free(p); return OK; }
int cuMemcpyHtoD_v2(unsigned long long d, const void *s, size_t n) {
    if (any_capturing(nullptr)) return ERR_CAPTURE_UNSUPPORTED;
    memcpy((void *)(uintptr_t)d, s, n);
    return OK;
}
int cuMemcpyDtoH_v2(void *d, unsigned long long s, size_t n) {
    if (any_capturing(nullptr)) return ERR_CAPTURE_UNSUPPORTED;
    memcpy(d, (void *)(uintptr_t)s, n);
    return OK;
}
int cuMemcpyHtoDAsync_v2(unsigned long long d, const void *s, size_t n, void *st) {
    return issue(st, [=] { memcpy((void *)(uintptr_t)d, s, n); return OK; });
}
int cuMemcpyDtoDAsync_v2(unsigned long long d, unsigned long long s, size_t n, void *st) {
    return issue(st, [=] { memmove((void *)(uintptr_t)d, (void *)(uintptr_t)s, n); return OK; });
}
int cuMemsetD8Async(unsigned long long d, unsigned char v, size_t n, void *st) {
    return issue(st, [=] { memset((void *)(uintptr_t)d, v, n); return OK; });
}
int cuModuleLoadData(void **m, const void *image) {
    Module *mod = new Module;
    int rc = build_module((const char *)image, mod);
    if (rc) {
        delete mod;
        return rc;
    }
    *m = mod;
    return OK;
}
int cuModuleUnload(void *m) {
    Module *mod = (Module *)m;
    if (mod->so) dlclose(mod->so);
    delete mod;
    return OK;
}
int cuModuleGetFunction(void **f, void *m, const char *name) {
    for (const Entry &e : ((Module *)m)->entries)
        if (e.name == name) {
            *f = new Function{(Module *)m, name, e.types.size()};
            return OK;
        }
    return ERR_NOT_FOUND;
}
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned,
                   void *st, void **params, void **) {
    Function *fn = (Function *)f;
    if (int rc = injected_failure("cuLaunchKernel")) return rc;
    /* kernel parameters are read at launch, as on a GPU: copy their values now */
    std::vector<unsigned long long> values(64);
    for (size_t a = 0; a < fn->n_params && a < 64; a++) values[a] = *(unsigned long long *)params[a];
    return issue(st, [=]() mutable {
        unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
        void *p[64];
        for (int a = 0; a < 64; a++) p[a] = &values[(size_t)a];
        char err[1024];
        counts.kernels++;
        if (fn->name.size() > 3 && fn->name.compare(fn->name.size() - 3, 3, "_v4") == 0) counts.float4_kernels++;
        if (fn->module->launch(fn->name.c_str(), grid, block, p, err, sizeof err)) {
            fprintf(stderr, "fake gpu: kernel %s: %s\n", fn->name.c_str(), err);
            return ERR_UNKNOWN;
        }
        return OK;
    });
}
int cuStreamCreate(void **s, unsigned) { *s = new Stream; return OK; }
int cuStreamDestroy_v2(void *s) { delete (Stream *)s; return OK; }
int cuStreamSynchronize(void *s) { return any_capturing(s) ? ERR_CAPTURE_UNSUPPORTED : OK; }
int cuStreamWaitEvent(void *, void *, unsigned) { return OK; }
int cuEventCreate(void **e, unsigned) { *e = new int(0); return OK; }
int cuEventRecord(void *, void *) { return OK; }
int cuEventSynchronize(void *) { return OK; }
int cuEventDestroy_v2(void *e) { delete (int *)e; return OK; }
int cuStreamBeginCapture_v2(void *s, int) {
    Stream *st = stream_of(s);
    if (st->capturing) return ERR_INVALID_VALUE;
    st->capturing = true;
    st->graph = new Graph;
    return OK;
}
int cuStreamEndCapture(void *s, void **g) {
    Stream *st = stream_of(s);
    if (!st->capturing) return ERR_INVALID_VALUE;
    st->capturing = false;
    *g = st->graph;
    st->graph = nullptr;
    if (int rc = injected_failure("cuStreamEndCapture")) {
        delete (Graph *)*g;
        *g = nullptr;
        return rc;
    }
    return OK;
}
int cuGraphInstantiateWithFlags(void **ge, void *g, unsigned long long) {
    *ge = new Graph(*(Graph *)g);
    return OK;
}
int cuGraphLaunch(void *ge, void *s) {
    Graph *g = (Graph *)ge;
    counts.graph_launches++;
    return issue(s, [g] {
        for (auto &op : g->ops)
            if (int rc = op()) return rc;
        return (int)OK;
    });
}
int cuGraphExecDestroy(void *ge) { delete (Graph *)ge; return OK; }
int cuGraphDestroy(void *g) { delete (Graph *)g; return OK; }

/* ---- NVRTC ------------------------------------------------------------------ */
int nvrtcVersion(int *major, int *minor) { *major = 99; *minor = 0; return OK; }
const char *nvrtcGetErrorString(int) { return "fake nvrtc error"; }
int nvrtcCreateProgram(void **p, const char *src, const char *, int, const char *const *, const char *const *) {
    *p = new std::string(src);
    return OK;
}
int nvrtcCompileProgram(void *, int, const char *const *) { return OK; }
int nvrtcGetProgramLogSize(void *, size_t *n) { *n = 1; return OK; }
int nvrtcGetProgramLog(void *, char *log) { log[0] = 0; return OK; }
int nvrtcGetCUBINSize(void *p, size_t *n) { *n = ((std::string *)p)->size() + 1; return OK; }
int nvrtcGetCUBIN(void *p, char *out) {
    memcpy(out, ((std::string *)p)->c_str(), ((std::string *)p)->size() + 1);
    return OK;
}
int nvrtcDestroyProgram(void **p) { delete (std::string *)*p; *p = nullptr; return OK; }

/* ---- cuBLAS ------------------------------------------------------------------ */
struct FakeBlas {
    void *stream = nullptr;
    int math_mode = 0;
};
int cublasGetProperty(int type, int *v) { *v = type == 0 ? 99 : 0; return OK; }
int cublasCreate_v2(void **h) { *h = new FakeBlas; return OK; }
int cublasDestroy_v2(void *h) { delete (FakeBlas *)h; return OK; }
int cublasSetStream_v2(void *h, void *s) { ((FakeBlas *)h)->stream = s; return OK; }
int cublasSetMathMode(void *h, int mode) { ((FakeBlas *)h)->math_mode = mode; return OK; }
int cublasSetWorkspace_v2(void *, void *, size_t) { return OK; }
int cublasSgemm_v2(void *h, int ta, int tb, int m, int n, int k, const float *alpha, const float *a, int lda,
                   const float *b, int ldb, const float *beta, float *c, int ldc) {
    float al = *alpha, be = *beta;
    counts.gemms++;
    return issue(((FakeBlas *)h)->stream, [=] {
        gemm(ta, tb, m, n, k, al, a, 0, lda, 0, b, 0, ldb, 0, be, c, 0, ldc, 0, 1);
        return OK;
    });
}
int cublasGemmStridedBatchedEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, const void *a, int at,
                               int lda, long long sa, const void *b, int bt, int ldb, long long sb, const void *beta,
                               void *c, int ct, int ldc, long long sc, int batch, int compute, int) {
    float al = *(const float *)alpha, be = *(const float *)beta;
    if (int rc = injected_failure("cublasGemmStridedBatchedEx")) return rc;
    counts.gemms++;
    /* CUBLAS_COMPUTE_32F_FAST_TF32 or CUBLAS_TF32_TENSOR_OP_MATH on f32: the
     * emulation still computes in f32; the count lets a test see that
     * `precision tf32` and RXC_TF32 reach cuBLAS. */
    if (at == 0 && (compute == 77 || ((FakeBlas *)h)->math_mode == 3)) counts.tf32_gemms++;
    return issue(((FakeBlas *)h)->stream, [=] {
        gemm(ta, tb, m, n, k, al, a, at, lda, sa, b, bt, ldb, sb, be, c, ct, ldc, sc, batch);
        return OK;
    });
}

} /* extern "C" */
