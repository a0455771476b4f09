/*
 * unused_names.c — binding sites and the unused-name check: every let,
 * block parameter, network parameter and constant gets a site when it is
 * bound; reads mark it used; at the end, sites that ran but were never read
 * (and blocks never called) are reported in source order.
 */
#include "elaborate_internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t ptr_hash(const void *p) { return splitmix64((uint64_t)(uintptr_t)p); }

Site *site_get(SiteTable *t, const void *key, SiteKind kind, const char *name, SrcLoc loc) {
    if ((t->n + 1) * 2 > t->cap) {
        int ncap = t->cap ? t->cap * 2 : 64;
        Site **ns = xcalloc((size_t)ncap, sizeof *ns);
        for (int i = 0; i < t->cap; i++) {
            if (!t->slots[i]) continue;
            uint64_t h = ptr_hash(t->slots[i]->key) & (uint64_t)(ncap - 1);
            while (ns[h]) h = (h + 1) & (uint64_t)(ncap - 1);
            ns[h] = t->slots[i];
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    uint64_t h = ptr_hash(key) & (uint64_t)(t->cap - 1);
    while (t->slots[h] && t->slots[h]->key != key) h = (h + 1) & (uint64_t)(t->cap - 1);
    if (!t->slots[h]) {
        t->slots[h] = xmalloc(sizeof(Site));
        *t->slots[h] = (Site){.key = key, .kind = kind, .name = name, .loc = loc};
        t->n++;
    }
    return t->slots[h];
}

void site_table_free(SiteTable *t) {
    for (int i = 0; i < t->cap; i++) free(t->slots[i]);
    free(t->slots);
}

static int site_order(const void *pa, const void *pb) {
    const Site *a = *(const Site *const *)pa, *b = *(const Site *const *)pb;
    int fc = strcmp(a->loc.file ? a->loc.file : "", b->loc.file ? b->loc.file : "");
    if (fc) return fc;
    if (a->loc.line != b->loc.line) return a->loc.line - b->loc.line;
    return a->loc.col - b->loc.col;
}

/* Included files are shared libraries of constants and blocks: a model need
 * not use all of them. */
static bool is_main_file(const Elab *e, SrcLoc loc) {
    return loc.file && e->ast->path && strcmp(loc.file, e->ast->path) == 0;
}

void report_unused(Elab *e) {
    Site **list = xmalloc((size_t)(e->sites.n ? e->sites.n : 1) * sizeof *list);
    int n = 0;
    for (int i = 0; i < e->sites.cap; i++) {
        Site *s = e->sites.slots[i];
        if (!s || !s->executed || s->used || s->overwritten || s->name[0] == '_') continue;
        if (s->kind == SITE_CONST && !is_main_file(e, s->loc)) continue;
        list[n++] = s;
    }
    qsort(list, (size_t)n, sizeof *list, site_order);
    for (int i = 0; i < n; i++) {
        const Site *s = list[i];
        switch (s->kind) {
        case SITE_LET: diag_error(e->d, s->loc, "'%s' is bound but never used", s->name); break;
        case SITE_PARAM:
            diag_error(e->d, s->loc, "parameter '%s' of block '%s' is never used", s->name, s->block);
            break;
        case SITE_NETPARAM: diag_error(e->d, s->loc, "network parameter '%s' is never used", s->name); break;
        case SITE_CONST: diag_error(e->d, s->loc, "constant '%s' is never used", s->name); break;
        }
    }
    free(list);
    for (int i = 0; i < e->n_blocks; i++) {
        const AstDecl *d = e->blocks[i].decl;
        if (!e->blocks[i].called && is_main_file(e, d->name_loc) && d->name[0] != '_')
            diag_error(e->d, d->name_loc, "block '%s' is never used", d->name);
    }
}
