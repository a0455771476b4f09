/*
 * cuda_emu.h — runs CUDA source from render_cuda on the CPU, as C++, with
 * checks a GPU would not make.
 *
 * Included before the generated source (which then sees RXC_EMU). Every
 * thread of a block is a fiber (ucontext): a thread runs until it reaches
 * __syncthreads or a warp shuffle, and the scheduler releases a barrier only
 * when every thread of the block (a shuffle: every lane of the warp) has
 * reached it. Blocks run one after another.
 *
 * Checks, each reported as an error of the launch:
 *   - out-of-bounds global accesses (against each buffer's numel: the
 *     generated RXC_GLOBAL(T) pointers are bounds-checked proxies);
 *   - data races on shared memory: two threads touching one element between
 *     the same two barriers, at least one writing (RXC_SHARED arrays are
 *     shadowed per barrier epoch), and reads of shared memory never written
 *     in this block;
 *   - data races on global memory: two threads of different blocks, or of
 *     one block without a barrier in between, touching one element with at
 *     least one write;
 *   - barrier divergence: a thread exits or waits at a different barrier
 *     while others wait at __syncthreads, or a shuffle without all 32 lanes.
 */
#ifndef RXC_CUDA_EMU_H
#define RXC_CUDA_EMU_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>
#include <ucontext.h>
#include <vector>

#include "cuda_emu_sink.h"

#define RXC_EMU 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)

struct dim3 {
    unsigned x, y, z;
};

static dim3 threadIdx, blockIdx, blockDim, gridDim;

static inline float __int_as_float(int v) {
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}
static inline float __uint_as_float(unsigned v) {
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}
static inline unsigned __float_as_uint(float f) {
    unsigned v;
    memcpy(&v, &f, sizeof v);
    return v;
}

struct __nv_bfloat16 {
    unsigned short x;
};
static inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((unsigned)h.x << 16); }
static inline __nv_bfloat16 __float2bfloat16(float f) {
    unsigned u = __float_as_uint(f);
    __nv_bfloat16 h;
    h.x = (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)0x7fc0u
                                          : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return h;
}

namespace rxc_emu {

enum Wait { RUNNING = 0, AT_BARRIER = 1, AT_SHUFFLE = 2 };

struct Fiber {
    ucontext_t ctx;
    char *stack;
    int tid; /* linear thread index in the block */
    bool done;
    Wait wait;
};

/* Per element of a checked buffer: the last writer and reader. */
struct Shadow {
    long long w_thread = -1, r_thread = -1; /* global thread ids */
    long long w_block = -1, r_block = -1;
    long long w_epoch = -1, r_epoch = -1;
    bool r_multi = false;
    bool written_in_block = false;          /* shared memory: initialised */
};

struct Launch;

struct State {
    Launch *launch = nullptr;
    std::vector<Fiber> fibers;
    Fiber *current = nullptr;
    ucontext_t scheduler;
    long long block_linear = 0;
    long long epoch = 0;            /* barriers passed in this block */
    long long block_generation = 0; /* increases per block: resets shared shadows */
    double shuffle_slots[1024];
    int errors = 0;
    char first_error[1024] = "";
    void (*entry)(Launch *) = nullptr;
    std::vector<std::vector<Shadow>> shadow_pool; /* per argument, for the current launch */
};

static State S;

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...) {
    if (S.errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(S.first_error, sizeof S.first_error, fmt, ap);
        va_end(ap);
    }
}

static long long global_thread() {
    return S.block_linear * (long long)(blockDim.x * blockDim.y * blockDim.z) + (S.current ? S.current->tid : 0);
}

/* Two accesses by different threads conflict unless a barrier of their own
 * block separates them. */
static bool separated(long long block, long long epoch) { return block == S.block_linear && epoch != S.epoch; }

static void check_access(Shadow &sh, bool write, const char *what, const char *name, long long idx) {
    long long me = global_thread();
    if (sh.w_thread >= 0 && sh.w_thread != me && !separated(sh.w_block, sh.w_epoch))
        error("%s race on %s[%lld]: thread %lld %s, thread %lld wrote without a barrier in between", what, name, idx,
              me, write ? "writes" : "reads", sh.w_thread);
    if (write && sh.r_thread >= 0 && (sh.r_thread != me || sh.r_multi) && !separated(sh.r_block, sh.r_epoch))
        error("%s race on %s[%lld]: thread %lld writes, thread%s %lld read without a barrier in between", what,
              name, idx, me, sh.r_multi ? "s including" : "", sh.r_thread);
    if (write) {
        sh.w_thread = me;
        sh.w_block = S.block_linear;
        sh.w_epoch = S.epoch;
    } else {
        bool same_epoch = sh.r_block == S.block_linear && sh.r_epoch == S.epoch;
        if (sh.r_thread >= 0 && sh.r_thread != me && same_epoch) sh.r_multi = true;
        else if (!same_epoch) sh.r_multi = false;
        sh.r_thread = me;
        sh.r_block = S.block_linear;
        sh.r_epoch = S.epoch;
    }
}

