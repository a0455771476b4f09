/*
 * fake_gpu.cc — a stand-in for libcuda.so.1, libnvrtc.so and libcublas.so
 * that runs on the CPU, so that the GPU executor (target/cuda/exec_cuda.c)
 * can be exercised end to end on a machine without a GPU, with the checks a
 * GPU would make implicitly (a wrong result, a fault, a slow path) made loud.
 *
 * It implements exactly the entry points cuda_api.c resolves, with their
 * ABI. "NVRTC" keeps the source and hands it back as the "cubin";
 * cuModuleLoadData compiles that source with g++ against tests/emu's
 * cuda_emu.h (every CUDA thread a fiber) plus glue derived from the kernel
 * signatures (once per distinct source: the objects are cached in
 * RXC_FAKE_GPU_DIR, see compile_module), and cuLaunchKernel runs the grid there with every buffer
 * bounds- and race-checked: cuInit sets RXC_CUDA_EXTENTS=1, which makes
 * render_cuda write each kernel's buffer sizes into its header comment.
 * Device memory is host memory.
 *
 * Streams. Every stream has its own worker thread that runs its operations
 * in issue order; events and cuStreamWaitEvent order them across streams as
 * on a GPU. Besides running them, the fake keeps vector clocks (one entry
 * per stream, and one for the host) and a shadow of device memory (per 64
 * bytes: the last writing stream and operation, the last reader per
 * stream), and fails an operation that touches memory another stream wrote
 * or read without an event wait or synchronisation in between, whatever the
 * threads' actual timing: an error that sticks, as a fault on a GPU does.
 * Synchronous copies are host operations and need the same ordering.
 * Stream capture records operations into a graph that cuGraphLaunch replays
 * as one operation of the launching stream; operations that are illegal
 * while capturing (synchronous copies, synchronising a capturing stream,
 * waiting on an event recorded outside the capture) fail as on a GPU.
 * Timing events (created without CU_EVENT_DISABLE_TIMING) take their time
 * when their stream reaches the record, and cuEventElapsedTime follows the
 * driver's documented contract (see there); the times are the CPU
 * emulator's, meaningless as GPU times.
 *
 * cuBLAS. GEMMs are column-major reference loops. Arguments are checked as
 * the cuBLAS documentation states (CUBLAS_STATUS_INVALID_VALUE for negative
 * sizes or batch counts, leading dimensions below the operand's rows;
 * CUBLAS_STATUS_NOT_SUPPORTED for a type combination cublasGemmEx does not
 * list). GEMMs that would run on tensor cores (16-bit operands, or
 * CUBLAS_COMPUTE_32F_FAST_TF32) but whose pointers are not 16-byte aligned
 * or whose leading dimensions or batch strides are not multiples of 16
 * bytes — where the real library silently takes a slow non-tensor-core
 * kernel — are counted and described.
 *
 * The three libraries are copies of this one file: the cuBLAS copy finds the
 * driver copy's state through RXC_FAKE_GPU_DRIVER, which cuInit sets.
 *
 * Environment: RXC_FAKE_GPU_EMU_INCLUDE (directory of cuda_emu.h, required),
 * RXC_FAKE_GPU_DIR (work directory, default /tmp), RXC_FAKE_GPU_VERBOSE=1
 * (a line of counts on stderr at exit: kernels launched, graph replays,
 * GEMMs and those not eligible for tensor cores, with the first few
 * reasons), RXC_FAKE_GPU_STRICT_TC=1 (a GEMM not eligible for tensor cores
 * fails with CUBLAS_STATUS_NOT_SUPPORTED).
 * RXC_FAKE_GPU_FAIL=FUNCTION:CODE makes cuLaunchKernel, cuStreamEndCapture
 * or cublasGemmStridedBatchedEx return CODE; RXC_FAKE_GPU_DRIVER_VERSION
 * is what cuDriverGetVersion reports (default 99000, as new as the fake
 * NVRTC and cuBLAS, which say 99.0).
 *
 * A kernel whose header comment has no extents (a renderer without the
 * RXC_CUDA_EXTENTS hook) still runs, with unchecked pointers: such launches
 * are counted ("unchecked") in the verbose line.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../emu/cuda_emu_sink.h"

namespace {

enum {
    OK = 0,
    ERR_INVALID_VALUE = 1,
    ERR_OUT_OF_MEMORY = 2,
    ERR_INVALID_HANDLE = 400,
    ERR_NOT_FOUND = 500,
    ERR_NOT_READY = 600,
    ERR_ILLEGAL_ADDRESS = 700,
    ERR_LAUNCH_FAILED = 719,
    ERR_CAPTURE_UNSUPPORTED = 900,
    ERR_CAPTURE_ISOLATION = 905,
    ERR_UNKNOWN = 999
};
enum { BLAS_OK = 0, BLAS_NOT_INITIALIZED = 1, BLAS_INVALID_VALUE = 7, BLAS_EXECUTION_FAILED = 13, BLAS_NOT_SUPPORTED = 15 };
enum { R_32F = 0, R_16F = 2, R_8I = 3, R_16BF = 14 };
enum { COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69, COMPUTE_32F_FAST_16F = 74, COMPUTE_32F_FAST_16BF = 75,
       COMPUTE_32F_FAST_TF32 = 77 };
/* agent 0 is the host, 1 the legacy default stream, then created streams */
enum { EVENT_DISABLE_TIMING = 2 };
enum { MAX_AGENTS = 8, HOST = 0, GRANULE = 64, CHUNK_GRANULES = 16384, NAMES_KEPT = 4096, REASONS_KEPT = 6 };

struct Clock {
    uint32_t c[MAX_AGENTS] = {};
    void join(const Clock &o) {
        for (int i = 0; i < MAX_AGENTS; i++) c[i] = c[i] > o.c[i] ? c[i] : o.c[i];
    }
};

/* What an operation runs as: its stream (agent), what it knows happened
 * before it, and its name for messages. */
struct Ctx {
    int agent = HOST;
    Clock vc;
    std::string what;
};
using OpFn = std::function<int(const Ctx &)>;

struct Graph {
    std::vector<std::pair<std::string, OpFn>> ops;
};

struct Stream {
    int agent = 1;
    bool capturing = false;
    Graph *graph = nullptr;
    Clock vc; /* of the last operation issued (host thread only) */
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::pair<Ctx, OpFn>> queue;
    uint32_t issued = 0, done = 0; /* guarded by m */
    bool stop = false;
    std::thread worker;
};

/* When a timing event's latest record ran on its stream (steady clock). */
struct Stamp {
    std::mutex m;
    uint64_t generation = 0; /* of the latest record; the stamp counts only for it */
    uint64_t stamped = 0;
    double ms = 0;
};

struct Event {
    Stream *stream = nullptr; /* null: never recorded, or recorded inside a capture */
    uint32_t seq = 0;
    Clock vc;
    bool in_capture = false;
    bool timing = true;       /* created without CU_EVENT_DISABLE_TIMING */
    std::shared_ptr<Stamp> stamp = std::make_shared<Stamp>(); /* outlives the event in a pending record */
};

/* Per 64 bytes of device memory: the last write and, per agent, the last read. */
struct Cell {
    uint32_t w_seq;
    uint32_t w_agent;
    uint32_t r_seq[MAX_AGENTS];
};

