/*
 * graph_ops.c — builders of the graph IR's newer ops (see graph.h): learnable
 * tensors used as values (param). Shape rules and messages follow graph.c's:
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
