/*
 * ops_more.c — the network language's newer primitive ops, front end side
 * (ops_table.c dispatches to them): param (a learnable tensor), the
 * initialisers that `init=` arguments name, channel slices (x[a..b],
 * split), channel_shuffle, groupnorm and layernorm. Shape errors come from the
 * builders of graph_ops.c and are reported at the call.
 */
#include "elaborate_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

AstExpr call_without_keys(const AstExpr *call, const char *const *keys, int n_keys, AstArg *kept,
                          const AstArg **found) {
    AstExpr copy = *call;
    int n = 0;
    for (int k = 0; k < n_keys; k++) found[k] = NULL;
    for (int i = 0; i < call->v.call.n_args; i++) {
        const AstArg *arg = &call->v.call.args[i];
        int hit = -1;
        for (int k = 0; k < n_keys && arg->key; k++)
            if (!strcmp(arg->key, keys[k])) hit = k;
        if (hit >= 0 && !found[hit]) found[hit] = arg;
        else kept[n++] = *arg;
    }
    copy.v.call.args = kept;
    copy.v.call.n_args = n;
    return copy;
}

static const char *const init_names[] = {"zeros", "ones", "constant", "normal", "uniform", "trunc_normal",
                                         "kaiming_normal", NULL};

static int init_index(const char *name) {
    for (int i = 0; init_names[i]; i++)
        if (!strcmp(init_names[i], name)) return i;
    return -1;
}

/* kaiming_normal(mode="fan_out" | "fan_in") */
static bool kaiming_spec(Elab *e, const Args *a, InitSpec *out) {
    out->kind = INIT_KAIMING_NORMAL_FAN_OUT;
    if (!a->given[0] || a->v[0].k == V_ERR) return a->v[0].k != V_ERR;
    if (a->v[0].k == V_STR && !strcmp(a->v[0].u.s, "fan_in")) out->kind = INIT_KAIMING_NORMAL_FAN_IN;
    else if (!(a->v[0].k == V_STR && !strcmp(a->v[0].u.s, "fan_out"))) {
        diag_error(e->d, a->loc[0], "kaiming_normal mode must be \"fan_in\" or \"fan_out\"");
        return false;
    }
    return true;
}

/* One initialiser written as a call: its arguments with PyTorch's defaults. */
static bool init_call(Elab *e, Frame *f, const AstExpr *x, int which, InitSpec *out) {
    static const ArgSpec constant[] = {{"value", true}};
    static const ArgSpec normal[] = {{"mean", false}, {"std", false}};
    static const ArgSpec uniform[] = {{"a", false}, {"b", false}};
    static const ArgSpec trunc[] = {{"mean", false}, {"std", false}, {"a", false}, {"b", false}};
    static const ArgSpec kaiming[] = {{"mode", false}};
    static const struct { const ArgSpec *spec; int n; InitKind kind; double defaults[4]; } forms[] = {
        {NULL, 0, INIT_ZEROS, {0}},           {NULL, 0, INIT_ONES, {0}},
        {constant, 1, INIT_CONSTANT, {0}},    {normal, 2, INIT_NORMAL, {0, 1}},
        {uniform, 2, INIT_UNIFORM, {0, 1}},   {trunc, 4, INIT_TRUNC_NORMAL, {0, 1, -2, 2}},
        {kaiming, 1, INIT_KAIMING_NORMAL_FAN_OUT, {0}},
    };
    Args a;
    if (!bind_args(e, f, x, forms[which].spec, forms[which].n, &a)) return false;
    memset(out, 0, sizeof *out);
    out->kind = forms[which].kind;
    memcpy(out->arg, forms[which].defaults, sizeof out->arg);
    if (out->kind == INIT_KAIMING_NORMAL_FAN_OUT) return kaiming_spec(e, &a, out);
    bool ok = true;
    for (int i = 0; i < forms[which].n; i++) {
        if (!a.given[i]) continue;
        char what[64];
        snprintf(what, sizeof what, "%s %s", init_names[which], forms[which].spec[i].name);
        ok = to_float(e->d, a.v[i], a.loc[i], what, &out->arg[i]) && ok;
    }
    if (ok && (out->kind == INIT_NORMAL || out->kind == INIT_TRUNC_NORMAL) && !(out->arg[1] >= 0)) {
        diag_error(e->d, x->loc, "%s std must not be negative", init_names[which]);
        ok = false;
    }
    if (ok && (out->kind == INIT_UNIFORM || out->kind == INIT_TRUNC_NORMAL) && !(out->arg[out->kind == INIT_UNIFORM ? 0 : 2] <
                                                                                out->arg[out->kind == INIT_UNIFORM ? 1 : 3])) {
        diag_error(e->d, x->loc, "%s needs a < b", init_names[which]);
        ok = false;
    }
    return ok;
}

