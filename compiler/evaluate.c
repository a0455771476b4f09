/*
 * evaluate.c — the evaluator of the elaborator: frames of bindings,
 * expressions (names, operators, indexing, calls), statements (let, if, for,
 * return, assert) and block calls with their arguments, recursion check and
 * scopes. Every run is bounded by the budgets of elaborate_internal.h.
 */
#include "elaborate_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- frames ------------------------------------------------------------------ */

int frame_find(const Frame *f, const char *name) {
    for (int i = f->n - 1; i >= 0; i--)
        if (strcmp(f->b[i].name, name) == 0) return i;
    return -1;
}

void frame_set(Frame *f, const char *name, Value v, Site *site) {
    int i = frame_find(f, name);
    if (i < 0) {
        GROW(f->b, f->cap, f->n + 1);
        i = f->n++;
    }
    f->b[i] = (Binding){.name = name, .v = v, .site = site};
}

static void frame_remove(Frame *f, const char *name) {
    int i = frame_find(f, name);
    if (i < 0) return;
    memmove(&f->b[i], &f->b[i + 1], (size_t)(f->n - i - 1) * sizeof *f->b);
    f->n--;
}

/* ---- small helpers ------------------------------------------------------------ */

static bool over_budget(Elab *e, SrcLoc loc) {
    if (++e->steps <= MAX_STEPS && e->g->n_nodes <= MAX_NODES) return false;
    if (!e->budget_reported) {
        diag_error(e->d, loc, "the network is too large to elaborate (more than %d steps or %d graph nodes)",
                   MAX_STEPS, MAX_NODES);
        e->budget_reported = true;
    }
    return true;
}

const BlockInfo *find_block(const Elab *e, const char *name) {
    for (int i = 0; i < e->n_blocks; i++)
        if (strcmp(e->blocks[i].decl->name, name) == 0) return &e->blocks[i];
    return NULL;
}

/* The bound name closest to word, for "did you mean"; NULL if none is close. */
static const char *suggest_name(Elab *e, const Frame *f, const char *word) {
    int n = f->n + e->globals.n;
    const char **cands = xmalloc((size_t)(n + 1) * sizeof *cands);
    int k = 0;
    for (int i = 0; i < f->n; i++) cands[k++] = f->b[i].name;
    if (f != &e->globals)
        for (int i = 0; i < e->globals.n; i++) cands[k++] = e->globals.b[i].name;
    const char *best = diag_closest(word, cands, k);
    free(cands);
    return best;
}

static const char *suggest_callee(Elab *e, const char *word) {
    int n = e->n_blocks;
    for (int i = 0; elaborate_op_names[i]; i++) n++;
    for (int i = 0; elaborate_builtin_names[i]; i++) n++;
    const char **cands = xmalloc((size_t)(n ? n : 1) * sizeof *cands);
    int k = 0;
    for (int i = 0; elaborate_op_names[i]; i++) cands[k++] = elaborate_op_names[i];
    for (int i = 0; elaborate_builtin_names[i]; i++) cands[k++] = elaborate_builtin_names[i];
    for (int i = 0; i < e->n_blocks; i++) cands[k++] = e->blocks[i].decl->name;
    const char *best = diag_closest(word, cands, k);
    free(cands);
    return best;
}

Value list_value(Elab *e, int n) {
    e->list_bytes += (int64_t)(n ? n : 1) * (int64_t)sizeof(Value);
    if (e->list_bytes > MAX_LIST_BYTES) {
        if (!e->budget_reported)
            diag_error(e->d, e->last_loc, "the network uses too much memory to elaborate (lists of more than %d MiB)",
                       MAX_LIST_BYTES >> 20);
        e->budget_reported = true;
        return VERR;
    }
    Value v = {.k = V_LIST};
    v.u.list.n = n;
    v.u.list.items = arena_alloc(e->arena, (size_t)(n ? n : 1) * sizeof(Value));
    return v;
}

/* ---- argument binding for ops and blocks --------------------------------------- */

