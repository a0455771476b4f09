/*
 * nvrtc_units.c — NVRTC checks that need no GPU: every sample kernel
 * (tests/emu/sample_kernels.c) renders and compiles for sm_80 and sm_90
 * without a warning; registers, shared memory and spills are printed; the
 * bf16 fallback (no toolkit headers) compiles too; 64-bit indexing is chosen
 * when needed; the cubin cache hits on the second compile and misses when
 * the architecture changes; a compile error names the kernel it is in; the
 * module split into parts compiles to the same entry points and resources
 * as one translation unit, each entry point in exactly one part.
 *
 * Usage: nvrtc_units CACHE_DIR    prints PASS/FAIL/SKIP lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "cuda_api.h"
#include "nvrtc_compile.h"
#include "render_cuda.h"
#include "sample_kernels.h"
#include "util.h"

static void print_stats(const NvrtcModule *m) {
    for (int i = 0; i < m->n_kernels; i++) {
        const CudaKernelStats *s = &m->kernels[i];
        printf("  sm_%d %-28s %3d registers %6d B smem %4d B stack %4d B spill stores %4d B spill loads\n", m->sm,
               s->name, s->registers, s->shared_bytes, s->stack_bytes, s->spill_stores, s->spill_loads);
    }
}

static const CudaKernelStats *stats_named(const NvrtcModule *m, const char *name) {
    for (int i = 0; i < m->n_kernels; i++)
        if (!strcmp(m->kernels[i].name, name)) return &m->kernels[i];
    return NULL;
}

/* Three threads: the module in three parts at kernel boundaries, every entry
 * point in exactly one part, ptxas's report the same as for one unit. */
