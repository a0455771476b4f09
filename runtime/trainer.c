/*
 * trainer.c — a training session (see trainer.h): compiling, the device,
 * one micro-batch at a time, the update, evaluation, checkpoints, and the
 * start-up checks that the data fits the network (sample shape, classes).
 */
#include "trainer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "cuda_api.h"
#include "exec_cuda.h"
#include "init.h"
#include "schedule.h"
#include "target_cpu.h"
#include "target_cuda.h"
#include "util.h"

/* The CUDA executor is absent from CPU-only builds: a weak reference is NULL
 * there, and `device auto` then means the CPU. */
#pragma weak exec_cuda_new
#pragma weak exec_cuda_set_tf32
#pragma weak cuda_available
#pragma weak cuda_device_count

/* TF32 is a GEMM setting of the CUDA executor, not of the generated kernels,
 * so `precision tf32` is applied here rather than by the compiler. */
static Executor *open_cuda(const Program *p, Precision precision, int ordinal, Error *err) {
    Executor *e = exec_cuda_new(p, ordinal, err);
    if (e && precision == PREC_TF32 && exec_cuda_set_tf32) exec_cuda_set_tf32(e, 1);
    return e;
}

static Executor *make_executor(const Program *p, bool cuda, Precision precision, int ordinal, Error *err) {
    if (cuda) return open_cuda(p, precision, ordinal, err);
    return exec_cpu_new(p, err);
}

static int build(Trainer *t, int batch, Program **prog, Executor **exec, Error *err) {
    CompileOptions o = t->copts;
    o.batch = batch;
    if (batch != t->cfg.batch) o.ema_decay = 0; /* the short-batch program never runs PHASE_EMA */
    o.target = t->use_cuda ? &target_cuda : &target_cpu;
    *prog = compile_training(t->graph, &o, err);
    if (!*prog) return -1;
    *exec = make_executor(*prog, t->use_cuda, t->copts.precision, t->device_ordinal, err);
    if (!*exec) {
        program_free(*prog);
        *prog = NULL;
        return -1;
    }
    (*exec)->hooks = t->cfg.hooks;
    return 0;
}

/* The GPU's program and executor, `precision auto` resolved for the device
 * (target_precision). Returns 0; -1 with the reason in why when there is no
 * usable GPU (the caller may fall back to the CPU, which compiles its own
 * program: STEP_CONV, maybe another input format and precision); -2 with
 * the message in err when compiling failed. */
static int open_gpu(Trainer *t, Error *why, Error *err) {
    int arch = target_cuda_device_arch(t->device_ordinal, why);
    if (arch < 0) return -1;
    CompileOptions o = t->copts;
    o.target = &target_cuda;
    o.precision = target_precision(&target_cuda, t->recipe->precision, arch);
    if (!(t->prog = compile_training(t->graph, &o, err))) return -2;
    t->use_cuda = true;
    t->exec = open_cuda(t->prog, o.precision, t->device_ordinal, why);
    if (!t->exec) {
        program_free(t->prog);
        t->prog = NULL;
        t->use_cuda = false;
        return -1;
    }
    t->exec->hooks = t->cfg.hooks;
    t->copts.precision = o.precision;
    t->device_arch = arch;
    return 0;
}

static void note_precision(Trainer *t) {
    const char *name = precision_name(t->copts.precision);
    if (t->recipe->precision != PREC_AUTO) snprintf(t->precision_note, sizeof t->precision_note, "%s", name);
    else if (t->use_cuda)
        snprintf(t->precision_note, sizeof t->precision_note, "%s (precision auto on sm_%d)", name, t->device_arch);
    else snprintf(t->precision_note, sizeof t->precision_note, "%s (precision auto on the CPU)", name);
}

int device_parse(const char *s, DeviceKind *d, int *index) {
    *index = -1;
    char *end = NULL;
    if (!strcmp(s, "cpu")) *d = DEVICE_CPU;
    else if (!strcmp(s, "cuda")) *d = DEVICE_CUDA;
    else if (!strncmp(s, "cuda:", 5) && s[5] >= '0' && s[5] <= '9' && strtol(s + 5, &end, 10) < 4096 && !*end) {
        *d = DEVICE_CUDA;
        *index = (int)strtol(s + 5, NULL, 10);
    }
    else if (!strcmp(s, "auto")) *d = DEVICE_AUTO;
    else return -1;
    return 0;
}