struct Launch {
    void *const *bufs;
    const long long *numel;
    const char *const *names;
    std::vector<Shadow> *shadows; /* per buffer (+ scratch last) */
    const double *sc;
};

/* ---- global memory ---------------------------------------------------------- */

template <typename T>
struct GRef {
    using V = typename std::remove_const<T>::type;
    T *p;
    Shadow *sh;
    const char *name;
    long long idx;
    operator V() const {
        if (!p) return V();
        if (sh) check_access(*sh, false, "global", name, idx);
        return *p;
    }
    template <typename U = T, typename = typename std::enable_if<!std::is_const<U>::value>::type>
    GRef &operator=(V v) {
        if (!p) return *this;
        if (sh) check_access(*sh, true, "global", name, idx);
        *p = v;
        return *this;
    }
    GRef &operator=(const GRef &o) { return *this = (V)o; }
    template <typename U = T, typename = typename std::enable_if<!std::is_const<U>::value>::type>
    GRef &operator+=(V v) {
        V old = (V) * this;
        return *this = (V)(old + v);
    }
};

template <typename T>
struct GPtr {
    T *base = nullptr;
    long long numel = 0;
    Shadow *shadow = nullptr;
    const char *name = "?";
    GPtr() {}
    /* numel < 0: an unchecked pointer (no bounds, no race shadow) */
    GPtr(Launch *L, int arg)
        : base((T *)L->bufs[arg]), numel(L->numel[arg]),
          shadow(L->numel[arg] >= 0 ? L->shadows[arg].data() : nullptr), name(L->names[arg]) {}
    GRef<T> operator[](long long i) const {
        if (numel < 0) return GRef<T>{base + i, nullptr, name, i};
        if (i < 0 || i >= numel) {
            error("out-of-bounds access %s[%lld] (numel %lld) by thread %lld (block %lld)", name, i, numel,
                  global_thread(), S.block_linear);
            return GRef<T>{nullptr, nullptr, name, i};
        }
        return GRef<T>{base + i, shadow + i, name, i};
    }
};

/* ---- shared memory ------------------------------------------------------------ */

template <typename T, int N>
struct SharedArray;

template <typename T, int N>
struct SRef {
    SharedArray<T, N> *a;
    int i;
    operator T() const;
    SRef &operator=(T v);
    SRef &operator=(const SRef &o) { return *this = (T)o; }
};

template <typename T, int N>
struct SharedArray {
    T data[N];
    Shadow shadow[N];
    long long generation = -1;
    const char *name;
    explicit SharedArray(const char *n) : name(n) {}
    void fresh() {
        if (generation == S.block_generation) return;
        generation = S.block_generation;
        for (int i = 0; i < N; i++) {
            shadow[i] = Shadow();
            data[i] = T();
        }
    }
    SRef<T, N> operator[](long long i) {
        fresh();
        if (i < 0 || i >= N) {
            error("out-of-bounds shared access %s[%lld] (size %d)", name, i, N);
            i = 0;
        }
        return SRef<T, N>{this, (int)i};
    }
};

template <typename T, int N>
SRef<T, N>::operator T() const {
    Shadow &sh = a->shadow[i];
    if (!sh.written_in_block) error("read of uninitialised shared %s[%d] by thread %lld", a->name, i, global_thread());
    check_access(sh, false, "shared", a->name, i);
    return a->data[i];
}

template <typename T, int N>
SRef<T, N> &SRef<T, N>::operator=(T v) {
    Shadow &sh = a->shadow[i];
    check_access(sh, true, "shared", a->name, i);
    sh.written_in_block = true;
    a->data[i] = v;
    return *this;
}

/* ---- scheduling ----------------------------------------------------------------- */

static void yield(Wait w) {
    Fiber *f = S.current;
    f->wait = w;
    swapcontext(&f->ctx, &S.scheduler);
}

static void fiber_main() {
    S.entry(S.launch);
    S.current->done = true;
    /* returning resumes uc_link, the scheduler */
}

static void set_thread_index(const Fiber &f) {
    threadIdx.x = (unsigned)f.tid % blockDim.x;
    threadIdx.y = ((unsigned)f.tid / blockDim.x) % blockDim.y;
    threadIdx.z = (unsigned)f.tid / (blockDim.x * blockDim.y);
}

