/*
 * cmd_compile.c — `rxc compile FILE.net --arch sm_90 [--batch N]
 * [--precision fp32|tf32|bf16]`: compiles every CUDA kernel of one training
 * step with NVRTC, on any machine (no GPU needed), and prints per-kernel
 * registers, shared memory, stack, spills and launch geometry, with the cold
 * (NVRTC) and warm (cubin cache) compile times.
 *
 * Exit status: 0 when every kernel compiled without a warning; 1 when NVRTC
 * failed or warned (generated code must be clean: either is a compiler bug);
 * 2 for bad arguments or a bad model file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "conv_cuda.h"
#include "compile.h"
#include "cuda_api.h"
#include "nvrtc_compile.h"
#include "frontend.h"
#include "render_cuda.h"
#include "target_cuda.h"
#include "util.h"

static const char usage[] =
    "usage: rxc compile FILE.net [--arch sm_XX] [--batch N] [--precision fp32|tf32|bf16]\n"
    "                   [--cold] [--no-cache] [--set NAME=VALUE ...]\n"
    "Compiles the CUDA kernels of one training step of FILE with NVRTC (no GPU needed)\n"
    "and prints registers, shared memory and spills per kernel, and the compile time.\n"
    "--arch defaults to the GPU's architecture, or sm_90 without one. Cubins come from\n"
    "the cache when present; --cold recompiles (and rewrites the cache) to time NVRTC.\n";

/* Whether entry is NAME, NAME_finish (*part 1) or NAME_v4 (*part 2). */
static bool entry_of(const char *name, const char *entry, int *part) {
    size_t n = strlen(name);
    if (strncmp(entry, name, n)) return false;
    *part = entry[n] == 0 ? 0 : !strcmp(entry + n, "_finish") ? 1 : !strcmp(entry + n, "_v4") ? 2 : -1;
    return *part >= 0;
}

/* The launch of an entry point: a module kernel's or a direct conv's (*conv). */
static const CudaLaunch *launch_of(const KirModule *m, const CudaLaunch *ls, const ConvCudaSet *convs,
                                   const char *entry, int *part, bool *conv) {
    *conv = false;
    for (int i = 0; i < m->n; i++)
        if (entry_of(m->kernels[i]->name, entry, part)) return &ls[i];
    *conv = true;
    for (int i = 0; i < convs->n; i++)
        if (entry_of(convs->kernels[i].name, entry, part)) return &convs->kernels[i].launch;
    return NULL;
}

static int default_arch(void) {
    CudaApi api = {0};
    Error err = {0};
    int sm = -1;
    if (cuda_api_load(&api, CUDA_LIB_DRIVER, &err) == 0 && api.cuInit(0) == 0)
        sm = cuda_device_sm(&api, 0, &err);
    cuda_api_unload(&api);
    return sm > 0 ? sm : 90;
}

typedef struct CompileArgs {
    const char *file, *precision;
    int sm, batch;
    bool use_cache, cold_wanted;
    SetOverride *sets;
    int n_sets;
} CompileArgs;

/* Returns 0, 1 for --help (printed) or 2 after a usage message. */
static int parse_args(int argc, char **argv, CompileArgs *a) {
    memset(a, 0, sizeof *a);
    a->use_cache = true;
    if (cli_take_sets(&argc, argv, &a->sets, &a->n_sets)) return 2;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(usage, stdout);
            return 1;
        } else if (!strcmp(s, "--arch") && v) {
            a->sm = nvrtc_parse_arch(argv[++i]);
        } else if (!strncmp(s, "--arch=", 7)) {
            a->sm = nvrtc_parse_arch(s + 7);
        } else if (!strcmp(s, "--batch") && v) {
            a->batch = atoi(argv[++i]);
        } else if (!strncmp(s, "--batch=", 8)) {
            a->batch = atoi(s + 8);
        } else if (!strcmp(s, "--precision") && v) {
            a->precision = argv[++i];
        } else if (!strncmp(s, "--precision=", 12)) {
            a->precision = s + 12;
        } else if (!strcmp(s, "--cold")) {
            a->cold_wanted = true;
        } else if (!strcmp(s, "--no-cache")) {
            a->use_cache = false;
        } else if (s[0] == '-' || a->file) {
            fprintf(stderr, "rxc compile: unexpected argument '%s'\n%s", s, usage);
            return 2;
        } else {
            a->file = s;
        }
    }
    const char *prec = a->precision;
    if (!a->file || a->sm < 0 || a->batch < 0 || (prec && strcmp(prec, "fp32") && strcmp(prec, "tf32") && strcmp(prec, "bf16"))) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    return 0;
}