bool bind_args(Elab *e, Frame *f, const AstExpr *call, const ArgSpec *spec, int n_spec, Args *a) {
    const char *callee = call->v.call.callee;
    bool ok = true;
    int pos = 0;
    memset(a, 0, sizeof *a);
    for (int i = 0; i < call->v.call.n_args; i++) {
        const AstArg *arg = &call->v.call.args[i];
        Value v = eval_expr(e, f, arg->value);
        if (v.k == V_ERR) ok = false;
        int slot = -1;
        if (!arg->key) {
            if (pos >= n_spec) {
                if (ok) diag_error(e->d, arg->loc, "too many arguments to %s (it takes at most %d)", callee, n_spec);
                ok = false;
                continue;
            }
            slot = pos++;
        } else {
            for (int k = 0; k < n_spec; k++)
                if (strcmp(spec[k].name, arg->key) == 0) slot = k;
            if (slot < 0) {
                const char *names[MAX_ARGS];
                for (int k = 0; k < n_spec; k++) names[k] = spec[k].name;
                const char *best = diag_closest(arg->key, names, n_spec);
                if (best) diag_error(e->d, arg->loc, "%s has no argument '%s'; did you mean '%s'?", callee, arg->key, best);
                else diag_error(e->d, arg->loc, "%s has no argument '%s'", callee, arg->key);
                ok = false;
                continue;
            }
            if (a->given[slot]) {
                diag_error(e->d, arg->loc, "argument '%s' of %s is given twice", arg->key, callee);
                ok = false;
                continue;
            }
        }
        a->v[slot] = v;
        a->loc[slot] = arg->loc;
        a->given[slot] = true;
    }
    if (!ok) return false;
    for (int k = 0; k < n_spec; k++)
        if (spec[k].required && !a->given[k]) {
            diag_error(e->d, call->v.call.callee_loc, "%s needs argument '%s'", callee, spec[k].name);
            ok = false;
        }
    return ok;
}

/* ---- calls ------------------------------------------------------------------------ */

static Value call_block(Elab *e, Frame *f, const AstExpr *call, BlockInfo *bi) {
    const AstDecl *decl = bi->decl;
    SrcLoc loc = call->v.call.callee_loc;
    bi->called = true;
    if (bi->active) {
        StrBuf chain = {0};
        int start = 0;
        for (int i = 0; i < e->depth; i++)
            if (e->stack[i] == bi) start = i;
        for (int i = start; i < e->depth; i++) sb_printf(&chain, "%s -> ", e->stack[i]->decl->name);
        sb_puts(&chain, decl->name);
        char *c = sb_take(&chain);
        diag_error(e->d, loc, "block '%s' is recursive (%s)", decl->name, c);
        free(c);
        /* Evaluate the arguments anyway so that their names count as used. */
        for (int i = 0; i < call->v.call.n_args; i++) eval_expr(e, f, call->v.call.args[i].value);
        return VERR;
    }
    if (e->depth >= MAX_CALL_DEPTH) {
        diag_error(e->d, loc, "block calls nest too deeply");
        return VERR;
    }
    ArgSpec spec[MAX_ARGS];
    if (decl->n_params > MAX_ARGS) {
        diag_error(e->d, decl->name_loc, "block '%s' has more than %d parameters", decl->name, MAX_ARGS);
        return VERR;
    }
    for (int i = 0; i < decl->n_params; i++) spec[i] = (ArgSpec){decl->params[i].name, decl->params[i].def == NULL};
    Args a;
    if (!bind_args(e, f, call, spec, decl->n_params, &a)) return VERR;

    char *saved_scope;
    if (!enter_block_scope(e, f, call, &saved_scope)) return VERR;

    Frame bf = {.block = decl->name};
    for (int i = 0; i < decl->n_params; i++) {
        const AstParam *p = &decl->params[i];
        Site *site = site_get(&e->sites, p, SITE_PARAM, p->name, p->loc);
        site->block = decl->name;
        site->executed = true;
        Value v = a.given[i] ? a.v[i] : eval_expr(e, &bf, p->def);
        frame_set(&bf, p->name, v, site);
    }
    bi->active = true;
    e->call_sites[e->depth] = loc;
    e->stack[e->depth++] = bi;
    Value ret = {.k = V_NONE};
    Flow flow = exec_body(e, &bf, &decl->body, &ret);
    e->depth--;
    bi->active = false;
    if (flow != FLOW_RETURN) {
        diag_error(e->d, loc, "block '%s' ends without a return", decl->name);
        ret = VERR;
    }
    free(bf.b);
    leave_block_scope(e, saved_scope);
    return ret;
}

