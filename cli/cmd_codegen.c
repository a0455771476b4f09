/*
 * cmd_codegen.c — the commands that show what the training compiler makes:
 * `rxc emit FILE --target c|kir|cuda [--batch N] -o DIR` (the generated
 * kernel source of one training step) and the training half of
 * `rxc summary FILE --kernels/--memory` (summary_training_report: the
 * kernels of one step and what each fuses; the memory plan's figures).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "compile.h"
#include "frontend.h"
#include "nvrtc_compile.h"
#include "target_cpu.h"
#include "target_cuda.h"
#include "train_loop.h"
#include "util.h"

static const char *const phase_names[PHASE_COUNT] = {"forward (train)", "backward", "update", "forward (eval)",
                                                       "ema (weights average)"};

/* The trainer's own program for the target (trainer_compile_options: uint8
 * batches normalized by the first kernel where the target wants them),
 * `precision auto` resolved for a device sm_`arch` (0: the CPU). */
void trainer_program_options(const Model *m, int batch, const Target *target, int arch, CompileOptions *o) {
    TrainerConfig cfg;
    train_config_init(&cfg, m, batch, true, true);
    trainer_compile_options(m, &cfg, target, o);
    o->precision = target_precision(target, m->recipe.precision, arch);
    /* single-op networks end in a feature map: show them with an external loss gradient */
    if (m->graph->output >= 0 && m->graph->nodes[m->graph->output].rank != 1) o->loss = LOSS_EXTERNAL_GRAD;
}

static Program *compile_model(Model *m, int batch, const Target *target, int arch) {
    CompileOptions o;
    trainer_program_options(m, batch, target, arch, &o);
    Error err = {0};
    Program *p = compile_training(m->graph, &o, &err);
    if (!p) fprintf(stderr, "rxc: %s: %s\n", m->path, err.msg);
    return p;
}

static double mib(int64_t b) { return (double)b / (1024.0 * 1024.0); }

static void print_kernels(const Program *p) {
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        if (ph == PHASE_FORWARD_EVAL || (ph == PHASE_EMA && !p->n_steps[ph])) continue;
        int nk = 0, ng = 0, nc = 0, na = 0;
        for (int s = 0; s < p->n_steps[ph]; s++) {
            StepKind kind = p->steps[ph][s].kind;
            nk += kind == STEP_KERNEL, ng += kind == STEP_GEMM, nc += kind == STEP_CONV, na += kind == STEP_ALLREDUCE;
        }
        printf("%s: %d kernels, %d GEMM steps", phase_names[ph], nk, ng);
        if (nc) printf(", %d direct conv steps", nc);
        if (na) printf(", %d all-reduce steps (sync_bn)", na);
        printf("\n");
        for (int s = 0; s < p->n_steps[ph]; s++) {
            const Step *st = &p->steps[ph][s];
            if (st->kind == STEP_KERNEL) {
                const Kernel *k = p->module->kernels[st->kernel];
                /* the step's note: a deduplicated kernel keeps its first user's description */
                printf("  %4d  kernel %-40s %s\n", s, k->name, st->note ? st->note : k->fuses);
            } else if (st->kind == STEP_CONV || st->kind == STEP_ALLREDUCE) {
                printf("  %4d  %-6s %-40s %s\n", s, step_kind_name(st->kind), "", st->note);
            } else {
                const GemmStep *gm = &st->gemm;
                printf("  %4d  gemm   %-40s %s (m=%d n=%d k=%d%s)\n", s, "", st->note, gm->m, gm->n, gm->k,
                       gm->batch > 1 ? ", batched" : "");
            }
        }
    }
    printf("%d distinct kernels in the module\n", p->module->n);
}

