/*
 * graph.c — building and querying the graph IR (see graph.h).
 *
 * Owns: shape inference and validation for every primitive op (with
 * PyTorch's output-size arithmetic), parameter creation with PyTorch's
 * names, layouts, fans and default initialisers, and the parameter and
 * multiply-accumulate counts. Builders never exit: a mistake returns -1 with
 * a one-line message located at the op (error_at), which the elaborator
 * reports.
 *
 * OP_PARAM nodes carry the flat shape {numel} (rank 1); the real PyTorch
 * shape lives in the Param entry the node points to.
 */
#include "graph.h"
#include "graph_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A hash table from parameter name to index (see index_rebuild). */
struct GraphParamIndex {
    int *slots; /* param index + 1; 0 = empty */
    int cap, n;
};


Graph *graph_new(const char *name) {
    Graph *g = xcalloc(1, sizeof *g);
    g->name = xstrdup(name ? name : "net");
    g->input = -1;
    g->output = -1;
    return g;
}

void graph_free(Graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].name);
    }
    for (int i = 0; i < g->n_params; i++) free(g->params[i].name);
    free(g->nodes);
    free(g->params);
    free(g->name);
    if (g->param_index) free(g->param_index->slots);
    free(g->param_index);
    free(g);
}

int add_node(Graph *g, OpKind op, const int *in, int n_in, const char *name, SrcLoc loc) {
    GROW(g->nodes, g->cap_nodes, g->n_nodes + 1);
    int id = g->n_nodes++;
    Node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    if (n_in > 0) {
        n->in = xmalloc((size_t)n_in * sizeof *n->in);
        memcpy(n->in, in, (size_t)n_in * sizeof *n->in);
    }
    n->name = name ? xstrdup(name) : NULL;
    n->loc = loc;
    return id;
}

bool valid_node(const Graph *g, int id) { return id >= 0 && id < g->n_nodes; }

int64_t checked_product(const int64_t *dims, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0) return -1;
        if (__builtin_mul_overflow(p, dims[i], &p)) return -1;
    }
    return p;
}

const char *shape_str(const Node *n, char *buf, size_t len) {
    if (n->rank == 3)
        snprintf(buf, len, "%lldx%lldx%lld", (long long)n->dim[2], (long long)n->dim[0], (long long)n->dim[1]);
    else
        snprintf(buf, len, "[%lld]", (long long)n->dim[0]);
    return buf;
}

/* A hash table from parameter name to index, so that lookups (and the
 * duplicate check on every new parameter) stay O(1) for graphs with
 * thousands of parameters. It describes params[0..n) and is rebuilt when the
 * table was changed behind its back; lookups fall back to a scan then. */

static uint64_t name_hash(const char *s) { return fnv1a64(s, strlen(s), FNV1A64_INIT); }

static void index_put(struct GraphParamIndex *ix, const Graph *g, int index) {
    uint64_t mask = (uint64_t)ix->cap - 1, h = name_hash(g->params[index].name) & mask;
    while (ix->slots[h]) h = (h + 1) & mask;
    ix->slots[h] = index + 1;
}

static void index_rebuild(Graph *g) {
    struct GraphParamIndex *ix = g->param_index;
    if (!ix) ix = g->param_index = xcalloc(1, sizeof *ix);
    int cap = 64;
    while (cap < 2 * (g->n_params + 1)) cap *= 2;
    free(ix->slots);
    ix->slots = xcalloc((size_t)cap, sizeof *ix->slots);
    ix->cap = cap;
    for (int i = 0; i < g->n_params; i++) index_put(ix, g, i);
    ix->n = g->n_params;
}

/* Records params[n_params - 1], just appended. */
static void index_added(Graph *g) {
    struct GraphParamIndex *ix = g->param_index;
    if (!ix || ix->n != g->n_params - 1 || 2 * (g->n_params + 1) > ix->cap) {
        index_rebuild(g);
        return;
    }
    index_put(ix, g, g->n_params - 1);
    ix->n = g->n_params;
}

static bool param_name_taken(const Graph *g, const char *name) { return graph_find_param(g, name) >= 0; }