static Value eval_call(Elab *e, Frame *f, const AstExpr *x) {
    const char *nm = x->v.call.callee;
    if (over_budget(e, x->loc)) return VERR;
    BlockInfo *bi = (BlockInfo *)find_block(e, nm);
    if (bi) return call_block(e, f, x, bi);
    Value v;
    if (call_primitive_op(e, f, x, &v) || call_builtin(e, f, x, &v)) return v;
    for (int i = 0; i < x->v.call.n_args; i++) eval_expr(e, f, x->v.call.args[i].value);
    const char *best = suggest_callee(e, nm);
    if (best) diag_error(e->d, x->v.call.callee_loc, "unknown op or block '%s'; did you mean '%s'?", nm, best);
    else diag_error(e->d, x->v.call.callee_loc, "unknown op or block '%s'", nm);
    return VERR;
}

/* ---- expressions ------------------------------------------------------------------------ */

static Value lookup(Elab *e, Frame *f, const AstExpr *x) {
    const char *nm = x->v.name;
    Binding *b = NULL;
    int i = frame_find(f, nm);
    if (i >= 0) b = &f->b[i];
    else if (f != &e->globals && (i = frame_find(&e->globals, nm)) >= 0) b = &e->globals.b[i];
    if (!b) {
        const char *best = suggest_name(e, f, nm);
        if (!f->block && !strcmp(nm, "input"))
            diag_error(e->d, x->loc, "undefined name 'input'");
        else if (f->block && !strcmp(nm, "input"))
            diag_error(e->d, x->loc, "'input' is the network's image; pass it to block '%s' as an argument", f->block);
        else if (best) diag_error(e->d, x->loc, "undefined name '%s'; did you mean '%s'?", nm, best);
        else diag_error(e->d, x->loc, "undefined name '%s'", nm);
        return VERR;
    }
    if (b->site) b->site->used = true;
    if (b->v.k == V_BRANCH) {
        diag_error(e->d, x->loc, "'%s' is bound in only one branch of the if at line %lld; bind it before the if too",
                   nm, (long long)b->v.u.i);
        return VERR;
    }
    return b->v;
}

/* 'and' and 'or' evaluate their right side only when it decides. */
static Value eval_logical(Elab *e, Frame *f, const AstExpr *x) {
    AstBinOp op = x->v.binary.op;
    Value a = eval_expr(e, f, x->v.binary.a);
    bool ab;
    if (!to_bool(e->d, a, x->v.binary.a->loc, op == BIN_AND ? "the left side of 'and'" : "the left side of 'or'", &ab)) {
        eval_expr(e, f, x->v.binary.b);
        return VERR;
    }
    if (op == BIN_AND ? !ab : ab) return vbool(ab);
    Value b = eval_expr(e, f, x->v.binary.b);
    bool bb;
    if (!to_bool(e->d, b, x->v.binary.b->loc, op == BIN_AND ? "the right side of 'and'" : "the right side of 'or'", &bb))
        return VERR;
    return vbool(bb);
}

static Value list_concat(Elab *e, const Value *a, const Value *b, SrcLoc loc) {
    int64_t n = (int64_t)a->u.list.n + b->u.list.n;
    if (n > MAX_LIST) {
        diag_error(e->d, loc, "list too long");
        return VERR;
    }
    Value l = list_value(e, (int)n);
    if (l.k == V_ERR) return VERR;
    memcpy(l.u.list.items, a->u.list.items, (size_t)a->u.list.n * sizeof(Value));
    memcpy(l.u.list.items + a->u.list.n, b->u.list.items, (size_t)b->u.list.n * sizeof(Value));
    return l;
}