static void print_memory(const Program *p, const Graph *g) {
    int N = p->batch;
    const Node *in = &g->nodes[g->input];
    bool bf16 = false;
    for (int b = 0; b < p->n_bufs && !bf16; b++) bf16 = p->bufs[b].dtype == KD_BF16;
    printf("memory of one training step, batch %d, input %lldx%lld, %s:\n", N, (long long)in->dim[0],
           (long long)in->dim[1], bf16 ? "bf16 activations, fp32 master weights" : "fp32");
    printf("  planned peak (arena)           %10.1f MiB  (%.2f MiB per image)\n", mib(p->peak_bytes),
           mib(p->peak_bytes) / N);
    printf("  kept for backward              %10.1f MiB  (%.2f MiB per image)\n", mib(p->saved_bytes),
           mib(p->saved_bytes) / N);
    printf("  naive sum of all tensors       %10.1f MiB  (%.2f MiB per image)\n", mib(p->naive_bytes),
           mib(p->naive_bytes) / N);
    printf("  weights + grads + opt. state   %10.1f MiB  (weights %.1f, grads %.1f, state %.1f, BN buffers %.2f)\n",
           mib(p->state_bytes), mib(p->space_bytes[SPACE_PARAMS]), mib(p->space_bytes[SPACE_GRADS]),
           mib(p->space_bytes[SPACE_STATE]), mib(p->space_bytes[SPACE_BUFFERS]));
    Error err = {0};
    if (memplan_verify(p, &err) == 0)
        printf("  plan verified: no two simultaneously live buffers overlap (%d buffers)\n", p->n_bufs);
    else
        printf("  PLAN INVALID: %s\n", err.msg);
}

static cJSON *memory_json(const Program *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", p->batch);
    cJSON_AddNumberToObject(o, "peak_bytes", (double)p->peak_bytes);
    cJSON_AddNumberToObject(o, "saved_bytes", (double)p->saved_bytes);
    cJSON_AddNumberToObject(o, "naive_bytes", (double)p->naive_bytes);
    cJSON_AddNumberToObject(o, "state_bytes", (double)p->state_bytes);
    Error err = {0};
    int ok = memplan_verify(p, &err) == 0;
    cJSON_AddBoolToObject(o, "verified", ok);
    if (!ok) cJSON_AddStringToObject(o, "verify_error", err.msg);
    /* everything an independent checker needs: buffers and who touches them */
    cJSON *bufs = cJSON_AddArrayToObject(o, "buffers");
    for (int b = 0; b < p->n_bufs; b++) {
        const BufDesc *d = &p->bufs[b];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", d->name);
        cJSON_AddNumberToObject(x, "space", d->space);
        cJSON_AddNumberToObject(x, "offset", (double)d->offset);
        int64_t e = d->dtype == KD_I64 ? 8 : d->dtype == KD_BF16 ? 2 : d->dtype == KD_U8 ? 1 : 4;
        cJSON_AddNumberToObject(x, "bytes", (double)(d->numel * e));
        cJSON_AddStringToObject(x, "dtype", d->dtype == KD_BF16 ? "bf16" : d->dtype == KD_U8 ? "u8" : d->dtype == KD_I64 ? "i64" : "f32");
        cJSON_AddItemToArray(bufs, x);
    }
    cJSON *sched = cJSON_AddArrayToObject(o, "schedule");
    /* memplan.c's schedule: a training step's phases in the order they run */
    const Phase order[4] = {PHASE_FORWARD_TRAIN, PHASE_BACKWARD, PHASE_UPDATE, PHASE_EMA};
    const char *const order_names[4] = {"forward", "backward", "update", "ema"};
    for (int q = 0; q < 4; q++)
        for (int s = 0; s < p->n_steps[order[q]]; s++) {
            const Step *st = &p->steps[order[q]][s];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "phase", order_names[q]);
            cJSON_AddStringToObject(x, "kind", step_kind_name(st->kind));
            cJSON *args = cJSON_AddArrayToObject(x, "bufs");
            cJSON *wr = cJSON_AddArrayToObject(x, "written");
            if (st->kind == STEP_KERNEL) {
                const Kernel *k = p->module->kernels[st->kernel];
                int stores = 0;
                for (int z = 0; z < k->n_stages; z++) stores += k->stages[z].n_stores;
                cJSON_AddNumberToObject(x, "stores", stores);
                for (int a = 0; a < st->n_args; a++) {
                    cJSON_AddItemToArray(args, cJSON_CreateNumber(st->args[a]));
                    cJSON_AddItemToArray(wr, cJSON_CreateBool(k->bufs[a].written));
                }
            } else {
                cJSON_AddNumberToObject(x, "stores", -1);
                int gb[LIBRARY_STEP_BUFS];
                int written = library_step_buffers(st, gb);
                for (int a = 0; a < LIBRARY_STEP_BUFS; a++) {
                    if (gb[a] < 0) continue;
                    cJSON_AddItemToArray(args, cJSON_CreateNumber(gb[a]));
                    cJSON_AddItemToArray(wr, cJSON_CreateBool(library_step_writes(a, written)));
                }
            }
            cJSON_AddItemToArray(sched, x);
        }
    cJSON_AddNumberToObject(o, "dy_buf", p->dy_buf);
    cJSON_AddNumberToObject(o, "logits_buf", p->logits_buf);
    cJSON_AddNumberToObject(o, "loss_buf", p->loss_buf);
    cJSON_AddNumberToObject(o, "input_grad_buf", p->input_grad_buf);
    return o;
}