int add_param(Graph *g, const char *layer, const char *suffix, ParamRole role, int rank,
                     const int64_t *dim, bool trainable, InitKind init, int64_t fan_in, int64_t fan_out,
                     SrcLoc loc, Error *err) {
    char *name = suffix ? xasprintf("%s.%s", layer, suffix) : xstrdup(layer);
    if (param_name_taken(g, name)) {
        error_at(err, loc, "parameter name '%s' is used twice", name);
        free(name);
        return -1;
    }
    int64_t numel = checked_product(dim, rank);
    if (numel < 0) {
        error_at(err, loc, "parameter count overflows ('%s')", name);
        free(name);
        return -1;
    }
    GROW(g->params, g->cap_params, g->n_params + 1);
    int index = g->n_params++;
    Param *p = &g->params[index];
    memset(p, 0, sizeof *p);
    p->name = name;
    p->role = role;
    p->rank = rank;
    for (int i = 0; i < rank; i++) p->dim[i] = dim[i];
    p->numel = numel;
    p->trainable = trainable;
    p->init = init;
    p->fan_in = fan_in;
    p->fan_out = fan_out;
    p->node = -1;
    index_added(g);
    if (trainable) {
        int id = add_node(g, OP_PARAM, NULL, 0, name, loc);
        Node *n = &g->nodes[id];
        n->rank = 1;
        n->dim[0] = numel;
        n->a.param.index = index;
        p->node = id;
    }
    return index;
}

void truncate_graph(Graph *g, int n_nodes, int n_params) {
    for (int i = n_nodes; i < g->n_nodes; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].name);
    }
    for (int i = n_params; i < g->n_params; i++) free(g->params[i].name);
    g->n_nodes = n_nodes;
    g->n_params = n_params;
    if (g->param_index) index_rebuild(g);
}

char *layer_name(const Graph *g, const char *name, const char *op) {
    return name ? xstrdup(name) : xasprintf("%s%d", op, g->n_nodes);
}

int graph_input(Graph *g, int h, int w, int c, SrcLoc loc) {
    if (h <= 0 || w <= 0 || c <= 0) return -1;
    int id = add_node(g, OP_INPUT, NULL, 0, "input", loc);
    Node *n = &g->nodes[id];
    n->rank = 3;
    n->dim[0] = h;
    n->dim[1] = w;
    n->dim[2] = c;
    if (g->input < 0) g->input = id;
    return id;
}

int graph_conv2d(Graph *g, const char *name, int x, int cout, int kh, int kw,
                 int sh, int sw, int ph, int pw, int groups, bool bias,
                 InitKind init, SrcLoc loc, Error *err) {
    return graph_conv2d_dilated(g, name, x, cout, kh, kw, sh, sw, ph, pw, 1, 1, groups, bias, init, loc, err);
}

