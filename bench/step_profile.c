/*
 * step_profile.c — times training steps of a model on the CPU executor and,
 * with RXC_PROFILE=N, prints the executor's per-step profile (the N slowest
 * kernels and GEMMs, per-phase totals). Synthetic inputs and weights: the
 * figures are about speed, not learning.
 *
 * Usage: step_profile MODEL.net [BATCH] [CxHxW] [STEPS]
 * Built and run by bench/step_profile (see there for the environment).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compile.h"
#include "executor.h"
#include "frontend.h"
#include "target_cpu.h"
#include "target_cuda.h"
#include "util.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "models/resnext50_32x4d.net";
    int batch = argc > 2 ? atoi(argv[2]) : 16;
    const char *input = argc > 3 ? argv[3] : "3x64x64";
    int steps = argc > 4 ? atoi(argv[4]) : 3;
    SetOverride sets[] = {{"input", input}};
    LoadOptions lo = {.sets = sets, .n_sets = 1, .batch_hint = batch};
    Model m;
    if (model_load(path, &lo, &m) != LOAD_OK) return 1;
    CompileOptions o;
    /* as the CPU trainer; RXC_LOWER_FOR=cuda times the CUDA target's im2col + GEMM convs on the CPU */
    const char *lower_for = getenv("RXC_LOWER_FOR");
    compile_options_from_recipe(&o, &m.recipe, batch, lower_for && !strcmp(lower_for, "cuda") ? &target_cuda : &target_cpu);
    Error err = {0};
    double t0 = now();
    Program *p = compile_training(m.graph, &o, &err);
    if (!p) {
        fprintf(stderr, "compile: %s\n", err.msg);
        return 1;
    }
    printf("%s, batch %d, input %s: %d kernels, compiled to a program in %.2f s\n", path, batch, input,
           p->module->n, now() - t0);
    t0 = now();
    Executor *e = exec_cpu_new(p, &err);
    if (!e) {
        fprintf(stderr, "executor: %s\n", err.msg);
        return 1;
    }
    printf("executor %s ready in %.2f s (C compile or cache load included)\n", e->device_name, now() - t0);
    /* synthetic data: small deterministic values, labels 0..9 */
    float *in = e->host_ptr(e, SPACE_INPUT);
    for (int64_t q = 0; q < p->space_bytes[SPACE_INPUT] / 4; q++) in[q] = (float)((q * 7919) % 1000) / 1000.0f - 0.5f;
    int64_t *lab = e->host_ptr(e, SPACE_LABELS);
    for (int q = 0; q < batch; q++) lab[q] = q % 10;
    float *par = e->host_ptr(e, SPACE_PARAMS);
    for (int64_t q = 0; q < p->space_bytes[SPACE_PARAMS] / 4; q++)
        par[q] = (float)((q * 104729) % 2000) / 2000.0f * 0.05f - 0.025f;
    double sc[SC_COUNT] = {0};
    sc[SC_LR] = 1e-3, sc[SC_BETA1] = 0.9, sc[SC_BETA2] = 0.999, sc[SC_EPS] = 1e-8, sc[SC_BIAS_CORR1] = 0.1;
    sc[SC_BIAS_CORR2] = 0.001, sc[SC_STEP] = 1, sc[SC_GRAD_SCALE] = 1.0 / batch, sc[SC_WEIGHT_DECAY] = 1e-4;
    double best = 1e30;
    for (int it = 0; it <= steps; it++) { /* the first step warms up */
        double t = now();
        for (int ph = PHASE_FORWARD_TRAIN; ph <= PHASE_UPDATE; ph++)
            if (e->run(e, (Phase)ph, sc, &err) != 0) {
                fprintf(stderr, "run: %s\n", err.msg);
                return 1;
            }
        t = now() - t;
        if (it > 0 && t < best) best = t;
        printf("step %d: %.3f s%s\n", it, t, it == 0 ? " (warm-up)" : "");
    }
    printf("best step %.3f s (%d threads)\n", best, omp_get_max_threads());
    e->free(e);
    program_free(p);
    model_free(&m);
    return 0;
}
