/*
 * graph.h — the network graph IR.
 *
 * Elaboration (elaborate.c) turns a parsed .net file into a Graph; every
 * later pass (fusion, lowering, autodiff, memory planning) reads it.
 *
 * Conventions that every pass relies on:
 *   - One node produces exactly one value; a value is named by its node id.
 *   - Nodes are stored in topological order: every input id < the node id.
 *   - Activations are NHWC. A node's shape is per sample and excludes the
 *     batch dimension, which stays symbolic until a pass binds a batch size:
 *       feature map  rank 3  dim = {H, W, C}
 *       vector       rank 1  dim = {C}
 *   - Parameters are OP_PARAM nodes, so autodiff reaches them like any other
 *     value. Their storage order is PyTorch's (conv weight [O, I/groups, kh,
 *     kw], linear weight [O, I]) so that checkpoints exchange with PyTorch
 *     without transposes. BatchNorm running statistics are buffers: entries
 *     in the parameter table with no node and no gradient.
 *   - Builders validate shapes and return -1 with a message in `err` on a
 *     mistake; the elaborator adds the source location. Nothing here exits.
 */
#ifndef RXC_GRAPH_H
#define RXC_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h" /* SrcLoc */


typedef enum OpKind {
    OP_INPUT,          /* the image batch: {H, W, C} */
    OP_PARAM,          /* a trainable parameter tensor (a.param) */
    OP_CONV2D,         /* in: x, weight[, bias] */
    OP_BATCHNORM,      /* in: x, gamma, beta; running stats in a.bn */
    OP_RELU,           /* in: x */
    OP_SIGMOID,        /* in: x */
    OP_ADD,            /* in: a, b (same shape, or b broadcast as in OP_MUL) */
    OP_MUL,            /* in: a, b; b may be {1,1,C} or {C} against {H,W,C} (per channel), or
                          {1,1,1} or {1} against any larger shape (per sample) */
    OP_MAXPOOL,        /* in: x; a.pool */
    OP_AVGPOOL,        /* in: x; a.pool */
    OP_GLOBAL_AVGPOOL, /* in: x {H,W,C} -> {1,1,C} */
    OP_FLATTEN,        /* in: x {H,W,C} -> {H*W*C}, in PyTorch's C,H,W order */
    OP_DROPOUT,        /* in: x; a.dropout.p; identity in eval mode */
    OP_LINEAR,         /* in: x {I}, weight {O,I}[, bias {O}] */
    OP_CONCAT,         /* in: n >= 2 maps with equal H, W; along channels */
    OP_SUB,            /* in: a, b; either may broadcast as in OP_MUL */
    OP_DIV,            /* in: a, b; either may broadcast as in OP_MUL */
    OP_AFFINE,         /* in: x; x * a.affine.scale + a.affine.shift (tensor-number arithmetic) */
    OP_SILU,           /* in: x; the activations below are PyTorch's, formula and gradient */
    OP_GELU,           /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
    OP_GELU_TANH,      /* gelu(approximate="tanh") */
    OP_HARDSWISH,
    OP_HARDSIGMOID,
    OP_RELU6,
    OP_TANH,
    OP_LEAKY_RELU,     /* a.act.alpha: the negative slope */
    OP_ELU,            /* a.act.alpha */
    OP_DROP_PATH,      /* in: x; a.dropout.p; one draw per sample (stochastic depth); identity in eval mode */
    OP_GLOBAL_MAXPOOL, /* in: x {H,W,C} -> {1,1,C}; a.pool is the one H x W window (lowered as a max-pool) */
    OP_PARAM_VALUE,    /* in: p (OP_PARAM); a learnable tensor as a value: every sample sees p
                          (PyTorch shape [C] -> {C}, [C,H,W] -> {H,W,C}) */
    OP_CHANNEL_SLICE,  /* in: x; channels [a.chan.offset, + C) of x (C: the node's channels) */
    OP_CHANNEL_SHUFFLE, /* in: x; ShuffleNet's channel_shuffle with a.chan.groups groups */
    OP_GROUPNORM,      /* in: x, weight, bias; a.norm: statistics per sample and group of channels */
    OP_LAYERNORM,      /* in: x, weight, bias; a.norm: statistics over the channels of each pixel (LayerNorm2d) */
    OP_COUNT
} OpKind;

