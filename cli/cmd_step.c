/*
 * cmd_step.c — the verification entry points that other frameworks check
 * rxc against: `rxc step` (K training steps on one batch) and `rxc grad`
 * (one forward and backward, no update).
 *
 * Both read a batch from safetensors in PyTorch's layout (x: N x C x H x W
 * float32, y: N int64; for grad optionally dy, the gradient w.r.t. the
 * network output) and write safetensors in PyTorch's layout. rxc computes in
 * NHWC; the conversion happens here, at the boundary, and nowhere else.
 * The input size comes from x: it overrides the file's `input` setting.
 *
 * Under mpirun (`rxc step` only; distributed.h), rank r of N takes the
 * contiguous slice [r*N'/N, (r+1)*N'/N) of the batch's N' samples, the
 * gradients are averaged before each update, and rank 0 writes the output
 * with the logits gathered in sample order: the same file as one process on
 * the whole batch, up to the rounding of the all-reduce.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "distributed.h"
#include "frontend.h"
#include "grad_buckets.h"
#include "mix.h"
#include "progress.h"
#include "safetensors.h"
#include "schedule.h"
#include "trainer.h"
#include "util.h"

typedef struct StepArgs {
    const char *file, *batch, *init, *out;
    int steps;
    bool timing;             /* step: print each step's wall time (bench/cpu_step) */
    DeviceKind device;
    int device_index;        /* --device cuda:K */
    SetOverride *sets;
    int n_sets;
} StepArgs;

static void step_usage(FILE *f, bool grad) {
    if (grad)
        fprintf(f, "usage: rxc grad FILE.net --batch B.safetensors [--init W.safetensors] [--set NAME=VALUE]...\n"
                   "                [--device cpu|cuda[:K]|auto] --out O.safetensors\n"
                   "  B holds x (float32 N x C x H x W) and y (int64 N), or dy (the gradient w.r.t. the output,\n"
                   "  N x C x H x W or N x C) instead of a cross-entropy loss. O gets output, loss,\n"
                   "  grad.<param>, grad.x and param.<name> (the initial values), in PyTorch's layout.\n");
    else
        fprintf(f, "usage: rxc step FILE.net --batch B.safetensors [--init W.safetensors] [--steps K]\n"
                   "                [--set NAME=VALUE]... [--device cpu|cuda[:K]|auto] [--timing] --out O.safetensors\n"
                   "  Runs K (default 1) optimizer steps of the file's loss and optimizer on the batch in B\n"
                   "  (x: float32 N x C x H x W, y: int64 N). Each step counts as one epoch for the schedule;\n"
                   "  with accum A (--set accum=A) a step is A micro-batches of N/A consecutive samples.\n"
                   "  O gets every parameter and BN buffer after the K steps\n"
                   "  under the checkpoint names, logits (N x classes, first step) and loss (one per step).\n"
                   "  --timing prints each step's wall time (forward, backward, update) on stderr; under\n"
                   "  mpirun every rank prints its own, with the part spent in the gradient all-reduce.\n");
}