int graph_conv2d_dilated(Graph *g, const char *name, int x, int cout, int kh, int kw, int sh, int sw, int ph, int pw,
                         int dh, int dw, int groups, bool bias, InitKind init, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "conv2d: invalid input");
    const Node *in = &g->nodes[x];
    char sbuf[80];
    if (in->rank != 3)
        return error_at(err, loc, "conv2d needs a feature map CxHxW, got a vector %s",
                        shape_str(in, sbuf, sizeof sbuf));
    if (cout <= 0) return error_at(err, loc, "conv2d output channels must be positive, got %d", cout);
    if (kh <= 0 || kw <= 0) return error_at(err, loc, "conv2d kernel must be positive, got %dx%d", kh, kw);
    if (sh <= 0 || sw <= 0) return error_at(err, loc, "conv2d stride must be positive, got %dx%d", sh, sw);
    if (ph < 0 || pw < 0) return error_at(err, loc, "conv2d padding must not be negative, got %dx%d", ph, pw);
    if (groups <= 0) return error_at(err, loc, "conv2d groups must be positive, got %d", groups);
    if (dh <= 0 || dw <= 0) return error_at(err, loc, "conv2d dilation must be positive, got %dx%d", dh, dw);
    int64_t H = in->dim[0], W = in->dim[1], C = in->dim[2];
    if (C % groups != 0)
        return error_at(err, loc, "groups (%d) do not divide the input channels (%lld)", groups, (long long)C);
    if (cout % groups != 0)
        return error_at(err, loc, "groups (%d) do not divide the output channels (%d)", groups, cout);
    int64_t padded_h = H + 2 * (int64_t)ph, padded_w = W + 2 * (int64_t)pw;
    /* a dilated kernel spans d*(k-1)+1 input rows, as PyTorch's output size has it */
    int64_t span_h = (int64_t)dh * (kh - 1) + 1, span_w = (int64_t)dw * (kw - 1) + 1;
    if (span_h > padded_h || span_w > padded_w)
        return error_at(err, loc, "conv2d kernel %lldx%lld is larger than its padded input %lldx%lld", (long long)span_h,
                        (long long)span_w, (long long)padded_h, (long long)padded_w);
    int64_t oh = (padded_h - span_h) / sh + 1, ow = (padded_w - span_w) / sw + 1;

    int n_nodes0 = g->n_nodes, n_params0 = g->n_params;
    char *layer = layer_name(g, name, "conv");
    int64_t cin_g = C / groups;
    int64_t wdim[4] = {cout, cin_g, kh, kw};
    int64_t fan_in = cin_g * kh * kw, fan_out = (int64_t)cout * kh * kw;
    int wi = add_param(g, layer, "weight", ROLE_WEIGHT, 4, wdim, true, init, fan_in, fan_out, loc, err);
    int bi = -1;
    if (wi >= 0 && bias) {
        /* torchvision zeroes biases where it re-initialises weights; PyTorch's
         * default draws them from U(-1/sqrt(fan_in), +) of the weight's fan_in. */
        InitKind binit = init == INIT_KAIMING_NORMAL_FAN_OUT ? INIT_ZEROS : init;
        int64_t bdim[1] = {cout};
        bi = add_param(g, layer, "bias", ROLE_BIAS, 1, bdim, true, binit, fan_in, fan_out, loc, err);
    }
    if (wi < 0 || (bias && bi < 0)) {
        free(layer);
        truncate_graph(g, n_nodes0, n_params0);
        return -1;
    }
    int ins[3] = {x, g->params[wi].node, bias ? g->params[bi].node : -1};
    int id = add_node(g, OP_CONV2D, ins, bias ? 3 : 2, layer, loc);
    free(layer);
    Node *n = &g->nodes[id];
    n->rank = 3;
    n->dim[0] = oh;
    n->dim[1] = ow;
    n->dim[2] = cout;
    n->a.conv = (ConvAttr){.kh = kh, .kw = kw, .sh = sh, .sw = sw, .ph = ph, .pw = pw, .groups = groups,
                           .dh = dh, .dw = dw, .cin = (int)C, .cout = cout, .bias = bias};
    return id;
}

int graph_batchnorm(Graph *g, const char *name, int x, float eps, float momentum,
                    SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "batchnorm: invalid input");
    if (!(eps > 0)) return error_at(err, loc, "batchnorm eps must be positive, got %g", (double)eps);
    if (!(momentum >= 0 && momentum <= 1))
        return error_at(err, loc, "batchnorm momentum must be in [0, 1], got %g", (double)momentum);
    const Node *in = &g->nodes[x];
    int64_t C = in->rank == 3 ? in->dim[2] : in->dim[0];
    int64_t cdim[1] = {C};

    int n_nodes0 = g->n_nodes, n_params0 = g->n_params;
    char *layer = layer_name(g, name, "bn");
    /* Created in torchvision's state_dict order: weight, bias, running_mean,
     * running_var, num_batches_tracked. */
    int gi = add_param(g, layer, "weight", ROLE_BN_WEIGHT, 1, cdim, true, INIT_ONES, 0, 0, loc, err);
    int bi = gi < 0 ? -1 : add_param(g, layer, "bias", ROLE_BN_BIAS, 1, cdim, true, INIT_ZEROS, 0, 0, loc, err);
    int mi = bi < 0 ? -1
                    : add_param(g, layer, "running_mean", ROLE_RUNNING_MEAN, 1, cdim, false, INIT_ZEROS, 0, 0, loc,
                                err);
    int vi = mi < 0 ? -1
                    : add_param(g, layer, "running_var", ROLE_RUNNING_VAR, 1, cdim, false, INIT_ONES, 0, 0, loc, err);
    int ti = vi < 0 ? -1
                    : add_param(g, layer, "num_batches_tracked", ROLE_NUM_BATCHES, 0, NULL, false, INIT_ZEROS, 0, 0, loc,
                                err);
    if (ti < 0) {
        free(layer);
        truncate_graph(g, n_nodes0, n_params0);
        return -1;
    }
    int ins[3] = {x, g->params[gi].node, g->params[bi].node};
    int id = add_node(g, OP_BATCHNORM, ins, 3, layer, loc);
    free(layer);
    Node *n = &g->nodes[id];
    const Node *src = &g->nodes[x];
    n->rank = src->rank;
    memcpy(n->dim, src->dim, sizeof n->dim);
    n->a.bn = (BnAttr){.eps = eps, .momentum = momentum, .running_mean = mi, .running_var = vi, .num_batches = ti};
    return id;
}