bool eval_init_spec(Elab *e, Frame *f, const AstExpr *x, InitSpec *out) {
    memset(out, 0, sizeof *out);
    if (x->kind == EX_CALL && init_index(x->v.call.callee) >= 0 && !x->v.call.label)
        return init_call(e, f, x, init_index(x->v.call.callee), out);
    if (x->kind == EX_NAME && frame_find(f, x->v.name) < 0 && frame_find(&e->globals, x->v.name) < 0) {
        int which = init_index(x->v.name);
        if (which == 0 || which == 1) {
            out->kind = which == 0 ? INIT_ZEROS : INIT_ONES;
            return true;
        }
    }
    Value v = eval_expr(e, f, x);
    if (v.k == V_ERR) return false;
    if (v.k != V_INT && v.k != V_FLOAT) {
        diag_error(e->d, x->loc, "init must be a number or an initialiser (zeros, ones, constant(v), normal(mean, std), "
                                 "uniform(a, b), trunc_normal(mean, std, a, b), kaiming_normal(mode)), got %s",
                   kind_name(v.k));
        return false;
    }
    out->kind = INIT_CONSTANT;
    out->arg[0] = value_as_double(&v);
    return true;
}

/* the initialiser of input `slot` (a parameter) of node id */
static void set_param_init(Graph *g, int id, int slot, const InitSpec *spec) {
    Param *p = &g->params[g->nodes[g->nodes[id].in[slot]].a.param.index];
    p->init = spec->kind;
    memcpy(p->init_arg, spec->arg, sizeof p->init_arg);
}

Value op_with_init(Elab *e, Frame *f, const AstExpr *call, Value (*op)(Elab *, Frame *, const AstExpr *)) {
    static const char *const keys[] = {"init", "bias_init"};
    AstArg *kept = xmalloc((size_t)(call->v.call.n_args + 1) * sizeof *kept);
    const AstArg *found[2];
    AstExpr rest = call_without_keys(call, keys, 2, kept, found);
    InitSpec spec[2];
    bool ok = true;
    for (int i = 0; i < 2; i++)
        if (found[i]) ok = eval_init_spec(e, f, found[i]->value, &spec[i]) && ok;
    Value r = op(e, f, &rest);
    free(kept);
    if (!ok || r.k != V_TENSOR) return ok ? r : VERR;
    if (found[1] && e->g->nodes[r.u.tensor].n_in < 3) {
        diag_error(e->d, found[1]->loc, "bias_init on a layer without a bias (bias=true adds one)");
        return VERR;
    }
    for (int i = 0; i < 2; i++)
        if (found[i]) set_param_init(e->g, r.u.tensor, 1 + i, &spec[i]);
    return r;
}

/* param(shape, init=1.0): shape an int C (PyTorch [C]) or [C] or [C, H, W] */
Value op_param(Elab *e, Frame *f, const AstExpr *call) {
    static const char *const keys[] = {"init"};
    static const ArgSpec spec[] = {{"shape", true}};
    AstArg *kept = xmalloc((size_t)(call->v.call.n_args + 1) * sizeof *kept);
    const AstArg *init_arg[1];
    AstExpr rest = call_without_keys(call, keys, 1, kept, init_arg);
    Args a;
    bool ok = bind_args(e, f, &rest, spec, 1, &a);
    free(kept);
    InitSpec init = {.kind = INIT_ONES};
    if (init_arg[0]) ok = eval_init_spec(e, f, init_arg[0]->value, &init) && ok;
    if (!ok) return VERR;
    int64_t shape[3];
    int rank = 0;
    const Value *sv = &a.v[0];
    if (sv->k == V_LIST) {
        rank = sv->u.list.n;
        if (rank != 1 && rank != 3) {
            diag_error(e->d, a.loc[0], "param shape must be [C] or [C, H, W] (PyTorch's order), got %d dimensions", rank);
            return VERR;
        }
        for (int i = 0; i < rank; i++)
            if (!to_int(e->d, sv->u.list.items[i], a.loc[0], "param shape", &shape[i])) return VERR;
    } else {
        rank = 1;
        if (!to_int(e->d, *sv, a.loc[0], "param shape", &shape[0])) return VERR;
    }
    char *name = new_layer_name(e, f, call, "param");
    if (!name) return VERR;
    Error err = {0};
    int id = graph_param_value(e->g, name, rank, shape, &init, call->v.call.callee_loc, &err);
    free(name);
    return op_result(e, id, &err);
}

/* ---- channel slices ------------------------------------------------------------------- */

