/*
 * fuse.c — fusion decisions of the training compiler (see lower.h).
 *
 * Elementwise primitives (BN-apply, ReLU, sigmoid, add, sub, mul, div,
 * dropout, the activations of pointwise.c, tensor-number arithmetic) form
 * trees: a node is inlined into its consumer when it has exactly one use,
 * that consumer is elementwise and not a BatchNorm (BN needs its input
 * materialized for its statistics), and the shapes match (a broadcast
 * operand is reduced in backward, so it keeps a buffer). Each tree's root is
 * materialized by one kernel: BN-apply + ReLU, residual add + BN + ReLU,
 * x * sigmoid(s), ... Its backward is again one group (autodiff.c).
 *
 * Recompute: a tree root that contains a BatchNorm (BN-apply, ReLU and
 * friends are cheap next to the convolutions) is recomputed in backward
 * from its inputs instead of being kept. Inputs that are themselves
 * recomputed are expanded inline into the recompute kernel, up to a chain of
 * Target.recompute_chain_limit trees: 8 on the CPU (a stage of residual
 * blocks; for ResNeXt this keeps only the convolution outputs and the BN
 * statistics), 1 on CUDA in f32, where a chain's extra reads cost more than
 * the memory of keeping every other residual block's output, and 0 (keep
 * everything, recompute nothing) on CUDA in bf16. The recipe's `recompute`
 * setting overrides the target.
 */
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "util.h"

static bool is_elementwise_op(OpKind op) {
    return op == OP_BATCHNORM || op == OP_RELU || op == OP_SIGMOID || op == OP_ADD || op == OP_MUL ||
           op == OP_SUB || op == OP_DIV || op == OP_DROPOUT || op == OP_DROP_PATH || op_is_pointwise(op);
}

static bool same_shape(const Node *a, const Node *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

bool fuse_is_broadcast(const Graph *g, int u, int b) {
    return !same_shape(&g->nodes[u], &g->nodes[b]);
}

/* Does the tree rooted at v (through inlined nodes) contain a BatchNorm? */
static bool tree_has_bn(const Graph *g, const FusePlan *fp, int v) {
    const Node *n = &g->nodes[v];
    if (n->op == OP_BATCHNORM) return true;
    if (!fp->elementwise[v]) return false;
    for (int i = 0; i < n->n_in; i++)
        if (fp->inlined[n->in[i]] && tree_has_bn(g, fp, n->in[i])) return true;
    return false;
}

/* Recompute chain depth of v's tree: 1 + the deepest recomputed leaf. A
 * recomputed leaf is expanded inline into the recompute kernel of v, so a
 * chain of residual blocks costs no extra buffers, only arithmetic. */
static int chain_depth(const Graph *g, const FusePlan *fp, const int *depth, int v) {
    const Node *n = &g->nodes[v];
    int d = 1;
    for (int i = 0; i < n->n_in; i++) {
        int x = n->in[i], dx = 0;
        if (fp->inlined[x]) dx = chain_depth(g, fp, depth, x) - 1;
        else if (fp->recompute[x]) dx = depth[x];
        if (dx + 1 > d) d = dx + 1;
    }
    return d;
}

/* The longest recompute chain: the recipe's `recompute`, or the target's
 * for the activations' dtype. */
static int recompute_chain_limit(const CompileOptions *o) {
    switch (o->recompute) {
    case RECOMPUTE_NONE: return 0;
    case RECOMPUTE_BLOCKS: return 1;
    case RECOMPUTE_STAGES: return 8;
    case RECOMPUTE_AUTO: break;
    }
    return o->precision == PREC_BF16 ? o->target->recompute_chain_limit_bf16 : o->target->recompute_chain_limit;
}

int fuse_plan(const Graph *g, const CompileOptions *o, FusePlan *fp, Error *err) {
    (void)err;
    int n = g->n_nodes;
    memset(fp, 0, sizeof *fp);
    fp->n = n;
    fp->n_uses = xcalloc((size_t)n, sizeof(int));
    fp->user = xmalloc((size_t)n * sizeof(int));
    fp->inlined = xcalloc((size_t)n, sizeof(bool));
    fp->recompute = xcalloc((size_t)n, sizeof(bool));
    fp->needs_grad = xcalloc((size_t)n, sizeof(bool));
    fp->elementwise = xcalloc((size_t)n, sizeof(bool));
    fp->conv_applies = xcalloc((size_t)n, sizeof(bool));
    for (int v = 0; v < n; v++) fp->user[v] = -1;
    for (int v = 0; v < n; v++) {
        const Node *nd = &g->nodes[v];
        fp->elementwise[v] = is_elementwise_op(nd->op);
        for (int i = 0; i < nd->n_in; i++) {
            int x = nd->in[i];
            fp->n_uses[x]++;
            fp->user[x] = v;
        }
    }
    for (int v = 0; v < n; v++)
        if (fp->n_uses[v] != 1) fp->user[v] = -1;

    /* gradients flow from trainable parameters (and the input when wanted) */
    for (int v = 0; v < n; v++) {
        const Node *nd = &g->nodes[v];
        if (nd->op == OP_PARAM) fp->needs_grad[v] = g->params[nd->a.param.index].trainable;
        else if (nd->op == OP_INPUT) fp->needs_grad[v] = o->want_input_grad;
        for (int i = 0; i < nd->n_in; i++) fp->needs_grad[v] |= fp->needs_grad[nd->in[i]];
    }

    for (int v = 0; v < n; v++) {
        int u = fp->user[v];
        if (!fp->elementwise[v] || u < 0 || v == g->output) continue;
        if (!fp->elementwise[u] || g->nodes[u].op == OP_BATCHNORM) continue;
        if (fuse_is_broadcast(g, u, v)) continue;
        fp->inlined[v] = true;
    }

    /* Bound each tree's size: materialize the largest inlined inputs of a
     * node whose tree would grow past MAX_TREE_NODES. */
    int *size = xcalloc((size_t)n, sizeof(int));
    for (int v = 0; v < n; v++) {
        const Node *nd = &g->nodes[v];
        for (;;) {
            int total = 1, big = -1;
            for (int i = 0; i < nd->n_in; i++) {
                int x = nd->in[i];
                if (!fp->inlined[x]) continue;
                total += size[x];
                if (big < 0 || size[x] > size[big]) big = x;
            }
            if (total <= MAX_TREE_NODES || big < 0) {
                size[v] = total;
                break;
            }
            fp->inlined[big] = false;
        }
    }
    free(size);

    if (!o->no_recompute) {
        const int limit = recompute_chain_limit(o);
        int *depth = xcalloc((size_t)n, sizeof(int));
        for (int v = 0; v < n; v++) {
            if (fp->inlined[v] || !fp->elementwise[v] || v == g->output || !tree_has_bn(g, fp, v)) continue;
            int d = chain_depth(g, fp, depth, v);
            if (d <= limit) {
                fp->recompute[v] = true;
                depth[v] = d;
            }
        }
        free(depth);
        /* An f32 copy of a uint8 input (or the bf16 copy of an f32 one) is
         * recomputed from SPACE_INPUT. */
        if ((o->normalize_u8_input || o->precision == PREC_BF16) && g->input >= 0) fp->recompute[g->input] = true;
    }
    return 0;
}

void fuse_plan_free(FusePlan *fp) {
    free(fp->n_uses);
    free(fp->user);
    free(fp->inlined);
    free(fp->recompute);
    free(fp->needs_grad);
    free(fp->elementwise);
    free(fp->conv_applies);
    memset(fp, 0, sizeof *fp);
}
