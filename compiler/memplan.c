/*
 * memplan.c — the memory plan of a training step: one arena for every
 * activation, saved tensor, gradient and temporary.
 *
 * The schedule is the forward-train steps, then the backward, update and
 * EMA steps, in the order a training step runs them (the eval forward runs
 * on the same buffers, and memplan_verify checks that it touches no other). The update's temporaries
 * (clip_grad_norm's partial sums and factor) are placed like any other: left
 * out, they would all sit at offset 0, over each other. A buffer is live from the first
 * step that touches it to the last; the output gradient of
 * LOSS_EXTERNAL_GRAD is live from the start (the caller writes it before
 * forward), and the buffers the caller reads afterwards (logits, losses,
 * input gradient) to the end.
 *
 * In-place: a single-store elementwise kernel may write its output over an
 * input of the same size that dies at that step (lower.c marks such steps);
 * the two buffers then form one allocation.
 *
 * Placement is greedy by size (largest first), each allocation going into
 * the smallest gap (best fit) among the already placed allocations whose
 * lifetimes overlap it, or on top. memplan_verify re-derives the lifetimes
 * from the Program alone and checks that no two live buffers overlap.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "util.h"

static int64_t buf_bytes(const BufDesc *b) {
    int64_t e = b->dtype == KD_I64 ? 8 : b->dtype == KD_BF16 ? 2 : b->dtype == KD_U8 ? 1 : 4;
    return b->numel * e;
}

/* sizes, and so offsets, are multiples of the target's buffer alignment */
static int64_t align_up(int64_t x, int64_t align) { return (x + align - 1) / align * align; }

typedef struct Life {
    int first, last;
} Life;

static const Phase schedule_phases[] = {PHASE_FORWARD_TRAIN, PHASE_BACKWARD, PHASE_UPDATE, PHASE_EMA};

static int schedule_length(const Program *p) {
    int S = 0;
    for (size_t q = 0; q < sizeof schedule_phases / sizeof schedule_phases[0]; q++) S += p->n_steps[schedule_phases[q]];
    return S;
}

/* The step at schedule position s. */
static const Step *sched_step(const Program *p, int s) {
    for (size_t q = 0;; q++) {
        assert(q < sizeof schedule_phases / sizeof schedule_phases[0]);
        Phase ph = schedule_phases[q];
        if (s < p->n_steps[ph]) return &p->steps[ph][s];
        s -= p->n_steps[ph];
    }
}

static void touch(Life *life, const Program *p, int b, int s) {
    if (b < 0 || b >= p->n_bufs || p->bufs[b].space != SPACE_ARENA) return;
    if (life[b].first < 0 || s < life[b].first) life[b].first = s;
    if (s > life[b].last) life[b].last = s;
}

/* Lifetimes from the step lists; pins as described above. */
static Life *lifetimes(const Program *p, int *n_sched) {
    int S = schedule_length(p);
    Life *life = xmalloc((size_t)(p->n_bufs ? p->n_bufs : 1) * sizeof(Life));
    for (int b = 0; b < p->n_bufs; b++) life[b] = (Life){-1, -1};
    for (int s = 0; s < S; s++) {
        const Step *st = sched_step(p, s);
        if (st->kind == STEP_KERNEL) {
            for (int a = 0; a < st->n_args; a++) touch(life, p, st->args[a], s);
        } else {
            int bufs[LIBRARY_STEP_BUFS];
            library_step_buffers(st, bufs);
            for (int q = 0; q < LIBRARY_STEP_BUFS; q++) touch(life, p, bufs[q], s);
        }
    }
    int end = S > 0 ? S - 1 : 0;
    if (p->dy_buf >= 0 && p->bufs[p->dy_buf].space == SPACE_ARENA) {
        life[p->dy_buf].first = 0;
        if (life[p->dy_buf].last < 0) life[p->dy_buf].last = 0;
    }
    int pinned_end[3] = {p->logits_buf, p->loss_buf, p->input_grad_buf};
    for (int q = 0; q < 3; q++) {
        int b = pinned_end[q];
        if (b < 0 || p->bufs[b].space != SPACE_ARENA) continue;
        if (life[b].first < 0) life[b].first = 0;
        life[b].last = end;
    }
    *n_sched = S;
    return life;
}

/* Is step s a kernel with exactly one store in total? */
static bool single_store_kernel(const Program *p, const Step *st) {
    if (st->kind != STEP_KERNEL) return false;
    const Kernel *k = p->module->kernels[st->kernel];
    int n = 0;
    for (int q = 0; q < k->n_stages; q++) n += k->stages[q].n_stores;
    return n == 1;
}

/* May the one store of kernel step st overwrite the buffer of its argument
 * `arg` in place? Only when every load of that argument reads the element
 * the store writes (the same index expression: the IR is hash-consed). A
 * load at another index, such as BatchNorm's per-channel statistics read
 * at i mod C or a broadcast operand, could read an element the kernel has
 * already overwritten: with N*H*W = 2 the [2C] statistics are exactly as
 * large as the [N*H*W*C] gradient the backward writes. */