static Value eval_binary(Elab *e, Frame *f, const AstExpr *x) {
    AstBinOp op = x->v.binary.op;
    SrcLoc loc = x->loc;
    if (op == BIN_AND || op == BIN_OR) return eval_logical(e, f, x);
    Value a = eval_expr(e, f, x->v.binary.a);
    Value b = eval_expr(e, f, x->v.binary.b);
    if (a.k == V_ERR || b.k == V_ERR) return VERR;
    if (a.k == V_TENSOR || b.k == V_TENSOR) return tensor_arith(e, op, a, b, loc);
    switch (op) {
    case BIN_EQ:
    case BIN_NE:
    case BIN_LT:
    case BIN_LE:
    case BIN_GT:
    case BIN_GE: return value_compare(e->d, op, &a, &b, loc);
    default: break;
    }
    if (op == BIN_ADD && a.k == V_LIST && b.k == V_LIST) return list_concat(e, &a, &b, loc);
    return value_arith(e->d, op, &a, &b, loc);
}
static Value eval_index(Elab *e, Frame *f, const AstExpr *x) {
    Value base = eval_expr(e, f, x->v.index.base);
    const AstExpr *ix = x->v.index.index;
    if (ix->kind == EX_RANGE) {
        Value lo = eval_expr(e, f, ix->v.range.lo), hi = eval_expr(e, f, ix->v.range.hi);
        if (base.k == V_ERR) return VERR;
        int64_t l, h;
        bool ok = to_int(e->d, lo, ix->v.range.lo->loc, "slice start", &l);
        ok = to_int(e->d, hi, ix->v.range.hi->loc, "slice end", &h) && ok;
        if (!ok) return VERR;
        if (base.k == V_TENSOR) return tensor_channel_slice(e, base.u.tensor, l, h, x->loc); /* x[c0:c1], x[c0..c1] */
        if (base.k != V_LIST) {
            diag_error(e->d, x->loc, "only lists and tensors (channels) can be sliced, got %s", kind_name(base.k));
            return VERR;
        }
        int64_t n = base.u.list.n;
        if (l < 0) l += n;
        if (h < 0) h += n;
        if (l < 0) l = 0;
        if (h > n) h = n;
        if (h < l) h = l;
        Value r = list_value(e, (int)(h - l));
        if (r.k == V_ERR) return VERR;
        memcpy(r.u.list.items, base.u.list.items + l, (size_t)(h - l) * sizeof(Value));
        return r;
    }
    Value iv = eval_expr(e, f, ix);
    if (base.k == V_ERR || iv.k == V_ERR) return VERR;
    int64_t i;
    if (!to_int(e->d, iv, ix->loc, "an index", &i)) return VERR;
    if (base.k == V_TENSOR) {
        diag_error(e->d, x->loc, "a tensor is sliced by channels, x[c0:c1], not indexed");
        return VERR;
    }
    if (base.k != V_LIST) {
        diag_error(e->d, x->loc, "only lists can be indexed, got %s", kind_name(base.k));
        return VERR;
    }
    int64_t n = base.u.list.n;
    if (i < -n || i >= n) {
        diag_error(e->d, ix->loc, "index %lld is out of range for a list of %lld", (long long)i, (long long)n);
        return VERR;
    }
    return base.u.list.items[i < 0 ? i + n : i];
}