/* --device cuda:K wins; else each rank of a node takes its own GPU. */
static int pick_ordinal(const TrainerConfig *cfg) {
    if (cfg->device_index >= 0) return cfg->device_index;
    if (cfg->device == DEVICE_CPU || cfg->local_rank <= 0 || !cuda_device_count) return 0;
    int n = cuda_device_count();
    return n > 1 ? cfg->local_rank % n : 0;
}

void trainer_compile_options(const Model *m, const TrainerConfig *cfg, const Target *target, CompileOptions *o) {
    compile_options_from_recipe(o, &m->recipe, cfg->batch, target);
    o->loss = cfg->loss;
    o->want_input_grad = cfg->want_input_grad;
    memcpy(o->mean, cfg->mean, sizeof cfg->mean);
    memcpy(o->std, cfg->std, sizeof cfg->std);
    /* uint8 batches are RGB: a network that takes another channel count gets
     * float batches, and the sample shape check names the mismatch. */
    const Node *in = &m->graph->nodes[m->graph->input];
    bool rgb_input = in->rank == 3 && in->dim[2] == 3;
    o->normalize_u8_input = cfg->u8_input || (cfg->u8_where_target_wants && rgb_input && target->u8_input);
}

int trainer_open(Trainer *t, Model *m, const TrainerConfig *cfg, Error *err) {
    memset(t, 0, sizeof *t);
    t->model = m;
    t->graph = m->graph;
    t->recipe = &m->recipe;
    t->cfg = *cfg;
    const Graph *g = t->graph;
    if (cfg->batch < 1) return error_set(err, "batch size must be at least 1 (got %d)", cfg->batch);
    if (g->output < 0 || g->input < 0) return error_set(err, "the network has no input or output");

    trainer_compile_options(m, cfg, &target_cuda, &t->copts);

    DeviceKind dev = cfg->device;
    t->device_ordinal = pick_ordinal(cfg);
    if (dev == DEVICE_CUDA && !exec_cuda_new)
        return error_set(err, "device cuda: this rxc was built without CUDA support (no toolkit at build time)");
    /* why `device auto` did not choose the GPU, for its line on stderr */
    Error cuda_err = {0};
    if (dev == DEVICE_AUTO && (!exec_cuda_new || !cuda_available))
        error_set(&cuda_err, "no GPU: this rxc was built without CUDA support");
    else if (dev == DEVICE_AUTO && !cuda_available(&cuda_err))
        error_prefix(&cuda_err, "no GPU");
    if (dev != DEVICE_CPU && !error_is_set(&cuda_err)) {
        /* auto: a GPU that cannot be used falls back to the CPU, which compiles its own
         * program (STEP_CONV, maybe another input format and precision); a compile error
         * is a bug either way */
        int rc = open_gpu(t, dev == DEVICE_CUDA ? err : &cuda_err, err);
        if (rc == -2 || (rc == -1 && dev == DEVICE_CUDA)) return -1;
        if (rc == -1) error_prefix(&cuda_err, "the GPU is present but unusable");
    }
    if (!t->exec) {
        t->use_cuda = false;
        trainer_compile_options(m, cfg, &target_cpu, &t->copts);
        if (build(t, cfg->batch, &t->prog, &t->exec, err) != 0) return -1;
    }
    t->cfg.u8_input = t->copts.normalize_u8_input;
    note_precision(t);
    if (!cfg->quiet) {
        /* auto says what it chose and why, in one line: "device: cuda:0 (NAME, sm_90, driver 13.0)" or
         * "device: cpu (2 threads); no GPU: <reason>" */
        const char *name = t->exec->device_name ? t->exec->device_name : "?";
        if (dev != DEVICE_AUTO) fprintf(stderr, "rxc: device %s\n", name);
        else if (error_is_set(&cuda_err)) fprintf(stderr, "rxc: device: %s; %s\n", name, cuda_err.msg);
        else fprintf(stderr, "rxc: device: %s\n", name);
        if (t->use_cuda && cfg->ranks > 1)
            fprintf(stderr, "rxc: %d ranks, each on its own GPU: %s (rank %d, local rank %d)\n", cfg->ranks,
                    cfg->device_index >= 0 ? "the one --device names" : "cuda:(local rank % GPUs on the node)",
                    cfg->hooks.rank, cfg->local_rank);
        fprintf(stderr, "rxc: precision %s\n", t->precision_note);
    }

    t->num_batches = xcalloc((size_t)(g->n_params ? g->n_params : 1), sizeof *t->num_batches);
    t->out_numel = node_numel(&g->nodes[g->output]);
    t->logits = xcalloc((size_t)(cfg->batch * t->out_numel), sizeof(float));
    t->losses = xcalloc((size_t)cfg->batch, sizeof(float));
    t->in_sample_bytes = (size_t)node_numel(&g->nodes[g->input]) * (t->cfg.u8_input ? 1 : sizeof(float));
    t->ref.graph = g;
    t->ref.program = t->prog;
    t->ref.exec = t->exec;
    t->ref.num_batches = t->num_batches;
    t->ref.opt = t->recipe->opt;
    t->ref.momentum = t->recipe->momentum;
    t->ref.precision = t->copts.precision == PREC_FP32 ? NULL : precision_name(t->copts.precision);
    t->state.seed = t->recipe->seed;
    t->state.best_val_acc = -1;
    return 0;
}

