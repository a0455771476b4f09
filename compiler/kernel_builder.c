/*
 * kernel_builder.c — the lowering passes' building blocks (lower.h): Program
 * buffers, kernels under construction (KB) and the steps they become, GEMM
 * and conv library steps, and the small expression helpers every rule uses.
 * It decides nothing about any operation.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "util.h"

void lw_fail(Lower *L, const char *fmt, ...) {
    assert(fmt[0] && "an empty message would not mark the lowering failed");
    if (lw_failed(L)) return;
    va_list ap;
    va_start(ap, fmt);
    error_vset(L->err, fmt, ap);
    va_end(ap);
}

/* ---- buffers --------------------------------------------------------------- */

int lw_new_buf(Lower *L, const char *name, BufSpace space, int64_t offset, int64_t numel, KDType dt) {
    Program *p = L->p;
    GROW(p->bufs, p->cap_bufs, p->n_bufs + 1);
    int id = p->n_bufs++;
    p->bufs[id] = (BufDesc){.name = xstrdup(name), .space = space, .offset = offset, .numel = numel, .dtype = dt};
    if (p->n_bufs > L->cap_pins) {
        int old = L->cap_pins;
        L->cap_pins = p->cap_bufs > 16 ? p->cap_bufs : 16;
        L->buf_pin_start = xrealloc(L->buf_pin_start, (size_t)L->cap_pins * sizeof(bool));
        L->buf_pin_end = xrealloc(L->buf_pin_end, (size_t)L->cap_pins * sizeof(bool));
        for (int i = old; i < L->cap_pins; i++) L->buf_pin_start[i] = L->buf_pin_end[i] = false;
    }
    return id;
}

int lw_arena(Lower *L, const char *name, int64_t numel) {
    return lw_new_buf(L, name, SPACE_ARENA, 0, numel, KD_F32);
}

int lw_act(Lower *L, const char *name, int64_t numel) {
    return lw_new_buf(L, name, SPACE_ARENA, 0, numel, L->act);
}

int lw_value_out(Lower *L, int v, const char *name, int64_t numel) {
    return v == L->g->output ? lw_arena(L, name, numel) : lw_act(L, name, numel);
}

int lw_forward_out(Lower *L, int v, const char *lab) {
    char *nm = xasprintf("%s:out", lab);
    L->fwd_buf[v] = lw_value_out(L, v, nm, (int64_t)L->N * lw_per_sample(L, v));
    free(nm);
    return L->fwd_buf[v];
}

char *lw_label(const Lower *L, int v) {
    const Node *n = &L->g->nodes[v];
    if (n->name) return xstrdup(n->name);
    return xasprintf("%s%d", op_name(n->op), v);
}

/* ---- kernels and steps ------------------------------------------------------ */

void kb_begin(KB *kb, Lower *L, const char *base, KernelForm form, int64_t outer, int64_t inner) {
    char *name = xasprintf("k%d_%s", L->counter++, base);
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
    kb->k = kir_kernel_new(name, form, outer, inner);
    free(name);
    kb->args = NULL;
    kb->n_args = kb->cap_args = 0;
}

int kb_buf(KB *kb, Lower *L, int pbuf, bool written) {
    for (int i = 0; i < kb->n_args; i++)
        if (kb->args[i] == pbuf) {
            if (written) kb->k->bufs[i].written = true;
            return i;
        }
    const BufDesc *d = &L->p->bufs[pbuf];
    int idx = kir_buf(kb->k, d->name, d->dtype, d->numel, written);
    GROW(kb->args, kb->cap_args, kb->n_args + 1);
    kb->args[kb->n_args++] = pbuf;
    return idx;
}

void kb_abort(KB *kb) {
    kir_kernel_free(kb->k);
    free(kb->args);
    kb->k = NULL;
    kb->args = NULL;
}

static void push_step(Lower *L, Phase ph, Step st, bool inplace) {
    Program *p = L->p;
    GROW(p->steps[ph], p->cap_steps[ph], p->n_steps[ph] + 1);
    int at = p->n_steps[ph]++;
    p->steps[ph][at] = st;
    if (at >= L->cap_inplace[ph]) {
        int old = L->cap_inplace[ph];
        L->cap_inplace[ph] = p->cap_steps[ph];
        L->inplace[ph] = xrealloc(L->inplace[ph], (size_t)L->cap_inplace[ph] * sizeof(bool));
        for (int i = old; i < L->cap_inplace[ph]; i++) L->inplace[ph][i] = false;
    }
    L->inplace[ph][at] = inplace;
}

