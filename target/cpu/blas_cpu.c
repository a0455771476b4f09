/*
 * blas_cpu.c — loads OpenBLAS (blas_cpu.h) and picks its kernel set.
 *
 * Why rxc chooses. Debian's OpenBLAS is built for every x86 core and picks
 * kernels when it loads. On AMD Zen 4 (family 19h with AVX-512) it takes its
 * Cooper Lake kernels, written for Intel's full-width AVX-512 units; Zen 4
 * runs 512-bit FMAs as two 256-bit halves, and there OpenBLAS's Haswell
 * (AVX2) sgemm is 5-10% faster on the training step's shapes and up to 25%
 * on the 64-row products of stage 4, 5% on the whole step (the figures and
 * how they were measured are in docs/performance.md). OpenBLAS reads its choice from OPENBLAS_CORETYPE
 * once, in its constructor, so the variable has to be set before the
 * library loads: hence dlopen rather than linking it. A user's own
 * OPENBLAS_CORETYPE always wins.
 */
#include "blas_cpu.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

const char *blas_cpu_kernel_choice(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return NULL;
    unsigned max_leaf = eax;
    char vendor[13];
    memcpy(vendor, &ebx, 4);
    memcpy(vendor + 4, &edx, 4);
    memcpy(vendor + 8, &ecx, 4);
    vendor[12] = 0;
    if (strcmp(vendor, "AuthenticAMD") != 0 || max_leaf < 7) return NULL;
    __get_cpuid(1, &eax, &ebx, &ecx, &edx);
    unsigned family = (eax >> 8) & 0xf;
    if (family == 0xf) family += (eax >> 20) & 0xff;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    bool avx512f = (ebx >> 16) & 1;
    /* Family 19h is Zen 3 and Zen 4; only Zen 4 has AVX-512. Zen 5 (1Ah)
     * is left to OpenBLAS: not measured. */
    return family == 0x19 && avx512f ? "Haswell" : NULL;
}
#else
const char *blas_cpu_kernel_choice(void) { return NULL; }
#endif

void blas_cpu_choose_kernels(void) {
    const char *choice = blas_cpu_kernel_choice(), *set = getenv("OPENBLAS_CORETYPE");
    if (choice && (!set || !*set)) setenv("OPENBLAS_CORETYPE", choice, 1);
}

int blas_cpu_open(CpuBlas *b, Error *err) {
    memset(b, 0, sizeof *b);
    blas_cpu_choose_kernels();
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    char first_error[256] = "";
    for (size_t i = 0; i < sizeof names / sizeof *names && !b->handle; i++) {
        b->handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        const char *why = b->handle ? NULL : dlerror();
        /* the soname's failure says more than the -dev symlink's */
        if (why && !first_error[0]) snprintf(first_error, sizeof first_error, "%s", why);
    }
    if (!b->handle) {
        error_set(err, "cannot load OpenBLAS: %s; install libopenblas0 (scripts/setup.sh)", first_error);
        return -1;
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
    *(void **)&b->sgemm = dlsym(b->handle, "cblas_sgemm");
    *(void **)&b->set_num_threads = dlsym(b->handle, "openblas_set_num_threads");
    *(void **)&b->corename = dlsym(b->handle, "openblas_get_corename");
    if (!b->sgemm || !b->set_num_threads || !b->corename) {
        error_set(err, "the loaded libopenblas lacks cblas_sgemm, openblas_set_num_threads or openblas_get_corename");
        blas_cpu_close(b);
        return -1;
    }
    /* what OpenBLAS runs, not what the variable asks for: it ignores names it
     * does not know, and a build for one core ignores the variable */
    const char *choice = blas_cpu_kernel_choice();
    b->preferred = choice && !strcasecmp(b->corename(), choice);
    return 0;
}

void blas_cpu_close(CpuBlas *b) {
    if (b->handle) dlclose(b->handle);
    memset(b, 0, sizeof *b);
}

void blas_cpu_describe(char *out, size_t outlen) {
    CpuBlas b;
    Error err = {0};
    if (blas_cpu_open(&b, &err) != 0) {
        snprintf(out, outlen, "cpu: %s", err.msg);
        return;
    }
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (b.preferred)
        snprintf(out, outlen, "cpu: OpenBLAS %s kernels (rxc's choice on AMD Zen 4; OPENBLAS_CORETYPE overrides)",
                 b.corename());
    else if (set && *set)
        snprintf(out, outlen, "cpu: OpenBLAS %s kernels (OPENBLAS_CORETYPE=%s)", b.corename(), set);
    else
        snprintf(out, outlen, "cpu: OpenBLAS %s kernels (OpenBLAS's choice)", b.corename());
    blas_cpu_close(&b);
}