Value eval_expr(Elab *e, Frame *f, const AstExpr *x) {
    if (!x) return VERR;
    switch (x->kind) {
    case EX_INT: return vint(x->v.i);
    case EX_FLOAT: return vfloat(x->v.f);
    case EX_STRING: return (Value){.k = V_STR, .u.s = x->v.s};
    case EX_BOOL: return vbool(x->v.b);
    case EX_NAME: return lookup(e, f, x);
    case EX_LIST: {
        Value l = list_value(e, x->v.list.n);
        if (l.k == V_ERR) return VERR;
        bool ok = true;
        for (int i = 0; i < x->v.list.n; i++) {
            l.u.list.items[i] = eval_expr(e, f, x->v.list.items[i]);
            if (l.u.list.items[i].k == V_ERR) ok = false;
        }
        return ok ? l : VERR;
    }
    case EX_UNARY: {
        Value v = eval_expr(e, f, x->v.unary.x);
        if (v.k == V_ERR) return VERR;
        if (x->v.unary.op == UN_NOT) {
            bool b;
            if (!to_bool(e->d, v, x->v.unary.x->loc, "the operand of 'not'", &b)) return VERR;
            return vbool(!b);
        }
        if (v.k == V_TENSOR) return tensor_negate(e, v.u.tensor, x->loc);
        return value_negate(e->d, v, x->loc);
    }
    case EX_BINARY: return eval_binary(e, f, x);
    case EX_CALL: return eval_call(e, f, x);
    case EX_INDEX: return eval_index(e, f, x);
    case EX_IF: {
        Value c = eval_expr(e, f, x->v.cond.c);
        bool b;
        if (!to_bool(e->d, c, x->v.cond.c->loc, "the condition", &b)) {
            eval_expr(e, f, x->v.cond.then);
            eval_expr(e, f, x->v.cond.otherwise);
            return VERR;
        }
        return eval_expr(e, f, b ? x->v.cond.then : x->v.cond.otherwise);
    }
    case EX_RANGE:
        diag_error(e->d, x->loc, "a range 'lo..hi' is only allowed after 'for ... in' or inside '[...]' as a slice");
        return VERR;
    }
    return VERR;
}

/* ---- statements --------------------------------------------------------------------------- */

/* Whether a body (recursively) binds name. */
static bool body_binds(const AstBody *body, const char *name) {
    for (int i = 0; i < body->n; i++) {
        const AstStmt *s = body->items[i];
        if (s->kind == ST_LET && !strcmp(s->name, name)) return true;
        if (s->kind == ST_IF && (body_binds(&s->body, name) || body_binds(&s->otherwise, name))) return true;
        if (s->kind == ST_FOR && body_binds(&s->body, name)) return true;
    }
    return false;
}

/* After a body that could not run (its condition or iterable failed), binds
 * its names to poison so that later uses do not report again. */
static void poison_bindings(Frame *f, const AstBody *body) {
    for (int i = 0; i < body->n; i++) {
        const AstStmt *s = body->items[i];
        if (s->kind == ST_LET && frame_find(f, s->name) < 0) frame_set(f, s->name, VERR, NULL);
        if (s->kind == ST_IF) {
            poison_bindings(f, &s->body);
            poison_bindings(f, &s->otherwise);
        }
        if (s->kind == ST_FOR) poison_bindings(f, &s->body);
    }
}

static Flow exec_if(Elab *e, Frame *f, const AstStmt *s, Value *ret) {
    Value c = eval_expr(e, f, s->value);
    bool b;
    if (!to_bool(e->d, c, s->value->loc, "the condition of if", &b)) {
        poison_bindings(f, &s->body);
        poison_bindings(f, &s->otherwise);
        return FLOW_NEXT;
    }
    /* Names the taken branch binds for the first time are usable after the
     * if only when the other branch binds them too. */
    int n_before = f->n;
    const char **before = xmalloc((size_t)(n_before ? n_before : 1) * sizeof *before);
    for (int i = 0; i < n_before; i++) before[i] = f->b[i].name;
    const AstBody *taken = b ? &s->body : &s->otherwise, *other = b ? &s->otherwise : &s->body;
    Flow flow = exec_body(e, f, taken, ret);
    if (flow == FLOW_NEXT) {
        for (int i = 0; i < f->n; i++) {
            bool old = false;
            for (int k = 0; k < n_before && !old; k++) old = strcmp(before[k], f->b[i].name) == 0;
            if (!old && !body_binds(other, f->b[i].name) && f->b[i].site) {
                /* Keep the site's use count: reads inside the branch count. */
                f->b[i].v = (Value){.k = V_BRANCH, .u.i = s->loc.line};
            }
        }
    }
    free(before);
    return flow;
}