void trainer_close(Trainer *t) {
    if (t->short_exec) t->short_exec->free(t->short_exec);
    if (t->short_prog) program_free(t->short_prog);
    if (t->exec) t->exec->free(t->exec);
    if (t->prog) program_free(t->prog);
    free(t->num_batches);
    free(t->logits);
    free(t->losses);
    memset(t, 0, sizeof *t);
}

static void zero_space(Executor *e, const Program *p, BufSpace s) {
    int64_t n = p->space_bytes[s];
    if (n <= 0) return;
    void *z = xcalloc(1, (size_t)n);
    e->write(e, s, 0, z, n);
    free(z);
}

void trainer_init_params(Trainer *t, uint64_t seed) {
    const Graph *g = t->graph;
    int64_t most = 1;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].numel > most) most = g->params[i].numel;
    float *tmp = xmalloc((size_t)most * sizeof(float));
    for (int i = 0; i < g->n_params; i++) {
        const Param *p = &g->params[i];
        t->num_batches[i] = 0;
        if (p->role == ROLE_NUM_BATCHES) continue;
        init_param(p, seed, tmp);
        t->exec->write(t->exec, p->trainable ? SPACE_PARAMS : SPACE_BUFFERS,
                       t->prog->param_offset[i] * (int64_t)sizeof(float), tmp, p->numel * (int64_t)sizeof(float));
    }
    free(tmp);
    zero_space(t->exec, t->prog, SPACE_GRADS);
    zero_space(t->exec, t->prog, SPACE_STATE);
    trainer_ema_reset(t);
}

bool trainer_has_ema(const Trainer *t) { return t->prog && t->prog->space_bytes[SPACE_EMA] > 0; }

/* Copies `bytes` from a space into SPACE_EMA at ema_offset, or (back) the other way. */
static int copy_with_ema(Executor *e, BufSpace s, int64_t bytes, int64_t ema_offset, bool into_ema, void *tmp) {
    if (bytes <= 0) return 0;
    if (e->read(e, into_ema ? s : SPACE_EMA, into_ema ? 0 : ema_offset, tmp, bytes) != 0) return -1;
    return e->write(e, into_ema ? SPACE_EMA : s, into_ema ? ema_offset : 0, tmp, bytes);
}

void trainer_ema_reset(Trainer *t) {
    if (!trainer_has_ema(t)) return;
    int64_t pb = t->prog->space_bytes[SPACE_PARAMS], bb = t->prog->space_bytes[SPACE_BUFFERS];
    void *tmp = xmalloc((size_t)(pb > bb ? pb : bb));
    copy_with_ema(t->exec, SPACE_PARAMS, pb, 0, true, tmp);
    copy_with_ema(t->exec, SPACE_BUFFERS, bb, pb, true, tmp);
    free(tmp);
}