int graph_unary(Graph *g, OpKind op, int x, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "%s: invalid input", op_name(op));
    const Node *in = &g->nodes[x];
    char sbuf[80];
    int64_t dim[3] = {in->dim[0], in->dim[1], in->dim[2]};
    int rank = in->rank;
    switch (op) {
    case OP_RELU:
    case OP_SIGMOID:
        break;
    case OP_FLATTEN:
        if (rank == 3) {
            int64_t numel = checked_product(dim, 3);
            if (numel < 0 || numel > INT32_MAX) return error_at(err, loc, "flatten: the vector would be too long");
            dim[0] = numel;
            dim[1] = dim[2] = 0;
            rank = 1;
        }
        break;
    case OP_GLOBAL_AVGPOOL:
    case OP_GLOBAL_MAXPOOL:
        if (rank != 3)
            return error_at(err, loc, "%s needs a feature map CxHxW, got a vector %s", op_name(op),
                        shape_str(in, sbuf, sizeof sbuf));
        dim[0] = dim[1] = 1;
        break;
    default:
        if (op_is_pointwise(op) && op != OP_AFFINE && op != OP_LEAKY_RELU && op != OP_ELU) break;
        return error_at(err, loc, "%s is not a unary op", op_name(op));
    }
    int id = add_node(g, op, &x, 1, NULL, loc);
    Node *n = &g->nodes[id];
    n->rank = rank;
    memcpy(n->dim, dim, sizeof n->dim);
    if (op == OP_GLOBAL_MAXPOOL) /* a max-pool whose one window is the whole map: its lowering and first-max gradient */
        n->a.pool = (PoolAttr){.kh = (int)in->dim[0], .kw = (int)in->dim[1], .sh = (int)in->dim[0], .sw = (int)in->dim[1]};
    return id;
}

static bool same_shape(const Node *a, const Node *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

/* b broadcasts over a: per channel, a is {H,W,C} and b is {1,1,C} or {C};
 * per sample, b is {1,1,1} or {1} (one value per sample) and a is larger. */
static bool broadcasts_over(const Node *a, const Node *b) {
    bool b_one = b->rank == 3 ? b->dim[0] == 1 && b->dim[1] == 1 && b->dim[2] == 1 : b->dim[0] == 1;
    if (b_one) return node_numel(a) > 1;
    if (a->rank != 3) return false;
    if (b->rank == 3) return b->dim[0] == 1 && b->dim[1] == 1 && b->dim[2] == a->dim[2];
    return b->dim[0] == a->dim[2];
}

/* A node of x's shape: the elementwise ops of one input. */
static int same_shape_node(Graph *g, OpKind op, int x, SrcLoc loc) {
    int id = add_node(g, op, &x, 1, NULL, loc);
    Node *n = &g->nodes[id];
    const Node *src = &g->nodes[x];
    n->rank = src->rank;
    memcpy(n->dim, src->dim, sizeof n->dim);
    return id;
}

int graph_activation(Graph *g, OpKind op, int x, float alpha, SrcLoc loc, Error *err) {
    if (op != OP_LEAKY_RELU && op != OP_ELU) return error_at(err, loc, "%s has no parameter", op_name(op));
    if (!valid_node(g, x)) return error_at(err, loc, "%s: invalid input", op_name(op));
    if (!isfinite(alpha)) return error_at(err, loc, "%s: the %s must be finite", op_name(op),
                                          op == OP_ELU ? "alpha" : "slope");
    int id = same_shape_node(g, op, x, loc);
    g->nodes[id].a.act.alpha = alpha;
    return id;
}

int graph_affine(Graph *g, int x, double scale, double shift, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "arithmetic: invalid input");
    if (!isfinite(scale) || !isfinite(shift)) return error_at(err, loc, "arithmetic with a number that is not finite");
    int id = same_shape_node(g, OP_AFFINE, x, loc);
    g->nodes[id].a.affine.scale = scale;
    g->nodes[id].a.affine.shift = shift;
    return id;
}