static Flow exec_for(Elab *e, Frame *f, const AstStmt *s, Value *ret) {
    const AstExpr *it = s->value;
    Value list = {.k = V_ERR};
    int64_t lo = 0, hi = 0;
    bool is_range = it->kind == EX_RANGE;
    if (is_range) {
        Value a = eval_expr(e, f, it->v.range.lo), b = eval_expr(e, f, it->v.range.hi);
        bool ok = to_int(e->d, a, it->v.range.lo->loc, "the start of the range", &lo);
        ok = to_int(e->d, b, it->v.range.hi->loc, "the end of the range", &hi) && ok;
        if (!ok) {
            poison_bindings(f, &s->body);
            return FLOW_NEXT;
        }
    } else {
        list = eval_expr(e, f, it);
        if (list.k != V_LIST) {
            if (list.k != V_ERR) diag_error(e->d, it->loc, "for needs a range lo..hi or a list, got %s", kind_name(list.k));
            poison_bindings(f, &s->body);
            return FLOW_NEXT;
        }
    }
    if (f->n_loops >= MAX_LOOP_NEST) {
        diag_error(e->d, s->loc, "for loops nest too deeply");
        return FLOW_NEXT;
    }
    int64_t count = is_range ? 0 : list.u.list.n;
    if (is_range && hi > lo && __builtin_sub_overflow(hi, lo, &count)) count = INT64_MAX;
    int shadow = frame_find(f, s->name);
    Binding saved = shadow >= 0 ? f->b[shadow] : (Binding){0};
    Flow flow = FLOW_NEXT;
    f->n_loops++;
    for (int64_t i = 0; i < count; i++) {
        if (over_budget(e, s->loc)) break;
        f->loops[f->n_loops - 1] = (int)i;
        frame_set(f, s->name, is_range ? vint(lo + i) : list.u.list.items[i], NULL);
        flow = exec_body(e, f, &s->body, ret);
        if (flow == FLOW_RETURN) break;
    }
    f->n_loops--;
    frame_remove(f, s->name);
    if (shadow >= 0) frame_set(f, saved.name, saved.v, saved.site);
    return flow;
}

static bool is_network_top_level(const Elab *e, const AstStmt *s) {
    for (int i = 0; i < e->net->body.n; i++)
        if (e->net->body.items[i] == s) return true;
    return false;
}

static Flow exec_stmt(Elab *e, Frame *f, const AstStmt *s, Value *ret) {
    e->last_loc = s->loc;
    if (over_budget(e, s->loc)) {
        *ret = VERR;
        return FLOW_RETURN;
    }
    switch (s->kind) {
    case ST_SETTING:
        /* Network parameters were evaluated before the body ran; only the
         * network body's own top level may set them. */
        if (f->block || !is_network_top_level(e, s))
            diag_error(e->d, s->loc, "network parameters ('%s VALUE') may only be set at the top of the network body; "
                                     "write '%s = ...' to bind a name", s->name, s->name);
        return FLOW_NEXT;
    case ST_LET: {
        Site *site = site_get(&e->sites, s, SITE_LET, s->name, s->name_loc);
        site->executed = true;
        if (frame_find(&e->globals, s->name) >= 0 && frame_find(f, s->name) < 0 && f != &e->globals) {
            diag_error(e->d, s->name_loc, "'%s' is a network parameter or constant; bind another name", s->name);
            site->used = true;
        }
        Value v = eval_expr(e, f, s->value);
        int prev = frame_find(f, s->name);
        if (prev >= 0 && f->b[prev].site && !f->b[prev].site->used) f->b[prev].site->overwritten = true;
        frame_set(f, s->name, v, site);
        return FLOW_NEXT;
    }
    case ST_IF: return exec_if(e, f, s, ret);
    case ST_FOR: return exec_for(e, f, s, ret);
    case ST_RETURN:
        *ret = eval_expr(e, f, s->value);
        return FLOW_RETURN;
    case ST_ASSERT: {
        Value c = eval_expr(e, f, s->value);
        bool b;
        if (to_bool(e->d, c, s->value->loc, "the condition of assert", &b) && !b) {
            if (s->message) diag_error(e->d, s->loc, "%s", s->message);
            else diag_error(e->d, s->loc, "assertion failed");
        }
        return FLOW_NEXT;
    }
    }
    return FLOW_NEXT;
}

Flow exec_body(Elab *e, Frame *f, const AstBody *body, Value *ret) {
    for (int i = 0; i < body->n; i++) {
        Flow flow = exec_stmt(e, f, body->items[i], ret);
        if (flow == FLOW_RETURN) return flow;
    }
    return FLOW_NEXT;
}

