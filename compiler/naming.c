/*
 * naming.c — layer names (docs/language.md, "Naming"; docs/naming.md): a
 * layer with parameters is named by its label or numbered per kind in its
 * scope (conv1, bn2, ...); labels of parameter-free ops name their nodes;
 * labelled block calls open the scopes that prefix the names inside them.
 * Owns the string maps that make names unique.
 */
#include "elaborate_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- string map ------------------------------------------------------------------ */

static int *strmap_slot(StrMap *m, const char *key, bool create) {
    if (create && (m->n + 1) * 2 > m->cap) {
        int ncap = m->cap ? m->cap * 2 : 256;
        char **nk = xcalloc((size_t)ncap, sizeof *nk);
        int *nv = xcalloc((size_t)ncap, sizeof *nv);
        for (int i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            uint64_t h = fnv1a64(m->keys[i], strlen(m->keys[i]), FNV1A64_INIT) & (uint64_t)(ncap - 1);
            while (nk[h]) h = (h + 1) & (uint64_t)(ncap - 1);
            nk[h] = m->keys[i];
            nv[h] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    if (!m->cap) return NULL;
    uint64_t h = fnv1a64(key, strlen(key), FNV1A64_INIT) & (uint64_t)(m->cap - 1);
    while (m->keys[h]) {
        if (strcmp(m->keys[h], key) == 0) return &m->vals[h];
        h = (h + 1) & (uint64_t)(m->cap - 1);
    }
    if (!create) return NULL;
    m->keys[h] = xstrdup(key);
    m->vals[h] = 0;
    m->n++;
    return &m->vals[h];
}

static void strmap_free(StrMap *m) {
    for (int i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

void naming_free(Elab *e) {
    strmap_free(&e->layers);
    strmap_free(&e->counters);
    strmap_free(&e->scopes);
    free(e->scope);
}

/* ---- labels and names ---------------------------------------------------------------- */

/* Evaluates a label's parts into text; NULL after reporting. */
static char *label_text(Elab *e, Frame *f, const AstLabel *label) {
    StrBuf b = {0};
    bool ok = true;
    for (int i = 0; i < label->n_parts; i++) {
        const AstLabelPart *p = &label->parts[i];
        if (p->text) {
            sb_puts(&b, p->text);
            continue;
        }
        Value v = eval_expr(e, f, p->expr);
        if (v.k == V_INT) sb_printf(&b, "%lld", (long long)v.u.i);
        else if (v.k == V_STR) sb_puts(&b, v.u.s);
        else {
            if (v.k != V_ERR)
                diag_error(e->d, p->expr->loc, "a label interpolation must be an int or a string, got %s", kind_name(v.k));
            ok = false;
        }
    }
    char *s = sb_take(&b);
    if (ok && (s[0] == 0 || s[0] == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))) {
        diag_error(e->d, label->loc, "label '%s' is not a valid layer name (empty parts)", s);
        ok = false;
    }
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

static char *join_scope(const char *scope, const char *local) {
    return scope[0] ? xasprintf("%s.%s", scope, local) : xstrdup(local);
}

char *new_layer_name(Elab *e, Frame *f, const AstExpr *call, const char *prefix) {
    if (call->v.call.label) {
        char *local = label_text(e, f, call->v.call.label);
        if (!local) return NULL;
        char *full = join_scope(e->scope, local);
        free(local);
        if (strmap_slot(&e->layers, full, false)) {
            /* Reported here rather than by the graph so that the caret
             * points at the label that repeats the name. */
            diag_error(e->d, call->v.call.label->loc, "parameter name '%s.weight' is used twice", full);
            free(full);
            return NULL;
        }
        *strmap_slot(&e->layers, full, true) = 1;
        return full;
    }
    char *key = xasprintf("%s\x01%s", e->scope, prefix);
    int *counter = strmap_slot(&e->counters, key, true);
    free(key);
    for (;;) {
        int k = ++*counter;
        char local[64];
        snprintf(local, sizeof local, "%s%d", prefix, k);
        char *full = join_scope(e->scope, local);
        if (!strmap_slot(&e->layers, full, false)) {
            *strmap_slot(&e->layers, full, true) = 1;
            return full;
        }
        free(full);
    }
}

void name_plain_node(Elab *e, Frame *f, const AstExpr *call, int id) {
    if (!call->v.call.label || id < 0) return;
    char *local = label_text(e, f, call->v.call.label);
    if (!local) return;
    free(e->g->nodes[id].name);
    e->g->nodes[id].name = join_scope(e->scope, local);
    free(local);
}

/* ---- scopes of labelled block calls ---------------------------------------------------- */

bool enter_block_scope(Elab *e, Frame *f, const AstExpr *call, char **saved_scope) {
    *saved_scope = NULL;
    if (!call->v.call.label) return true;
    char *local = label_text(e, f, call->v.call.label);
    if (!local) return false;
    char *scope = join_scope(e->scope, local);
    free(local);
    if (strmap_slot(&e->scopes, scope, false)) {
        diag_error(e->d, call->v.call.label->loc, "block label '%s' is used twice", scope);
        free(scope);
        return false;
    }
    *strmap_slot(&e->scopes, scope, true) = 1;
    *saved_scope = e->scope;
    e->scope = scope;
    return true;
}

void leave_block_scope(Elab *e, char *saved_scope) {
    if (!saved_scope) return;
    free(e->scope);
    e->scope = saved_scope;
}