/* Runs one block to completion. Returns false on a deadlock (divergence). */
static bool run_block(int threads) {
    const size_t stack_size = 256 * 1024;
    if ((int)S.fibers.size() < threads) {
        size_t old = S.fibers.size();
        S.fibers.resize((size_t)threads);
        for (size_t i = old; i < S.fibers.size(); i++) S.fibers[i].stack = (char *)malloc(stack_size);
    }
    for (int t = 0; t < threads; t++) {
        Fiber &f = S.fibers[(size_t)t];
        f.tid = t;
        f.done = false;
        f.wait = RUNNING;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = stack_size;
        f.ctx.uc_link = &S.scheduler;
        makecontext(&f.ctx, (void (*)())fiber_main, 0);
    }
    S.epoch = 0;
    S.block_generation++;
    for (;;) {
        for (int t = 0; t < threads; t++) {
            Fiber &f = S.fibers[(size_t)t];
            if (f.done || f.wait != RUNNING) continue;
            S.current = &f;
            set_thread_index(f);
            swapcontext(&S.scheduler, &f.ctx);
        }
        int done = 0, at_barrier = 0;
        for (int t = 0; t < threads; t++) {
            done += S.fibers[(size_t)t].done;
            at_barrier += !S.fibers[(size_t)t].done && S.fibers[(size_t)t].wait == AT_BARRIER;
        }
        if (done == threads) return true;
        bool released = false;
        for (int w = 0; w * 32 < threads; w++) {
            int lanes = threads - w * 32 < 32 ? threads - w * 32 : 32, shuffling = 0;
            for (int l = 0; l < lanes; l++) shuffling += S.fibers[(size_t)(w * 32 + l)].wait == AT_SHUFFLE &&
                                                         !S.fibers[(size_t)(w * 32 + l)].done;
            if (shuffling == 0) continue;
            if (shuffling == 32) {
                for (int l = 0; l < 32; l++) S.fibers[(size_t)(w * 32 + l)].wait = RUNNING;
                released = true;
            }
        }
        if (released) continue;
        if (at_barrier == threads) {
            for (int t = 0; t < threads; t++) S.fibers[(size_t)t].wait = RUNNING;
            S.epoch++;
            continue;
        }
        error("barrier divergence in block %lld: %d threads done, %d at __syncthreads, %d at a warp shuffle",
              S.block_linear, done, at_barrier, threads - done - at_barrier);
        return false;
    }
}

} /* namespace rxc_emu */

static inline void __syncthreads() { rxc_emu::yield(rxc_emu::AT_BARRIER); }

template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, int delta) {
    using namespace rxc_emu;
    if (mask != 0xffffffffu) error("__shfl_down_sync with a partial mask is not emulated");
    int tid = S.current->tid, lane = tid & 31, base = tid - lane;
    static_assert(sizeof(T) <= sizeof(double), "shuffle of a large type");
    memcpy(&S.shuffle_slots[tid], &v, sizeof v);
    yield(AT_SHUFFLE); /* every lane has deposited */
    T r = v;
    if (lane + delta < 32) memcpy(&r, &S.shuffle_slots[base + lane + delta], sizeof r);
    yield(AT_SHUFFLE); /* every lane has read before the slots are reused */
    return r;
}

template <typename T>
static inline T __shfl_sync(unsigned mask, T v, int src_lane) {
    using namespace rxc_emu;
    if (mask != 0xffffffffu) error("__shfl_sync with a partial mask is not emulated");
    int tid = S.current->tid, base = tid - (tid & 31);
    static_assert(sizeof(T) <= sizeof(double), "shuffle of a large type");
    memcpy(&S.shuffle_slots[tid], &v, sizeof v);
    yield(AT_SHUFFLE); /* every lane has deposited */
    T r;
    memcpy(&r, &S.shuffle_slots[base + (src_lane & 31)], sizeof r);
    yield(AT_SHUFFLE); /* every lane has read before the slots are reused */
    return r;
}

struct float4 {
    float x, y, z, w;
};

namespace rxc_emu {
/* float4 accesses as four checked element accesses; a real GPU also needs
 * 16-byte alignment, which the executor checks before choosing NAME_v4. */
template <typename T>
static inline void check_aligned(const GPtr<T> &p, long long q) {
    if (p.base && ((uintptr_t)(p.base + 4 * q) & 15))
        error("misaligned float4 access to %s at element %lld (address %p)", p.name, 4 * q, (void *)(p.base + 4 * q));
}
template <typename T>
static inline float4 load4(const GPtr<T> &p, long long q) {
    check_aligned(p, q);
    return float4{p[4 * q], p[4 * q + 1], p[4 * q + 2], p[4 * q + 3]};
}
template <typename T>
static inline void store4(const GPtr<T> &p, long long q, const float4 &v) {
    check_aligned(p, q);
    p[4 * q] = v.x;
    p[4 * q + 1] = v.y;
    p[4 * q + 2] = v.z;
    p[4 * q + 3] = v.w;
}
} /* namespace rxc_emu */