/* Returns 0, 1 for --help (printed), or 2 after printing a usage error. */
static int parse_args(int argc, char **argv, bool grad, StepArgs *a) {
    memset(a, 0, sizeof *a);
    a->steps = 1;
    a->device = DEVICE_CPU;
    a->device_index = -1;
    if (cli_take_sets(&argc, argv, &a->sets, &a->n_sets) != 0) return 2;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            step_usage(stdout, grad);
            return 1;
        }
        if (!grad && !strcmp(s, "--timing")) {
            a->timing = true;
            continue;
        }
        if (!strcmp(s, "--batch") || !strcmp(s, "--init") || !strcmp(s, "--out") || !strcmp(s, "-o") ||
            !strcmp(s, "--device") || (!grad && !strcmp(s, "--steps"))) {
            if (!v) {
                fprintf(stderr, "rxc %s: %s needs a value\n", grad ? "grad" : "step", s);
                return 2;
            }
            i++;
            if (!strcmp(s, "--batch")) a->batch = v;
            else if (!strcmp(s, "--init")) a->init = v;
            else if (!strcmp(s, "--out") || !strcmp(s, "-o")) a->out = v;
            else if (!strcmp(s, "--device")) {
                if (device_parse(v, &a->device, &a->device_index) != 0) {
                    fprintf(stderr, "rxc: --device must be cpu, cuda, cuda:K or auto (got '%s')\n", v);
                    return 2;
                }
            } else {
                char *end = NULL;
                long k = strtol(v, &end, 10);
                if (!*v || *end || k < 1 || k > 1000000) {
                    fprintf(stderr, "rxc step: --steps must be a positive integer (got '%s')\n", v);
                    return 2;
                }
                a->steps = (int)k;
            }
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "rxc %s: unknown option '%s'\n", grad ? "grad" : "step", s);
            step_usage(stderr, grad);
            return 2;
        } else if (!a->file) {
            a->file = s;
        } else {
            fprintf(stderr, "rxc %s: unexpected argument '%s'\n", grad ? "grad" : "step", s);
            return 2;
        }
    }
    if (!a->file || !a->batch || !a->out) {
        fprintf(stderr, "rxc %s: FILE, --batch and --out are required\n", grad ? "grad" : "step");
        step_usage(stderr, grad);
        return 2;
    }
    return 0;
}

/* NCHW <-> NHWC for n samples of c x h x w. */
static void nchw_to_nhwc(const float *src, float *dst, int64_t n, int64_t c, int64_t h, int64_t w) {
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    dst[((s * h + y) * w + x) * c + k] = src[((s * c + k) * h + y) * w + x];
}

static void nhwc_to_nchw(const float *src, float *dst, int64_t n, int64_t c, int64_t h, int64_t w) {
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    dst[((s * c + k) * h + y) * w + x] = src[((s * h + y) * w + x) * c + k];
}

/* The shared front half: read the batch, load the model at x's size, open a
 * trainer and set its initial weights. Returns 0 or an exit status. */
typedef struct StepSession {
    SafeTensors batch;
    const StTensor *x, *y, *dy;
    int64_t n, c, h, w;      /* n: this rank's samples */
    int64_t n_total, first;  /* the file's samples, and this rank's first */
    Model model;
    bool model_loaded;
    Trainer tr;
    bool trainer_open;
    float *x_nhwc;
    GradBuckets *buckets;    /* under MPI: the gradient all-reduce (grad_buckets.h) */
} StepSession;

