/*
 * ops_table.c — the primitive ops of the network language (conv, batchnorm,
 * linear, relu and the other activations, add, sub, mul, div, pooling,
 * dropout, concat, ...; the newer ones in ops_more.c): each op's name, its
 * argument spec and defaults, and the graph builder it calls. A layer with
 * parameters gets its name from naming.c; shape errors come from graph.c
 * and are reported at the call.
 */
#include "elaborate_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const elaborate_op_names[] = {
    "conv", "batchnorm", "relu", "sigmoid", "add", "mul", "maxpool", "avgpool",
    "global_avgpool", "flatten", "dropout", "linear", "concat", "sub", "div",
    "silu", "gelu", "hardswish", "hardsigmoid", "relu6", "tanh", "leaky_relu", "elu", "drop_path", "global_maxpool",
    "param", "split", "channel_shuffle", "groupnorm", "layernorm", NULL,
};

/* The graph op of each name in elaborate_op_names, in the same order. */
static const OpKind op_kinds[] = {
    OP_CONV2D, OP_BATCHNORM, OP_RELU, OP_SIGMOID, OP_ADD, OP_MUL, OP_MAXPOOL, OP_AVGPOOL,
    OP_GLOBAL_AVGPOOL, OP_FLATTEN, OP_DROPOUT, OP_LINEAR, OP_CONCAT, OP_SUB, OP_DIV,
    OP_SILU, OP_GELU, OP_HARDSWISH, OP_HARDSIGMOID, OP_RELU6, OP_TANH, OP_LEAKY_RELU, OP_ELU, OP_DROP_PATH, OP_GLOBAL_MAXPOOL,
    OP_PARAM_VALUE, OP_CHANNEL_SLICE, OP_CHANNEL_SHUFFLE, OP_GROUPNORM, OP_LAYERNORM,
};
_Static_assert(sizeof op_kinds / sizeof op_kinds[0] + 1 == sizeof elaborate_op_names / sizeof elaborate_op_names[0],
               "one OpKind per op name");

/* A graph builder's result: its node, or its error reported where it points.
 * Inside a block the op's line is shared by every call of the block, so a
 * note says which call it was: the innermost call site, and the scope its
 * layers are named under (the path `rxc summary` shows). */
Value op_result(Elab *e, int id, const Error *err) {
    if (id >= 0) return vtensor(id);
    diag_error(e->d, err->loc, "%s", err->msg);
    if (e->depth > 0) {
        const char *block = e->stack[e->depth - 1]->decl->name;
        SrcLoc site = e->call_sites[e->depth - 1];
        if (e->scope[0]) diag_note(e->d, site, "in block %s, called as `%s`", block, e->scope);
        else if (e->depth > 1) diag_note(e->d, site, "in block %s, called from block %s", block,
                                         e->stack[e->depth - 2]->decl->name);
        else diag_note(e->d, site, "in block %s, called here", block);
    }
    return VERR;
}

static Value op_conv(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true},       {"out", true},     {"k", true},     {"stride", false},
                                   {"padding", false}, {"groups", false}, {"bias", false}, {"dilation", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 8, &a)) return VERR;
    int x = -1, out = 0, k[2] = {0, 0}, s[2] = {1, 1}, p[2] = {0, 0}, d[2] = {1, 1}, groups = 1;
    bool bias = false;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], "conv input", &x);
    ok = to_int_range(e->d, a.v[1], a.loc[1], "conv output channels", 1, INT32_MAX, &out) && ok;
    ok = to_pair(e->d, a.v[2], a.loc[2], "conv kernel size", 1, k) && ok;
    if (a.given[3]) ok = to_pair(e->d, a.v[3], a.loc[3], "conv stride", 1, s) && ok;
    if (a.given[7]) ok = to_pair(e->d, a.v[7], a.loc[7], "conv dilation", 1, d) && ok;
    if (a.given[4]) ok = to_pair(e->d, a.v[4], a.loc[4], "conv padding", 0, p) && ok;
    else if (ok) p[0] = d[0] * (k[0] / 2), p[1] = d[1] * (k[1] / 2); /* "same" for odd k, dilated or not */
    if (a.given[5]) ok = to_int_range(e->d, a.v[5], a.loc[5], "conv groups", 1, INT32_MAX, &groups) && ok;
    if (a.given[6]) ok = to_bool(e->d, a.v[6], a.loc[6], "conv bias", &bias) && ok;
    if (!ok) return VERR;
    char *name = new_layer_name(e, f, call, "conv");
    if (!name) return VERR;
    Error err = {0};
    int id = graph_conv2d_dilated(e->g, name, x, out, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], groups, bias,
                                  e->conv_init, call->v.call.callee_loc, &err);
    free(name);
    return op_result(e, id, &err);
}

