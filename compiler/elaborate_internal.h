/*
 * elaborate_internal.h — what the elaborator's files share, and nothing
 * outside them may use (the public entry point is elaborate.h): the
 * elaboration state, frames and bindings, binding sites, the budgets that
 * bound a run, and each file's entry points.
 *
 * The files:
 *   elaborate.c    the network: blocks, constants, network parameters, the run
 *   evaluate.c     expressions, statements, block calls, argument binding
 *   value.c        values, conversions, comparisons and checked arithmetic
 *   ops_table.c    primitive ops: name -> arguments -> graph builder
 *   builtins.c     builtin functions: name -> arguments -> value
 *   naming.c       layer names and the scopes of labelled block calls
 *   unused_names.c binding sites and the unused-name check
 *
 * Errors: every problem is reported once at its location; the value of a
 * failed expression is poison (VERR) that later operations pass on without
 * reporting again, so one mistake does not cascade into many messages.
 */
#ifndef RXC_ELABORATE_INTERNAL_H
#define RXC_ELABORATE_INTERNAL_H

#include "elaborate.h"
#include "util.h"
#include "value.h"

/* Bounds that keep hostile or mistaken files (and the fuzzer) from running
 * for minutes: far above any real network. */
enum {
    MAX_STEPS = 1000000,     /* statements and calls executed */
    MAX_NODES = 200000,      /* graph nodes */
    MAX_LIST = 1 << 20,      /* list elements */
    MAX_LIST_BYTES = 256 << 20, /* all lists made while elaborating */
    MAX_CALL_DEPTH = 64,     /* nested block calls */
    MAX_LOOP_NEST = 32,
};

/* ---- binding sites: what the unused-name check reads (unused_names.c) ---------- */

typedef enum SiteKind { SITE_LET, SITE_PARAM, SITE_NETPARAM, SITE_CONST } SiteKind;

typedef struct Site {
    const void *key; /* the AstStmt, AstParam or AstDecl */
    SiteKind kind;
    const char *name;
    const char *block; /* SITE_PARAM: the block's name */
    SrcLoc loc;
    bool executed, used;
    bool overwritten; /* rebound before any read: a default such as `s = x` */
} Site;

/* Open-addressing pointer -> Site table. Sites are allocated one by one:
 * bindings keep Site pointers across later insertions, so growing the table
 * must never move a Site. */
typedef struct SiteTable {
    Site **slots;
    int cap, n;
} SiteTable;

/* String -> int map for layer names, numbering and scopes (naming.c). */
typedef struct StrMap {
    char **keys;
    int *vals;
    int cap, n;
} StrMap;

/* ---- frames and the elaboration state ---------------------------------------------- */

typedef struct Binding {
    const char *name;
    Value v;
    Site *site; /* NULL for loop variables and the input tensor */
} Binding;

typedef struct Frame {
    Binding *b;
    int n, cap;
    const char *block;        /* NULL: the network body */
    int loops[MAX_LOOP_NEST]; /* iteration counters of the enclosing for loops */
    int n_loops;
} Frame;

typedef struct BlockInfo {
    const AstDecl *decl;
    bool called, active;
} BlockInfo;

typedef struct Elab {
    const AstFile *ast;
    const AstDecl *net;
    Diag *d;
    Graph *g;
    Arena *arena;          /* lists and strings made while evaluating */
    Frame globals;         /* top-level constants and network parameters */
    BlockInfo *blocks;
    int n_blocks;
    SiteTable sites;
    StrMap layers;         /* full names of layers with parameters */
    StrMap counters;       /* "<scope>\x01<kind>" -> last number given */
    StrMap scopes;         /* scopes opened by labelled block calls */
    char *scope;           /* current scope path, "" at network level */
    const BlockInfo *stack[MAX_CALL_DEPTH];
    SrcLoc call_sites[MAX_CALL_DEPTH]; /* where each block on the stack was called */
    int depth;
    long steps;
    bool budget_reported;
    int64_t list_bytes;
    SrcLoc last_loc;       /* the statement being run, for budget messages */
    InitKind conv_init;
    int errors0;
} Elab;

typedef enum Flow { FLOW_NEXT, FLOW_RETURN } Flow;

/* ---- evaluate.c ------------------------------------------------------------------------ */

int frame_find(const Frame *f, const char *name);
void frame_set(Frame *f, const char *name, Value v, Site *site);
const BlockInfo *find_block(const Elab *e, const char *name);

Value eval_expr(Elab *e, Frame *f, const AstExpr *x);
Flow exec_body(Elab *e, Frame *f, const AstBody *body, Value *ret);