static cJSON *kernels_json(const Program *p) {
    cJSON *o = cJSON_CreateObject();
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        if (ph == PHASE_EMA && !p->n_steps[ph]) continue; /* without `ema`, the listing stays as it was */
        cJSON *arr = cJSON_AddArrayToObject(o, ph == PHASE_FORWARD_TRAIN ? "forward"
                                               : ph == PHASE_BACKWARD    ? "backward"
                                               : ph == PHASE_UPDATE      ? "update"
                                               : ph == PHASE_EMA         ? "ema"
                                                                         : "forward_eval");
        for (int s = 0; s < p->n_steps[ph]; s++) {
            const Step *st = &p->steps[ph][s];
            cJSON *x = cJSON_CreateObject();
            if (st->kind == STEP_KERNEL) {
                const Kernel *k = p->module->kernels[st->kernel];
                cJSON_AddStringToObject(x, "kind", "kernel");
                cJSON_AddStringToObject(x, "name", k->name);
                cJSON_AddStringToObject(x, "fuses", st->note ? st->note : k->fuses);
            } else {
                cJSON_AddStringToObject(x, "kind", step_kind_name(st->kind));
                cJSON_AddStringToObject(x, "note", st->note ? st->note : "");
            }
            cJSON_AddItemToArray(arr, x);
        }
    }
    return o;
}

int summary_training_report(struct Model *m, int batch, int want_kernels, int want_memory, int json, int cuda) {
    Program *p = cuda ? compile_model(m, batch, &target_cuda, 90) : compile_model(m, batch, &target_cpu, 0);
    if (!p) return 1;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (want_kernels) cJSON_AddItemToObject(o, "kernels", kernels_json(p));
        if (want_memory) cJSON_AddItemToObject(o, "memory", memory_json(p));
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        if (want_kernels) print_kernels(p);
        if (want_memory) print_memory(p, m->graph);
    }
    program_free(p);
    return 0;
}

/* ---- emit ------------------------------------------------------------------- */

static const char emit_usage[] =
    "usage: rxc emit FILE.net --target c|kir|cuda [--arch sm_XX] [--batch N] -o DIR [--set NAME=VALUE ...]\n"
    "Writes the generated kernel source of one training step of FILE for reading:\n"
    "  c     DIR/kernels.c   (the C the CPU executor compiles)\n"
    "  kir   DIR/kernels.kir (the kernel IR, one dump per kernel)\n"
    "  cuda  DIR/kernels.cu  (the CUDA C the GPU executor compiles with NVRTC)\n"
    "plus DIR/steps.txt: the step list of each phase. The cuda target compiles the step as\n"
    "the GPU trainer runs it: uint8 batches, normalized by the first kernel, and `precision\n"
    "auto` as on a GPU of --arch (default sm_90: bf16; fp32 below sm_80).\n";