int graph_binary(Graph *g, OpKind op, int a, int b, SrcLoc loc, Error *err) {
    if (op != OP_ADD && op != OP_MUL && op != OP_SUB && op != OP_DIV)
        return error_at(err, loc, "%s is not a binary op", op_name(op));
    if (!valid_node(g, a) || !valid_node(g, b)) return error_at(err, loc, "%s: invalid input", op_name(op));
    const Node *na = &g->nodes[a], *nb = &g->nodes[b];
    char sa[80], sb[80];
    bool a_broadcast = false;
    if (!same_shape(na, nb)) {
        if (broadcasts_over(nb, na) && !broadcasts_over(na, nb)) {
            a_broadcast = true;
        } else if (!broadcasts_over(na, nb)) {
            return error_at(err, loc, "%s of tensors with different shapes %s and %s", op_name(op),
                            shape_str(na, sa, sizeof sa), shape_str(nb, sb, sizeof sb));
        }
    }
    if (a_broadcast && (op == OP_ADD || op == OP_MUL)) {
        /* These ops commute, so the broadcast operand may come first in the
         * text; the node has it second, as it always had. */
        int t = a;
        a = b;
        b = t;
        a_broadcast = false;
    }
    int ins[2] = {a, b};
    int id = add_node(g, op, ins, 2, NULL, loc);
    Node *n = &g->nodes[id];
    const Node *big = &g->nodes[a_broadcast ? b : a];
    n->rank = big->rank;
    memcpy(n->dim, big->dim, sizeof n->dim);
    return id;
}

/* PyTorch's pooling_output_shape: floor or ceil division, and in ceil mode
 * the last window must start inside the input or its left padding. */