static int open_session(const StepArgs *a, bool grad, Dist *dist, StepSession *s) {
    memset(s, 0, sizeof *s);
    const char *cmd = grad ? "grad" : "step";
    Error err = {0};
    if (st_read(a->batch, &s->batch, &err) != 0) {
        fprintf(stderr, "rxc %s: %s\n", cmd, err.msg);
        return 2;
    }
    s->x = st_find(&s->batch, "x");
    s->y = st_find(&s->batch, "y");
    s->dy = grad ? st_find(&s->batch, "dy") : NULL;
    if (!s->x || s->x->dtype != ST_F32 || s->x->rank != 4) {
        fprintf(stderr, "rxc %s: %s must hold 'x', float32 N x C x H x W\n", cmd, a->batch);
        return 2;
    }
    s->n = s->x->shape[0];
    s->c = s->x->shape[1];
    s->h = s->x->shape[2];
    s->w = s->x->shape[3];
    if (s->n < 1 || s->c < 1 || s->h < 1 || s->w < 1 || s->n > 1 << 20) {
        fprintf(stderr, "rxc %s: x has an empty or implausible shape\n", cmd);
        return 2;
    }
    if (!s->dy && (!s->y || s->y->dtype != ST_I64 || s->y->rank != 1 || s->y->shape[0] != s->n)) {
        fprintf(stderr, "rxc %s: %s must hold 'y', int64 of length %lld%s\n", cmd, a->batch, (long long)s->n,
                grad ? " (or 'dy', the output gradient)" : "");
        return 2;
    }
    s->n_total = s->n;
    if (s->n % dist_size(dist) != 0) {
        fprintf(stderr, "rxc %s: the batch of %lld does not divide among %d ranks\n", cmd, (long long)s->n,
                dist_size(dist));
        return 2;
    }
    s->n /= dist_size(dist);
    s->first = dist_rank(dist) * s->n;

    /* x decides the input size unless the user said otherwise. */
    bool has_input = false;
    for (int i = 0; i < a->n_sets; i++)
        if (!strcmp(a->sets[i].name, "input") || !strcmp(a->sets[i].name, "network.input")) has_input = true;
    SetOverride *sets = xcalloc((size_t)a->n_sets + 1, sizeof *sets);
    if (a->n_sets) memcpy(sets, a->sets, (size_t)a->n_sets * sizeof *sets);
    char input_value[64];
    snprintf(input_value, sizeof input_value, "%lldx%lldx%lld", (long long)s->c, (long long)s->h, (long long)s->w);
    int n_sets = a->n_sets;
    if (!has_input) sets[n_sets++] = (SetOverride){"input", input_value};
    LoadOptions lo = {sets, n_sets, (int)s->n};
    int rc = model_load(a->file, &lo, &s->model);
    free(sets);
    if (rc != LOAD_OK) return rc == LOAD_IO_ERROR ? 1 : 2;
    s->model_loaded = true;
    /* grad: one pass over the whole batch. step: with accum A, each step is A
     * micro-batches of N / A consecutive samples. */
    int accum = s->model.recipe.accum_steps > 0 ? s->model.recipe.accum_steps : 1;
    if (grad) accum = s->model.recipe.accum_steps = 1;
    if (s->n % accum != 0) {
        fprintf(stderr, "rxc %s: the batch of %lld does not split into accum = %d equal micro-batches\n", cmd,
                (long long)s->n, accum);
        return 2;
    }

    Graph *g = s->model.graph;
    const Node *in = &g->nodes[g->input];
    if (in->rank != 3 || in->dim[0] != s->h || in->dim[1] != s->w || in->dim[2] != s->c) {
        fprintf(stderr, "rxc %s: x is %lldx%lldx%lld (C x H x W) but the network's input is %lldx%lldx%lld\n", cmd,
                (long long)s->c, (long long)s->h, (long long)s->w, (long long)in->dim[2], (long long)in->dim[0],
                (long long)in->dim[1]);
        return 2;
    }
    if (s->y && !s->dy) {
        const int64_t *y = s->y->data;
        int64_t classes = node_numel(&g->nodes[g->output]);
        for (int64_t i = 0; i < s->n_total; i++)
            if (y[i] < 0 || y[i] >= classes) {
                fprintf(stderr, "rxc %s: label y[%lld] = %lld is outside 0..%lld\n", cmd, (long long)i,
                        (long long)y[i], (long long)classes - 1);
                return 2;
            }
    }

    TrainerConfig cfg = {0};
    cfg.batch = (int)(s->n / accum);
    cfg.device = a->device;
    cfg.device_index = a->device_index;
    cfg.local_rank = dist_local_rank(dist);
    cfg.loss = s->dy ? LOSS_EXTERNAL_GRAD : LOSS_CROSS_ENTROPY;
    cfg.want_input_grad = grad;
    cfg.quiet = true;
    if (dist && !grad) {
        s->buckets = grad_buckets_new(dist);
        cfg.hooks = grad_buckets_hooks(s->buckets);
        cfg.ranks = dist_size(dist);
    }
    if (trainer_open(&s->tr, &s->model, &cfg, &err) != 0) {
        fprintf(stderr, "rxc %s: %s\n", cmd, err.msg);
        return 1;
    }
    s->trainer_open = true;
    trainer_init_params(&s->tr, s->model.recipe.seed);
    if (a->init) {
        if (trainer_load_weights(&s->tr, a->init, &err) != 0) {
            fprintf(stderr, "rxc %s: %s\n", cmd, err.msg);
            return 2;
        }
    }
    s->x_nhwc = xmalloc((size_t)(s->n * s->c * s->h * s->w) * sizeof(float));
    nchw_to_nhwc((const float *)s->x->data + s->first * s->c * s->h * s->w, s->x_nhwc, s->n, s->c, s->h, s->w);
    return 0;
}

