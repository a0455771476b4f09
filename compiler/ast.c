/*
 * ast.c — the AST's arena, lookups, and the printer that writes a tree back
 * in the language's syntax (the "resolved text" of a model after includes
 * and overrides; also used to check that printing and parsing agree).
 */
#include "ast.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------- */

typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    max_align_t data[]; /* aligned for anything */
} Chunk;

struct Arena {
    Chunk *head;
};

enum { CHUNK_BYTES = 64 * 1024 };

Arena *arena_new(void) { return xcalloc(1, sizeof(Arena)); }

void arena_free(Arena *a) {
    if (!a) return;
    for (Chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t n) {
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0) n = align;
    Chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = xmalloc(sizeof(Chunk) + size);
        c->used = 0;
        c->size = size;
        /* A big one-off block goes behind the current chunk so the current
         * chunk's free space is not wasted. */
        if (a->head && n > CHUNK_BYTES) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

/* ---- files ---------------------------------------------------------------- */

AstFile *ast_file_new(const char *path) {
    AstFile *f = xcalloc(1, sizeof *f);
    f->arena = arena_new();
    f->path = path;
    return f;
}

void ast_free(AstFile *f) {
    if (!f) return;
    free(f->decls);
    arena_free(f->arena);
    free(f);
}

/* ---- lookups -------------------------------------------------------------- */

const AstDecl *ast_find_decl(const AstFile *f, AstDeclKind kind, const char *name) {
    for (int i = 0; i < f->n_decls; i++) {
        const AstDecl *d = f->decls[i];
        if (d->kind == kind && (!name || (d->name && !strcmp(d->name, name)))) return d;
    }
    return NULL;
}

const AstExpr *ast_setting(const AstFile *f, AstDeclKind section, const char *key) {
    const AstDecl *d = ast_find_decl(f, section, NULL);
    if (!d) return NULL;
    const AstExpr *found = NULL;
    /* The last one wins, as it would for a rebinding. */
    for (int i = 0; i < d->body.n; i++) {
        const AstStmt *s = d->body.items[i];
        if ((s->kind == ST_SETTING || s->kind == ST_LET) && !strcmp(s->name, key)) found = s->value;
    }
    return found;
}

const AstExpr *ast_call_arg(const AstExpr *call, const char *key) {
    if (!call || call->kind != EX_CALL) return NULL;
    for (int i = 0; i < call->v.call.n_args; i++)
        if (call->v.call.args[i].key && !strcmp(call->v.call.args[i].key, key)) return call->v.call.args[i].value;
    return NULL;
}

/* ---- printing ------------------------------------------------------------- */

const char *ast_binop_text(AstBinOp op) {
    static const char *const text[] = {
        [BIN_ADD] = "+", [BIN_SUB] = "-", [BIN_MUL] = "*", [BIN_DIV] = "/", [BIN_IDIV] = "//",
        [BIN_MOD] = "%", [BIN_POW] = "^", [BIN_EQ] = "==", [BIN_NE] = "!=", [BIN_LT] = "<",
        [BIN_LE] = "<=", [BIN_GT] = ">", [BIN_GE] = ">=", [BIN_AND] = "and", [BIN_OR] = "or",
    };
    return (unsigned)op < sizeof text / sizeof text[0] ? text[op] : "?";
}

static void print_string(const char *s, StrBuf *out) {
    sb_putc(out, '"');
    for (; *s; s++) {
        switch (*s) {
        case '"': sb_puts(out, "\\\""); break;
        case '\\': sb_puts(out, "\\\\"); break;
        case '\n': sb_puts(out, "\\n"); break;
        case '\t': sb_puts(out, "\\t"); break;
        default: sb_putc(out, *s);
        }
    }
    sb_putc(out, '"');
}

/* Floats print so that they read back as floats with the same value. */
static void print_float(double v, StrBuf *out) {
    if (!isfinite(v)) { sb_puts(out, v > 0 ? "1e999" : v < 0 ? "(-1e999)" : "(0.0)"); return; }
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    for (int prec = 1; prec < 17; prec++) {
        char shorter[64];
        snprintf(shorter, sizeof shorter, "%.*g", prec, v);
        if (strtod(shorter, NULL) == v) { memcpy(buf, shorter, sizeof buf); break; }
    }
    /* "1e-05" is fine; "3" must become "3.0" to stay a float; "-0.5" needs parentheses
     * only where it is printed as an operand, which print_expr handles. */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    sb_puts(out, buf);
}

/* Whether one of the dot-separated parts of path t is a keyword (a label
 * such as "block.0.1" must then stay a string). */
static bool path_has_keyword(const char *t) {
    static const char *const keywords[] = {"network", "block", "include", "data", "augment", "train", "return", "if",
                                           "then", "else", "for", "in", "and", "or", "not", "true", "false",
                                           "assert", NULL};
    for (const char *p = t; *p;) {
        size_t n = strcspn(p, ".");
        for (int i = 0; keywords[i]; i++)
            if (strlen(keywords[i]) == n && !strncmp(p, keywords[i], n)) return true;
        p += n;
        if (*p) p++;
    }
    return false;
}

static void print_label(const AstLabel *l, StrBuf *out) {
    bool plain = l->n_parts == 1 && l->parts[0].text;
    if (plain) {
        const char *t = l->parts[0].text;
        /* A plain path label is IDENT(.IDENT|.INT)*; anything else prints as a template. */
        bool ok = (*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || *t == '_';
        for (const char *p = t; *p && ok; p++)
            ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9') ||
                 (*p == '.' && p[1] && p[1] != '.');
        if (ok && !path_has_keyword(t)) { sb_puts(out, t); sb_puts(out, ": "); return; }
    }
    sb_putc(out, '"');
    for (int i = 0; i < l->n_parts; i++) {
        if (l->parts[i].text) {
            StrBuf tmp = {0};
            print_string(l->parts[i].text, &tmp);
            tmp.s[tmp.len - 1] = 0;
            sb_puts(out, tmp.s + 1);
            free(tmp.s);
        } else {
            sb_putc(out, '{');
            ast_print_expr(l->parts[i].expr, out);
            sb_putc(out, '}');
        }
    }
    sb_puts(out, "\": ");
}

/* Fully parenthesised for compound operands: the printer's job is to be
 * unambiguous, not pretty. */
static void print_operand(const AstExpr *e, StrBuf *out) {
    bool wrap = e->kind == EX_BINARY || e->kind == EX_UNARY || e->kind == EX_IF ||
                (e->kind == EX_INT && e->v.i < 0) || (e->kind == EX_FLOAT && (e->v.f < 0 || signbit(e->v.f)));
    if (wrap) sb_putc(out, '(');
    ast_print_expr(e, out);
    if (wrap) sb_putc(out, ')');
}

void ast_print_expr(const AstExpr *e, StrBuf *out) {
    if (!e) { sb_puts(out, "?"); return; }
    switch (e->kind) {
    case EX_INT:
        if (e->v.i == INT64_MIN) sb_puts(out, "(-9223372036854775807 - 1)");
        else if (e->v.i < 0) sb_printf(out, "-%" PRId64, -e->v.i);
        else sb_printf(out, "%" PRId64, e->v.i);
        break;
    case EX_FLOAT:
        if (e->v.f < 0 || signbit(e->v.f)) { sb_putc(out, '-'); print_float(-e->v.f, out); }
        else print_float(e->v.f, out);
        break;
    case EX_STRING: print_string(e->v.s, out); break;
    case EX_BOOL: sb_puts(out, e->v.b ? "true" : "false"); break;
    case EX_NAME: sb_puts(out, e->v.name); break;
    case EX_LIST: {
        bool dims = e->v.list.dims && e->v.list.n >= 2;
        for (int i = 0; i < e->v.list.n && dims; i++) dims = e->v.list.items[i]->kind == EX_INT && e->v.list.items[i]->v.i >= 0;
        if (dims) {
            for (int i = 0; i < e->v.list.n; i++) sb_printf(out, "%s%" PRId64, i ? "x" : "", e->v.list.items[i]->v.i);
            break;
        }
        sb_putc(out, '[');
        for (int i = 0; i < e->v.list.n; i++) {
            if (i) sb_puts(out, ", ");
            ast_print_expr(e->v.list.items[i], out);
        }
        sb_putc(out, ']');
        break;
    }
    case EX_UNARY:
        sb_puts(out, e->v.unary.op == UN_NEG ? "-" : "not ");
        print_operand(e->v.unary.x, out);
        break;
    case EX_BINARY:
        print_operand(e->v.binary.a, out);
        sb_printf(out, " %s ", ast_binop_text(e->v.binary.op));
        print_operand(e->v.binary.b, out);
        break;
    case EX_CALL:
        if (e->v.call.label) print_label(e->v.call.label, out);
        sb_puts(out, e->v.call.callee);
        sb_putc(out, '(');
        for (int i = 0; i < e->v.call.n_args; i++) {
            if (i) sb_puts(out, ", ");
            if (e->v.call.args[i].key) sb_printf(out, "%s=", e->v.call.args[i].key);
            ast_print_expr(e->v.call.args[i].value, out);
        }
        sb_putc(out, ')');
        break;
    case EX_INDEX:
        print_operand(e->v.index.base, out);
        sb_putc(out, '[');
        ast_print_expr(e->v.index.index, out);
        sb_putc(out, ']');
        break;
    case EX_IF:
        sb_puts(out, "if ");
        ast_print_expr(e->v.cond.c, out);
        sb_puts(out, " then ");
        ast_print_expr(e->v.cond.then, out);
        sb_puts(out, " else ");
        ast_print_expr(e->v.cond.otherwise, out);
        break;
    case EX_RANGE:
        print_operand(e->v.range.lo, out);
        if (e->v.range.hi->kind == EX_INT && e->v.range.hi->v.i == AST_SLICE_END) {
            sb_putc(out, ':'); /* x[c0:], which `..` cannot spell */
            break;
        }
        sb_puts(out, "..");
        print_operand(e->v.range.hi, out);
        break;
    }
}

static void indent(int depth, StrBuf *out) {
    for (int i = 0; i < depth; i++) sb_puts(out, "    ");
}

static void print_body(const AstBody *b, int depth, StrBuf *out);

static void print_stmt(const AstStmt *s, int depth, StrBuf *out) {
    indent(depth, out);
    switch (s->kind) {
    case ST_SETTING:
        /* `ema(decay=0.9998)` reads back as written */
        if (!(s->value->kind == EX_CALL && !strcmp(s->value->v.call.callee, s->name))) sb_printf(out, "%s ", s->name);
        ast_print_expr(s->value, out);
        break;
    case ST_LET:
        sb_printf(out, "%s = ", s->name);
        ast_print_expr(s->value, out);
        break;
    case ST_IF:
        sb_puts(out, "if ");
        ast_print_expr(s->value, out);
        sb_puts(out, " {\n");
        print_body(&s->body, depth + 1, out);
        indent(depth, out);
        sb_putc(out, '}');
        if (s->otherwise.n) {
            sb_puts(out, " else {\n");
            print_body(&s->otherwise, depth + 1, out);
            indent(depth, out);
            sb_putc(out, '}');
        }
        break;
    case ST_FOR:
        sb_printf(out, "for %s in ", s->name);
        ast_print_expr(s->value, out);
        sb_puts(out, " {\n");
        print_body(&s->body, depth + 1, out);
        indent(depth, out);
        sb_putc(out, '}');
        break;
    case ST_RETURN:
        sb_puts(out, "return ");
        ast_print_expr(s->value, out);
        break;
    case ST_ASSERT:
        sb_puts(out, "assert ");
        ast_print_expr(s->value, out);
        if (s->message) {
            sb_puts(out, ", ");
            print_string(s->message, out);
        }
        break;
    }
    sb_putc(out, '\n');
}

static void print_body(const AstBody *b, int depth, StrBuf *out) {
    for (int i = 0; i < b->n; i++) print_stmt(b->items[i], depth, out);
}

void ast_print(const AstFile *f, StrBuf *out) { ast_print_omitting(f, NULL, out); }

void ast_print_omitting(const AstFile *f, bool (*omit)(AstDeclKind section, const char *name), StrBuf *out) {
    for (int i = 0; i < f->n_decls; i++) {
        const AstDecl *d = f->decls[i];
        switch (d->kind) {
        case DECL_INCLUDE:
            sb_puts(out, "include ");
            print_string(d->name, out);
            sb_putc(out, '\n');
            break;
        case DECL_CONST:
            print_stmt(d->stmt, 0, out);
            break;
        case DECL_BLOCK:
            sb_printf(out, "block %s(", d->name);
            for (int p = 0; p < d->n_params; p++) {
                if (p) sb_puts(out, ", ");
                sb_puts(out, d->params[p].name);
                if (d->params[p].def) {
                    sb_putc(out, '=');
                    ast_print_expr(d->params[p].def, out);
                }
            }
            sb_puts(out, ") {\n");
            print_body(&d->body, 1, out);
            sb_puts(out, "}\n");
            break;
        case DECL_NETWORK:
        case DECL_DATA:
        case DECL_TRAIN:
            if (d->kind == DECL_NETWORK) sb_printf(out, "network %s {\n", d->name);
            else sb_puts(out, d->kind == DECL_DATA ? "data {\n" : "train {\n");
            for (int k = 0; k < d->body.n; k++) {
                const AstStmt *s = d->body.items[k];
                if (!(omit && s->kind == ST_SETTING && omit(d->kind, s->name))) print_stmt(s, 1, out);
            }
            sb_puts(out, "}\n");
            break;
        case DECL_AUGMENT:
            sb_printf(out, "augment %s: ", d->name);
            for (int k = 0; k < d->n_ops; k++) {
                if (k) sb_puts(out, " -> ");
                ast_print_expr(d->ops[k], out);
            }
            sb_putc(out, '\n');
            break;
        }
    }
}