static void split_module_check(const CudaApi *api, const char *src, int n_kernels, int n_entry_points) {
    NvrtcModule one, three;
    Error err = {0};
    NvrtcOptions opt = {.sm = 90, .threads = 1};
    int rc = nvrtc_compile(api, src, &opt, &one, &err);
    opt.threads = 3;
    if (rc == 0 && nvrtc_compile(api, src, &opt, &three, &err) != 0) {
        nvrtc_module_free(&one);
        rc = -1;
    }
    if (rc) {
        harness_fail("nvrtc_split_module_same_entries", "%s", err.msg);
        return;
    }
    char why[300] = "";
    int in_parts = 0;
    for (int p = 0; p < three.n_parts; p++) in_parts += three.parts[p].n_entries;
    if (one.n_parts != 1 || three.n_parts != (n_kernels < 3 ? n_kernels : 3))
        snprintf(why, sizeof why, "%d and %d parts for 1 and 3 threads (%d kernels)", one.n_parts, three.n_parts,
                 n_kernels);
    else if (in_parts != n_entry_points || three.n_kernels != n_entry_points || one.n_kernels != n_entry_points)
        snprintf(why, sizeof why, "%d entry points in the parts, ptxas reported %d (split) and %d (whole) of %d",
                 in_parts, three.n_kernels, one.n_kernels, n_entry_points);
    for (int i = 0; !why[0] && i < one.n_kernels; i++) {
        const CudaKernelStats *a = &one.kernels[i], *b = stats_named(&three, a->name);
        if (!b || nvrtc_module_part_of(&three, a->name) < 0 || a->registers != b->registers ||
            a->shared_bytes != b->shared_bytes || a->spill_stores != b->spill_stores)
            snprintf(why, sizeof why, "entry point %s: %s", a->name, b ? "other resources or no part" : "missing");
    }
    harness_check("nvrtc_split_module_same_entries", !why[0], "%s", why);
    nvrtc_module_free(&one);
    nvrtc_module_free(&three);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: nvrtc_units CACHE_DIR\n");
        return 2;
    }
    const char *cache = argv[1];
    Error err = {0};
    CudaApi api = {0};
    if (cuda_api_load(&api, CUDA_LIB_NVRTC, &err)) {
        harness_skip("nvrtc", "%s", err.msg);
        return 0;
    }
    KirModule *m = sample_module(&err);
    if (!m) {
        harness_fail("sample_module", "%s", err.msg);
        return 1;
    }
    CudaLaunch *launches = NULL;
    char *src = render_cuda(m, &launches);
    int n_entry_points = 0;
    for (int i = 0; i < m->n; i++) n_entry_points += 1 + launches[i].has_finish + launches[i].has_vec4;

    for (int pass = 0; pass < 2; pass++) {
        int sm = pass ? 90 : 80;
        char name[64];
        NvrtcModule mod;
        NvrtcOptions opt = {.sm = sm, .use_cache = false};
        snprintf(name, sizeof name, "nvrtc_sample_kernels_sm_%d", sm);
        if (nvrtc_compile(&api, src, &opt, &mod, &err)) {
            harness_fail(name, "%s", err.msg);
            continue;
        }
        print_stats(&mod);
        char why[512];
        snprintf(why, sizeof why, "%d warnings, %d of %d entry points reported; log:\n%s", mod.n_warnings,
                 mod.n_kernels, n_entry_points, mod.log);
        harness_check(name, mod.n_warnings == 0 && mod.n_kernels == n_entry_points, "%s", why);
        nvrtc_module_free(&mod);
    }

    /* Without toolkit headers the source brings its own bf16. */
    {
        char *src2 = xasprintf("#define RXC_NO_CUDA_BF16_H 1\n%s", src);
        NvrtcModule mod;
        NvrtcOptions opt = {.sm = 90};
        int rc = nvrtc_compile(&api, src2, &opt, &mod, &err);
        harness_check("nvrtc_own_bf16_fallback", rc == 0 && mod.n_warnings == 0, "%s", rc ? err.msg : "warnings");
        if (rc == 0) nvrtc_module_free(&mod);
        free(src2);
    }

    /* 64-bit indices where 32 bits could overflow, 32-bit elsewhere. */
    {
        Kernel *wide = sample_wide_kernel();
        CudaLaunch l = render_cuda_launch(wide);
        bool narrow_ok = true;
        for (int i = 0; i < m->n; i++) narrow_ok &= !launches[i].wide_index;
        /* labels are int64 loads: only the nodes that use them widen */
        bool label_wide = strstr(src, "const long long e") != NULL && strstr(src, "for (int i =") != NULL;
        harness_check("index_width_analysis", l.wide_index && narrow_ok && label_wide, "wrong index width choice");
        KirModule *wm = kir_module_new();
        kir_module_add(wm, wide);
        char *wsrc = render_cuda(wm, NULL);
        NvrtcModule mod;
        NvrtcOptions opt = {.sm = 80};
        int rc = nvrtc_compile(&api, wsrc, &opt, &mod, &err);
        harness_check("nvrtc_wide_index_kernel", rc == 0 && mod.n_warnings == 0 && strstr(wsrc, "long long i =") != NULL,
                      "%s", rc ? err.msg : mod.n_warnings ? mod.log : "no 64-bit loop");
        if (rc == 0) nvrtc_module_free(&mod);
        free(wsrc);
        kir_module_free(wm);
    }

    /* The cache: cold miss, warm hit with the same key, miss for another arch. */
    {
        NvrtcModule cold, warm, other;
        NvrtcOptions opt = {.sm = 90, .use_cache = true, .cache_dir = cache};
        char *salted = xasprintf("/* cache test %ld */\n%s", (long)getpid(), src);
        int rc = nvrtc_compile(&api, salted, &opt, &cold, &err);
        if (rc == 0) rc = nvrtc_compile(&api, salted, &opt, &warm, &err);
        opt.sm = 80;
        if (rc == 0) rc = nvrtc_compile(&api, salted, &opt, &other, &err);
        if (rc) harness_fail("nvrtc_cubin_cache", "%s", err.msg);
        else {
            bool ok = !cold.from_cache && warm.from_cache && !other.from_cache && !strcmp(cold.key, warm.key) &&
                      strcmp(cold.key, other.key) && cold.n_parts == warm.n_parts && warm.n_kernels == cold.n_kernels;
            for (int i = 0; ok && i < cold.n_parts; i++)
                ok = cold.parts[i].cubin_size == warm.parts[i].cubin_size &&
                     !memcmp(cold.parts[i].cubin, warm.parts[i].cubin, cold.parts[i].cubin_size);
            printf("  compile time: cold %.3f s, warm (cache) %.4f s\n", cold.seconds, warm.seconds);
            harness_check("nvrtc_cubin_cache", ok, "cache did not hit/miss as expected");
            nvrtc_module_free(&cold);
            nvrtc_module_free(&warm);
            nvrtc_module_free(&other);
        }
        free(salted);
    }

    split_module_check(&api, src, m->n, n_entry_points);

    /* A compile error names the kernel and carries the log. */
    {
        char *bad = xstrdup(src);
        char *p = strstr(bad, "extern \"C\" __global__ void __launch_bounds__(256) sgd_update(");
        char *body = p ? strstr(p, "{\n") : NULL;
        int rc = -1;
        if (body) {
            char *broken = xasprintf("%.*s{\n    undeclared_thing = 1;\n%s", (int)(body - bad), bad, body + 2);
            NvrtcModule mod;
            NvrtcOptions opt = {.sm = 90};
            rc = nvrtc_compile(&api, broken, &opt, &mod, &err);
            if (rc == 0) nvrtc_module_free(&mod);
            free(broken);
        }
        harness_check("nvrtc_error_names_kernel",
                      rc != 0 && strstr(err.msg, "in kernel sgd_update") && strstr(err.msg, "undeclared_thing"), "%s",
                      body ? "error did not name the kernel" : "sgd_update not found in source");

        free(bad);
    }

    free(src);
    free(launches);
    kir_module_free(m);
    cuda_api_unload(&api);
    return harness_status();
}
