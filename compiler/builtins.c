/*
 * builtins.c — the builtin functions of the network language (len, min,
 * max, sum, int, float, channels, spatial, range): each name, how many
 * arguments it takes, and the function that computes its value. Builtins
 * take positional arguments only and never add to the graph.
 */
#include "elaborate_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The evaluated arguments of one builtin call. */
typedef struct BuiltinArgs {
    const char *name;     /* the builtin called */
    SrcLoc loc;           /* the callee */
    SrcLoc first_loc;     /* the first argument, or the callee without one */
    const AstExpr *call;
    const Value *v;
    int n;
} BuiltinArgs;

typedef Value (*BuiltinFn)(Elab *e, const BuiltinArgs *a);

/* min, max and sum of numbers: min and max of their arguments or of one
 * list; sum of one list. Ints stay ints (sum checks for overflow). */
static Value builtin_min_max_sum(Elab *e, const BuiltinArgs *a) {
    const char *nm = a->name;
    const Value *items = a->v;
    int count = a->n;
    if (a->n == 1 && a->v[0].k == V_LIST) {
        items = a->v[0].u.list.items;
        count = a->v[0].u.list.n;
    } else if (!strcmp(nm, "sum")) {
        diag_error(e->d, a->loc, "sum takes one list");
        return VERR;
    }
    if (count == 0 && strcmp(nm, "sum") != 0) {
        diag_error(e->d, a->loc, "%s of nothing", nm);
        return VERR;
    }
    bool all_int = true;
    for (int i = 0; i < count; i++) {
        if (items[i].k != V_INT && items[i].k != V_FLOAT) {
            diag_error(e->d, a->first_loc, "%s takes numbers, got %s", nm, kind_name(items[i].k));
            return VERR;
        }
        if (items[i].k != V_INT) all_int = false;
    }
    if (!strcmp(nm, "sum")) {
        if (all_int) {
            int64_t s = 0;
            for (int i = 0; i < count; i++)
                if (__builtin_add_overflow(s, items[i].u.i, &s)) {
                    diag_error(e->d, a->loc, "integer overflow in sum");
                    return VERR;
                }
            return vint(s);
        }
        double s = 0;
        for (int i = 0; i < count; i++) s += value_as_double(&items[i]);
        return vfloat(s);
    }
    bool want_max = !strcmp(nm, "max");
    Value best = items[0];
    for (int i = 1; i < count; i++) {
        double x = value_as_double(&best), y = value_as_double(&items[i]);
        if (want_max ? y > x : y < x) best = items[i];
    }
    return best;
}

static Value builtin_len(Elab *e, const BuiltinArgs *a) {
    const Value *v = &a->v[0];
    if (v->k == V_LIST) return vint(v->u.list.n);
    if (v->k == V_STR) return vint((int64_t)strlen(v->u.s));
    diag_error(e->d, a->first_loc, "len takes a list or a string, got %s", kind_name(v->k));
    return VERR;
}

/* int() truncates towards zero, as Python's. */
static Value builtin_int(Elab *e, const BuiltinArgs *a) {
    const Value *v = &a->v[0];
    if (v->k == V_INT) return *v;
    if (v->k == V_BOOL) return vint(v->u.b);
    if (v->k == V_FLOAT) {
        if (!(fabs(v->u.f) < 9e18)) {
            diag_error(e->d, a->first_loc, "int() of %g overflows", v->u.f);
            return VERR;
        }
        return vint((int64_t)v->u.f);
    }
    diag_error(e->d, a->first_loc, "int takes a number, got %s", kind_name(v->k));
    return VERR;
}

static Value builtin_float(Elab *e, const BuiltinArgs *a) {
    double d;
    if (!to_float(e->d, a->v[0], a->first_loc, "the argument of float", &d)) return VERR;
    return vfloat(d);
}

/* channels(t): C of a {H,W,C} map or the length of a vector; spatial(t):
 * [H, W] of a map. */