struct Alloc {
    size_t bytes = 0;
    std::vector<std::unique_ptr<Cell[]>> chunks; /* allocated when first touched */
};

struct Counts {
    long kernels = 0, graph_launches = 0, gemms = 0, float4_kernels = 0, tf32_gemms = 0, tc_gemms = 0,
         tc_ineligible = 0, hazards = 0, unchecked = 0;
    std::vector<std::string> tc_reasons;
};

struct Driver {
    std::mutex api;    /* stream and event bookkeeping, the host clock */
    std::mutex shadow; /* allocations and their cells, counts */
    std::mutex emu;    /* one kernel at a time: the emulator's state is global */
    std::map<uintptr_t, Alloc> allocs;
    Clock host;
    int agents = 2;
    Stream *legacy = nullptr;
    std::vector<Stream *> streams;
    std::atomic<int> sticky{0};
    std::vector<std::string> names[MAX_AGENTS]; /* operation names by seq, the last NAMES_KEPT */
    Counts counts;
    ~Driver();
};

Driver this_copy;

void stream_stop(Stream *s) {
    {
        std::lock_guard<std::mutex> g(s->m);
        s->stop = true;
    }
    s->cv.notify_all();
    if (s->worker.joinable()) s->worker.join();
}

Driver::~Driver() {
    for (Stream *s : streams) stream_stop(s);
    const char *v = getenv("RXC_FAKE_GPU_VERBOSE");
    if (counts.kernels + counts.gemms == 0) return;
    if (v && *v == '1') {
        fprintf(stderr,
                "fake gpu: %ld kernel launches (%ld float4), %ld graph launches, %ld gemms (%ld tf32), "
                "%ld tensor-core gemms (%ld not eligible), %ld hazards, %ld launches unchecked\n",
                counts.kernels, counts.float4_kernels, counts.graph_launches, counts.gemms, counts.tf32_gemms,
                counts.tc_gemms, counts.tc_ineligible, counts.hazards, counts.unchecked);
        for (const std::string &r : counts.tc_reasons) fprintf(stderr, "fake gpu: not tensor-core eligible: %s\n", r.c_str());
    }
}

/* The driver copy's state, from any of the three copies: the driver's
 * cuInit publishes its address in RXC_FAKE_GPU_DRIVER (found whatever name
 * or wrapper the driver copy was loaded through, e.g. tests/gpu's
 * launch counter). */
Driver *driver() {
    const char *published = getenv("RXC_FAKE_GPU_DRIVER");
    void *p = nullptr;
    long pid = 0; /* a child process inherits the variable, not the address space's meaning */
    if (published && sscanf(published, "%ld:%p", &pid, &p) == 2 && pid == (long)getpid() && p) return (Driver *)p;
    return &this_copy;
}

void fail_sticky(Driver *d, int rc, const std::string &msg) {
    int zero = 0;
    d->sticky.compare_exchange_strong(zero, rc);
    fprintf(stderr, "fake gpu: %s\n", msg.c_str());
}

void worker_loop(Driver *d, Stream *s) {
    for (;;) {
        std::pair<Ctx, OpFn> op;
        {
            std::unique_lock<std::mutex> g(s->m);
            s->cv.wait(g, [s] { return s->stop || !s->queue.empty(); });
            if (s->queue.empty()) return;
            op = std::move(s->queue.front());
            s->queue.pop_front();
        }
        if (!d->sticky) {
            int rc = op.second(op.first);
            if (rc) {
                int zero = 0;
                d->sticky.compare_exchange_strong(zero, rc);
            }
        }
        {
            std::lock_guard<std::mutex> g(s->m);
            s->done++;
        }
        s->cv.notify_all();
    }
}

Stream *new_stream(Driver *d) {
    std::lock_guard<std::mutex> g(d->api);
    if (d->agents >= MAX_AGENTS) return nullptr;
    Stream *s = new Stream;
    s->agent = d->agents++;
    s->worker = std::thread(worker_loop, d, s);
    d->streams.push_back(s);
    return s;
}

Stream *stream_of(Driver *d, void *s) {
    if (s) return (Stream *)s;
    if (!d->legacy) {
        d->legacy = new Stream;
        d->legacy->worker = std::thread(worker_loop, d, d->legacy);
        d->streams.push_back(d->legacy);
    }
    return d->legacy;
}

const std::string &op_name(Driver *d, int agent, uint32_t seq) {
    static const std::string unknown = "an earlier operation";
    const std::vector<std::string> &n = d->names[agent];
    return seq && !n.empty() ? n[seq % n.size()] : unknown;
}

std::string agent_name(int agent) {
    return agent == HOST ? "the host" : agent == 1 ? "the default stream" : "stream " + std::to_string(agent - 1);
}

/* Runs op on stream s in issue order, or records it while s is captured. */
int issue(void *sp, const std::string &what, OpFn fn) {
    Driver *d = driver();
    if (int e = d->sticky) return e;
    Stream *s = stream_of(d, sp);
    if (s->capturing) {
        s->graph->ops.emplace_back(what, std::move(fn));
        return OK;
    }
    Ctx c;
    {
        std::lock_guard<std::mutex> g(d->api);
        uint32_t seq;
        {
            std::lock_guard<std::mutex> q(s->m);
            seq = ++s->issued;
        }
        s->vc.join(d->host); /* what the host saw finish is ordered before */
        s->vc.c[s->agent] = seq;
        c.agent = s->agent;
        c.vc = s->vc;
        c.what = what + " on " + agent_name(s->agent);
        std::vector<std::string> &n = d->names[s->agent];
        if (n.size() < NAMES_KEPT) n.resize(NAMES_KEPT);
        n[seq % NAMES_KEPT] = c.what;
    }
    {
        std::lock_guard<std::mutex> q(s->m);
        s->queue.emplace_back(std::move(c), std::move(fn));
    }
    s->cv.notify_all();
    return OK;
}

bool any_capturing(Driver *d) {
    for (Stream *s : d->streams)
        if (s->capturing) return true;
    return false;
}

/* The code RXC_FAKE_GPU_FAIL=FUNCTION:CODE asks `function` to fail with, or 0. */
int injected_failure(const char *function) {
    const char *v = getenv("RXC_FAKE_GPU_FAIL");
    size_t n = strlen(function);
    return v && !strncmp(v, function, n) && v[n] == ':' ? atoi(v + n + 1) : 0;
}

/* Waits until stream s finished its first `seq` operations. */
void wait_done(Stream *s, uint32_t seq) {
    std::unique_lock<std::mutex> g(s->m);
    s->cv.wait(g, [s, seq] { return s->done >= seq; });
}

/* ---- the shadow of device memory ------------------------------------------------ */

Alloc *find_alloc(Driver *d, uintptr_t p, uintptr_t *base) {
    auto it = d->allocs.upper_bound(p);
    if (it == d->allocs.begin()) return nullptr;
    --it;
    if (p >= it->first + it->second.bytes) return nullptr;
    *base = it->first;
    return &it->second;
}