typedef enum ParamRole {
    ROLE_WEIGHT,        /* conv or linear weight */
    ROLE_BIAS,          /* conv or linear bias */
    ROLE_BN_WEIGHT,     /* gamma */
    ROLE_BN_BIAS,       /* beta */
    ROLE_RUNNING_MEAN,  /* buffer */
    ROLE_RUNNING_VAR,   /* buffer */
    ROLE_NUM_BATCHES,   /* buffer, int64 scalar, kept for torchvision's state_dict */
    ROLE_SCALE,         /* a learnable tensor of the file's own (param(): layer scale, ...) */
} ParamRole;

typedef enum InitKind {
    INIT_ZEROS,
    INIT_ONES,
    INIT_KAIMING_NORMAL_FAN_OUT, /* torchvision's conv init: N(0, sqrt(2/fan_out)) */
    INIT_PYTORCH_DEFAULT,        /* nn.Conv2d/nn.Linear reset_parameters: U(-1/sqrt(fan_in), +) */
    /* the file's own initialisers (init=...), with Param.init_arg: */
    INIT_CONSTANT,               /* arg[0] */
    INIT_NORMAL,                 /* N(arg[0], arg[1]^2) */
    INIT_UNIFORM,                /* U(arg[0], arg[1]) */
    INIT_TRUNC_NORMAL,           /* N(arg[0], arg[1]^2) redrawn outside [arg[2], arg[3]] */
    INIT_KAIMING_NORMAL_FAN_IN,  /* N(0, sqrt(2/fan_in)) */
} InitKind;

/* An initialiser and its arguments (see InitKind). */
typedef struct InitSpec {
    InitKind kind;
    double arg[4];
} InitSpec;

typedef struct Param {
    char *name;         /* checkpoint name, e.g. "layer1.0.conv2.weight" */
    ParamRole role;
    int rank;           /* 0 for num_batches_tracked */
    int64_t dim[4];     /* PyTorch order */
    int64_t numel;
    bool trainable;     /* false for buffers */
    InitKind init;
    double init_arg[4]; /* the arguments of INIT_CONSTANT ... INIT_TRUNC_NORMAL */
    int64_t fan_in, fan_out;
    int node;           /* the OP_PARAM node, or -1 for a buffer */
} Param;

typedef struct ConvAttr {
    int kh, kw, sh, sw, ph, pw, groups;
    int dh, dw;         /* dilation (1: none) */
    int cin, cout;
    bool bias;
} ConvAttr;

typedef struct BnAttr {
    float eps, momentum;                      /* 1e-5, 0.1 by default */
    int running_mean, running_var, num_batches; /* indices into Graph.params */
} BnAttr;

typedef struct PoolAttr {
    int kh, kw, sh, sw, ph, pw;
    bool ceil_mode;
    bool count_include_pad; /* avgpool only; PyTorch's default is true */
} PoolAttr;

typedef struct Node {
    OpKind op;
    int *in;            /* input node ids (owned) */
    int n_in;
    int rank;           /* 1 or 3 */
    int64_t dim[3];     /* per-sample shape: {H,W,C} or {C} */
    union {
        ConvAttr conv;
        BnAttr bn;
        PoolAttr pool;
        struct { float p; } dropout;
        struct { double scale, shift; } affine;
        struct { float alpha; } act;
        struct { int in_features, out_features; bool bias; } linear;
        struct { int index; } param; /* into Graph.params */
        struct { int offset, groups; } chan; /* channel slices and shuffles */
        struct { int groups; float eps; } norm; /* groupnorm, layernorm (groups 1) */
    } a;
    char *name;         /* layer path ("layer1.0.conv2"); NULL for anonymous ops */
    SrcLoc loc;
} Node;

typedef struct Graph {
    char *name;
    Node *nodes;
    int n_nodes, cap_nodes;
    Param *params;       /* trainable parameters and buffers, in creation order */
    int n_params, cap_params;
    int input;           /* node id of OP_INPUT, -1 until set */
    int output;          /* node id of the logits, -1 until set */
    int classes;
    bool torchvision_layout; /* names follow torchvision's state_dict */
    struct GraphParamIndex *param_index; /* graph.c's private name -> param table; NULL is valid */
} Graph;

