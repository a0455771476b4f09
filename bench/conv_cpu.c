/*
 * bench/conv_cpu.c — times target/cpu/conv_cpu.c (the CPU executor's direct
 * grouped convolution, STEP_CONV) on one shape: forward, data gradient and
 * weight gradient, best of R runs each, with the OpenMP team of
 * OMP_NUM_THREADS. Driven by bench/conv_cpu, which times PyTorch on the
 * same shapes in the same run.
 *
 *   conv_cpu N H W C G K S P R   -> "forward MS\ndata_grad MS\nweight_grad MS"
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "conv_cpu.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: conv_cpu N H W C G K S P R\n");
        return 2;
    }
    int a[9];
    for (int i = 0; i < 9; i++) a[i] = atoi(argv[i + 1]);
    ConvGeom g = {.n = a[0], .h = a[1], .w = a[2], .cin = a[3], .cout = a[3], .groups = a[4], .kh = a[5], .kw = a[5],
                  .sh = a[6], .sw = a[6], .ph = a[7], .pw = a[7]};
    g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
    g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
    int runs = a[8];
    size_t nx = (size_t)g.n * g.h * g.w * g.cin, ny = (size_t)g.n * g.oh * g.ow * g.cout;
    size_t nw = (size_t)g.cout * (g.cin / g.groups) * g.kh * g.kw;
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *y = malloc(ny * sizeof(float));
    for (size_t i = 0; i < nx; i++) x[i] = (float)(i % 13) * 0.1f - 0.6f;
    for (size_t i = 0; i < nw; i++) w[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (size_t i = 0; i < ny; i++) y[i] = (float)(i % 5) * 0.1f - 0.2f;
    static const char *const names[] = {"forward", "data_grad", "weight_grad"};
    for (int pass = 0; pass < 3; pass++) {
        ConvStep s = {.pass = (ConvPass)pass, .g = g, .accumulate = false};
        void *scratch = aligned_alloc(64, (conv_cpu_scratch_bytes(&s) + 63) / 64 * 64 + 64);
        double best = 1e30;
        for (int r = 0; r < runs; r++) {
            double t0 = now();
            conv_cpu_run(&s, x, w, y, scratch);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("%s %.4f %s\n", names[pass], best * 1e3, conv_cpu_kernel_name(&s));
        free(scratch);
    }
    free(x), free(w), free(y);
    return 0;
}