std::string describe(Driver *d, uintptr_t p) {
    uintptr_t base = 0;
    char buf[96];
    if (find_alloc(d, p, &base)) snprintf(buf, sizeof buf, "byte %llu of the allocation at %#llx",
                                          (unsigned long long)(p - base), (unsigned long long)base);
    else snprintf(buf, sizeof buf, "%#llx (no device allocation)", (unsigned long long)p);
    return buf;
}

/* [p, p + bytes) lies in one device allocation. */
bool in_one_alloc(Driver *d, uintptr_t p, size_t bytes) {
    std::lock_guard<std::mutex> g(d->shadow);
    uintptr_t base;
    Alloc *a = find_alloc(d, p, &base);
    return a && p + bytes <= base + a->bytes;
}

/* Records an access by the operation c to [p, p + bytes); false (with msg)
 * when it conflicts with an access of another agent that c is not ordered
 * after. Caller holds d->shadow. */
bool touch(Driver *d, const Ctx &c, uintptr_t p, size_t bytes, bool write, std::string *msg) {
    if (!bytes) return true;
    uintptr_t base;
    Alloc *a = find_alloc(d, p, &base);
    if (!a || p + bytes > base + a->bytes) {
        *msg = c.what + (write ? " writes " : " reads ") + std::to_string(bytes) + " bytes at " + describe(d, p) +
               ", outside any device allocation";
        return false;
    }
    for (size_t g = (p - base) / GRANULE, end = (p - base + bytes - 1) / GRANULE; g <= end; g++) {
        std::unique_ptr<Cell[]> &chunk = a->chunks[g / CHUNK_GRANULES];
        if (!chunk) {
            chunk.reset(new Cell[CHUNK_GRANULES]);
            memset(chunk.get(), 0, sizeof(Cell) * CHUNK_GRANULES);
        }
        Cell &cell = chunk[g % CHUNK_GRANULES];
        int other = -1;
        uint32_t other_seq = 0;
        bool other_wrote = false;
        if (cell.w_seq && (int)cell.w_agent != c.agent && c.vc.c[cell.w_agent] < cell.w_seq)
            other = (int)cell.w_agent, other_seq = cell.w_seq, other_wrote = true;
        for (int r = 0; write && other < 0 && r < MAX_AGENTS; r++)
            if (r != c.agent && cell.r_seq[r] && c.vc.c[r] < cell.r_seq[r]) other = r, other_seq = cell.r_seq[r];
        if (other >= 0) {
            *msg = c.what + (write ? " writes " : " reads ") + describe(d, base + g * GRANULE) + ", which " +
                   op_name(d, other, other_seq) + (other_wrote ? " wrote" : " read") +
                   ", with no event wait or synchronisation ordering the two";
            return false;
        }
        if (write) {
            cell.w_seq = c.vc.c[c.agent];
            cell.w_agent = (uint32_t)c.agent;
            memset(cell.r_seq, 0, sizeof cell.r_seq);
        } else {
            cell.r_seq[c.agent] = c.vc.c[c.agent];
        }
    }
    return true;
}

/* touch() for a list of ranges; a conflict is a sticky error. */
struct Range {
    uintptr_t p;
    size_t bytes;
    bool write;
};
int touch_all(Driver *d, const Ctx &c, const std::vector<Range> &ranges) {
    std::string msg;
    bool ok = true;
    {
        std::lock_guard<std::mutex> g(d->shadow);
        for (const Range &r : ranges)
            if (ok && !touch(d, c, r.p, r.bytes, r.write, &msg)) {
                ok = false;
                d->counts.hazards++;
            }
    }
    if (!ok) fail_sticky(d, ERR_ILLEGAL_ADDRESS, msg);
    return ok ? OK : ERR_ILLEGAL_ADDRESS;
}

/* A synchronous host operation: ordered after what the host synchronised with. */
Ctx host_ctx(Driver *d, const char *what) {
    std::lock_guard<std::mutex> g(d->api);
    d->host.c[HOST]++;
    std::vector<std::string> &n = d->names[HOST];
    if (n.size() < NAMES_KEPT) n.resize(NAMES_KEPT);
    n[d->host.c[HOST] % NAMES_KEPT] = what;
    Ctx c;
    c.agent = HOST;
    c.vc = d->host;
    c.what = what;
    return c;
}

/* ---- module building: glue from the kernel signatures ------------------------ */

struct Param {
    std::string type; /* "" for the scalar pointer sc */
    std::string name;
    long long numel = -1;
};

struct Entry {
    std::string name;
    std::vector<Param> params;
};

size_t type_size(const std::string &t) {
    std::string b = t.rfind("const ", 0) == 0 ? t.substr(6) : t;
    return b == "float" ? 4 : b == "__nv_bfloat16" ? 2 : b == "unsigned char" ? 1 : 8;
}

/* "extents: N N ... [scratch N]" of the kernel's header comment (render_cuda under RXC_CUDA_EXTENTS). */
std::vector<long long> extents_of(const std::string &src, const std::string &kernel) {
    std::vector<long long> out;
    size_t at = src.find("/* " + kernel + ": ");
    if (at == std::string::npos) return out;
    size_t ext = src.find(" * extents:", at), end = src.find("*/", at);
    if (ext == std::string::npos || ext > end) return out;
    const char *p = src.c_str() + ext + 11;
    for (;;) {
        while (*p == ' ') p++;
        if (!strncmp(p, "scratch", 7)) p += 7;
        char *q;
        long long v = strtoll(p, &q, 10);
        if (q == p) break;
        out.push_back(v);
        p = q;
    }
    return out;
}

std::string base_kernel(const std::string &name) {
    for (const char *suffix : {"_finish", "_v4"}) {
        size_t n = strlen(suffix);
        if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) return name.substr(0, name.size() - n);
    }
    return name;
}

/* The entry points and their parameters; a kernel without extents keeps
 * numel -1 (unchecked); false with msg when its extents do not match. */
bool parse_entries(const std::string &src, std::vector<Entry> *out, std::string *msg) {
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
            Param pa;
            if (one.rfind("RXC_GLOBAL(", 0) == 0) {
                size_t close_type = one.find(')');
                pa.type = one.substr(11, close_type - 11);
                pa.name = one.substr(close_type + 2);
            }
            e.params.push_back(pa);
            if (comma == std::string::npos) break;
            p = comma + 2;
        }
        std::vector<long long> ext = extents_of(src, base_kernel(e.name));
        size_t k = 0;
        for (Param &pa : e.params)
            if (!pa.type.empty() && !ext.empty()) {
                if (k >= ext.size()) {
                    *msg = "kernel " + e.name + " has no extent for " + pa.name +
                           " (render with RXC_CUDA_EXTENTS=1, which cuInit sets)";
                    return false;
                }
                pa.numel = ext[k++];
            }
        out->push_back(e);
        pos = close;
    }
    return true;
}