int trainer_swap_ema(Trainer *t, Error *err) {
    if (!trainer_has_ema(t)) return 0;
    int64_t pb = t->prog->space_bytes[SPACE_PARAMS], bb = t->prog->space_bytes[SPACE_BUFFERS];
    void *raw = xmalloc((size_t)(pb + bb)), *tmp = xmalloc((size_t)(pb > bb ? pb : bb));
    Executor *e = t->exec;
    /* the raw values aside, the average in their place, the raw values into the average's */
    int rc = e->read(e, SPACE_PARAMS, 0, raw, pb) || (bb > 0 && e->read(e, SPACE_BUFFERS, 0, (char *)raw + pb, bb)) ||
             copy_with_ema(e, SPACE_PARAMS, pb, 0, false, tmp) || copy_with_ema(e, SPACE_BUFFERS, bb, pb, false, tmp) ||
             e->write(e, SPACE_EMA, 0, raw, pb + bb);
    free(raw);
    free(tmp);
    return rc ? error_set(err, "cannot exchange the weights with their EMA on the device") : 0;
}

int trainer_ema_update(Trainer *t, Error *err) {
    if (!trainer_has_ema(t)) return 0;
    int every = t->recipe->ema_every > 0 ? t->recipe->ema_every : 1;
    if (t->state.step % every != 0) return 0;
    double sc[SC_COUNT];
    schedule_scalars(t->recipe, 0.0, t->state.step, t->state.micro_step, t->cfg.batch, sc);
    return t->exec->run(t->exec, PHASE_EMA, sc, err);
}

static int read_buf(Executor *e, const Program *p, int buf, void *dst, int64_t bytes) {
    if (buf < 0 || buf >= p->n_bufs) return -1;
    const BufDesc *b = &p->bufs[buf];
    return e->read(e, b->space, b->offset, dst, bytes);
}

static int write_buf(Executor *e, const Program *p, int buf, const void *src, int64_t bytes) {
    if (buf < 0 || buf >= p->n_bufs) return -1;
    const BufDesc *b = &p->bufs[buf];
    return e->write(e, b->space, b->offset, src, bytes);
}

int trainer_read_buf(Trainer *t, int buf, void *dst, int64_t bytes) { return read_buf(t->exec, t->prog, buf, dst, bytes); }
int trainer_write_buf(Trainer *t, int buf, const void *src, int64_t bytes) {
    return write_buf(t->exec, t->prog, buf, src, bytes);
}

/* Writes n samples (and their labels, unless y is NULL) to the input spaces.
 * The executor refuses a write past a space's end; the caller's buffer must
 * hold n samples of the network's input shape, which the start-up check
 * (trainer_check_samples) guarantees for the loaders' batches. */
static int write_batch(Executor *e, const void *x, const int64_t *y, int n, size_t sample_bytes, Error *err) {
    int64_t bytes = (int64_t)((size_t)n * sample_bytes);
    if (e->write(e, SPACE_INPUT, 0, x, bytes) != 0)
        return error_set(err, "cannot write a batch of %d samples (%lld bytes) to the device's input space", n,
                         (long long)bytes);
    if (y && e->write(e, SPACE_LABELS, 0, y, (int64_t)n * (int64_t)sizeof(int64_t)) != 0)
        return error_set(err, "cannot write %d labels to the device", n);
    return 0;
}

/* "3x64x64" for the network's input (C x H x W, as `input` is written). */
static void input_shape_text(const Node *in, char *buf, size_t n) {
    if (in->rank == 3)
        snprintf(buf, n, "%lldx%lldx%lld", (long long)in->dim[2], (long long)in->dim[0], (long long)in->dim[1]);
    else
        snprintf(buf, n, "%lld", (long long)in->dim[0]);
}

int trainer_check_samples(const Trainer *t, const char *pipeline, int h, int w, Error *err) {
    const Node *in = &t->graph->nodes[t->graph->input];
    if (in->rank == 3 && in->dim[0] == h && in->dim[1] == w && in->dim[2] == 3) return 0;
    char want[64];
    input_shape_text(in, want, sizeof want);
    if (in->rank == 3 && in->dim[2] != 3)
        return error_set(err, "the %s pipeline gives RGB samples (3x%dx%d) but the network's input is %s.\n"
                         "  Images are read as 3 channels: use --set input=3x%dx%d (or `input 3x%dx%d` in the "
                         "network).",
                         pipeline, h, w, want, h, w, h, w);
    return error_set(err, "the %s pipeline gives 3x%dx%d samples but the network's input is %s.\n"
                     "  Add a resize or crop to `augment %s` (e.g. resize(%lld) -> center_crop(%lld)) so that it gives "
                     "%lldx%lld, or use --set input=3x%dx%d.",
                     pipeline, h, w, want, pipeline, (long long)in->dim[0], (long long)in->dim[0],
                     (long long)in->dim[0], (long long)in->dim[1], h, w);
}