static Value op_batchnorm(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"eps", false}, {"momentum", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 3, &a)) return VERR;
    int x = -1;
    double eps = 1e-5, momentum = 0.1;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], "batchnorm input", &x);
    if (a.given[1]) ok = to_float(e->d, a.v[1], a.loc[1], "batchnorm eps", &eps) && ok;
    if (a.given[2]) ok = to_float(e->d, a.v[2], a.loc[2], "batchnorm momentum", &momentum) && ok;
    if (!ok) return VERR;
    char *name = new_layer_name(e, f, call, "bn");
    if (!name) return VERR;
    Error err = {0};
    int id = graph_batchnorm(e->g, name, x, (float)eps, (float)momentum, call->v.call.callee_loc, &err);
    free(name);
    return op_result(e, id, &err);
}

static Value op_linear(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"out", true}, {"bias", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 3, &a)) return VERR;
    int x = -1, out = 0;
    bool bias = true;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], "linear input", &x);
    ok = to_int_range(e->d, a.v[1], a.loc[1], "linear output features", 1, INT32_MAX, &out) && ok;
    if (a.given[2]) ok = to_bool(e->d, a.v[2], a.loc[2], "linear bias", &bias) && ok;
    if (!ok) return VERR;
    Error err = {0};
    const Node *in = &e->g->nodes[x];
    if (in->rank == 3 && in->dim[0] == 1 && in->dim[1] == 1) {
        /* A {1,1,C} map (after global_avgpool) is flattened implicitly. */
        x = graph_unary(e->g, OP_FLATTEN, x, call->v.call.callee_loc, &err);
        if (x < 0) return op_result(e, x, &err);
    }
    char *name = new_layer_name(e, f, call, "fc");
    if (!name) return VERR;
    InitKind init = INIT_PYTORCH_DEFAULT; /* torchvision's ResNets keep nn.Linear's default too */
    int id = graph_linear(e->g, name, x, out, bias, init, call->v.call.callee_loc, &err);
    free(name);
    return op_result(e, id, &err);
}

static Value op_unary(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"x", true}};
    Args a;
    if (!bind_args(e, f, call, spec, 1, &a)) return VERR;
    int x = -1;
    char what[64];
    snprintf(what, sizeof what, "%s input", call->v.call.callee);
    if (!to_tensor(e->d, a.v[0], a.loc[0], what, &x)) return VERR;
    Error err = {0};
    int id = graph_unary(e->g, op, x, call->v.call.callee_loc, &err);
    name_plain_node(e, f, call, id);
    return op_result(e, id, &err);
}

Value tensor_binary(Elab *e, OpKind op, int a, int b, SrcLoc loc) {
    Error err = {0};
    return op_result(e, graph_binary(e->g, op, a, b, loc, &err), &err);
}

static Value tensor_affine(Elab *e, int x, double scale, double shift, SrcLoc loc) {
    Error err = {0};
    return op_result(e, graph_affine(e->g, x, scale, shift, loc, &err), &err);
}

Value tensor_negate(Elab *e, int x, SrcLoc loc) { return tensor_affine(e, x, -1, 0, loc); }

/* tensor op number or number op tensor, as x * scale + shift */
static Value tensor_number(Elab *e, AstBinOp op, int x, double s, bool tensor_first, SrcLoc loc) {
    switch (op) {
    case BIN_ADD: return tensor_affine(e, x, 1, s, loc);
    case BIN_SUB: return tensor_first ? tensor_affine(e, x, 1, -s, loc) : tensor_affine(e, x, -1, s, loc);
    case BIN_MUL: return tensor_affine(e, x, s, 0, loc);
    case BIN_DIV:
        if (!tensor_first) {
            diag_error(e->d, loc, "a number divided by a tensor is not supported (tensor / number and tensor / tensor are)");
            return VERR;
        }
        if (s == 0) {
            diag_error(e->d, loc, "division by zero");
            return VERR;
        }
        return tensor_affine(e, x, 1 / s, 0, loc);
    default: break;
    }
    diag_error(e->d, loc, "'%s' is not defined on tensors (only + - * /)", ast_binop_text(op));
    return VERR;
}