std::string glue(const std::vector<Entry> &entries) {
    std::string g;
    for (size_t i = 0; i < entries.size(); i++) {
        const Entry &e = entries[i];
        g += "static void fake_call_" + std::to_string(i) + "(rxc_emu::Launch *L) {\n    " + e.name + "(";
        for (size_t a = 0; a < e.params.size(); a++) {
            if (a) g += ", ";
            if (e.params[a].type.empty()) g += "L->sc";
            else g += "rxc_emu::GPtr<" + e.params[a].type + ">(L, " + std::to_string(a) + ")";
        }
        g += ");\n}\n";
    }
    g += "extern \"C\" int rxc_fake_launch(int entry, const unsigned *grid, const unsigned *block, void *const *bufs,\n"
         "                                 const long long *numel, const char *const *names, const RxcEmuSink *sink,\n"
         "                                 char *err, size_t errlen) {\n"
         "    static const struct { void (*call)(rxc_emu::Launch *); int n, sc; } table[] = {\n";
    for (size_t i = 0; i < entries.size(); i++) {
        int sc = -1;
        for (size_t a = 0; a < entries[i].params.size(); a++)
            if (entries[i].params[a].type.empty()) sc = (int)a;
        g += "        {fake_call_" + std::to_string(i) + ", " + std::to_string(entries[i].params.size()) + ", " +
             std::to_string(sc) + "},\n";
    }
    g += "    };\n"
         "    const auto &t = table[entry];\n"
         "    return rxc_emu_launch(t.call, grid, block, bufs, numel, names, t.n, (const double *)bufs[t.sc], err, errlen,\n"
         "                          sink);\n"
         "}\n";
    return g;
}

using LaunchFn = int (*)(int, const unsigned *, const unsigned *, void *const *, const long long *,
                         const char *const *, const RxcEmuSink *, char *, size_t);

struct Module {
    std::vector<Entry> entries;
    void *so = nullptr;
    LaunchFn launch = nullptr;
};

struct Function {
    Module *module;
    int entry;
};

/* FNV-1a over text, continuing from h */
uint64_t fnv1a(const std::string &text, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    return h;
}

/* Every header of the emulator directory, in name order: a module's build depends on them. */
std::string emulator_headers(const char *inc) {
    std::vector<std::string> names;
    if (DIR *d = opendir(inc)) {
        while (struct dirent *e = readdir(d)) {
            std::string n = e->d_name;
            if (n.size() > 2 && n.compare(n.size() - 2, 2, ".h") == 0) names.push_back(n);
        }
        closedir(d);
    }
    std::sort(names.begin(), names.end());
    std::string all;
    for (const std::string &n : names) {
        FILE *f = fopen((std::string(inc) + "/" + n).c_str(), "rb");
        if (!f) continue;
        char buf[65536];
        size_t got;
        all += n;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) all.append(buf, got);
        fclose(f);
    }
    return all;
}

/* Compiles a module's C++ with g++ into a shared object, once per distinct
 * source: tests run the same program many times, and g++ is most of a fake
 * run's time. The cached object is named by a hash of the source, the
 * command and the emulator's headers, written under a temporary name and
 * renamed (a concurrent run never loads half a file), and copied to `so`
 * for this module alone, so that no two modules share one loaded image. */
bool compile_module(const std::string &text, const char *inc, const std::string &base, const std::string &so) {
    const char *dir = getenv("RXC_FAKE_GPU_DIR");
    std::string flags = "g++ -std=c++17 -O1 -shared -fPIC -w -I" + std::string(inc);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a(text, fnv1a(flags, fnv1a(emulator_headers(inc)))));
    std::string cached = std::string(dir ? dir : "/tmp") + "/fake_module_cache_" + hash + ".so";
    if (access(cached.c_str(), R_OK) != 0) {
        std::string tmp = base + ".so.new";
        std::string cmd = flags + " -o " + tmp + " " + base + ".cc 2>" + base + ".log";
        if (system(cmd.c_str()) != 0 || rename(tmp.c_str(), cached.c_str()) != 0) return false;
    }
    std::string cmd = "cp " + cached + " " + so;
    return system(cmd.c_str()) == 0;
}

