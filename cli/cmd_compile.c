/*
 * cmd_compile.c — `rxc compile FILE.net --arch sm_90 [--batch N]
 * [--precision fp32|tf32|bf16]`: compiles every CUDA kernel of one training
 * step with NVRTC, on any machine (no GPU needed), and prints per-kernel
 * registers, shared memory, stack, spills and launch geometry, with the cold
 * (NVRTC) and warm (cubin cache) compile times. The program is the trainer's
 * own (trainer_program_options), input normalize included.
 *
 * With --estimate [--gpu h200|h100|a100] [--json] it compiles nothing: it
 * prints the cost model of one training step (forward, backward, update) on
 * that GPU, per kernel and per library step, sorted by roofline time, and
 * the totals (compiler/cost.h, target/cuda/gpu_specs.h).
 *
 * Exit status: 0 when every kernel compiled without a warning; 1 when NVRTC
 * failed or warned (generated code must be clean: either is a compiler bug);
 * 2 for bad arguments or a bad model file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "conv_cuda.h"
#include "compile.h"
#include "cuda_api.h"
#include "gpu_specs.h"
#include "nvrtc_compile.h"
#include "frontend.h"
#include "render_cuda.h"
#include "target_cuda.h"
#include "util.h"

static const char usage[] =
    "usage: rxc compile FILE.net [--arch sm_XX] [--batch N] [--precision fp32|tf32|bf16]\n"
    "                   [--cold] [--no-cache] [--set NAME=VALUE ...]\n"
    "       rxc compile FILE.net --estimate [--gpu h200|h100|a100] [--json] [--batch N] ...\n"
    "Compiles the CUDA kernels of one training step of FILE with NVRTC (no GPU needed)\n"
    "and prints registers, shared memory and spills per kernel, and the compile time.\n"
    "--arch defaults to the GPU's architecture, or sm_90 without one. Cubins come from\n"
    "the cache when present; --cold recompiles (and rewrites the cache) to time NVRTC.\n"
    "--estimate compiles nothing: it prints the cost model of one training step on the\n"
    "GPU (default h200): FLOPs, bytes and roofline time per kernel and GEMM, the totals\n"
    "and the bound in images/s (an estimate, not a measurement); --json as one object.\n";

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
    const char *file, *precision, *gpu;
    int sm, batch;
    bool use_cache, cold_wanted, estimate, json;
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
        } else if (!strcmp(s, "--gpu") && v) {
            a->gpu = argv[++i];
        } else if (!strncmp(s, "--gpu=", 6)) {
            a->gpu = s + 6;
        } else if (!strcmp(s, "--estimate")) {
            a->estimate = true;
        } else if (!strcmp(s, "--json")) {
            a->json = true;
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
    if ((a->gpu || a->json) && !a->estimate) {
        fprintf(stderr, "rxc compile: --gpu and --json go with --estimate\n%s", usage);
        return 2;
    }
    if (a->gpu && !gpu_spec_find(a->gpu)) {
        fprintf(stderr, "rxc compile: unknown GPU '%s' (known: %s)\n", a->gpu, gpu_spec_names());
        return 2;
    }
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
                     : l->mapping == CM_WARP_PER_ROW  ? "warp/row"
                                                      : "column tiles");
        printf("%-44s %5d %7d %6d %9d %8d  %s\n", s->name, s->registers, s->shared_bytes, s->stack_bytes,
               s->spill_stores, s->spill_loads, geo);
        spilling += s->spill_stores + s->spill_loads > 0;
    }
    return spilling;
}

/* ---- --estimate: the cost model of one training step ---------------------------- */

typedef struct EstimateRow {
    Phase phase;
    int index;
    const Step *step;
    char *name;
    StepEstimate e;
} EstimateRow;

typedef struct EstimateTotals {
    double flops, bytes, seconds, matmul_flops, tensor_flops;
    int launches;
} EstimateTotals;

static int by_time(const void *a, const void *b) {
    double x = ((const EstimateRow *)a)->e.seconds, y = ((const EstimateRow *)b)->e.seconds;
    return x > y ? -1 : x < y;
}