Value tensor_arith(Elab *e, AstBinOp op, Value a, Value b, SrcLoc loc) {
    static const OpKind ops[] = {[BIN_ADD] = OP_ADD, [BIN_SUB] = OP_SUB, [BIN_MUL] = OP_MUL, [BIN_DIV] = OP_DIV};
    bool arith = op == BIN_ADD || op == BIN_SUB || op == BIN_MUL || op == BIN_DIV;
    if (!arith) {
        diag_error(e->d, loc, "'%s' is not defined on tensors (only + - * /)", ast_binop_text(op));
        return VERR;
    }
    if (a.k == V_TENSOR && b.k == V_TENSOR) return tensor_binary(e, ops[op], a.u.tensor, b.u.tensor, loc);
    bool tensor_first = a.k == V_TENSOR;
    const Value *num = tensor_first ? &b : &a;
    if (num->k != V_INT && num->k != V_FLOAT) {
        diag_error(e->d, loc, "'%s' of %s and %s: the other side of a tensor must be a tensor or a number",
                   ast_binop_text(op), kind_name(a.k), kind_name(b.k));
        return VERR;
    }
    return tensor_number(e, op, tensor_first ? a.u.tensor : b.u.tensor, value_as_double(num), tensor_first, loc);
}

static Value op_binary(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"a", true}, {"b", true}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1, y = -1;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], "first operand", &x);
    ok = to_tensor(e->d, a.v[1], a.loc[1], "second operand", &y) && ok;
    if (!ok) return VERR;
    Value r = tensor_binary(e, op, x, y, call->v.call.callee_loc);
    if (r.k == V_TENSOR) name_plain_node(e, f, call, r.u.tensor);
    return r;
}

/* gelu(x, approximate="none"|"tanh"), as torch.nn.functional.gelu */
static Value op_gelu(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"approximate", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1;
    OpKind op = OP_GELU;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], "gelu input", &x);
    if (a.given[1] && a.v[1].k != V_ERR) {
        if (a.v[1].k == V_STR && !strcmp(a.v[1].u.s, "tanh")) op = OP_GELU_TANH;
        else if (!(a.v[1].k == V_STR && !strcmp(a.v[1].u.s, "none"))) {
            diag_error(e->d, a.loc[1], "gelu approximate must be \"none\" or \"tanh\"");
            ok = false;
        }
    }
    if (!ok) return VERR;
    Error err = {0};
    int id = graph_unary(e->g, op, x, call->v.call.callee_loc, &err);
    name_plain_node(e, f, call, id);
    return op_result(e, id, &err);
}

/* leaky_relu(x, slope=0.01) and elu(x, alpha=1.0), PyTorch's defaults */
static Value op_param_activation(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    bool leaky = op == OP_LEAKY_RELU;
    static const ArgSpec leaky_spec[] = {{"x", true}, {"slope", false}};
    static const ArgSpec elu_spec[] = {{"x", true}, {"alpha", false}};
    Args a;
    if (!bind_args(e, f, call, leaky ? leaky_spec : elu_spec, 2, &a)) return VERR;
    int x = -1;
    double alpha = leaky ? 0.01 : 1.0;
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], leaky ? "leaky_relu input" : "elu input", &x);
    if (a.given[1]) ok = to_float(e->d, a.v[1], a.loc[1], leaky ? "leaky_relu slope" : "elu alpha", &alpha) && ok;
    if (!ok) return VERR;
    Error err = {0};
    int id = graph_activation(e->g, op, x, (float)alpha, call->v.call.callee_loc, &err);
    name_plain_node(e, f, call, id);
    return op_result(e, id, &err);
}

static Value op_pool(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"x", true},       {"k", true},         {"stride", false},
                                   {"padding", false}, {"ceil_mode", false}, {"count_include_pad", false}};
    int n_spec = op == OP_AVGPOOL ? 6 : 5;
    Args a;
    if (!bind_args(e, f, call, spec, n_spec, &a)) return VERR;
    int x = -1, k[2] = {0, 0}, s[2] = {0, 0}, p[2] = {0, 0};
    bool ceil_mode = false, count_include_pad = true;
    const char *nm = call->v.call.callee;
    char what[64];
    snprintf(what, sizeof what, "%s input", nm);
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], what, &x);
    snprintf(what, sizeof what, "%s kernel size", nm);
    ok = to_pair(e->d, a.v[1], a.loc[1], what, 1, k) && ok;
    if (a.given[2]) {
        snprintf(what, sizeof what, "%s stride", nm);
        ok = to_pair(e->d, a.v[2], a.loc[2], what, 1, s) && ok;
    } else if (ok) {
        s[0] = k[0], s[1] = k[1];
    }
    if (a.given[3]) {
        snprintf(what, sizeof what, "%s padding", nm);
        ok = to_pair(e->d, a.v[3], a.loc[3], what, 0, p) && ok;
    }
    if (a.given[4]) ok = to_bool(e->d, a.v[4], a.loc[4], "ceil_mode", &ceil_mode) && ok;
    if (n_spec > 5 && a.given[5]) ok = to_bool(e->d, a.v[5], a.loc[5], "count_include_pad", &count_include_pad) && ok;
    if (!ok) return VERR;
    PoolAttr pa = {.kh = k[0], .kw = k[1], .sh = s[0], .sw = s[1], .ph = p[0], .pw = p[1],
                   .ceil_mode = ceil_mode, .count_include_pad = count_include_pad};
    Error err = {0};
    int id = graph_pool(e->g, op, x, &pa, call->v.call.callee_loc, &err);
    name_plain_node(e, f, call, id);
    return op_result(e, id, &err);
}