void kb_end(KB *kb, Lower *L, const char *fuses, unsigned phases, bool inplace) {
    if (lw_failed(L)) {
        kb_abort(kb);
        return;
    }
    kir_set_fuses(kb->k, fuses);
    Error invalid = {0};
    if (kir_finish(kb->k, &invalid) != 0) {
        lw_fail(L, "internal error: kernel %s (%s) is invalid: %s", kb->k->name, fuses, invalid.msg);
        kb_abort(kb);
        return;
    }
    int n_stores = 0;
    for (int s = 0; s < kb->k->n_stages; s++) n_stores += kb->k->stages[s].n_stores;
    int idx = kir_module_add(L->p->module, kb->k);
    kb->k = NULL;
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        if (!(phases & PH(ph))) continue;
        Step st = {.kind = STEP_KERNEL, .kernel = idx, .n_args = kb->n_args, .note = xstrdup(fuses)};
        st.args = xmalloc((size_t)(kb->n_args ? kb->n_args : 1) * sizeof(int));
        memcpy(st.args, kb->args, (size_t)kb->n_args * sizeof(int));
        push_step(L, (Phase)ph, st, inplace && n_stores == 1);
    }
    free(kb->args);
    kb->args = NULL;
}

/* A library step (GEMM, conv or all-reduce) in each of the given phases, with its own copy of the note. */
static void push_library_step(Lower *L, unsigned phases, Step st, const char *note) {
    if (lw_failed(L)) return;
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        if (!(phases & PH(ph))) continue;
        st.note = xstrdup(note);
        push_step(L, (Phase)ph, st, false);
    }
}

void lw_gemm(Lower *L, unsigned phases, const GemmStep *gs, const char *note) {
    push_library_step(L, phases, (Step){.kind = STEP_GEMM, .kernel = -1, .gemm = *gs}, note);
}

void lw_conv(Lower *L, unsigned phases, const ConvStep *cs, const char *note) {
    push_library_step(L, phases, (Step){.kind = STEP_CONV, .kernel = -1, .conv = *cs}, note);
}

void lw_allreduce(Lower *L, unsigned phases, int buf, int64_t offset, int64_t count, const char *note) {
    Step st = {.kind = STEP_ALLREDUCE, .kernel = -1, .allreduce = {.buf = buf, .offset = offset, .count = count}};
    push_library_step(L, phases, st, note);
}

/* ---- expression helpers ------------------------------------------------------ */

int e_i(Kernel *k, int64_t v) { return kir_const_i(k, v); }
int e_f(Kernel *k, double v) { return kir_const_f(k, v); }
int e_add(Kernel *k, int a, int b) { return kir_bin(k, KB_ADD, a, b); }
int e_sub(Kernel *k, int a, int b) { return kir_bin(k, KB_SUB, a, b); }
int e_mul(Kernel *k, int a, int b) { return kir_bin(k, KB_MUL, a, b); }
int e_div(Kernel *k, int a, int b) { return kir_bin(k, KB_DIV, a, b); }
int e_idiv(Kernel *k, int a, int64_t b) { return b == 1 ? a : kir_bin(k, KB_IDIV, a, e_i(k, b)); }
int e_mod(Kernel *k, int a, int64_t b) { return b == 1 ? e_i(k, 0) : kir_bin(k, KB_MOD, a, e_i(k, b)); }
int e_muli(Kernel *k, int a, int64_t b) { return b == 1 ? a : kir_bin(k, KB_MUL, a, e_i(k, b)); }
int e_addi(Kernel *k, int a, int64_t b) { return b == 0 ? a : kir_bin(k, KB_ADD, a, e_i(k, b)); }
int e_and(Kernel *k, int a, int b) { return a < 0 ? b : kir_bin(k, KB_AND, a, b); }
int e_inrange(Kernel *k, int a, int64_t lo, int64_t hi) {
    return kir_bin(k, KB_AND, kir_bin(k, KB_LE, e_i(k, lo), a), kir_bin(k, KB_LT, a, e_i(k, hi)));
}

int64_t lw_per_sample(const Lower *L, int v) { return node_numel(&L->g->nodes[v]); }
int64_t lw_channels(const Node *n) { return n->rank == 3 ? n->dim[2] : n->dim[0]; }