/* One line per entry point: resources and launch geometry. Returns how many spill. */
static int print_kernels(const Program *p, const CudaLaunch *ls, const ConvCudaSet *convs, const NvrtcModule *cold) {
    printf("%-44s %5s %7s %6s %9s %8s  %s\n", "kernel", "regs", "smem", "stack", "spill-st", "spill-ld", "launch");
    int spilling = 0;
    for (int i = 0; i < cold->n_kernels; i++) {
        const CudaKernelStats *s = &cold->kernels[i];
        int part = 0;
        bool conv = false;
        const CudaLaunch *l = launch_of(p->module, ls, convs, s->name, &part, &conv);
        char geo[96] = "?";
        if (l && part == 1) snprintf(geo, sizeof geo, "%u x %u (chunk combine)", l->finish_grid, l->finish_block);
        else if (l && part == 2) snprintf(geo, sizeof geo, "%u x %u float4 (if aligned)", l->vec4_grid, l->block[0]);
        else if (l)
            snprintf(geo, sizeof geo, "%ux%ux%u x %ux%u %s", l->grid[0], l->grid[1], l->grid[2], l->block[0], l->block[1],
                     conv                             ? "direct conv"
                     : l->mapping == CM_THREAD_PER_ROW ? "thread/row"
                     : l->mapping == CM_BLOCK_PER_ROW ? "block/row"
                                                      : "column tiles");
        printf("%-44s %5d %7d %6d %9d %8d  %s\n", s->name, s->registers, s->shared_bytes, s->stack_bytes,
               s->spill_stores, s->spill_loads, geo);
        spilling += s->spill_stores + s->spill_loads > 0;
    }
    return spilling;
}

int cmd_compile(int argc, char **argv) {
    CompileArgs a;
    int prc = parse_args(argc, argv, &a);
    if (prc) {
        free(a.sets);
        return prc == 1 ? 0 : 2;
    }
    const char *file = a.file, *precision = a.precision;
    int sm = a.sm ? a.sm : default_arch(), batch = a.batch;
    LoadOptions lo = {a.sets, a.n_sets, batch};
    Model model;
    int lr = model_load(file, &lo, &model);
    if (lr != LOAD_OK) {
        free(a.sets);
        return lr == LOAD_IO_ERROR ? 1 : 2;
    }
    int rc = 1;
    Error err = {0};
    CompileOptions o;
    compile_options_from_recipe(&o, &model.recipe, batch > 0 ? batch : model.recipe.batch, &target_cuda);
    if (precision) o.precision = !strcmp(precision, "bf16") ? PREC_BF16 : !strcmp(precision, "tf32") ? PREC_TF32 : PREC_FP32;
    if (model.graph->output >= 0 && model.graph->nodes[model.graph->output].rank != 1) o.loss = LOSS_EXTERNAL_GRAD;
    Program *p = compile_training(model.graph, &o, &err);
    CudaApi api = {0};
    char *src = NULL;
    CudaLaunch *ls = NULL;
    ConvCudaSet convs = {0};
    NvrtcModule cold = {0}, warm = {0};
    bool have_cold = false, have_warm = false;
    if (!p) {
        fprintf(stderr, "rxc compile: %s: %s\n", file, err.msg);
        goto out;
    }
    if (cuda_api_load(&api, CUDA_LIB_NVRTC, &err)) {
        fprintf(stderr, "rxc compile: %s\n", err.msg);
        goto out;
    }
    src = render_cuda_program(p, &ls, &convs, &err);
    if (!src) {
        fprintf(stderr, "rxc compile: %s: %s\n", file, err.msg);
        goto out;
    }
    NvrtcOptions opt = {.sm = sm, .use_cache = a.use_cache, .refresh = a.cold_wanted};
    if (nvrtc_compile(&api, src, &opt, &cold, &err)) {
        fprintf(stderr, "rxc compile: %s: %s\n", file, err.msg);
        goto out;
    }
    have_cold = true;
    if (a.use_cache && !cold.from_cache) {
        opt.refresh = false;
        have_warm = nvrtc_compile(&api, src, &opt, &warm, &err) == 0;
    }
    const char *prec_name = o.precision == PREC_BF16 ? "bf16" : o.precision == PREC_TF32 ? "tf32" : "fp32";
    printf("%s: batch %d, %s, sm_%d, NVRTC %d.%d: %d kernels, %d entry points, %zu bytes of source\n", file, o.batch,
           prec_name, sm, cold.nvrtc_major, cold.nvrtc_minor, p->module->n, cold.n_kernels, strlen(src));
    int spilling = print_kernels(p, ls, &convs, &cold);
    printf("spills: %d of %d entry points spill registers\n", spilling, cold.n_kernels);
    if (cold.from_cache) printf("compile time: warm %.4f s (cubin cache; --cold times NVRTC)\n", cold.seconds);
    else {
        printf("compile time: cold %.3f s (NVRTC)", cold.seconds);
        if (have_warm) printf(", warm %.4f s (%s)", warm.seconds, warm.from_cache ? "cubin cache" : "cache unwritable");
        printf("\n");
    }
    if (cold.n_warnings) {
        fprintf(stderr, "rxc compile: NVRTC reported %d warnings on generated code (a compiler bug):\n%s\n",
                cold.n_warnings, cold.log);
        goto out;
    }
    rc = 0;
out:
    if (have_cold) nvrtc_module_free(&cold);
    if (have_warm) nvrtc_module_free(&warm);
    free(src);
    free(ls);
    conv_cuda_set_free(&convs);
    cuda_api_unload(&api);
    if (p) program_free(p);
    model_free(&model);
    free(a.sets);
    return rc;
}
