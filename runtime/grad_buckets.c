/*
 * grad_buckets.c — the bucket plan of a Program's gradients and the
 * overlapped all-reduce that follows it during backward (grad_buckets.h).
 */
#include "grad_buckets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

typedef ExecBucket Bucket;

struct GradBuckets {
    Dist *d;
    double bucket_mb;   /* RXC_BUCKET_MB, or <= 0: the default rule */
    bool blocking_only; /* RXC_GRAD_BUCKETS=off */
    bool armed;         /* the next backward reduces its gradients */
    bool running;       /* that backward is under way on a plan */
    bool reduced;       /* it ran to its end: SPACE_GRADS holds the mean */
    Bucket *b;          /* the plan, in start order */
    int n, cap;
    DistRequest *req;
    int next_start, next_done;
    float *grads;
    int last_step;
    double exposed, final_wait;
    GradReduceTimes times;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

GradBuckets *grad_buckets_new(Dist *d) {
    GradBuckets *gb = xcalloc(1, sizeof *gb);
    gb->d = d;
    const char *mb = getenv("RXC_BUCKET_MB");
    gb->bucket_mb = mb ? atof(mb) : 0;
    const char *mode = getenv("RXC_GRAD_BUCKETS");
    gb->blocking_only = mode && !strcmp(mode, "off");
    return gb;
}

void grad_buckets_free(GradBuckets *gb) {
    if (!gb) return;
    free(gb->b);
    free(gb->req);
    free(gb);
}

/* STEP_ALLREDUCE (sync_bn's per-channel sums): blocking, in program order on every rank. */
static int sum_over_ranks(void *ctx, float *data, int64_t n, Error *err) {
    GradBuckets *gb = ctx;
    if (dist_sum_f32(gb->d, data, n) != 0) return error_set(err, "the all-reduce of %lld BatchNorm sums failed", (long long)n);
    return 0;
}

static int broadcast_from_root(void *ctx, void *buf, int64_t bytes, Error *err) {
    GradBuckets *gb = ctx;
    if (dist_broadcast(gb->d, buf, bytes) != 0) return error_set(err, "the broadcast of %lld bytes from rank 0 failed", (long long)bytes);
    return 0;
}

static void plan(GradBuckets *gb, const Program *p);
static void push_bucket(GradBuckets *gb, int64_t lo, int64_t hi, int ready);

/* A device executor (NCCL) takes over the armed backward's reduction. */
static bool take_grad_reduce(void *ctx) {
    GradBuckets *gb = ctx;
    if (!gb->armed) return false;
    gb->armed = gb->running = false;
    gb->reduced = true;
    gb->exposed = gb->final_wait = 0;
    return true;
}

/* The plan for a device executor; RXC_GRAD_BUCKETS=off: one bucket after backward's last step. */
static int device_plan(void *ctx, const Program *p, ExecBucket **out) {
    GradBuckets *gb = ctx;
    int64_t total = p->space_bytes[SPACE_GRADS] / 4;
    if (gb->blocking_only) {
        gb->n = 0;
        if (total > 0) push_bucket(gb, 0, total, p->n_steps[PHASE_BACKWARD] - 1);
    } else {
        plan(gb, p);
    }
    *out = xmalloc((size_t)(gb->n ? gb->n : 1) * sizeof **out);
    if (gb->n) memcpy(*out, gb->b, (size_t)gb->n * sizeof **out);
    return gb->n;
}

ExecHooks grad_buckets_hooks(GradBuckets *gb) {
    return (ExecHooks){.ctx = gb,
                       .after_step = grad_buckets_after_step,
                       .allreduce = sum_over_ranks,
                       .ranks = dist_size(gb->d),
                       .rank = dist_rank(gb->d),
                       .broadcast = broadcast_from_root,
                       .take_grad_reduce = take_grad_reduce,
                       .grad_bucket_plan = device_plan};
}

void grad_buckets_arm(GradBuckets *gb) {
    if (gb) gb->armed = true;
}

GradReduceTimes grad_buckets_times(const GradBuckets *gb) { return gb->times; }

/* ---- the plan ------------------------------------------------------------------- */

/* Per buffer, the last backward step that names it; -1 where none does. */
static int *last_use(const Program *p) {
    int *use = xmalloc((size_t)(p->n_bufs ? p->n_bufs : 1) * sizeof *use);
    for (int i = 0; i < p->n_bufs; i++) use[i] = -1;
    for (int i = 0; i < p->n_steps[PHASE_BACKWARD]; i++) {
        const Step *s = &p->steps[PHASE_BACKWARD][i];
        if (s->kind == STEP_KERNEL) {
            for (int a = 0; a < s->n_args; a++) use[s->args[a]] = i;
        } else if (s->kind == STEP_ALLREDUCE) {
            use[s->allreduce.buf] = i;
        } else {
            int bufs[LIBRARY_STEP_BUFS];
            library_step_buffers(s, bufs);
            for (int q = 0; q < LIBRARY_STEP_BUFS; q++)
                if (bufs[q] >= 0) use[bufs[q]] = i;
        }
    }
    return use;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Start order: ready first; among equals, the higher offsets (later layers). */
static int cmp_bucket(const void *a, const void *b) {
    const Bucket *x = a, *y = b;
    if (x->ready != y->ready) return x->ready < y->ready ? -1 : 1;
    return x->lo > y->lo ? -1 : x->lo < y->lo;
}

static void push_bucket(GradBuckets *gb, int64_t lo, int64_t hi, int ready) {
    if (gb->n == gb->cap) {
        gb->cap = gb->cap ? 2 * gb->cap : 16;
        gb->b = xrealloc(gb->b, (size_t)gb->cap * sizeof *gb->b);
    }
    gb->b[gb->n++] = (Bucket){lo, hi, ready};
}

/* The elements each bucket holds: RXC_BUCKET_MB, else an eighth of the
 * gradients within [1 MB, 25 MB] (DDP's default is 25 MB), never more than
 * one MPI call takes. */
static int64_t bucket_elements(const GradBuckets *gb, int64_t total) {
    double bytes = gb->bucket_mb > 0 ? gb->bucket_mb * 1e6 : (double)total * 4 / 8;
    if (gb->bucket_mb <= 0) bytes = bytes < 1e6 ? 1e6 : bytes > 25e6 ? 25e6 : bytes;
    int64_t n = (int64_t)ceil(bytes / 4);
    if (n < 1) n = 1;
    return n > (1 << 28) ? (1 << 28) : n;
}

/* Cuts [lo, hi) of the segments (bounds[k], bounds[k+1]) with their ready
 * steps into equal buckets of at most `size` elements, from the top down. */
static void cut_region(GradBuckets *gb, const int64_t *bounds, const int *seg_ready, int n_seg, int64_t lo, int64_t hi,
                       int64_t size) {
    if (hi <= lo) return;
    int64_t count = (hi - lo + size - 1) / size;
    size = (hi - lo + count - 1) / count;
    int64_t top = hi;
    int ready = -1;
    for (int k = n_seg - 1; k >= 0; k--) {
        int64_t s_lo = bounds[k] > lo ? bounds[k] : lo, s_hi = bounds[k + 1] < hi ? bounds[k + 1] : hi;
        if (s_lo >= s_hi) continue;
        int64_t at = s_hi;
        while (at > s_lo) {
            if (seg_ready[k] > ready) ready = seg_ready[k];
            int64_t room = size - (top - at);
            int64_t take = at - s_lo < room ? at - s_lo : room;
            at -= take;
            if (top - at == size) {
                push_bucket(gb, at, top, ready);
                top = at;
                ready = -1;
            }
        }
    }
    if (top > lo) push_bucket(gb, lo, top, ready);
}

/* The buckets of p's gradients, in start order. */
static void plan(GradBuckets *gb, const Program *p) {
    gb->n = 0;
    int64_t total = p->space_bytes[SPACE_GRADS] / 4;
    if (total <= 0) return;
    int *use = last_use(p);
    int64_t *bounds = xmalloc((size_t)(2 * p->n_bufs + 3) * sizeof *bounds);
    int nb = 0;
    bounds[nb++] = 0, bounds[nb++] = total, bounds[nb++] = p->n_decayed;
    for (int i = 0; i < p->n_bufs; i++) {
        const BufDesc *b = &p->bufs[i];
        if (b->space != SPACE_GRADS) continue;
        bounds[nb++] = b->offset / 4;
        bounds[nb++] = b->offset / 4 + b->numel;
    }
    qsort(bounds, (size_t)nb, sizeof *bounds, cmp_i64);
    int n_seg = 0;
    for (int k = 1; k < nb; k++)
        if (bounds[k] != bounds[n_seg]) bounds[++n_seg] = bounds[k];
    int *seg_ready = xmalloc((size_t)(n_seg ? n_seg : 1) * sizeof *seg_ready);
    for (int k = 0; k < n_seg; k++) {
        seg_ready[k] = -1;
        for (int i = 0; i < p->n_bufs; i++) {
            const BufDesc *b = &p->bufs[i];
            bool overlaps = b->space == SPACE_GRADS && b->offset / 4 < bounds[k + 1] &&
                            b->offset / 4 + b->numel > bounds[k];
            if (overlaps && use[i] > seg_ready[k]) seg_ready[k] = use[i];
        }
    }
    int64_t size = bucket_elements(gb, total), split = p->n_decayed < total ? p->n_decayed : total;
    cut_region(gb, bounds, seg_ready, n_seg, split, total, size);
    cut_region(gb, bounds, seg_ready, n_seg, 0, split, size);
    qsort(gb->b, (size_t)gb->n, sizeof *gb->b, cmp_bucket);
    free(seg_ready);
    free(bounds);
    free(use);
    if (getenv("RXC_BUCKETS_VERBOSE") && dist_is_root(gb->d))
        for (int i = 0; i < gb->n; i++)
            fprintf(stderr, "rxc: bucket %d: gradient elements [%lld, %lld), ready after backward step %d of %d\n", i,
                    (long long)gb->b[i].lo, (long long)gb->b[i].hi, gb->b[i].ready, p->n_steps[PHASE_BACKWARD]);
}

/* ---- the overlapped all-reduce ----------------------------------------------------- */

/* Starts the buckets ready after `step`, then notes those the library has
 * completed, oldest first. */
static int advance(GradBuckets *gb, int step, Error *err) {
    while (gb->next_start < gb->n && gb->b[gb->next_start].ready <= step) {
        const Bucket *b = &gb->b[gb->next_start];
        if (dist_isum_f32(gb->d, gb->grads + b->lo, b->hi - b->lo, &gb->req[gb->next_start]) != 0)
            return error_set(err, "the gradient all-reduce of bucket %d failed to start", gb->next_start);
        gb->next_start++;
    }
    while (gb->next_done < gb->next_start) {
        bool done = false;
        if (dist_test(gb->d, &gb->req[gb->next_done], &done) != 0)
            return error_set(err, "the gradient all-reduce of bucket %d failed", gb->next_done);
        if (!done) break;
        gb->next_done++;
    }
    return 0;
}

static int finish(GradBuckets *gb, Error *err) {
    for (; gb->next_done < gb->n; gb->next_done++) {
        if (dist_wait(gb->d, &gb->req[gb->next_done]) != 0)
            return error_set(err, "the gradient all-reduce of bucket %d failed", gb->next_done);
    }
    gb->running = false;
    gb->armed = false;
    gb->reduced = true;
    return 0;
}

/* Backward's first step: the plan of this executor's program. */
static void begin(GradBuckets *gb, Executor *e) {
    gb->grads = e->host_ptr ? e->host_ptr(e, SPACE_GRADS) : NULL;
    if (!gb->grads) return; /* not in host memory: grad_buckets_collect reduces it */
    plan(gb, e->program);
    gb->req = xrealloc(gb->req, (size_t)(gb->n ? gb->n : 1) * sizeof *gb->req);
    gb->next_start = gb->next_done = 0;
    gb->last_step = e->program->n_steps[PHASE_BACKWARD] - 1;
    gb->exposed = gb->final_wait = 0;
    gb->running = true;
}

int grad_buckets_after_step(void *ctx, Executor *e, Phase phase, int step, Error *err) {
    GradBuckets *gb = ctx;
    if (phase != PHASE_BACKWARD || !gb->armed || gb->blocking_only) return 0;
    double t0 = now_seconds();
    if (step == 0) begin(gb, e);
    if (!gb->running) return 0;
    int rc = advance(gb, step, err);
    if (rc == 0 && step == gb->last_step) {
        double w0 = now_seconds();
        rc = finish(gb, err);
        gb->final_wait = now_seconds() - w0;
    }
    gb->exposed += now_seconds() - t0;
    return rc;
}

int grad_buckets_collect(GradBuckets *gb, Executor *e) {
    if (gb->reduced) {
        gb->reduced = false;
        gb->times = (GradReduceTimes){gb->exposed, gb->final_wait, gb->n};
        return 0;
    }
    gb->armed = gb->running = false;
    double t0 = now_seconds();
    int rc = dist_sum_space(gb->d, e, SPACE_GRADS, e->program->space_bytes[SPACE_GRADS]);
    double dt = now_seconds() - t0;
    gb->times = (GradReduceTimes){dt, dt, 0};
    return rc;
}
