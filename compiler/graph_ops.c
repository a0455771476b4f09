/*
 * graph_ops.c — builders of the graph IR's newer ops (see graph.h): learnable
 * tensors used as values (param), channel slices and shuffles, group and
 * layer norms. Shape rules and messages follow graph.c's:
 * a mistake returns -1 with a one-line message located at the op.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "graph_internal.h"
#include "util.h"

int graph_param_value(Graph *g, const char *name, int rank, const int64_t *shape, const InitSpec *init,
                      SrcLoc loc, Error *err) {
    if (rank != 1 && rank != 3) return error_at(err, loc, "param shape must be [C] or [C, H, W], got %d dimensions", rank);
    for (int i = 0; i < rank; i++)
        if (shape[i] <= 0 || shape[i] > INT32_MAX)
            return error_at(err, loc, "param shape must have positive dimensions, got %lld", (long long)shape[i]);
    for (int i = 0; i < 4; i++)
        if (!isfinite(init->arg[i])) return error_at(err, loc, "param init must be finite");
    int n_nodes0 = g->n_nodes, n_params0 = g->n_params;
    char *layer = layer_name(g, name, "param");
    /* fans as PyTorch computes them for a tensor of this shape (used by kaiming) */
    int64_t fan_in = rank == 3 ? shape[1] * shape[2] : shape[0], fan_out = rank == 3 ? shape[0] * shape[1] * shape[2] : 1;
    int pi = add_param(g, layer, NULL, ROLE_SCALE, rank, shape, true, init->kind, fan_in, fan_out, loc, err);
    if (pi < 0) {
        free(layer);
        truncate_graph(g, n_nodes0, n_params0);
        return -1;
    }
    memcpy(g->params[pi].init_arg, init->arg, sizeof init->arg);
    int pnode = g->params[pi].node;
    int id = add_node(g, OP_PARAM_VALUE, &pnode, 1, layer, loc);
    free(layer);
    Node *n = &g->nodes[id];
    n->rank = rank;
    if (rank == 1) {
        n->dim[0] = shape[0];
    } else {
        n->dim[0] = shape[1];
        n->dim[1] = shape[2];
        n->dim[2] = shape[0];
    }
    return id;
}

/* A node of x's kind with c channels. */
static int channels_like(Graph *g, OpKind op, int x, int64_t c, SrcLoc loc) {
    int id = add_node(g, op, &x, 1, NULL, loc);
    Node *n = &g->nodes[id];
    const Node *src = &g->nodes[x];
    n->rank = src->rank;
    memcpy(n->dim, src->dim, sizeof n->dim);
    n->dim[src->rank == 3 ? 2 : 0] = c;
    return id;
}

static int64_t node_channels(const Node *n) { return n->rank == 3 ? n->dim[2] : n->dim[0]; }

int graph_channel_slice(Graph *g, int x, int64_t start, int64_t count, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "channel slice: invalid input");
    const Node *in = &g->nodes[x];
    char sbuf[80];
    int64_t C = node_channels(in);
    if (start < 0 || count <= 0 || start + count > C)
        return error_at(err, loc, "channels %lld..%lld are not a non-empty slice of %s (%lld channels)", (long long)start,
                        (long long)(start + count), shape_str(in, sbuf, sizeof sbuf), (long long)C);
    int id = channels_like(g, OP_CHANNEL_SLICE, x, count, loc);
    g->nodes[id].a.chan.offset = (int)start;
    return id;
}

int graph_channel_shuffle(Graph *g, int x, int groups, SrcLoc loc, Error *err) {
    if (!valid_node(g, x)) return error_at(err, loc, "channel_shuffle: invalid input");
    const Node *in = &g->nodes[x];
    char sbuf[80];
    int64_t C = node_channels(in);
    if (groups <= 0 || C % groups != 0)
        return error_at(err, loc, "channel_shuffle: %d groups do not divide the %lld channels of %s", groups, (long long)C,
                        shape_str(in, sbuf, sizeof sbuf));
    int id = channels_like(g, OP_CHANNEL_SHUFFLE, x, C, loc);
    g->nodes[id].a.chan.groups = groups;
    return id;
}

int graph_norm(Graph *g, OpKind op, const char *name, int x, int groups, float eps, SrcLoc loc, Error *err) {
    const char *what = op == OP_GROUPNORM ? "groupnorm" : "layernorm";
    if (op != OP_GROUPNORM && op != OP_LAYERNORM) return error_at(err, loc, "%s is not a norm", op_name(op));
    if (!valid_node(g, x)) return error_at(err, loc, "%s: invalid input", what);
    const Node *in = &g->nodes[x];
    char sbuf[80];
    int64_t C = node_channels(in);
    if (op == OP_GROUPNORM && (groups <= 0 || C % groups != 0))
        return error_at(err, loc, "groupnorm: %d groups do not divide the %lld channels of %s", groups, (long long)C,
                        shape_str(in, sbuf, sizeof sbuf));
    if (!(eps > 0) || !isfinite(eps)) return error_at(err, loc, "%s eps must be positive, got %g", what, (double)eps);
    int n_nodes0 = g->n_nodes, n_params0 = g->n_params;
    char *layer = layer_name(g, name, op == OP_GROUPNORM ? "gn" : "ln");
    int64_t cdim[1] = {C};
    int wi = add_param(g, layer, "weight", ROLE_BN_WEIGHT, 1, cdim, true, INIT_ONES, 0, 0, loc, err);
    int bi = wi < 0 ? -1 : add_param(g, layer, "bias", ROLE_BN_BIAS, 1, cdim, true, INIT_ZEROS, 0, 0, loc, err);
    if (bi < 0) {
        free(layer);
        truncate_graph(g, n_nodes0, n_params0);
        return -1;
    }
    int ins[3] = {x, g->params[wi].node, g->params[bi].node};
    int id = add_node(g, op, ins, 3, layer, loc);
    free(layer);
    Node *n = &g->nodes[id];
    n->rank = g->nodes[x].rank;
    memcpy(n->dim, g->nodes[x].dim, sizeof n->dim);
    n->a.norm.groups = op == OP_GROUPNORM ? groups : 1;
    n->a.norm.eps = eps;
    return id;
}