#define RXC_LOAD4(p, q) rxc_emu::load4(p, q)
#define RXC_STORE4(p, q, v) rxc_emu::store4(p, q, v)

/* The 8-wide vector variants' bf16 accesses: a uint4 of 8 bf16 (element 2k
 * in the low half of word k) as eight checked element accesses, 16-byte
 * aligned as on a GPU. */
struct uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
namespace rxc_emu {
template <typename T>
static inline void check_aligned_u4(const GPtr<T> &p, long long q) {
    if (p.base && ((uintptr_t)(p.base + 8 * q) & 15))
        error("misaligned uint4 access to %s at element %lld (address %p)", p.name, 8 * q, (void *)(p.base + 8 * q));
}
template <typename T>
static inline uint4 load_u4(const GPtr<T> &p, long long q) {
    check_aligned_u4(p, q);
    unsigned w[4];
    for (int k = 0; k < 4; k++)
        w[k] = (unsigned)((__nv_bfloat16)p[8 * q + 2 * k]).x | (unsigned)((__nv_bfloat16)p[8 * q + 2 * k + 1]).x << 16;
    return uint4{w[0], w[1], w[2], w[3]};
}
static inline void store_u4(const GPtr<__nv_bfloat16> &p, long long q, const uint4 &v) {
    check_aligned_u4(p, q);
    const unsigned w[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; k < 8; k++) {
        __nv_bfloat16 h;
        h.x = (unsigned short)(k % 2 ? w[k / 2] >> 16 : w[k / 2] & 0xffffu);
        p[8 * q + k] = h;
    }
}
} /* namespace rxc_emu */
#define RXC_LOAD_U4(p, q) rxc_emu::load_u4(p, q)
#define RXC_STORE_U4(p, q, v) rxc_emu::store_u4(p, q, v)
#define RXC_GLOBAL(T) rxc_emu::GPtr<T>
#define RXC_SHARED(T, name, n) static rxc_emu::SharedArray<T, (n)> name(#name)

namespace rxc_emu {
static void report_accesses(const RxcEmuSink *sink, const std::vector<std::vector<Shadow>> &shadows) {
    for (size_t a = 0; a < shadows.size(); a++) {
        const std::vector<Shadow> &sh = shadows[a];
        long long start = 0;
        int mode = 0;
        for (size_t i = 0; i <= sh.size(); i++) {
            int m = i < sh.size() ? (sh[i].r_thread >= 0) | (sh[i].w_thread >= 0) << 1 : -1;
            if (m == mode) continue;
            if (mode > 0) sink->touched(sink->ctx, (int)a, start, (long long)i - start, mode);
            start = (long long)i;
            mode = m;
        }
    }
}
} /* namespace rxc_emu */

/* One launch of one kernel entry point over its grid. n_args counts the
 * kernel's buffers plus the scratch buffer (if any); a negative numel leaves
 * that pointer unchecked. Returns the number of errors; the first is copied
 * to err. With a sink, reports the accesses afterwards. */
static int rxc_emu_launch(void (*entry)(rxc_emu::Launch *), const unsigned grid[3], const unsigned block[3],
                          void *const *bufs, const long long *numel, const char *const *names, int n_args,
                          const double *sc, char *err, size_t errlen, const RxcEmuSink *sink = nullptr) {
    using namespace rxc_emu;
    /* reused across launches: fresh pages for every launch cost more than refilling */
    std::vector<std::vector<Shadow>> &shadows = S.shadow_pool;
    if ((int)shadows.size() < n_args) shadows.resize((size_t)n_args);
    for (int a = 0; a < (int)shadows.size(); a++) shadows[(size_t)a].assign(a < n_args && numel[a] >= 0 ? (size_t)numel[a] : 0, Shadow());
    Launch L{bufs, numel, names, shadows.data(), sc};
    S.launch = &L;
    S.entry = entry;
    S.errors = 0;
    S.first_error[0] = 0;
    gridDim = dim3{grid[0], grid[1], grid[2]};
    blockDim = dim3{block[0], block[1], block[2]};
    int threads = (int)(block[0] * block[1] * block[2]);
    for (unsigned z = 0; z < grid[2]; z++)
        for (unsigned y = 0; y < grid[1]; y++)
            for (unsigned x = 0; x < grid[0]; x++) {
                blockIdx = dim3{x, y, z};
                S.block_linear = ((long long)z * grid[1] + y) * grid[0] + x;
                if (!run_block(threads)) goto out;
            }
out:
    if (sink) report_accesses(sink, shadows);
    if (S.errors) snprintf(err, errlen, "%s (%d errors)", S.first_error, S.errors);
    return S.errors;
}

#endif