static void close_session(StepSession *s) {
    if (s->trainer_open) trainer_close(&s->tr);
    grad_buckets_free(s->buckets);
    if (s->model_loaded) model_free(&s->model);
    st_free(&s->batch);
    free(s->x_nhwc);
}

static int write_out(const char *cmd, const char *path, SafeTensors *out) {
    Error err = {0};
    if (st_write(path, out, &err) != 0) {
        fprintf(stderr, "rxc %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}

/* CPU seconds of the whole process (all threads): on a shared, loaded machine
 * this measures the work more faithfully than the wall clock. */
static double process_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int step(int argc, char **argv, Dist *dist);

int cmd_step(int argc, char **argv) {
    Dist *dist = NULL;
    int rc = cli_take_distributed(&argc, argv, &dist);
    if (rc) return rc;
    rc = step(argc, argv, dist);
    dist_close(dist, rc);
    return rc;
}

/* Rank 0's output: the parameters and buffers, the logits of every rank in
 * sample order, and the losses. Returns a status. */
static int write_step_out(const StepArgs *a, StepSession *s, Dist *dist, const float *logits, float *losses) {
    Trainer *t = &s->tr;
    int64_t classes = t->out_numel;
    float *all = dist_is_root(dist) ? xmalloc((size_t)(s->n_total * classes) * sizeof(float)) : NULL;
    int rc = 0;
    if (dist_gather(dist, logits, s->n * classes * (int64_t)sizeof(float), all) != 0) {
        fprintf(stderr, "rxc step: gathering the logits failed\n");
        rc = 1;
    }
    if (rc == 0 && dist_is_root(dist)) {
        SafeTensors out = {0};
        checkpoint_collect(&t->ref, &out, false);
        int64_t lshape[2] = {s->n_total, classes};
        st_add(&out, "logits", ST_F32, 2, lshape, all, true);
        int64_t kshape[1] = {a->steps};
        st_add(&out, "loss", ST_F32, 1, kshape, losses, true);
        st_set_meta(&out, "source_sha256", s->model.source_sha256);
        rc = write_out("step", a->out, &out);
        st_free(&out);
    }
    free(all);
    return rc;
}

/* mixup/cutmix of one micro-batch as the train loop does it (mix.h), into
 * `mixed`; says on stderr what it drew, so that a test can replay it.
 * Returns the partner label's weight; 0 when the recipe does not mix. */
static double mix_step_batch(const StepSession *s, const Trainer *t, const float *x, int n, float *mixed) {
    if (!mixed) return 0.0;
    memcpy(mixed, x, (size_t)n * s->c * s->h * s->w * sizeof(float));
    MixDraw d = mix_draw(&s->model.recipe, (int)s->h, (int)s->w, t->state.micro_step);
    double partner = mix_apply(&d, mixed, n, (int)s->h, (int)s->w, (int)s->c);
    if (d.lam == 1.0) fprintf(stderr, "rxc step: mix none\n");
    else if (d.cutmix) fprintf(stderr, "rxc step: mix cutmix %.17g %d %d %d %d\n", d.lam, d.y0, d.y1, d.x0, d.x1);
    else fprintf(stderr, "rxc step: mix mixup %.17g\n", d.lam);
    return partner;
}

static int step(int argc, char **argv, Dist *dist) {
    StepArgs a;
    int rc = parse_args(argc, argv, false, &a);
    if (rc) {
        free(a.sets);
        return rc == 1 ? 0 : rc;
    }
    StepSession s;
    rc = open_session(&a, false, dist, &s);
    if (rc) {
        close_session(&s);
        free(a.sets);
        return rc;
    }
    Trainer *t = &s.tr;
    int64_t classes = t->out_numel;
    float *logits = xmalloc((size_t)(s.n * classes) * sizeof(float));
    float *losses = xmalloc((size_t)a.steps * sizeof(float));
    Error err = {0};
    int micro = t->cfg.batch, accum = (int)(s.n / micro);
    float *mixed = mix_enabled(&s.model.recipe) ? xmalloc((size_t)micro * s.c * s.h * s.w * sizeof(float)) : NULL;
    for (int k = 0; k < a.steps && rc == 0; k++) {
        double lr = schedule_lr(&s.model.recipe, 1, k);
        double t0 = progress_now(), c0 = process_cpu_seconds();
        double loss_sum = 0;
        for (int m = 0; m < accum && rc == 0; m++) {
            StepStats st;
            const float *x = s.x_nhwc + (size_t)m * micro * (size_t)(s.c * s.h * s.w);
            const int64_t *y = (const int64_t *)s.y->data + (size_t)(s.first + m * micro);
            double partner = mix_step_batch(&s, t, x, micro, mixed);
            if (m == accum - 1) grad_buckets_arm(s.buckets);
            if (trainer_forward_backward_mixed(t, mixed ? mixed : x, y, micro, lr, k + 1, partner, &st, &err) != 0) {
                fprintf(stderr, "rxc step: step %d: %s\n", k + 1, err.msg);
                rc = 1;
                break;
            }
            if (k == 0) memcpy(logits + (size_t)m * micro * classes, t->logits, (size_t)(micro * classes) * sizeof(float));
            loss_sum += st.loss_sum;
        }
        if (rc == 0 && dist && grad_buckets_collect(s.buckets, t->exec) != 0) {
            fprintf(stderr, "rxc step: step %d: the gradient all-reduce failed\n", k + 1);
            rc = 1;
        }
        if (rc == 0 && trainer_update(t, lr, k + 1, &err) != 0) {
            fprintf(stderr, "rxc step: step %d: %s\n", k + 1, err.msg);
            rc = 1;
        }
        if (rc) break;
        /* Under MPI the all-reduce (waiting for the slowest rank included) is part of the step's time. */
        if (a.timing && dist) {
            GradReduceTimes rt = grad_buckets_times(s.buckets);
            fprintf(stderr,
                    "rxc step: rank %d: step %d took %.6f s (process cpu %.6f s; all-reduce %.6f s, "
                    "of which after backward %.6f s, %d buckets)\n",
                    dist_rank(dist), k + 1, progress_now() - t0, process_cpu_seconds() - c0, rt.exposed_seconds,
                    rt.final_wait_seconds, rt.buckets);
        }
        else if (a.timing)
            fprintf(stderr, "rxc step: step %d took %.6f s (process cpu %.6f s)\n", k + 1, progress_now() - t0,
                    process_cpu_seconds() - c0);
        if (dist_broadcast_space(dist, t->exec, SPACE_BUFFERS, t->prog->space_bytes[SPACE_BUFFERS]) != 0 ||
            dist_sum_f64(dist, &loss_sum, 1) != 0) {
            fprintf(stderr, "rxc step: step %d: the BatchNorm buffer broadcast or loss sum failed\n", k + 1);
            rc = 1;
            break;
        }
        if (trainer_ema_update(t, &err) != 0) {
            fprintf(stderr, "rxc step: step %d: %s\n", k + 1, err.msg);
            rc = 1;
            break;
        }
        losses[k] = (float)(loss_sum / (double)s.n_total);
    }
    if (rc == 0) rc = write_step_out(&a, &s, dist, logits, losses);
    free(logits);
    free(losses);
    free(mixed);
    close_session(&s);
    free(a.sets);
    return rc;
}

/* Adds t under "prefix<name>" to out (copying). */
static void add_prefixed(SafeTensors *out, const char *prefix, const StTensor *t) {
    char *name = xasprintf("%s%s", prefix, t->name);
    st_add(out, name, t->dtype, t->rank, t->shape, t->data, true);
    free(name);
}

int cmd_grad(int argc, char **argv) {
    StepArgs a;
    int rc = parse_args(argc, argv, true, &a);
    if (rc) {
        free(a.sets);
        return rc == 1 ? 0 : rc;
    }
    StepSession s;
    rc = open_session(&a, true, NULL, &s);
    if (rc) {
        close_session(&s);
        free(a.sets);
        return rc;
    }
    Trainer *t = &s.tr;
    const Graph *g = t->graph;
    const Node *outn = &g->nodes[g->output];
    const Program *p = t->prog;
    SafeTensors out = {0}, initial = {0};
    Error err = {0};
    checkpoint_collect(&t->ref, &initial, false);

    /* The output's PyTorch shape: N x C x H x W for maps, N x C for vectors. */
    int64_t oshape[4];
    int orank;
    if (outn->rank == 3) {
        orank = 4;
        oshape[0] = s.n, oshape[1] = outn->dim[2], oshape[2] = outn->dim[0], oshape[3] = outn->dim[1];
    } else {
        orank = 2;
        oshape[0] = s.n, oshape[1] = outn->dim[0];
    }
    int64_t onumel = s.n * t->out_numel;
    if (s.dy) {
        char want[128], got[128];
        bool ok = s.dy->dtype == ST_F32 && s.dy->rank == orank;
        for (int d = 0; ok && d < orank; d++) ok = s.dy->shape[d] == oshape[d];
        if (!ok) {
            fprintf(stderr, "rxc grad: dy is %s %s but the network's output is F32 %s\n", st_dtype_name(s.dy->dtype),
                    st_shape_str(s.dy->rank, s.dy->shape, got, sizeof got), st_shape_str(orank, oshape, want, sizeof want));
            rc = 2;
            goto done;
        }
        if (p->dy_buf < 0) {
            fprintf(stderr, "rxc grad: internal error: the program has no output-gradient buffer\n");
            rc = 1;
            goto done;
        }
        float *dy = xmalloc((size_t)onumel * sizeof(float));
        if (orank == 4) nchw_to_nhwc(s.dy->data, dy, s.n, oshape[1], oshape[2], oshape[3]);
        else memcpy(dy, s.dy->data, (size_t)onumel * sizeof(float));
        trainer_write_buf(t, p->dy_buf, dy, onumel * (int64_t)sizeof(float));
        free(dy);
    }
    StepStats st;
    if (trainer_forward_backward(t, s.x_nhwc, s.dy ? NULL : s.y->data, (int)s.n, s.model.recipe.lr, 1, &st,
                                 &err) != 0) {
        fprintf(stderr, "rxc grad: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    {
        float *o = xmalloc((size_t)onumel * sizeof(float));
        if (orank == 4) nhwc_to_nchw(t->logits, o, s.n, oshape[1], oshape[2], oshape[3]);
        else memcpy(o, t->logits, (size_t)onumel * sizeof(float));
        st_add(&out, "output", ST_F32, orank, oshape, o, true);
        free(o);
        /* Cross-entropy: the mean over the batch; external gradient: sum(output * dy). */
        float loss = (float)(s.dy ? st.loss_sum : st.loss_sum / (double)st.n);
        int64_t one[1] = {1};
        st_add(&out, "loss", ST_F32, 1, one, &loss, true);
    }
    for (int i = 0; i < g->n_params; i++) {
        const Param *pp = &g->params[i];
        if (!pp->trainable) continue;
        char *name = xasprintf("grad.%s", pp->name);
        StTensor *gt = st_add_zeroed(&out, name, ST_F32, pp->rank, pp->dim);
        t->exec->read(t->exec, SPACE_GRADS, p->param_offset[i] * (int64_t)sizeof(float), gt->data,
                      pp->numel * (int64_t)sizeof(float));
        free(name);
    }
    if (p->input_grad_buf >= 0) {
        int64_t xn = s.n * s.c * s.h * s.w;
        float *gx = xmalloc((size_t)xn * sizeof(float));
        float *gx_nchw = xmalloc((size_t)xn * sizeof(float));
        trainer_read_buf(t, p->input_grad_buf, gx, xn * (int64_t)sizeof(float));
        nhwc_to_nchw(gx, gx_nchw, s.n, s.c, s.h, s.w);
        st_add(&out, "grad.x", ST_F32, 4, s.x->shape, gx_nchw, true);
        free(gx);
        free(gx_nchw);
    }
    for (int i = 0; i < initial.n; i++) add_prefixed(&out, "param.", &initial.t[i]);
    st_set_meta(&out, "source_sha256", s.model.source_sha256);
    rc = write_out("grad", a.out, &out);
done:
    st_free(&out);
    st_free(&initial);
    close_session(&s);
    free(a.sets);
    return rc;
}