/* The rows of one training step (forward, backward, update), slowest first. */
static EstimateRow *estimate_rows(const Program *p, const GpuSpec *gpu, bool tf32, int *n, EstimateTotals *t) {
    int total = p->n_steps[PHASE_FORWARD_TRAIN] + p->n_steps[PHASE_BACKWARD] + p->n_steps[PHASE_UPDATE];
    EstimateRow *rows = xcalloc((size_t)(total ? total : 1), sizeof *rows);
    memset(t, 0, sizeof *t);
    *n = 0;
    Phase phases[3] = {PHASE_FORWARD_TRAIN, PHASE_BACKWARD, PHASE_UPDATE};
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < p->n_steps[phases[q]]; i++) {
            const Step *s = &p->steps[phases[q]][i];
            EstimateRow *r = &rows[(*n)++];
            *r = (EstimateRow){phases[q], i, s, gpu_step_label(p, s), gpu_estimate_step(gpu, p, s, tf32)};
            t->flops += r->e.cost.flops;
            t->bytes += r->e.cost.bytes_read + r->e.cost.bytes_written;
            t->seconds += r->e.seconds;
            t->launches += r->e.launches;
            if (r->e.cost.matmul) t->matmul_flops += r->e.cost.flops;
            if (r->e.cost.matmul && r->e.cost.math != COST_MATH_SCALAR) t->tensor_flops += r->e.cost.flops;
        }
    qsort(rows, (size_t)*n, sizeof *rows, by_time);
    return rows;
}

static double tensor_share(const EstimateTotals *t) { return t->matmul_flops > 0 ? t->tensor_flops / t->matmul_flops : 0; }

static void print_estimate_text(const char *file, const Program *p, const char *prec, const GpuSpec *gpu,
                                const EstimateRow *rows, int n, const EstimateTotals *t) {
    printf("%s: batch %d, %s: cost model estimate of one training step on the %s\n", file, p->batch, prec,
           gpu->full_name);
    printf("  peaks %.1f TFLOP/s bf16 tensor, %.1f tf32 tensor, %.1f fp32; %.2f TB/s; %.1f us per launch (assumed)\n",
           gpu->bf16_tensor_flops / 1e12, gpu->tf32_tensor_flops / 1e12, gpu->fp32_flops / 1e12,
           gpu->hbm_bytes_per_s / 1e12, GPU_LAUNCH_OVERHEAD_S * 1e6);
    printf("%-8s %4s  %-40s %10s %10s %10s %3s %2s %9s  %s\n", "phase", "step", "kernel / library step", "MFLOP",
           "MB read", "MB written", "TC", "L", "time us", "note");
    for (int i = 0; i < n; i++) {
        const EstimateRow *r = &rows[i];
        const char *note = r->step->note ? r->step->note : "";
        printf("%-8s %4d  %-40s %10.1f %10.2f %10.2f %3s %2d %9.2f  %.60s\n", gpu_phase_key(r->phase), r->index, r->name,
               r->e.cost.flops / 1e6, r->e.cost.bytes_read / 1e6, r->e.cost.bytes_written / 1e6,
               r->e.cost.math != COST_MATH_SCALAR ? "yes" : "no", r->e.launches, r->e.seconds * 1e6, note);
    }
    printf("totals: %.2f GFLOP per step, %.2f GB per step, %d launches per step, "
           "tensor-core share of GEMM/conv FLOPs %.1f%%\n",
           t->flops / 1e9, t->bytes / 1e9, t->launches, 100 * tensor_share(t));
    printf("roofline: %.3f ms per step, bound %.0f images/s (cost model estimate, not a measurement)\n",
           t->seconds * 1e3, t->seconds > 0 ? p->batch / t->seconds : 0);
    printf("arena: %.1f MiB planned for activations and gradients (the memory plan's peak)\n",
           (double)p->peak_bytes / (1024.0 * 1024.0));
}

