/*
 * blas_cpu.h — OpenBLAS for the CPU executor, loaded at run time (dlopen),
 * as the CUDA libraries are, so that rxc can choose OpenBLAS's kernel set
 * before the library initialises (see blas_cpu.c for why it chooses).
 */
#ifndef RXC_BLAS_CPU_H
#define RXC_BLAS_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include "error.h"

/* cblas_sgemm with the row-major CBLAS enums passed as ints. */
typedef void (*BlasSgemmFn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                            int lda, const float *b, int ldb, float beta, float *c, int ldc);

typedef struct {
    void *handle;
    BlasSgemmFn sgemm;
    void (*set_num_threads)(int);
    char *(*corename)(void);
    /* OpenBLAS runs blas_cpu_kernel_choice()'s kernels */
    bool preferred;
} CpuBlas;

/* The OpenBLAS kernel set rxc prefers on this CPU, or NULL to keep
 * OpenBLAS's own choice. */
const char *blas_cpu_kernel_choice(void);

/* Sets OPENBLAS_CORETYPE to blas_cpu_kernel_choice() unless it is set
 * (an empty value counts as unset).
 * setenv is not safe while other threads run, so rxc's main calls this
 * first thing; blas_cpu_open calls it too, for programs that link the
 * runtime without rxc's main (tests, benches), where it is a no-op once set. */
void blas_cpu_choose_kernels(void);

/* Loads OpenBLAS after blas_cpu_choose_kernels(). The choice only takes
 * effect if OpenBLAS is not already loaded in the process. 0, or -1 with a
 * message in err. */
int blas_cpu_open(CpuBlas *b, Error *err);
void blas_cpu_close(CpuBlas *b);

/* One line for `rxc --version`: the kernel set OpenBLAS runs in this
 * process and who chose it, or why OpenBLAS did not load. */
void blas_cpu_describe(char *out, size_t outlen);

/* The values of CBLAS's enums (cblas.h), which the ABI fixes. */
enum { BLAS_ROW_MAJOR = 101, BLAS_NO_TRANS = 111, BLAS_TRANS = 112 };

#endif