int trainer_check_loaders(const Trainer *t, const Loader *train, const Loader *val, Error *err) {
    const Loader *splits[2] = {train, val};
    static const char *const names[2] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        int h, w;
        if (!splits[k]) continue;
        loader_sample_shape(splits[k], &h, &w);
        if (trainer_check_samples(t, names[k], h, w, err) != 0) return -1;
    }
    return 0;
}

char **trainer_weight_classes(const char *weights, const Recipe *r, bool folders, int *n) {
    char **names = checkpoint_class_list(weights, folders, n);
    if (!names && (r->layout == DATA_IMAGEFOLDER || r->layout == DATA_DEMO) && r->data_root)
        names = dataset_list_classes(r->data_root, r->train_split, n);
    return names;
}

/* Copies one space between the main and the short-batch executor. */
static int copy_space(Executor *from, Executor *to, const Program *pf, const Program *pt, BufSpace s) {
    int64_t n = pf->space_bytes[s];
    if (n != pt->space_bytes[s]) return -1;
    if (n <= 0) return 0;
    void *tmp = xmalloc((size_t)n);
    int rc = from->read(from, s, 0, tmp, n);
    if (rc == 0) rc = to->write(to, s, 0, tmp, n);
    free(tmp);
    return rc;
}

static void count_stats(Trainer *t, const int64_t *y, int n, StepStats *st) {
    st->n = n;
    st->loss_sum = 0;
    st->correct = 0;
    for (int i = 0; i < n; i++) {
        st->loss_sum += t->losses[i];
        if (!y) continue;
        const float *row = t->logits + (int64_t)i * t->out_numel;
        int64_t best = 0;
        for (int64_t c = 1; c < t->out_numel; c++)
            if (row[c] > row[best]) best = c;
        if (best == y[i]) st->correct++;
    }
}

static int read_outputs(Trainer *t, Executor *e, const Program *p, int n) {
    if (read_buf(e, p, p->logits_buf, t->logits, (int64_t)n * t->out_numel * (int64_t)sizeof(float)) != 0) return -1;
    return read_buf(e, p, p->loss_buf, t->losses, (int64_t)n * (int64_t)sizeof(float));
}

static void count_bn_batches(Trainer *t) {
    for (int i = 0; i < t->graph->n_params; i++)
        if (t->graph->params[i].role == ROLE_NUM_BATCHES) t->num_batches[i]++;
}

int trainer_forward_backward(Trainer *t, const void *x, const int64_t *y, int n, double lr, int64_t opt_step,
                             StepStats *stats, Error *err) {
    return trainer_forward_backward_mixed(t, x, y, n, lr, opt_step, 0.0, stats, err);
}