static int write_text(const char *dir, const char *name, const char *text) {
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    int rc = 0;
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "rxc emit: cannot write %s: %s\n", path, strerror(errno));
        rc = 1;
    } else {
        printf("wrote %s\n", path);
    }
    free(path);
    return rc;
}

int cmd_emit(int argc, char **argv) {
    SetOverride *sets = NULL;
    int n_sets = 0;
    if (cli_take_sets(&argc, argv, &sets, &n_sets)) return 2;
    const char *file = NULL, *target = "c", *dir = NULL;
    int batch = 0, arch = 90;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(emit_usage, stdout);
            free(sets);
            return 0;
        } else if (!strcmp(s, "--target") && i + 1 < argc) {
            target = argv[++i];
        } else if (!strncmp(s, "--target=", 9)) {
            target = s + 9;
        } else if ((!strcmp(s, "-o") || !strcmp(s, "--out")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(s, "--batch") && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (!strncmp(s, "--batch=", 8)) {
            batch = atoi(s + 8);
        } else if (!strcmp(s, "--arch") && i + 1 < argc) {
            arch = nvrtc_parse_arch(argv[++i]);
        } else if (!strncmp(s, "--arch=", 7)) {
            arch = nvrtc_parse_arch(s + 7);
        } else if (s[0] == '-') {
            fprintf(stderr, "rxc emit: unknown option '%s'\n%s", s, emit_usage);
            free(sets);
            return 2;
        } else {
            file = s;
        }
    }
    if (!file || !dir || arch <= 0 || (strcmp(target, "c") && strcmp(target, "kir") && strcmp(target, "cuda"))) {
        fprintf(stderr, "%s", emit_usage);
        free(sets);
        return 2;
    }
    LoadOptions lo = {sets, n_sets, batch};
    Model m;
    int lr = model_load(file, &lo, &m);
    if (lr != LOAD_OK) {
        free(sets);
        return lr == LOAD_IO_ERROR ? 1 : 2;
    }
    int rc = 1;
    /* kir: the kernel IR as the CPU target gets it */
    const Target *tg = !strcmp(target, "cuda") ? &target_cuda : &target_cpu;
    Program *p = compile_model(&m, batch > 0 ? batch : m.recipe.batch, tg, tg == &target_cuda ? arch : 0);
    if (p) {
        if (make_dirs(dir, 0777, NULL) != 0) {
            fprintf(stderr, "rxc emit: cannot create %s: %s\n", dir, strerror(errno));
        } else {
            char *text = NULL;
            const char *name = tg->source_file;
            if (!strcmp(target, "kir")) {
                StrBuf sb = {0};
                for (int i = 0; i < p->module->n; i++) {
                    char *d = kir_dump(p->module->kernels[i]);
                    sb_puts(&sb, d);
                    sb_puts(&sb, "\n");
                    free(d);
                }
                text = sb_take(&sb);
                name = "kernels.kir";
            } else {
                Error rerr = {0};
                text = tg->render(p, &rerr);
                if (!text) fprintf(stderr, "rxc emit: %s\n", rerr.msg);
            }
            StrBuf st = {0};
            for (int ph = 0; ph < PHASE_COUNT; ph++) {
                if (ph == PHASE_EMA && !p->n_steps[ph]) continue;
                sb_printf(&st, "# %s\n", phase_names[ph]);
                for (int s = 0; s < p->n_steps[ph]; s++) {
                    const Step *x = &p->steps[ph][s];
                    if (x->kind == STEP_KERNEL)
                        sb_printf(&st, "%d kernel %s  # %s\n", s, p->module->kernels[x->kernel]->name, x->note);
                    else
                        sb_printf(&st, "%d %s  # %s\n", s, step_kind_name(x->kind), x->note);
                }
            }
            char *steps = sb_take(&st);
            rc = text ? write_text(dir, name, text) : 1;
            if (rc == 0) rc = write_text(dir, "steps.txt", steps);
            free(steps);
            free(text);
        }
        program_free(p);
    }
    model_free(&m);
    free(sets);
    return rc;
}