static int64_t pool_out(int64_t in, int k, int s, int p, bool ceil_mode) {
    int64_t num = in + 2 * (int64_t)p - (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t q = num >= 0 ? num / s : -((-num + s - 1) / s);
    int64_t out = q + 1;
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

int graph_pool(Graph *g, OpKind op, int x, const PoolAttr *p, SrcLoc loc, Error *err) {
    if (op != OP_MAXPOOL && op != OP_AVGPOOL) return error_at(err, loc, "%s is not a pooling op", op_name(op));
    const char *what = op_name(op);
    if (!valid_node(g, x)) return error_at(err, loc, "%s: invalid input", what);
    const Node *in = &g->nodes[x];
    char sbuf[80];
    if (in->rank != 3)
        return error_at(err, loc, "%s needs a feature map CxHxW, got a vector %s", what,
                        shape_str(in, sbuf, sizeof sbuf));
    if (p->kh <= 0 || p->kw <= 0) return error_at(err, loc, "%s kernel must be positive, got %dx%d", what, p->kh,
                                                  p->kw);
    if (p->sh <= 0 || p->sw <= 0) return error_at(err, loc, "%s stride must be positive, got %dx%d", what, p->sh,
                                                  p->sw);
    if (p->ph < 0 || p->pw < 0) return error_at(err, loc, "%s padding must not be negative, got %dx%d", what, p->ph,
                                                p->pw);
    if (p->ph > p->kh / 2 || p->pw > p->kw / 2)
        return error_at(err, loc, "%s padding %dx%d is more than half the kernel %dx%d", what, p->ph, p->pw, p->kh,
                        p->kw);
    int64_t H = in->dim[0], W = in->dim[1];
    if (p->kh > H + 2 * (int64_t)p->ph || p->kw > W + 2 * (int64_t)p->pw)
        return error_at(err, loc, "%s kernel %dx%d is larger than its padded input %lldx%lld", what, p->kh, p->kw,
                    (long long)(H + 2 * (int64_t)p->ph), (long long)(W + 2 * (int64_t)p->pw));
    int64_t oh = pool_out(H, p->kh, p->sh, p->ph, p->ceil_mode);
    int64_t ow = pool_out(W, p->kw, p->sw, p->pw, p->ceil_mode);
    if (oh <= 0 || ow <= 0) return error_at(err, loc, "%s output size reaches 0", what);
    int id = add_node(g, op, &x, 1, NULL, loc);
    Node *n = &g->nodes[id];
    n->rank = 3;
    n->dim[0] = oh;
    n->dim[1] = ow;
    n->dim[2] = g->nodes[x].dim[2];
    n->a.pool = *p;
    return id;
}

/* dropout and drop_path differ only in what one random draw covers */
static int random_drop(Graph *g, OpKind op, int x, float p, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "%s: invalid input", op_name(op));
    if (!(p >= 0 && p < 1)) return error_at(err, loc, "%s probability must be in [0, 1), got %g", op_name(op), (double)p);
    int id = same_shape_node(g, op, x, loc);
    g->nodes[id].a.dropout.p = p;
    return id;
}

int graph_dropout(Graph *g, int x, float p, SrcLoc loc, Error *err) {
    return random_drop(g, OP_DROPOUT, x, p, loc, err);
}

int graph_drop_path(Graph *g, int x, float p, SrcLoc loc, Error *err) {
    return random_drop(g, OP_DROP_PATH, x, p, loc, err);
}

int graph_linear(Graph *g, const char *name, int x, int out, bool bias,
                 InitKind init, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "linear: invalid input");
    const Node *in = &g->nodes[x];
    char sbuf[80];
    if (in->rank != 1)
        return error_at(err, loc, "linear needs a vector, got a feature map %s (flatten it first)",
                    shape_str(in, sbuf, sizeof sbuf));
    if (out <= 0) return error_at(err, loc, "linear output features must be positive, got %d", out);
    int64_t I = in->dim[0];
    if (I > INT32_MAX) return error_at(err, loc, "linear input is too long (%lld)", (long long)I);

    int n_nodes0 = g->n_nodes, n_params0 = g->n_params;
    char *layer = layer_name(g, name, "linear");
    int64_t wdim[2] = {out, I};
    int wi = add_param(g, layer, "weight", ROLE_WEIGHT, 2, wdim, true, init, I, out, loc, err);
    int bi = -1;
    if (wi >= 0 && bias) {
        InitKind binit = init == INIT_KAIMING_NORMAL_FAN_OUT ? INIT_ZEROS : init;
        int64_t bdim[1] = {out};
        bi = add_param(g, layer, "bias", ROLE_BIAS, 1, bdim, true, binit, I, out, loc, err);
    }
    if (wi < 0 || (bias && bi < 0)) {
        free(layer);
        truncate_graph(g, n_nodes0, n_params0);
        return -1;
    }
    int ins[3] = {x, g->params[wi].node, bias ? g->params[bi].node : -1};
    int id = add_node(g, OP_LINEAR, ins, bias ? 3 : 2, layer, loc);
    free(layer);
    Node *n = &g->nodes[id];
    n->rank = 1;
    n->dim[0] = out;
    n->a.linear.in_features = (int)I;
    n->a.linear.out_features = out;
    n->a.linear.bias = bias;
    return id;
}

int graph_concat(Graph *g, const int *xs, int n, SrcLoc loc, Error *err) {
    if (n < 2) return error_at(err, loc, "concat needs at least 2 inputs, got %d", n);
    char sa[80], sb[80];
    int64_t C = 0;
    for (int i = 0; i < n; i++) {
        if (!valid_node(g, xs[i])) return error_at(err, loc, "concat: invalid input");
        const Node *in = &g->nodes[xs[i]];
        if (in->rank != 3)
            return error_at(err, loc, "concat needs feature maps CxHxW, input %d is a vector %s", i + 1,
                        shape_str(in, sa, sizeof sa));
        const Node *first = &g->nodes[xs[0]];
        if (in->dim[0] != first->dim[0] || in->dim[1] != first->dim[1])
            return error_at(err, loc, "concat of feature maps with different sizes %s and %s",
                        shape_str(first, sa, sizeof sa), shape_str(in, sb, sizeof sb));
        C += in->dim[2];
        if (C > INT32_MAX) return error_at(err, loc, "concat: too many channels");
    }
    int id = add_node(g, OP_CONCAT, xs, n, NULL, loc);
    Node *nd = &g->nodes[id];
    nd->rank = 3;
    nd->dim[0] = g->nodes[xs[0]].dim[0];
    nd->dim[1] = g->nodes[xs[0]].dim[1];
    nd->dim[2] = C;
    return id;
}