static Value builtin_shape(Elab *e, const BuiltinArgs *a) {
    int t;
    char what[64];
    snprintf(what, sizeof what, "the argument of %s", a->name);
    if (!to_tensor(e->d, a->v[0], a->first_loc, what, &t)) return VERR;
    const Node *node = &e->g->nodes[t];
    if (!strcmp(a->name, "channels")) return vint(node->rank == 3 ? node->dim[2] : node->dim[0]);
    if (node->rank != 3) {
        diag_error(e->d, a->first_loc, "spatial needs a feature map, got a vector");
        return VERR;
    }
    Value l = list_value(e, 2);
    if (l.k == V_ERR) return VERR;
    l.u.list.items[0] = vint(node->dim[0]);
    l.u.list.items[1] = vint(node->dim[1]);
    return l;
}

/* range(lo, hi): the ints lo, lo+1, ..., hi-1. */
static Value builtin_range(Elab *e, const BuiltinArgs *a) {
    int64_t lo, hi;
    bool ok = to_int(e->d, a->v[0], a->first_loc, "range start", &lo);
    ok = to_int(e->d, a->v[1], a->call->v.call.args[1].loc, "range end", &hi) && ok;
    if (!ok) return VERR;
    int64_t count = 0;
    if (hi > lo && __builtin_sub_overflow(hi, lo, &count)) count = INT64_MAX;
    if (count > MAX_LIST) {
        diag_error(e->d, a->loc, "range of %lld elements is too long", (long long)count);
        return VERR;
    }
    Value l = list_value(e, (int)count);
    if (l.k == V_ERR) return VERR;
    for (int64_t i = 0; i < count; i++) l.u.list.items[i] = vint(lo + i);
    return l;
}

const char *const elaborate_builtin_names[] = {
    "len", "min", "max", "sum", "int", "float", "channels", "spatial", "range", NULL,
};

/* The function and argument count of each name in elaborate_builtin_names,
 * in the same order; arity 0: any number (the function checks). */
static const struct {
    BuiltinFn fn;
    int arity;
} builtins[] = {
    {builtin_len, 1}, {builtin_min_max_sum, 0}, {builtin_min_max_sum, 0}, {builtin_min_max_sum, 0},
    {builtin_int, 1}, {builtin_float, 1},       {builtin_shape, 1},       {builtin_shape, 1},
    {builtin_range, 2},
};
_Static_assert(sizeof builtins / sizeof builtins[0] + 1 ==
                   sizeof elaborate_builtin_names / sizeof elaborate_builtin_names[0],
               "one function per builtin name");

/* Evaluates the arguments (all of them, so names count as used) and calls
 * builtin i. */
static Value builtin_call(Elab *e, Frame *f, const AstExpr *call, int i) {
    BuiltinArgs a = {.name = call->v.call.callee, .loc = call->v.call.callee_loc, .call = call,
                     .n = call->v.call.n_args};
    Value vals[MAX_ARGS];
    bool ok = true;
    if (a.n > MAX_ARGS) {
        diag_error(e->d, a.loc, "too many arguments to %s", a.name);
        return VERR;
    }
    for (int k = 0; k < a.n; k++) {
        const AstArg *arg = &call->v.call.args[k];
        vals[k] = eval_expr(e, f, arg->value);
        if (vals[k].k == V_ERR) ok = false;
        if (arg->key) {
            diag_error(e->d, arg->loc, "%s takes no keyword arguments", a.name);
            ok = false;
        }
    }
    if (!ok) return VERR;
    a.v = vals;
    a.first_loc = a.n ? call->v.call.args[0].loc : a.loc;
    int arity = builtins[i].arity;
    if (arity && a.n != arity) {
        diag_error(e->d, a.loc, "%s takes %d argument%s, got %d", a.name, arity, arity == 1 ? "" : "s", a.n);
        return VERR;
    }
    return builtins[i].fn(e, &a);
}

bool call_builtin(Elab *e, Frame *f, const AstExpr *call, Value *out) {
    const char *nm = call->v.call.callee;
    int i = 0;
    while (elaborate_builtin_names[i] && strcmp(elaborate_builtin_names[i], nm) != 0) i++;
    if (!elaborate_builtin_names[i]) return false;
    if (call->v.call.label) diag_error(e->d, call->v.call.label->loc, "a label names a layer; %s is a builtin", nm);
    *out = builtin_call(e, f, call, i);
    return true;
}
