/*
 * launch_counter.c — a libcuda.so.1 that stands in front of the real driver
 * for tests/gpu: every driver entry point rxc resolves (the list is
 * generated from target/cuda/cuda_api.c into driver_symbols.inc by run.sh)
 * forwards to the library named by RXC_REAL_LIBCUDA, and cuGraphLaunch is
 * counted, so that gpu_graph_replay knows CUDA graphs were really replayed
 * (not silently replaced by direct launches). At unload it prints
 * "launch counter: N cuGraphLaunch calls" on stderr.
 *
 * Forwarding passes eleven integer-class arguments through whatever the
 * function takes: the driver functions rxc uses take only pointers and
 * integers, at most eleven (cuLaunchKernel), and the x86-64 and AArch64
 * calling conventions let a callee ignore arguments it does not declare.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef long (*Fn)(long, long, long, long, long, long, long, long, long, long, long);

static Fn resolve(const char *name) {
    static void *real;
    if (!real) {
        const char *path = getenv("RXC_REAL_LIBCUDA");
        real = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        if (!real) {
            fprintf(stderr, "launch counter: cannot open the real driver (RXC_REAL_LIBCUDA=%s): %s\n",
                    path ? path : "unset", dlerror());
            abort();
        }
    }
    Fn f = (Fn)dlsym(real, name);
    if (!f) {
        fprintf(stderr, "launch counter: the real driver has no %s\n", name);
        abort();
    }
    return f;
}

#define FORWARD(name)                                                                                         \
    long name(long a, long b, long c, long d, long e, long f, long g, long h, long i, long j, long k) {       \
        static Fn real_fn;                                                                                     \
        if (!real_fn) real_fn = resolve(#name);                                                                \
        return real_fn(a, b, c, d, e, f, g, h, i, j, k);                                                       \
    }

static long graph_launches;

long cuGraphLaunch(long exec, long stream) {
    static Fn real_fn;
    if (!real_fn) real_fn = resolve("cuGraphLaunch");
    long r = real_fn(exec, stream, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    if ((int)r == 0) __atomic_add_fetch(&graph_launches, 1, __ATOMIC_RELAXED);
    return r;
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "launch counter: %ld cuGraphLaunch calls\n", graph_launches);
}

#include "driver_symbols.inc"