int trainer_forward_backward_mixed(Trainer *t, const void *x, const int64_t *y, int n, double lr, int64_t opt_step,
                                   double partner_weight, StepStats *stats, Error *err) {
    if (n < 1 || n > t->cfg.batch)
        return error_set(err, "a batch of %d samples does not fit the compiled batch size %d", n, t->cfg.batch);
    Executor *e = t->exec;
    Program *p = t->prog;
    if (n < t->cfg.batch) {
        if (t->short_exec && t->short_batch != n) {
            t->short_exec->free(t->short_exec);
            program_free(t->short_prog);
            t->short_exec = NULL;
            t->short_prog = NULL;
        }
        if (!t->short_exec) {
            if (build(t, n, &t->short_prog, &t->short_exec, err) != 0) return -1;
            t->short_batch = n;
        }
        e = t->short_exec;
        p = t->short_prog;
        static const BufSpace shared[] = {SPACE_PARAMS, SPACE_BUFFERS, SPACE_GRADS, SPACE_STATE};
        for (size_t k = 0; k < sizeof shared / sizeof shared[0]; k++)
            if (copy_space(t->exec, e, t->prog, p, shared[k]) != 0)
                return error_set(err, "internal error: the batch-%d program's parameter layout differs", n);
    }
    double sc[SC_COUNT];
    schedule_scalars(t->recipe, lr, opt_step, t->state.micro_step, n * (t->cfg.ranks > 1 ? t->cfg.ranks : 1), sc);
    sc[SC_MIX_PARTNER] = partner_weight;
    if (write_batch(e, x, y && p->space_bytes[SPACE_LABELS] > 0 ? y : NULL, n, t->in_sample_bytes, err) != 0)
        return -1;
    if (e->run(e, PHASE_FORWARD_TRAIN, sc, err) != 0) return -1;
    if (read_outputs(t, e, p, n) != 0) return error_set(err, "cannot read the outputs back from the device");
    if (e->run(e, PHASE_BACKWARD, sc, err) != 0) return -1;
    if (e != t->exec) {
        static const BufSpace back[] = {SPACE_BUFFERS, SPACE_GRADS};
        for (size_t k = 0; k < sizeof back / sizeof back[0]; k++)
            if (copy_space(e, t->exec, p, t->prog, back[k]) != 0)
                return error_set(err, "cannot copy the short batch's gradients back");
    }
    count_bn_batches(t);
    t->state.micro_step++;
    count_stats(t, y, n, stats);
    return 0;
}

int trainer_update(Trainer *t, double lr, int64_t opt_step, Error *err) {
    double sc[SC_COUNT];
    schedule_scalars(t->recipe, lr, opt_step, t->state.micro_step, t->cfg.batch, sc);
    if (t->exec->run(t->exec, PHASE_UPDATE, sc, err) != 0) return -1;
    t->state.step = opt_step;
    return 0;
}

int trainer_eval(Trainer *t, const void *x, const int64_t *y, int n, StepStats *stats, Error *err) {
    int B = t->cfg.batch;
    if (n < 1 || n > B) return error_set(err, "an eval batch of %d samples does not fit the batch size %d", n, B);
    Executor *e = t->exec;
    if (write_batch(e, x, NULL, n, t->in_sample_bytes, err) != 0) return -1;
    if (n < B) {
        /* Eval mode is per sample: zero padding cannot change the real rows. */
        size_t pad = (size_t)(B - n) * t->in_sample_bytes;
        void *z = xcalloc(1, pad);
        int rc = e->write(e, SPACE_INPUT, (int64_t)((size_t)n * t->in_sample_bytes), z, (int64_t)pad);
        free(z);
        if (rc != 0) return error_set(err, "cannot pad the eval batch in the device's input space");
    }
    if (t->prog->space_bytes[SPACE_LABELS] > 0) {
        int64_t *labels = xcalloc((size_t)B, sizeof *labels);
        if (y) memcpy(labels, y, (size_t)n * sizeof *labels);
        int rc = e->write(e, SPACE_LABELS, 0, labels, (int64_t)B * (int64_t)sizeof *labels);
        free(labels);
        if (rc != 0) return error_set(err, "cannot write the eval labels to the device");
    }
    double sc[SC_COUNT];
    schedule_scalars(t->recipe, 0.0, t->state.step + 1, t->state.micro_step, B, sc);
    if (e->run(e, PHASE_FORWARD_EVAL, sc, err) != 0) return -1;
    if (read_outputs(t, e, t->prog, n) != 0) return error_set(err, "cannot read the outputs back from the device");
    count_stats(t, y, n, stats);
    return 0;
}

int trainer_save(Trainer *t, const char *path, Error *err) {
    return checkpoint_save(path, &t->ref, &t->state, t->model->source_sha256, err);
}

int trainer_resume(Trainer *t, const char *path, Error *err) {
    return checkpoint_load_resume(path, &t->ref, &t->state, t->model->source_sha256, err);
}

int trainer_load_weights(Trainer *t, const char *path, Error *err) {
    int rc = checkpoint_load_weights(path, &t->ref, err);
    if (rc == 0) trainer_ema_reset(t); /* the average starts at the weights the run starts from */
    return rc;
}