/* ---- construction (graph.c) ---------------------------------------------
 * Every builder returns the new node id, or -1 with a one-line message in
 * err, located at `loc` (the elaborator reports it there). `name` may be NULL for anonymous
 * ops; named layers create parameters called "<name>.weight" and so on.
 * `loc` is copied into the node.
 */
Graph *graph_new(const char *name);
void graph_free(Graph *g);

int graph_input(Graph *g, int h, int w, int c, SrcLoc loc);
int graph_conv2d(Graph *g, const char *name, int x, int cout, int kh, int kw,
                 int sh, int sw, int ph, int pw, int groups, bool bias,
                 InitKind init, SrcLoc loc, Error *err);
/* the same with dilation dh x dw (PyTorch's Conv2d(dilation=...)) */
int graph_conv2d_dilated(Graph *g, const char *name, int x, int cout, int kh, int kw, int sh, int sw, int ph, int pw,
                         int dh, int dw, int groups, bool bias, InitKind init, SrcLoc loc, Error *err);
int graph_batchnorm(Graph *g, const char *name, int x, float eps, float momentum,
                    SrcLoc loc, Error *err);
/* RELU, SIGMOID, FLATTEN, GLOBAL_AVGPOOL and the parameter-free activations (SILU ... TANH) */
int graph_unary(Graph *g, OpKind op, int x, SrcLoc loc, Error *err);
/* LEAKY_RELU (alpha: the negative slope) or ELU */
int graph_activation(Graph *g, OpKind op, int x, float alpha, SrcLoc loc, Error *err);
int graph_affine(Graph *g, int x, double scale, double shift, SrcLoc loc, Error *err);
int graph_binary(Graph *g, OpKind op, int a, int b, SrcLoc loc, Error *err); /* ADD, MUL, SUB, DIV */
int graph_pool(Graph *g, OpKind op, int x, const PoolAttr *p, SrcLoc loc, Error *err);
int graph_dropout(Graph *g, int x, float p, SrcLoc loc, Error *err);
int graph_drop_path(Graph *g, int x, float p, SrcLoc loc, Error *err);
int graph_linear(Graph *g, const char *name, int x, int out, bool bias,
                 InitKind init, SrcLoc loc, Error *err);
int graph_concat(Graph *g, const int *xs, int n, SrcLoc loc, Error *err);

/* ---- construction of the newer ops (graph_ops.c) -------------------------- */
/* A learnable tensor named `name` (the checkpoint name itself) of PyTorch
 * shape [C] or [C, H, W], initialised by init: an OP_PARAM_VALUE node. */
int graph_param_value(Graph *g, const char *name, int rank, const int64_t *shape, const InitSpec *init,
                      SrcLoc loc, Error *err);
/* channels [start, start + count) of a feature map or vector */
int graph_channel_slice(Graph *g, int x, int64_t start, int64_t count, SrcLoc loc, Error *err);
/* torch's channel_shuffle(x, groups): output channel i * groups + j is input
 * channel j * (C / groups) + i */
int graph_channel_shuffle(Graph *g, int x, int groups, SrcLoc loc, Error *err);
/* GroupNorm(groups, C, eps) (op OP_GROUPNORM) or ConvNeXt's LayerNorm2d, a
 * LayerNorm over the channels at each pixel (OP_LAYERNORM, groups 1); both
 * with weight (ones) and bias (zeros) [C], no running statistics */
int graph_norm(Graph *g, OpKind op, const char *name, int x, int groups, float eps, SrcLoc loc, Error *err);

/* ---- queries (graph.c) ---------------------------------------------------- */
const char *op_name(OpKind op);            /* "conv2d", "batchnorm", ... */
/* OP_AFFINE and the activations SILU ... ELU: one input, elementwise, and
 * their formulas and gradients in compiler/pointwise.c */
bool op_is_pointwise(OpKind op);
int64_t node_numel(const Node *n);         /* per sample */
int64_t graph_param_count(const Graph *g); /* trainable elements */
int64_t node_macs(const Graph *g, int id); /* multiply-accumulates per sample (conv, linear; 0 otherwise) */
int64_t graph_macs(const Graph *g);
int graph_find_param(const Graph *g, const char *name); /* index or -1 */

#endif