int build_module(const char *source, Module *m) {
    const char *inc = getenv("RXC_FAKE_GPU_EMU_INCLUDE");
    const char *dir = getenv("RXC_FAKE_GPU_DIR");
    if (!inc) {
        fprintf(stderr, "fake gpu: set RXC_FAKE_GPU_EMU_INCLUDE to the directory of cuda_emu.h\n");
        return ERR_INVALID_VALUE;
    }
    static std::atomic<int> serial{0};
    std::string base = std::string(dir ? dir : "/tmp") + "/fake_module_" + std::to_string(getpid()) + "_" +
                       std::to_string(serial++);
    std::string src = source, msg;
    if (!parse_entries(src, &m->entries, &msg)) {
        fprintf(stderr, "fake gpu: %s\n", msg.c_str());
        return ERR_INVALID_VALUE;
    }
    std::string text = "#include \"cuda_emu.h\"\n" + src + "\n" + glue(m->entries);
    FILE *f = fopen((base + ".cc").c_str(), "w");
    if (!f) return ERR_UNKNOWN;
    fputs(text.c_str(), f);
    fclose(f);
    if (!compile_module(text, inc, base, base + ".so")) {
        fprintf(stderr, "fake gpu: the module does not compile as C++, see %s.log\n", base.c_str());
        return ERR_INVALID_VALUE;
    }
    m->so = dlopen((base + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!m->so) return ERR_UNKNOWN;
    m->launch = (LaunchFn)dlsym(m->so, "rxc_fake_launch");
    return m->launch ? OK : ERR_UNKNOWN;
}

struct SinkCtx {
    Driver *d;
    const Ctx *c;
    const Entry *e;
    const uintptr_t *bufs;
    std::vector<Range> ranges;
};

void sink_touched(void *ctx, int arg, long long first, long long count, int mode) {
    SinkCtx *s = (SinkCtx *)ctx;
    size_t es = type_size(s->e->params[(size_t)arg].type);
    uintptr_t p = s->bufs[arg] + (uintptr_t)first * es;
    if (mode & 1) s->ranges.push_back({p, (size_t)count * es, false});
    if (mode & 2) s->ranges.push_back({p, (size_t)count * es, true});
}

/* One kernel launch, run by its stream's worker. */
int run_kernel(const Ctx &c, const Function *fn, const unsigned grid[3], const unsigned block[3],
               const std::vector<unsigned long long> &values) {
    Driver *d = driver();
    const Entry &e = fn->module->entries[(size_t)fn->entry];
    size_t n = e.params.size();
    std::vector<void *> bufs(n);
    std::vector<long long> numel(n);
    std::vector<const char *> names(n);
    std::vector<uintptr_t> addr(n);
    bool unchecked = false;
    for (size_t a = 0; a < n; a++) {
        addr[a] = (uintptr_t)values[a];
        unchecked |= !e.params[a].type.empty() && e.params[a].numel < 0;
        bufs[a] = (void *)addr[a];
        numel[a] = e.params[a].numel;
        names[a] = e.params[a].type.empty() ? "sc" : e.params[a].name.c_str();
        size_t bytes = numel[a] > 0 ? (size_t)numel[a] * type_size(e.params[a].type) : 0;
        if (bytes && !in_one_alloc(d, addr[a], bytes)) {
            fail_sticky(d, ERR_ILLEGAL_ADDRESS, c.what + ": buffer " + e.params[a].name + " (" +
                                                    std::to_string(numel[a]) + " elements at " + describe(d, addr[a]) +
                                                    ") extends past its device allocation");
            return ERR_ILLEGAL_ADDRESS;
        }
    }
    if (unchecked) {
        std::lock_guard<std::mutex> g(d->shadow);
        d->counts.unchecked++;
    }
    SinkCtx sc{d, &c, &e, addr.data(), {}};
    RxcEmuSink sink{sink_touched, &sc};
    char err[1024];
    int errors;
    {
        std::lock_guard<std::mutex> g(d->emu);
        errors = fn->module->launch(fn->entry, grid, block, bufs.data(), numel.data(), names.data(), &sink, err,
                                    sizeof err);
    }
    if (errors) {
        fail_sticky(d, ERR_LAUNCH_FAILED, c.what + ": " + err);
        return ERR_LAUNCH_FAILED;
    }
    return touch_all(d, c, sc.ranges);
}

/* ---- cuBLAS: reference GEMM, argument checks --------------------------------- */

float load(const void *p, int type, long long i) {
    if (type == R_16BF) {
        uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return ((const float *)p)[i];
}

void store(void *p, int type, long long i, float v) {
    if (type == R_16BF) {
        uint32_t u;
        memcpy(&u, &v, 4);
        ((uint16_t *)p)[i] = (u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0 : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    } else {
        ((float *)p)[i] = v;
    }
}

struct GemmArgs {
    int ta, tb, m, n, k;
    float alpha, beta;
    const void *A, *B;
    void *C;
    int at, bt, ct, lda, ldb, ldc;
    long long sa, sb, sc;
    int batch, compute;
    bool tf32; /* f32 operands on TF32 tensor cores: COMPUTE_32F_FAST_TF32 or CUBLAS_TF32_TENSOR_OP_MATH */
};

/* Column-major C = alpha op(A) op(B) + beta C, batched; each element sums
 * over k in order, in double. op(A) is first copied dense, so that the
 * inner loop runs along contiguous memory. */
void gemm(const GemmArgs &g) {
    std::vector<float> a((size_t)g.m * (size_t)g.k);
    std::vector<double> acc((size_t)g.m);
    for (int b = 0; b < g.batch; b++) {
        for (int l = 0; l < g.k; l++)
            for (int i = 0; i < g.m; i++)
                a[(size_t)l * (size_t)g.m + (size_t)i] =
                    load(g.A, g.at, b * g.sa + (g.ta ? l + (long long)i * g.lda : i + (long long)l * g.lda));
        for (int j = 0; j < g.n; j++) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int l = 0; l < g.k; l++) {
                double bl = load(g.B, g.bt, b * g.sb + (g.tb ? j + (long long)l * g.ldb : l + (long long)j * g.ldb));
                const float *al = &a[(size_t)l * (size_t)g.m];
                for (int i = 0; i < g.m; i++) acc[(size_t)i] += (double)al[i] * bl;
            }
            for (int i = 0; i < g.m; i++) {
                long long ci = b * g.sc + i + (long long)j * g.ldc;
                float old = g.beta != 0 ? load(g.C, g.ct, ci) : 0.0f;
                store(g.C, g.ct, ci, (float)(g.alpha * acc[(size_t)i] + (g.beta != 0 ? g.beta * old : 0.0)));
            }
        }
    }
}

size_t elem_bytes(int type) { return type == R_16BF || type == R_16F ? 2 : type == R_8I ? 1 : 4; }

/* The bytes a column-major operand of rows x cols spans, over the batch. */
size_t span(int rows, int cols, int ld, long long stride, int batch, int type) {
    if (rows <= 0 || cols <= 0 || batch <= 0) return 0;
    long long last = (long long)(batch - 1) * (stride > 0 ? stride : 0) + (long long)(cols - 1) * ld + rows;
    return (size_t)last * elem_bytes(type);
}

/* cublasGemmEx's documented type combinations (A and B alike). */
bool types_supported(int at, int bt, int ct, int compute) {
    if (at != bt) return false;
    if (compute == COMPUTE_32F || compute == COMPUTE_32F_PEDANTIC)
        return (at == R_32F && ct == R_32F) || ((at == R_16BF || at == R_16F) && (ct == at || ct == R_32F)) ||
               (at == R_8I && ct == R_32F);
    if (compute == COMPUTE_32F_FAST_TF32 || compute == COMPUTE_32F_FAST_16F || compute == COMPUTE_32F_FAST_16BF)
        return at == R_32F && ct == R_32F;
    return false;
}

/* Whether two of a batch's C matrices (m x n column-major, ldc) can share
 * an element: the batch's products run concurrently, so that is a race.
 * Disjoint: whole spans apart, or column blocks side by side within ldc
 * (grouped convs' GEMMs). Anything else is taken as overlapping. Inputs
 * may overlap (strideB 0 broadcasts one B to the batch). */
bool outputs_overlap(const GemmArgs &g) {
    if (g.batch <= 1 || g.m <= 0 || g.n <= 0) return false;
    long long sc = g.sc < 0 ? -g.sc : g.sc;
    if (sc >= (long long)(g.n - 1) * g.ldc + g.m) return false;
    return !(sc >= g.m && (long long)(g.batch - 1) * sc + g.m <= g.ldc);
}

/* Argument checks; a status and its reason. */
int check_gemm(const GemmArgs &g, int algo, std::string *why) {
    char buf[256];
    int rows_a = g.ta ? g.k : g.m, rows_b = g.tb ? g.n : g.k;
    auto at_least1 = [](int v) { return v > 1 ? v : 1; };
    if (g.ta < 0 || g.ta > 2 || g.tb < 0 || g.tb > 2) snprintf(buf, sizeof buf, "transa %d / transb %d", g.ta, g.tb);
    else if (g.m < 0 || g.n < 0 || g.k < 0) snprintf(buf, sizeof buf, "m %d, n %d, k %d: a size is negative", g.m, g.n, g.k);
    else if (g.batch < 0) snprintf(buf, sizeof buf, "batchCount %d is negative", g.batch);
    else if (g.lda < at_least1(rows_a)) snprintf(buf, sizeof buf, "lda %d < max(1, %d), the rows of A", g.lda, rows_a);
    else if (g.ldb < at_least1(rows_b)) snprintf(buf, sizeof buf, "ldb %d < max(1, %d), the rows of B", g.ldb, rows_b);
    else if (g.ldc < at_least1(g.m)) snprintf(buf, sizeof buf, "ldc %d < max(1, %d), the rows of C", g.ldc, g.m);
    else if (outputs_overlap(g))
        snprintf(buf, sizeof buf, "strideC %lld: C matrices of the batch of %d overlap (m %d, n %d, ldc %d)", g.sc, g.batch,
                 g.m, g.n, g.ldc);
    else if (!(algo == -1 || (algo >= 0 && algo <= 23) || (algo >= 99 && algo <= 115)))
        snprintf(buf, sizeof buf, "algo %d", algo);
    else if (!types_supported(g.at, g.bt, g.ct, g.compute)) {
        snprintf(buf, sizeof buf, "types A %d, B %d, C %d with compute type %d are not a supported combination", g.at,
                 g.bt, g.ct, g.compute);
        *why = buf;
        return BLAS_NOT_SUPPORTED;
    } else
        return BLAS_OK;
    *why = buf;
    return BLAS_INVALID_VALUE;
}

/* Tensor cores need 16-byte aligned pointers, leading dimensions and batch
 * strides; "" when eligible (or not a tensor-core GEMM). */
std::string tc_ineligible(const GemmArgs &g) {
    bool tc = g.at == R_16BF || g.at == R_16F || g.tf32;
    if (!tc) return "";
    long long per16 = 16 / (long long)elem_bytes(g.at);
    std::string why;
    auto need = [&](const char *what, long long v, long long unit) {
        if (v % unit) why += std::string(why.empty() ? "" : ", ") + what + " " + std::to_string(v);
    };
    need("A address mod 16 =", (long long)((uintptr_t)g.A % 16), 16);
    need("B address mod 16 =", (long long)((uintptr_t)g.B % 16), 16);
    need("C address mod 16 =", (long long)((uintptr_t)g.C % 16), 16);
    need("lda", g.lda, per16);
    need("ldb", g.ldb, per16);
    need("ldc", g.ldc, 16 / (long long)elem_bytes(g.ct));
    if (g.batch > 1) {
        need("strideA", g.sa, per16);
        need("strideB", g.sb, per16);
        need("strideC", g.sc, 16 / (long long)elem_bytes(g.ct));
    }
    if (why.empty()) return "";
    char head[160];
    snprintf(head, sizeof head, "%s GEMM m %d n %d k %d batch %d: ", g.at == R_32F ? "tf32" : "16-bit", g.m, g.n, g.k,
             g.batch);
    return head + why + " (not a multiple of 16 bytes)";
}

struct FakeBlas {
    void *stream = nullptr;
    int math_mode = 0;
};

int blas_gemm(void *h, GemmArgs g, int algo) {
    Driver *d = driver();
    if (!h) return BLAS_NOT_INITIALIZED;
    std::string why;
    int st = check_gemm(g, algo, &why);
    if (st) {
        fprintf(stderr, "fake gpu: cuBLAS GEMM rejected (status %d): %s\n", st, why.c_str());
        return st;
    }
    std::string tc = tc_ineligible(g);
    {
        std::lock_guard<std::mutex> lk(d->shadow);
        d->counts.gemms++;
        if (g.tf32) d->counts.tf32_gemms++;
        if (g.at == R_16BF || g.at == R_16F || g.tf32) d->counts.tc_gemms++;
        if (!tc.empty()) {
            d->counts.tc_ineligible++;
            if (d->counts.tc_reasons.size() < REASONS_KEPT) d->counts.tc_reasons.push_back(tc);
        }
    }
    const char *strict = getenv("RXC_FAKE_GPU_STRICT_TC");
    if (!tc.empty() && strict && *strict == '1') {
        fprintf(stderr, "fake gpu: RXC_FAKE_GPU_STRICT_TC: %s\n", tc.c_str());
        return BLAS_NOT_SUPPORTED;
    }
    char what[96];
    snprintf(what, sizeof what, "cuBLAS GEMM %dx%dx%d (batch %d)", g.m, g.n, g.k, g.batch);
    return issue(((FakeBlas *)h)->stream, what, [g, d](const Ctx &c) {
               size_t c_bytes = span(g.m, g.n, g.ldc, g.sc, g.batch, g.ct);
               std::vector<Range> r = {
                   {(uintptr_t)g.A, span(g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda, g.sa, g.batch, g.at), false},
                   {(uintptr_t)g.B, span(g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb, g.sb, g.batch, g.bt), false}};
               if (g.beta != 0) r.push_back({(uintptr_t)g.C, c_bytes, false});
               r.push_back({(uintptr_t)g.C, c_bytes, true});
               if (int rc = touch_all(d, c, r)) return rc;
               gemm(g);
               return (int)OK;
           })
               ? BLAS_EXECUTION_FAILED
               : BLAS_OK;
}

/* RXC_FAKE_GPU_DEVICES (default 1, at most 8): how many devices cuDeviceGetCount reports. All
 * are the same CPU emulation; a process uses one. */
int fake_devices() {
    const char *v = getenv("RXC_FAKE_GPU_DEVICES");
    int n = v && *v ? atoi(v) : 1;
    return n < 1 ? 1 : n > 8 ? 8 : n;
}

} /* namespace */