/* A new list of n elements, or poison once the lists made so far exceed the
 * memory budget (a loop that grows a list quadratically). */
Value list_value(Elab *e, int n);

typedef struct ArgSpec {
    const char *name;
    bool required;
} ArgSpec;

#define MAX_ARGS 16

typedef struct Args {
    Value v[MAX_ARGS];
    SrcLoc loc[MAX_ARGS];
    bool given[MAX_ARGS];
} Args;

/* Evaluates every argument of call (also after a mistake, so names are
 * marked as used) and matches them to spec. Returns false after reporting. */
bool bind_args(Elab *e, Frame *f, const AstExpr *call, const ArgSpec *spec, int n_spec, Args *a);

/* ---- ops_table.c and builtins.c ------------------------------------------------------- */

/* When call names a primitive op (a builtin), builds it into the graph
 * (computes it) into *out and returns true; false for other names. */
bool call_primitive_op(Elab *e, Frame *f, const AstExpr *call, Value *out);
bool call_builtin(Elab *e, Frame *f, const AstExpr *call, Value *out);

/* The tensor a op b (OP_ADD, OP_MUL, OP_SUB or OP_DIV), reported at loc. */
Value tensor_binary(Elab *e, OpKind op, int a, int b, SrcLoc loc);
/* a op b where a or b is a tensor (op is any binary operator; not poison):
 * tensor-tensor + - * / is tensor_binary, tensor-number arithmetic is an
 * OP_AFFINE node; anything else is reported. */
Value tensor_arith(Elab *e, AstBinOp op, Value a, Value b, SrcLoc loc);
/* -x of tensor x */
Value tensor_negate(Elab *e, int x, SrcLoc loc);
/* A graph builder's result: its node, or its error reported where it points
 * (inside a block, with a note naming the call). */
Value op_result(Elab *e, int id, const Error *err);

/* ---- ops_more.c ------------------------------------------------------------------------- */

/* call as if the keyword arguments named in keys were not there: the others
 * are copied into kept (room for call's n_args), found[k] is keys[k]'s
 * argument or NULL. Lets an op read an argument that is not a plain value. */
AstExpr call_without_keys(const AstExpr *call, const char *const *keys, int n_keys, AstArg *kept,
                          const AstArg **found);
/* The initialiser an `init=` argument names: a number (a constant), a word
 * (zeros, ones) or a call (constant, normal, uniform, trunc_normal,
 * kaiming_normal). Returns false after reporting. */
bool eval_init_spec(Elab *e, Frame *f, const AstExpr *x, InitSpec *out);
Value op_param(Elab *e, Frame *f, const AstExpr *call);
/* op (conv, linear) with the keyword arguments init= and bias_init= (the
 * weight's and the bias's initialisers) taken off the call and applied to
 * the layer it builds */
Value op_with_init(Elab *e, Frame *f, const AstExpr *call, Value (*op)(Elab *, Frame *, const AstExpr *));
Value op_split(Elab *e, Frame *f, const AstExpr *call);
Value op_channel_shuffle(Elab *e, Frame *f, const AstExpr *call);
Value op_norm(Elab *e, Frame *f, const AstExpr *call, OpKind op); /* OP_GROUPNORM, OP_LAYERNORM */
/* channels lo..hi of tensor x (hi excluded; Python's slice rules) */
Value tensor_channel_slice(Elab *e, int x, int64_t lo, int64_t hi, SrcLoc loc);

/* ---- naming.c ----------------------------------------------------------------------------- */

/* The full name of a new layer with parameters of kind prefix (conv, bn,
 * fc); NULL after reporting. The caller frees it. */
char *new_layer_name(Elab *e, Frame *f, const AstExpr *call, const char *prefix);

/* A label on a parameter-free op only names the node. */
void name_plain_node(Elab *e, Frame *f, const AstExpr *call, int id);

/* A labelled block call opens a scope for the layers inside; an unlabelled
 * one is transparent. enter returns false after reporting; leave restores
 * the scope enter saved (NULL: none was opened). */
bool enter_block_scope(Elab *e, Frame *f, const AstExpr *call, char **saved_scope);
void leave_block_scope(Elab *e, char *saved_scope);

/* Frees the naming state of e (layers, counters, scopes, the scope path). */
void naming_free(Elab *e);

/* ---- unused_names.c ------------------------------------------------------------------------ */

/* The site of key, made on first use with kind, name and loc. */
Site *site_get(SiteTable *t, const void *key, SiteKind kind, const char *name, SrcLoc loc);
void site_table_free(SiteTable *t);

/* Reports names bound but never read and blocks never called (in the main
 * file; names starting with '_' are exempt). */
void report_unused(Elab *e);

#endif