const char *op_name(OpKind op) {
    switch (op) {
    case OP_INPUT: return "input";
    case OP_PARAM: return "param";
    case OP_CONV2D: return "conv2d";
    case OP_BATCHNORM: return "batchnorm";
    case OP_RELU: return "relu";
    case OP_SIGMOID: return "sigmoid";
    case OP_ADD: return "add";
    case OP_MUL: return "mul";
    case OP_MAXPOOL: return "maxpool";
    case OP_AVGPOOL: return "avgpool";
    case OP_GLOBAL_AVGPOOL: return "global_avgpool";
    case OP_FLATTEN: return "flatten";
    case OP_DROPOUT: return "dropout";
    case OP_LINEAR: return "linear";
    case OP_CONCAT: return "concat";
    case OP_SUB: return "sub";
    case OP_DIV: return "div";
    case OP_AFFINE: return "affine";
    case OP_SILU: return "silu";
    case OP_GELU: return "gelu";
    case OP_GELU_TANH: return "gelu_tanh";
    case OP_HARDSWISH: return "hardswish";
    case OP_HARDSIGMOID: return "hardsigmoid";
    case OP_RELU6: return "relu6";
    case OP_TANH: return "tanh";
    case OP_LEAKY_RELU: return "leaky_relu";
    case OP_ELU: return "elu";
    case OP_DROP_PATH: return "drop_path";
    case OP_GLOBAL_MAXPOOL: return "global_maxpool";
    case OP_PARAM_VALUE: return "param_value";
    case OP_CHANNEL_SLICE: return "channel_slice";
    case OP_CHANNEL_SHUFFLE: return "channel_shuffle";
    case OP_GROUPNORM: return "groupnorm";
    case OP_LAYERNORM: return "layernorm";
    case OP_COUNT: break;
    }
    return "?";
}

bool op_is_pointwise(OpKind op) {
    switch (op) {
    case OP_AFFINE:
    case OP_SILU:
    case OP_GELU:
    case OP_GELU_TANH:
    case OP_HARDSWISH:
    case OP_HARDSIGMOID:
    case OP_RELU6:
    case OP_TANH:
    case OP_LEAKY_RELU:
    case OP_ELU: return true;
    default: return false;
    }
}

int64_t node_numel(const Node *n) {
    int64_t p = checked_product(n->dim, n->rank);
    return p;
}

/* Returns -1 when the total overflows 63 bits. */
int64_t graph_param_count(const Graph *g) {
    int64_t total = 0;
    for (int i = 0; i < g->n_params; i++) {
        if (!g->params[i].trainable) continue;
        if (__builtin_add_overflow(total, g->params[i].numel, &total)) return -1;
    }
    return total;
}

/* Returns -1 when the count overflows 63 bits. */
int64_t node_macs(const Graph *g, int id) {
    if (!valid_node(g, id)) return 0;
    const Node *n = &g->nodes[id];
    if (n->op == OP_CONV2D) {
        const ConvAttr *c = &n->a.conv;
        int64_t f[6] = {n->dim[0], n->dim[1], c->cout, c->cin / c->groups, c->kh, c->kw};
        return checked_product(f, 6);
    }
    if (n->op == OP_LINEAR) return (int64_t)n->a.linear.in_features * n->a.linear.out_features;
    return 0;
}

/* Returns -1 when the total overflows 63 bits. */
int64_t graph_macs(const Graph *g) {
    int64_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int64_t m = node_macs(g, i);
        if (m < 0 || __builtin_add_overflow(total, m, &total)) return -1;
    }
    return total;
}

int graph_find_param(const Graph *g, const char *name) {
    const struct GraphParamIndex *ix = g->param_index;
    if (ix && ix->n == g->n_params) {
        uint64_t mask = (uint64_t)ix->cap - 1, h = name_hash(name) & mask;
        for (; ix->slots[h]; h = (h + 1) & mask)
            if (strcmp(g->params[ix->slots[h] - 1].name, name) == 0) return ix->slots[h] - 1;
        return -1;
    }
    for (int i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0) return i;
    return -1;
}