/* dropout(x, p=0.5) and drop_path(x, p=0.5) */
static Value op_dropout(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"x", true}, {"p", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1;
    double p = 0.5;
    char input_what[32], p_what[32];
    snprintf(input_what, sizeof input_what, "%s input", op_name(op));
    snprintf(p_what, sizeof p_what, "%s probability", op_name(op));
    bool ok = to_tensor(e->d, a.v[0], a.loc[0], input_what, &x);
    if (a.given[1]) ok = to_float(e->d, a.v[1], a.loc[1], p_what, &p) && ok;
    if (!ok) return VERR;
    Error err = {0};
    SrcLoc loc = a.given[1] ? a.loc[1] : call->v.call.callee_loc;
    int id = op == OP_DROPOUT ? graph_dropout(e->g, x, (float)p, loc, &err) : graph_drop_path(e->g, x, (float)p, loc, &err);
    if (id < 0) return op_result(e, id, &err);
    name_plain_node(e, f, call, id);
    return vtensor(id);
}

static Value op_concat(Elab *e, Frame *f, const AstExpr *call) {
    int n = call->v.call.n_args;
    Value *vals = xmalloc((size_t)(n ? n : 1) * sizeof *vals);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const AstArg *arg = &call->v.call.args[i];
        vals[i] = eval_expr(e, f, arg->value);
        if (arg->key) {
            diag_error(e->d, arg->loc, "concat takes tensors or one list of tensors, not '%s='", arg->key);
            ok = false;
        }
        if (vals[i].k == V_ERR) ok = false;
    }
    Value r = VERR;
    if (ok) {
        const Value *items = vals;
        int count = n;
        SrcLoc loc = n ? call->v.call.args[0].loc : call->v.call.callee_loc;
        if (n == 1 && vals[0].k == V_LIST) {
            items = vals[0].u.list.items;
            count = vals[0].u.list.n;
        }
        int *ids = xmalloc((size_t)(count ? count : 1) * sizeof *ids);
        for (int i = 0; i < count && ok; i++) {
            SrcLoc li = n == count ? call->v.call.args[i].loc : loc;
            ok = to_tensor(e->d, items[i], li, "concat input", &ids[i]);
        }
        if (ok && count == 1) {
            r = items[0]; /* the concatenation of one map is that map, as torch.cat's */
        } else if (ok) {
            Error err = {0};
            int id = graph_concat(e->g, ids, count, call->v.call.callee_loc, &err);
            name_plain_node(e, f, call, id);
            r = op_result(e, id, &err);
        }
        free(ids);
    }
    free(vals);
    return r;
}


bool call_primitive_op(Elab *e, Frame *f, const AstExpr *call, Value *out) {
    int i = 0;
    while (elaborate_op_names[i] && strcmp(elaborate_op_names[i], call->v.call.callee) != 0) i++;
    if (!elaborate_op_names[i]) return false;
    OpKind op = op_kinds[i];
    switch (op) {
    case OP_CONV2D: *out = op_with_init(e, f, call, op_conv); break;
    case OP_BATCHNORM: *out = op_batchnorm(e, f, call); break;
    case OP_LINEAR: *out = op_with_init(e, f, call, op_linear); break;
    case OP_ADD:
    case OP_MUL:
    case OP_SUB:
    case OP_DIV: *out = op_binary(e, f, call, op); break;
    case OP_GELU: *out = op_gelu(e, f, call); break;
    case OP_LEAKY_RELU:
    case OP_ELU: *out = op_param_activation(e, f, call, op); break;
    case OP_MAXPOOL:
    case OP_AVGPOOL: *out = op_pool(e, f, call, op); break;
    case OP_DROPOUT:
    case OP_DROP_PATH: *out = op_dropout(e, f, call, op); break;
    case OP_CONCAT: *out = op_concat(e, f, call); break;
    case OP_PARAM_VALUE: *out = op_param(e, f, call); break;
    case OP_CHANNEL_SLICE: *out = op_split(e, f, call); break;
    case OP_CHANNEL_SHUFFLE: *out = op_channel_shuffle(e, f, call); break;
    case OP_GROUPNORM:
    case OP_LAYERNORM: *out = op_norm(e, f, call, op); break;
    case OP_RELU:
    case OP_SIGMOID:
    case OP_GLOBAL_AVGPOOL:
    case OP_FLATTEN:
    default: *out = op_unary(e, f, call, op); break;
    }
    return true;
}