Value tensor_channel_slice(Elab *e, int x, int64_t lo, int64_t hi, SrcLoc loc) {
    const Node *n = &e->g->nodes[x];
    int64_t C = n->rank == 3 ? n->dim[2] : n->dim[0];
    /* Python's slice rules, as lists have them: negative counts from the end, clamped */
    if (lo < 0) lo += C;
    if (hi < 0) hi += C;
    lo = lo < 0 ? 0 : lo > C ? C : lo;
    hi = hi < lo ? lo : hi > C ? C : hi;
    Error err = {0};
    return op_result(e, graph_channel_slice(e->g, x, lo, hi - lo, loc, &err), &err);
}

/* split(x, sizes): torch.split along channels; sizes a list of channel
 * counts summing to C, or one int (chunks of that size, the last smaller) */
Value op_split(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"sizes", true}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1;
    if (!to_tensor(e->d, a.v[0], a.loc[0], "split input", &x)) return VERR;
    const Node *n = &e->g->nodes[x];
    int64_t C = n->rank == 3 ? n->dim[2] : n->dim[0];
    int64_t sizes_buf[1] = {0}, *sizes = sizes_buf, count = 1;
    if (a.v[1].k == V_LIST) {
        count = a.v[1].u.list.n;
        if (count < 1) {
            diag_error(e->d, a.loc[1], "split needs at least one size");
            return VERR;
        }
        sizes = xmalloc((size_t)count * sizeof *sizes);
        int64_t total = 0;
        bool ok = true;
        for (int64_t i = 0; i < count && ok; i++) {
            ok = to_int(e->d, a.v[1].u.list.items[i], a.loc[1], "split size", &sizes[i]);
            if (ok && sizes[i] <= 0) {
                diag_error(e->d, a.loc[1], "split sizes must be positive, got %lld", (long long)sizes[i]);
                ok = false;
            }
            total += ok ? sizes[i] : 0;
        }
        if (ok && total != C) {
            diag_error(e->d, a.loc[1], "split sizes add up to %lld, but the input has %lld channels", (long long)total,
                       (long long)C);
            ok = false;
        }
        if (!ok) {
            free(sizes);
            return VERR;
        }
    } else {
        int chunk;
        if (!to_int_range(e->d, a.v[1], a.loc[1], "split size", 1, INT32_MAX, &chunk)) return VERR;
        sizes_buf[0] = chunk;
        count = (C + chunk - 1) / chunk;
    }
    Value r = list_value(e, (int)count);
    for (int64_t i = 0, start = 0; i < count && r.k != V_ERR; i++) {
        int64_t size = sizes == sizes_buf ? (start + sizes_buf[0] > C ? C - start : sizes_buf[0]) : sizes[i];
        r.u.list.items[i] = tensor_channel_slice(e, x, start, start + size, call->v.call.callee_loc);
        if (r.u.list.items[i].k == V_ERR) r = VERR;
        start += size;
    }
    if (sizes != sizes_buf) free(sizes);
    return r;
}

/* channel_shuffle(x, groups) */
Value op_channel_shuffle(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"groups", true}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1, groups = 1;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], "channel_shuffle input", &x);
    ok = to_int_range(e->d, a.v[1], a.loc[1], "channel_shuffle groups", 1, INT32_MAX, &groups) && ok;
    if (!ok) return VERR;
    Error err = {0};
    int id = graph_channel_shuffle(e->g, x, groups, call->v.call.callee_loc, &err);
    name_plain_node(e, f, call, id);
    return op_result(e, id, &err);
}

/* groupnorm(x, groups, eps=1e-5) and layernorm(x, eps=1e-5): PyTorch's
 * GroupNorm and LayerNorm's eps */
Value op_norm(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec gn_spec[] = {{"x", true}, {"groups", true}, {"eps", false}};
    static const ArgSpec ln_spec[] = {{"x", true}, {"eps", false}};
    bool gn = op == OP_GROUPNORM;
    Args a;
    if (!bind_args(e, f, call, gn ? gn_spec : ln_spec, gn ? 3 : 2, &a)) return VERR;
    int x = -1, groups = 1, eps_slot = gn ? 2 : 1;
    double eps = 1e-5;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], gn ? "groupnorm input" : "layernorm input", &x);
    if (gn) ok = to_int_range(e->d, a.v[1], a.loc[1], "groupnorm groups", 1, INT32_MAX, &groups) && ok;
    if (a.given[eps_slot]) ok = to_float(e->d, a.v[eps_slot], a.loc[eps_slot], "eps", &eps) && ok;
    if (!ok) return VERR;
    char *name = new_layer_name(e, f, call, gn ? "gn" : "ln");
    if (!name) return VERR;
    Error err = {0};
    int id = graph_norm(e->g, op, name, x, groups, (float)eps, call->v.call.callee_loc, &err);
    free(name);
    return op_result(e, id, &err);
}