static bool loads_only_at_store_index(const Program *p, const Step *st, int buf) {
    const Kernel *k = p->module->kernels[st->kernel];
    int index = -1;
    for (int q = 0; q < k->n_stages; q++)
        for (int r = 0; r < k->stages[q].n_stores; r++) index = k->stages[q].stores[r].index;
    for (int e = 0; e < k->n_ex; e++) {
        const KExpr *x = &k->ex[e];
        if (x->kind == KE_LOAD && x->buf >= 0 && x->buf < st->n_args && st->args[x->buf] == buf && x->a != index)
            return false;
    }
    return true;
}

static int find_root(int *parent, int b) {
    while (parent[b] != b) b = parent[b] = parent[parent[b]];
    return b;
}

typedef struct Alloc {
    int root;
    int64_t size, offset;
    int first, last;
} Alloc;

static int by_size_desc(const void *x, const void *y) {
    const Alloc *a = x, *b = y;
    if (a->size != b->size) return a->size > b->size ? -1 : 1;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return a->root - b->root;
}

static int by_offset(const void *x, const void *y) {
    const Alloc *a = *(Alloc *const *)x, *b = *(Alloc *const *)y;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

int memplan_run(Lower *L, Error *err) {
    (void)err;
    Program *p = L->p;
    int S;
    Life *life = lifetimes(p, &S);
    int F = p->n_steps[PHASE_FORWARD_TRAIN], B = p->n_steps[PHASE_BACKWARD];
    int *parent = xmalloc((size_t)(p->n_bufs ? p->n_bufs : 1) * sizeof(int));
    for (int b = 0; b < p->n_bufs; b++) parent[b] = b;

    /* in-place pairs (lower.c marks forward and backward steps only) */
    for (int s = 0; s < F + B; s++) {
        bool flag = s < F ? L->inplace[PHASE_FORWARD_TRAIN][s] : L->inplace[PHASE_BACKWARD][s - F];
        const Step *st = sched_step(p, s);
        if (!flag || !single_store_kernel(p, st)) continue;
        const Kernel *k = p->module->kernels[st->kernel];
        int out = -1;
        for (int a = 0; a < st->n_args; a++)
            if (k->bufs[a].written) out = st->args[a];
        if (out < 0 || p->bufs[out].space != SPACE_ARENA || life[out].first != s) continue;
        if (out == p->dy_buf) continue;
        for (int a = 0; a < st->n_args; a++) {
            int in = st->args[a];
            if (in == out || k->bufs[a].written || p->bufs[in].space != SPACE_ARENA) continue;
            if (life[in].last != s || life[in].first >= s || buf_bytes(&p->bufs[in]) != buf_bytes(&p->bufs[out])) continue;
            if (in == p->dy_buf || in == p->logits_buf || in == p->loss_buf || in == p->input_grad_buf) continue;
            if (!loads_only_at_store_index(p, st, in)) continue;
            int ri = find_root(parent, in);
            parent[out] = ri;
            break;
        }
    }

    /* allocations: one per alias group */
    int n_alloc = 0;
    Alloc *al = xcalloc((size_t)(p->n_bufs ? p->n_bufs : 1), sizeof(Alloc));
    int *alloc_of = xmalloc((size_t)(p->n_bufs ? p->n_bufs : 1) * sizeof(int));
    for (int b = 0; b < p->n_bufs; b++) alloc_of[b] = -1;
    int64_t naive = 0;
    for (int b = 0; b < p->n_bufs; b++) {
        if (p->bufs[b].space != SPACE_ARENA || life[b].first < 0) continue;
        naive += buf_bytes(&p->bufs[b]);
        int r = find_root(parent, b);
        if (alloc_of[r] < 0) {
            alloc_of[r] = n_alloc;
            al[n_alloc++] = (Alloc){.root = r, .size = 0, .first = life[b].first, .last = life[b].last};
        }
        Alloc *a = &al[alloc_of[r]];
        int64_t sz = align_up(buf_bytes(&p->bufs[b]), L->o->target->buffer_align);
        if (sz > a->size) a->size = sz;
        if (life[b].first < a->first) a->first = life[b].first;
        if (life[b].last > a->last) a->last = life[b].last;
    }
    qsort(al, (size_t)n_alloc, sizeof(Alloc), by_size_desc);
    Alloc **live = xmalloc((size_t)(n_alloc ? n_alloc : 1) * sizeof(Alloc *));
    int64_t peak = 0;
    for (int q = 0; q < n_alloc; q++) {
        int nl = 0;
        for (int z = 0; z < q; z++)
            if (al[z].first <= al[q].last && al[q].first <= al[z].last) live[nl++] = &al[z];
        qsort(live, (size_t)nl, sizeof(Alloc *), by_offset);
        int64_t best = -1, best_gap = 0, cursor = 0;
        for (int z = 0; z < nl; z++) {
            int64_t gap = live[z]->offset - cursor;
            if (gap >= al[q].size && (best < 0 || gap < best_gap)) {
                best = cursor;
                best_gap = gap;
            }
            int64_t end = live[z]->offset + live[z]->size;
            if (end > cursor) cursor = end;
        }
        al[q].offset = best >= 0 ? best : cursor;
        if (al[q].offset + al[q].size > peak) peak = al[q].offset + al[q].size;
    }
    /* alloc_of indexes the unsorted order: rebuild by root */
    for (int q = 0; q < n_alloc; q++) alloc_of[al[q].root] = q;
    int64_t saved = 0;
    for (int q = 0; q < n_alloc; q++)
        if (al[q].first < F && al[q].last >= F) saved += al[q].size;
    for (int b = 0; b < p->n_bufs; b++) {
        if (p->bufs[b].space != SPACE_ARENA) continue;
        if (life[b].first < 0) {
            p->bufs[b].offset = 0;
            continue;
        }
        p->bufs[b].offset = al[alloc_of[find_root(parent, b)]].offset;
    }
    p->peak_bytes = peak;
    p->space_bytes[SPACE_ARENA] = peak;
    p->naive_bytes = naive;
    p->saved_bytes = saved;
    free(live);
    free(al);
    free(alloc_of);
    free(parent);
    free(life);
    return 0;
}

/* The eval forward runs on the training plan's buffers: every arena buffer
 * an eval step touches must have a place in that plan, a lifetime (else it
 * sits at offset 0, over whatever the plan put there). */
static int eval_buffers_planned(const Program *p, const Life *life, Error *err) {
    for (int i = 0; i < p->n_steps[PHASE_FORWARD_EVAL]; i++) {
        const Step *st = &p->steps[PHASE_FORWARD_EVAL][i];
        int lib[LIBRARY_STEP_BUFS];
        if (st->kind != STEP_KERNEL) library_step_buffers(st, lib);
        const int n = st->kind == STEP_KERNEL ? st->n_args : LIBRARY_STEP_BUFS;
        for (int q = 0; q < n; q++) {
            const int b = st->kind == STEP_KERNEL ? st->args[q] : lib[q];
            if (b >= 0 && p->bufs[b].space == SPACE_ARENA && life[b].first < 0)
                return error_set(err, "buffer %s is used by the eval forward (step %d) but by no training step: the plan "
                                      "gave it no place", p->bufs[b].name, i);
        }
    }
    return 0;
}

int memplan_verify(const Program *p, Error *err) {
    int S;
    Life *life = lifetimes(p, &S);
    int rc = eval_buffers_planned(p, life, err);
    for (int b = 0; b < p->n_bufs && rc == 0; b++) {
        const BufDesc *d = &p->bufs[b];
        if (d->offset < 0 || d->offset + buf_bytes(d) > p->space_bytes[d->space]) {
            error_set(err, "buffer %s [%lld, +%lld) lies outside its space (%lld bytes)", d->name,
                      (long long)d->offset, (long long)buf_bytes(d), (long long)p->space_bytes[d->space]);
            rc = -1;
        }
    }
    for (int a = 0; a < p->n_bufs && rc == 0; a++) {
        const BufDesc *x = &p->bufs[a];
        if (x->space != SPACE_ARENA || life[a].first < 0) continue;
        for (int b = a + 1; b < p->n_bufs && rc == 0; b++) {
            const BufDesc *y = &p->bufs[b];
            if (y->space != SPACE_ARENA || life[b].first < 0) continue;
            if (!(life[a].first <= life[b].last && life[b].first <= life[a].last)) continue;
            if (!(x->offset < y->offset + buf_bytes(y) && y->offset < x->offset + buf_bytes(x))) continue;
            /* legal only as an in-place pair: one dies at the step where the
             * other is born, in a single-store kernel that reads the dying
             * one only at the index it stores to, at the same offset */
            int s = -1, dying = -1;
            if (life[a].last == life[b].first) s = life[a].last, dying = a;
            if (life[b].last == life[a].first) s = life[b].last, dying = b;
            bool ok = s >= 0 && x->offset == y->offset && buf_bytes(x) == buf_bytes(y) &&
                      single_store_kernel(p, sched_step(p, s)) &&
                      loads_only_at_store_index(p, sched_step(p, s), dying);
            if (!ok) {
                error_set(err, "buffers %s (steps %d..%d) and %s (steps %d..%d) are live together and overlap",
                          x->name, life[a].first, life[a].last, y->name, life[b].first, life[b].last);
                rc = -1;
            }
        }
    }
    if (rc == 0 && p->peak_bytes > p->naive_bytes + 64 * (int64_t)p->n_bufs) {
        error_set(err, "planned peak %lld exceeds the naive sum %lld", (long long)p->peak_bytes,
                  (long long)p->naive_bytes);
        rc = -1;
    }
    free(life);
    return rc;
}