extern "C" {

/* For the fake NCCL (fake_nccl.cc), a separate library that finds this one
 * with dlopen(RTLD_NOLOAD): runs `run(arg)` as an operation of stream s
 * (recorded when s is capturing, replayed with its graph), after checking
 * that it may read [in, in + bytes) and write [out, out + bytes) under the
 * stream/event model, as any kernel is checked. run's non-zero result is
 * the stream's sticky error. */
int rxc_fake_gpu_enqueue(void *s, const char *what, uintptr_t in, uintptr_t out, size_t bytes, int (*run)(void *),
                         void *arg) {
    Driver *d = driver();
    if (!s) {
        fprintf(stderr, "fake gpu: %s on the legacy default stream, not on a stream the program created\n", what);
        return ERR_INVALID_VALUE;
    }
    return issue(s, what, [=](const Ctx &c) {
        if (int rc = touch_all(d, c, {{in, bytes, false}, {out, bytes, true}})) return rc;
        return run(arg);
    });
}

/* ---- driver ------------------------------------------------------------------ */
int cuInit(unsigned) {
    setenv("RXC_CUDA_EXTENTS", "1", 1); /* every kernel's buffers get their sizes, for bounds checks */
    char self[64];
    snprintf(self, sizeof self, "%ld:%p", (long)getpid(), (void *)&this_copy);
    setenv("RXC_FAKE_GPU_DRIVER", self, 1);
    return OK;
}
int cuDriverGetVersion(int *v) {
    const char *env = getenv("RXC_FAKE_GPU_DRIVER_VERSION");
    *v = env ? atoi(env) : 99000;
    return OK;
}
int cuGetErrorString(int r, const char **s) {
    *s = r == ERR_CAPTURE_UNSUPPORTED   ? "operation not permitted when stream is capturing (fake gpu)"
         : r == ERR_CAPTURE_ISOLATION   ? "dependency created on an uncaptured event (fake gpu)"
         : r == ERR_ILLEGAL_ADDRESS     ? "an illegal memory access or unordered access was encountered (fake gpu)"
         : r == ERR_LAUNCH_FAILED       ? "unspecified launch failure: the emulator caught an error (fake gpu)"
         : r == ERR_OUT_OF_MEMORY       ? "out of memory (fake gpu)"
                                        : "fake gpu error";
    return OK;
}
int cuGetErrorName(int r, const char **s) {
    *s = r == ERR_INVALID_VALUE         ? "CUDA_ERROR_INVALID_VALUE"
         : r == ERR_OUT_OF_MEMORY       ? "CUDA_ERROR_OUT_OF_MEMORY"
         : r == ERR_NOT_FOUND           ? "CUDA_ERROR_NOT_FOUND"
         : r == ERR_INVALID_HANDLE      ? "CUDA_ERROR_INVALID_HANDLE"
         : r == ERR_NOT_READY           ? "CUDA_ERROR_NOT_READY"
         : r == ERR_ILLEGAL_ADDRESS     ? "CUDA_ERROR_ILLEGAL_ADDRESS"
         : r == ERR_LAUNCH_FAILED       ? "CUDA_ERROR_LAUNCH_FAILED"
         : r == ERR_CAPTURE_UNSUPPORTED ? "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"
         : r == 901                     ? "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"
         : r == ERR_CAPTURE_ISOLATION   ? "CUDA_ERROR_STREAM_CAPTURE_ISOLATION"
                                        : "CUDA_ERROR_UNKNOWN";
    return OK;
}
int cuDeviceGetCount(int *n) { *n = fake_devices(); return OK; }
int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return ordinal >= 0 && ordinal < fake_devices() ? OK : ERR_INVALID_VALUE; }
int cuDeviceGetName(char *name, int len, int) { snprintf(name, (size_t)len, "fake GPU (CPU emulation)"); return OK; }
int cuDeviceGetAttribute(int *v, int attrib, int) {
    *v = attrib == 75 ? 9 : attrib == 76 ? 0 : attrib == 16 ? 4 : 0;
    return OK;
}
int cuDevicePrimaryCtxRetain(void **ctx, int) { *ctx = (void *)&this_copy; return OK; }
int cuDevicePrimaryCtxRelease_v2(int) { return OK; }
int cuCtxSetCurrent(void *) { return OK; }
int cuMemGetInfo_v2(size_t *f, size_t *t) { *f = (size_t)1 << 34; *t = (size_t)1 << 35; return OK; }
int cuMemAlloc_v2(unsigned long long *p, size_t n) {
    Driver *d = driver();
    size_t bytes = (n + 255) / 256 * 256;
    void *q = aligned_alloc(256, bytes ? bytes : 256);
    if (!q) return ERR_OUT_OF_MEMORY;
    memset(q, 0xa5, bytes); /* device memory starts as garbage */
    *p = (unsigned long long)(uintptr_t)q;
    std::lock_guard<std::mutex> g(d->shadow);
    Alloc &a = d->allocs[(uintptr_t)q];
    a.bytes = n;
    a.chunks.resize((n / GRANULE + CHUNK_GRANULES) / CHUNK_GRANULES);
    return OK;
}
int cuMemFree_v2(unsigned long long p) {
    Driver *d = driver();
    {
        std::lock_guard<std::mutex> g(d->shadow);
        d->allocs.erase((uintptr_t)p);
    }
    free((void *)(uintptr_t)p);
    return OK;
}
int cuMemAllocHost_v2(void **p, size_t n) { *p = malloc(n ? n : 1); return *p ? OK : ERR_OUT_OF_MEMORY; }
int cuMemFreeHost(void *p) { free(p); return OK; }
int cuMemcpyHtoD_v2(unsigned long long dst, const void *s, size_t n) {
    Driver *d = driver();
    if (any_capturing(d)) return ERR_CAPTURE_UNSUPPORTED;
    if (int e = d->sticky) return e;
    Ctx c = host_ctx(d, "cuMemcpyHtoD (synchronous)");
    if (int rc = touch_all(d, c, {{(uintptr_t)dst, n, true}})) return rc;
    memcpy((void *)(uintptr_t)dst, s, n);
    return OK;
}
int cuMemcpyDtoH_v2(void *dst, unsigned long long s, size_t n) {
    Driver *d = driver();
    if (any_capturing(d)) return ERR_CAPTURE_UNSUPPORTED;
    if (int e = d->sticky) return e;
    Ctx c = host_ctx(d, "cuMemcpyDtoH (synchronous)");
    if (int rc = touch_all(d, c, {{(uintptr_t)s, n, false}})) return rc;
    memcpy(dst, (void *)(uintptr_t)s, n);
    return OK;
}
int cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *s, size_t n, void *st) {
    Driver *d = driver();
    return issue(st, "cuMemcpyHtoDAsync", [=](const Ctx &c) {
        if (int rc = touch_all(d, c, {{(uintptr_t)dst, n, true}})) return rc;
        memcpy((void *)(uintptr_t)dst, s, n);
        return (int)OK;
    });
}
int cuMemcpyDtoDAsync_v2(unsigned long long dst, unsigned long long s, size_t n, void *st) {
    Driver *d = driver();
    return issue(st, "cuMemcpyDtoDAsync", [=](const Ctx &c) {
        if (int rc = touch_all(d, c, {{(uintptr_t)s, n, false}, {(uintptr_t)dst, n, true}})) return rc;
        memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)s, n);
        return (int)OK;
    });
}
int cuMemsetD8Async(unsigned long long dst, unsigned char v, size_t n, void *st) {
    Driver *d = driver();
    return issue(st, "cuMemsetD8Async", [=](const Ctx &c) {
        if (int rc = touch_all(d, c, {{(uintptr_t)dst, n, true}})) return rc;
        memset((void *)(uintptr_t)dst, v, n);
        return (int)OK;
    });
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
    Module *mod = (Module *)m;
    for (size_t i = 0; i < mod->entries.size(); i++)
        if (mod->entries[i].name == name) {
            *f = new Function{mod, (int)i};
            return OK;
        }
    return ERR_NOT_FOUND;
}
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned,
                   void *st, void **params, void **) {
    Driver *d = driver();
    const Function *fn = (const Function *)f;
    if (int rc = injected_failure("cuLaunchKernel")) return rc;
    const Entry &e = fn->module->entries[(size_t)fn->entry];
    /* kernel parameters are read at launch, as on a GPU: copy their values now */
    std::vector<unsigned long long> values(e.params.size());
    for (size_t a = 0; a < e.params.size(); a++) values[a] = *(unsigned long long *)params[a];
    return issue(st, "kernel " + e.name, [=](const Ctx &c) {
        unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
        {
            std::lock_guard<std::mutex> g(d->shadow);
            d->counts.kernels++;
            if (e.name.size() > 3 && e.name.compare(e.name.size() - 3, 3, "_v4") == 0) d->counts.float4_kernels++;
        }
        return run_kernel(c, fn, grid, block, values);
    });
}
int cuStreamCreate(void **s, unsigned) {
    Stream *st = new_stream(driver());
    if (!st) {
        fprintf(stderr, "fake gpu: more than %d streams\n", MAX_AGENTS - 2);
        return ERR_OUT_OF_MEMORY;
    }
    *s = st;
    return OK;
}
int cuStreamDestroy_v2(void *s) {
    Driver *d = driver();
    Stream *st = (Stream *)s;
    stream_stop(st);
    std::lock_guard<std::mutex> g(d->api);
    for (size_t i = 0; i < d->streams.size(); i++)
        if (d->streams[i] == st) d->streams.erase(d->streams.begin() + (long)i);
    delete st;
    return OK;
}
int cuStreamSynchronize(void *s) {
    Driver *d = driver();
    Stream *st = stream_of(d, s);
    if (st->capturing) return ERR_CAPTURE_UNSUPPORTED;
    uint32_t upto;
    {
        std::lock_guard<std::mutex> g(st->m);
        upto = st->issued;
    }
    wait_done(st, upto);
    std::lock_guard<std::mutex> g(d->api);
    d->host.join(st->vc);
    return d->sticky;
}
int cuCtxSynchronize(void) {
    Driver *d = driver();
    std::vector<Stream *> all;
    {
        std::lock_guard<std::mutex> g(d->api);
        all = d->streams;
    }
    for (Stream *s : all)
        if (int rc = cuStreamSynchronize(s)) return rc;
    return d->sticky;
}
int cuEventCreate(void **e, unsigned flags) {
    Event *ev = new Event;
    ev->timing = !(flags & EVENT_DISABLE_TIMING);
    *e = ev;
    return OK;
}
int cuEventRecord(void *ev, void *s) {
    Driver *d = driver();
    Event *e = (Event *)ev;
    Stream *st = stream_of(d, s);
    if (e->timing && !st->capturing) {
        /* the time is taken when the stream reaches the record, as a GPU does */
        std::shared_ptr<Stamp> stamp = e->stamp;
        uint64_t generation;
        {
            std::lock_guard<std::mutex> g(stamp->m);
            generation = ++stamp->generation;
        }
        if (int rc = issue(s, "cuEventRecord", [stamp, generation](const Ctx &) {
                double now = std::chrono::duration<double, std::milli>(
                                 std::chrono::steady_clock::now().time_since_epoch()).count();
                std::lock_guard<std::mutex> g(stamp->m);
                if (stamp->generation == generation) {
                    stamp->stamped = generation;
                    stamp->ms = now;
                }
                return (int)OK;
            }))
            return rc;
    }
    std::lock_guard<std::mutex> g(d->api);
    e->in_capture = st->capturing;
    e->vc = st->vc;
    e->stream = st->capturing ? nullptr : st;
    std::lock_guard<std::mutex> q(st->m);
    e->seq = st->issued;
    return d->sticky;
}
int cuStreamWaitEvent(void *s, void *ev, unsigned) {
    Driver *d = driver();
    Event *e = (Event *)ev;
    Stream *st = stream_of(d, s);
    if (st->capturing && e->stream) return ERR_CAPTURE_ISOLATION;
    if (!e->stream) return d->sticky; /* never recorded (or inside this capture): nothing to wait for */
    Stream *src = e->stream;
    uint32_t seq = e->seq;
    {
        std::lock_guard<std::mutex> g(d->api);
        st->vc.join(e->vc);
    }
    return issue(s, "cuStreamWaitEvent", [src, seq](const Ctx &) {
        wait_done(src, seq);
        return (int)OK;
    });
}
int cuEventSynchronize(void *ev) {
    Driver *d = driver();
    Event *e = (Event *)ev;
    if (e->stream) wait_done(e->stream, e->seq);
    std::lock_guard<std::mutex> g(d->api);
    d->host.join(e->vc);
    return d->sticky;
}
int cuEventDestroy_v2(void *e) { delete (Event *)e; return OK; }
/* As documented: CUDA_ERROR_INVALID_HANDLE for an event never recorded or
 * created with CU_EVENT_DISABLE_TIMING, CUDA_ERROR_NOT_READY while either
 * record has not completed. Stricter than a GPU, whatever the threads'
 * timing: a record counts as completed only once the host has waited for
 * it (cuEventSynchronize, or synchronising its stream or the context),
 * since a program that reads the time without waiting works only by luck. */
