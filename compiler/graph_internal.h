/*
 * graph_internal.h — the building blocks graph.c shares with graph_ops.c
 * (the builders of the newer ops); nothing outside those two files uses them.
 */
#ifndef RXC_GRAPH_INTERNAL_H
#define RXC_GRAPH_INTERNAL_H

#include "graph.h"

/* Appends a node with the given inputs; the caller fills shape and attributes. */
int add_node(Graph *g, OpKind op, const int *in, int n_in, const char *name, SrcLoc loc);
bool valid_node(const Graph *g, int id);
/* A product of non-negative dimensions, or -1 when it does not fit in 63 bits. */
int64_t checked_product(const int64_t *dims, int n);
/* Shapes in messages read as `input` and `rxc summary` write them: C x H x W
 * (PyTorch's order), though the graph stores {H, W, C}; a vector is [C]. */
const char *shape_str(const Node *n, char *buf, size_t len);
/* Adds an entry named "<layer>.<suffix>" (or "<layer>" for a NULL suffix) to
 * the parameter table; a trainable one also gets an OP_PARAM node, otherwise
 * it is a buffer. Returns the param index or -1 (numel overflow or duplicate
 * name). */
int add_param(Graph *g, const char *layer, const char *suffix, ParamRole role, int rank, const int64_t *dim,
              bool trainable, InitKind init, int64_t fan_in, int64_t fan_out, SrcLoc loc, Error *err);
/* Removes what a failed builder appended, so a graph never holds half an op. */
void truncate_graph(Graph *g, int n_nodes, int n_params);
/* Layers that own parameters need a name for them; code that builds graphs
 * without one gets a unique generated name. */
char *layer_name(const Graph *g, const char *name, const char *op);

#endif
