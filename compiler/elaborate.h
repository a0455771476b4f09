/*
 * elaborate.h — the elaborator: evaluates a parsed file's network section
 * (settings, bindings, arithmetic, conditionals, loops, block calls and
 * primitive ops) into the graph IR, naming every parameter as
 * docs/language.md ("Naming") says.
 */
#ifndef RXC_ELABORATE_H
#define RXC_ELABORATE_H

#include "ast.h"
#include "diag.h"
#include "graph.h"

/* Builds the graph of the file's one network. Every problem is reported to d
 * with its source location, and elaboration goes on where it can so that one
 * run shows several. Returns the graph (graph->input, ->output, ->classes,
 * ->torchvision_layout set), or NULL when anything was reported. */
Graph *elaborate(const AstFile *ast, Diag *d);

/* Names of the primitive ops and builtins the network language knows, for
 * "did you mean" suggestions elsewhere and for docs. NULL-terminated. */
extern const char *const elaborate_op_names[];
extern const char *const elaborate_builtin_names[];

#endif
