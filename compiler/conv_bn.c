/*
 * conv_bn.c — the BatchNorm work the target's direct convolutions take on,
 * so that fewer passes over activations remain: the BN (+ ReLU) tree a conv
 * applies as it reads its input (program.h ConvInputNorm), the BN gradient
 * sums its data gradient adds up (ConvGradSums), and the BN statistics its
 * forward adds up (ConvOutStats). Each is the target's call (target.h).
 *
 * Why: in a ResNeXt block, relu(bn1(conv1 x)) feeds only the grouped 3x3
 * conv. Its training forward kernel reads conv1's output and writes the
 * same number of elements; backward then recomputes it for the grouped
 * conv's weight gradient (the BN+ReLU backward takes its mask from conv1's
 * output, Target.backward_masks_from_inputs). Where the conv passes can
 * apply the tree while staging x (Target.conv_input_norm), all four of
 * those activation passes are gone: the conv reads conv1's output, which
 * the BN backward keeps anyway, plus 4 floats per channel.
 *
 * A tree qualifies when it is BN(x) or ReLU(BN(x)) with x materialized and
 * gamma, beta parameters, and every one of its uses is the input of a conv
 * whose forward and weight-gradient steps the target says can apply it.
 * It is then marked recomputed (FusePlan.recompute), so that any other
 * backward reader rematerializes it instead of reading a buffer training
 * never wrote. The eval forward still writes the tree (with running
 * statistics), over the BN's input, whose only reader the tree must be,
 * and its convs read that.
 *
 * Backward, the same conv's data gradient writes the tree's whole output
 * gradient when the conv is its only use. Where the target can, that pass
 * also sums what the BN's backward needs (program.h ConvGradSums) per block,
 * and the tree's gradient-sums kernel reduces those rows instead of reading
 * the gradient and the BN's input again (conv_dgrad_sums).
 *
 * Forward, a conv whose output a BN normalizes sums that output's shifted
 * statistics per block (conv_out_stats), and the BN's statistics kernel
 * reduces the rows instead of reading the output again (lower.c).
 */
#include <assert.h>
#include <stdlib.h>

#include "lower.h"
#include "util.h"

/* The BN node of tree root v when the tree is BN(x) or ReLU(BN(x)) with
 * parameter gamma and beta; -1 otherwise. */
static int norm_tree_bn(const Lower *L, int v, bool *relu) {
    const Graph *g = L->g;
    const Node *n = &g->nodes[v];
    int b = v;
    *relu = n->op == OP_RELU;
    if (*relu) {
        b = n->in[0];
        if (!L->fp.inlined[b]) return -1;
    }
    const Node *bn = &g->nodes[b];
    if (bn->op != OP_BATCHNORM || bn->n_in != 3 || L->fp.inlined[bn->in[0]]) return -1;
    /* the eval forward writes the tree over the BN's input (lower.c): nothing else may read that */
    if (L->fp.n_uses[bn->in[0]] != 1 || g->nodes[bn->in[0]].op == OP_INPUT) return -1;
    if (g->nodes[bn->in[1]].op != OP_PARAM || g->nodes[bn->in[2]].op != OP_PARAM) return -1;
    return b;
}

/* Does every use of v feed x of a conv that applies norms on this target? */
static bool only_norm_convs_use(const Lower *L, int v) {
    const Graph *g = L->g;
    const Target *t = L->o->target;
    int uses = 0;
    for (int u = 0; u < g->n_nodes; u++) {
        const Node *n = &g->nodes[u];
        for (int i = 0; i < n->n_in; i++) {
            if (n->in[i] != v) continue;
            if (n->op != OP_CONV2D || i != 0) return false;
            ConvEngine e = conv_as_library_step(L, u);
            ConvGeom geom = conv_geom(L, u);
            if (e != CONV_ENGINE_CUDA_CORES && e != CONV_ENGINE_TENSOR_CORES) return false;
            if (!t->conv_input_norm(&geom, e)) return false;
            uses++;
        }
    }
    return uses > 0 && uses == L->fp.n_uses[v];
}

void plan_conv_norm_inputs(Lower *L) {
    if (!L->o->target->conv_input_norm) return;
    const Graph *g = L->g;
    for (int v = 0; v < g->n_nodes; v++) {
        bool relu;
        if (!L->fp.elementwise[v] || L->fp.inlined[v] || v == g->output) continue;
        if (norm_tree_bn(L, v, &relu) >= 0 && only_norm_convs_use(L, v))
            L->fp.conv_applies[v] = L->fp.recompute[v] = true;
    }
}

int conv_norm_x(Lower *L, int conv, ExprMode mode, ConvInputNorm *norm) {
    int v = L->g->nodes[conv].in[0];
    *norm = (ConvInputNorm){.on = false};
    if (mode == EM_EVAL || !L->fp.conv_applies[v]) return lw_value_buf(L, v, mode);
    bool relu;
    int b = norm_tree_bn(L, v, &relu);
    const Node *bn = &L->g->nodes[b];
    assert(b >= 0 && L->stats_buf[b] >= 0); /* the tree's forward emitted its statistics */
    *norm = (ConvInputNorm){.on = true, .relu = relu, .stats = L->stats_buf[b],
                            .gamma = L->param_buf[L->g->nodes[bn->in[1]].a.param.index],
                            .beta = L->param_buf[L->g->nodes[bn->in[2]].a.param.index]};
    return lw_value_buf(L, bn->in[0], mode);
}

void conv_dgrad_sums(Lower *L, int conv, ConvStep *cs) {
    const Target *t = L->o->target;
    const int x = L->g->nodes[conv].in[0];
    bool relu;
    if (!t->conv_dgrad_sums_rows || cs->accumulate || !L->fp.conv_applies[x] || L->fp.n_uses[x] != 1) return;
    if (norm_tree_bn(L, x, &relu) < 0) return;
    const int rows = t->conv_dgrad_sums_rows(&cs->g, cs->engine);
    if (rows < 1) return;
    const int bn_x = conv_norm_x(L, conv, EM_BWD, &cs->norm);
    char *lab = lw_label(L, x);
    char *nm = xasprintf("%s:grad_sums_partials", lab);
    const int partials = lw_arena(L, nm, 2 * (int64_t)rows * cs->g.cin);
    free(nm);
    free(lab);
    cs->sums = (ConvGradSums){.on = true, .bn_x = bn_x, .partials = partials, .rows = rows};
    L->sums_partials[x] = partials;
    L->sums_rows[x] = rows;
}

void conv_out_stats(Lower *L, int conv, ConvStep *cs) {
    const Target *t = L->o->target;
    const Graph *g = L->g;
    if (!t->conv_forward_stats_rows || cs->accumulate || L->o->sync_bn) return;
    bool normalized = false; /* some BN reads the conv's output */
    for (int u = 0; u < g->n_nodes; u++) normalized |= g->nodes[u].op == OP_BATCHNORM && g->nodes[u].in[0] == conv;
    const int rows = normalized ? t->conv_forward_stats_rows(&cs->g, cs->engine) : 0;
    if (rows < 1) return;
    char *lab = lw_label(L, conv);
    char *nm = xasprintf("%s:stats_partials", lab);
    const int partials = lw_arena(L, nm, 4 * (int64_t)rows * cs->g.cout);
    free(nm);
    free(lab);
    cs->stats = (ConvOutStats){.on = true, .partials = partials, .rows = rows};
    L->stats_partials[conv] = partials;
    L->stats_rows[conv] = rows;
}