static void print_estimate_json(const char *file, const Program *p, const char *prec, const GpuSpec *gpu, bool tf32,
                                const EstimateRow *rows, int n, const EstimateTotals *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "gpu", gpu->name);
    cJSON_AddNumberToObject(o, "batch", p->batch);
    cJSON_AddStringToObject(o, "precision", prec);
    cJSON_AddBoolToObject(o, "tf32", tf32);
    cJSON_AddNumberToObject(o, "launch_overhead_s", GPU_LAUNCH_OVERHEAD_S);
    cJSON_AddNumberToObject(o, "gflop_per_step", t->flops / 1e9);
    cJSON_AddNumberToObject(o, "gb_per_step", t->bytes / 1e9);
    cJSON_AddNumberToObject(o, "launches", t->launches);
    cJSON_AddNumberToObject(o, "tensor_core_flop_share", tensor_share(t));
    cJSON_AddNumberToObject(o, "seconds_per_step", t->seconds);
    cJSON_AddNumberToObject(o, "bound_images_per_s", t->seconds > 0 ? p->batch / t->seconds : 0);
    cJSON_AddNumberToObject(o, "arena_bytes", (double)p->peak_bytes);
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int i = 0; i < n; i++) {
        const EstimateRow *r = &rows[i];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "phase", gpu_phase_key(r->phase));
        cJSON_AddNumberToObject(s, "index", r->index);
        cJSON_AddStringToObject(s, "kind", gpu_step_kind(r->step));
        cJSON_AddStringToObject(s, "name", r->name);
        cJSON_AddStringToObject(s, "note", r->step->note ? r->step->note : "");
        cJSON_AddNumberToObject(s, "flops", r->e.cost.flops);
        cJSON_AddNumberToObject(s, "bytes_read", r->e.cost.bytes_read);
        cJSON_AddNumberToObject(s, "bytes_written", r->e.cost.bytes_written);
        cJSON_AddNumberToObject(s, "scratch_bytes", r->e.scratch_bytes);
        cJSON_AddBoolToObject(s, "matmul", r->e.cost.matmul);
        cJSON_AddBoolToObject(s, "tensor_cores", r->e.cost.math != COST_MATH_SCALAR);
        cJSON_AddNumberToObject(s, "launches", r->e.launches);
        cJSON_AddNumberToObject(s, "seconds", r->e.seconds);
        cJSON_AddItemToArray(steps, s);
    }
    char *text = cJSON_Print(o);
    puts(text);
    free(text);
    cJSON_Delete(o);
}

static void print_estimate(const char *file, const Program *p, const CompileOptions *o, const CompileArgs *a) {
    const GpuSpec *gpu = gpu_spec_find(a->gpu ? a->gpu : "h200");
    bool tf32 = o->precision == PREC_TF32; /* as the trainer sets the executor (exec_cuda_set_tf32) */
    const char *prec = o->precision == PREC_BF16 ? "bf16" : o->precision == PREC_TF32 ? "tf32" : "fp32";
    int n = 0;
    EstimateTotals t;
    EstimateRow *rows = estimate_rows(p, gpu, tf32, &n, &t);
    if (a->json) print_estimate_json(file, p, prec, gpu, tf32, rows, n, &t);
    else print_estimate_text(file, p, prec, gpu, rows, n, &t);
    for (int i = 0; i < n; i++) free(rows[i].name);
    free(rows);
}

int cmd_compile(int argc, char **argv) {
    CompileArgs a;
    int prc = parse_args(argc, argv, &a);
    if (prc) {
        free(a.sets);
        return prc == 1 ? 0 : 2;
    }
    const char *file = a.file, *precision = a.precision;
    int sm = a.sm ? a.sm : a.estimate ? 90 : default_arch(), batch = a.batch;
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
    trainer_program_options(&model, batch > 0 ? batch : model.recipe.batch, &target_cuda, sm, &o); /* auto: as on a GPU of --arch */
    if (precision) o.precision = !strcmp(precision, "bf16") ? PREC_BF16 : !strcmp(precision, "tf32") ? PREC_TF32 : PREC_FP32;
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
    if (a.estimate) {
        print_estimate(file, p, &o, &a);
        rc = 0;
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