int cuEventElapsedTime_v2(float *ms, void *start, void *end) {
    Driver *d = driver();
    if (int e = d->sticky) return e;
    const Event *ev[2] = {(const Event *)start, (const Event *)end};
    double at[2];
    for (int i = 0; i < 2; i++) {
        if (!ev[i] || !ev[i]->timing || !ev[i]->stream) return ERR_INVALID_HANDLE;
        {
            std::lock_guard<std::mutex> g(d->api);
            if (d->host.c[ev[i]->stream->agent] < ev[i]->seq) return ERR_NOT_READY;
        }
        std::lock_guard<std::mutex> g(ev[i]->stamp->m);
        if (ev[i]->stamp->stamped != ev[i]->stamp->generation) return ERR_NOT_READY;
        at[i] = ev[i]->stamp->ms;
    }
    *ms = (float)(at[1] - at[0]);
    return OK;
}
int cuEventElapsedTime(float *ms, void *start, void *end) { return cuEventElapsedTime_v2(ms, start, end); }
int cuStreamBeginCapture_v2(void *s, int) {
    Stream *st = stream_of(driver(), s);
    if (st->capturing) return ERR_INVALID_VALUE;
    st->capturing = true;
    st->graph = new Graph;
    return OK;
}
int cuStreamEndCapture(void *s, void **g) {
    Stream *st = stream_of(driver(), s);
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
    Driver *d = driver();
    const Graph *g = (const Graph *)ge;
    return issue(s, "graph launch", [g, d](const Ctx &c) {
        {
            std::lock_guard<std::mutex> lk(d->shadow);
            d->counts.graph_launches++;
        }
        for (const auto &op : g->ops) {
            Ctx inner = c;
            inner.what = op.first + " (in a graph on " + agent_name(c.agent) + ")";
            if (int rc = op.second(inner)) return rc;
        }
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
int cublasCreate_v2(void **h) { *h = new FakeBlas; return BLAS_OK; }
int cublasDestroy_v2(void *h) { delete (FakeBlas *)h; return BLAS_OK; }
int cublasSetStream_v2(void *h, void *s) { ((FakeBlas *)h)->stream = s; return BLAS_OK; }
int cublasGetProperty(int type, int *v) { *v = type == 0 ? 99 : 0; return BLAS_OK; }
int cublasSetMathMode(void *h, int mode) { ((FakeBlas *)h)->math_mode = mode; return BLAS_OK; }
int cublasSetWorkspace_v2(void *, void *, size_t) { return BLAS_OK; }
int cublasSgemm_v2(void *h, int ta, int tb, int m, int n, int k, const float *alpha, const float *a, int lda,
                   const float *b, int ldb, const float *beta, float *c, int ldc) {
    bool tf32 = h && ((FakeBlas *)h)->math_mode == 3;
    GemmArgs g = {ta, tb, m, n, k, *alpha, *beta, a, b, c, R_32F, R_32F, R_32F, lda, ldb, ldc, 0, 0, 0, 1, COMPUTE_32F, tf32};
    return blas_gemm(h, g, -1);
}
int cublasGemmStridedBatchedEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, const void *a, int at,
                               int lda, long long sa, const void *b, int bt, int ldb, long long sb, const void *beta,
                               void *c, int ct, int ldc, long long sc, int batch, int compute, int algo) {
    /* COMPUTE_32F*: alpha and beta are floats. TF32 (the compute type, or
     * CUBLAS_TF32_TENSOR_OP_MATH on f32) still computes in f32 here; the
     * count lets a test see that `precision tf32` and RXC_TF32 reach cuBLAS. */
    if (int rc = injected_failure("cublasGemmStridedBatchedEx")) return rc;
    bool tf32 = at == R_32F && h && (compute == COMPUTE_32F_FAST_TF32 || ((FakeBlas *)h)->math_mode == 3);
    GemmArgs g = {ta, tb, m, n, k, *(const float *)alpha, *(const float *)beta, a, b, c, at, bt, ct, lda, ldb, ldc,
                  sa, sb, sc, batch, compute, tf32};
    return blas_gemm(h, g, algo);
}

} /* extern "C" */
