/*
 * graph_test.c — unit tests for the graph builders (compiler/graph.c):
 * output shapes against PyTorch's formulas, shape errors, parameter names,
 * counts and MACs against hand-computed numbers, and whole networks built
 * with the builders against the counts PyTorch reports for them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../harness.h"
#include "graph.h"

static const SrcLoc NOLOC = {0};

/* CHECK(name, cond, fmt, ...): PASS, or FAIL with the message */
#define CHECK harness_check

static bool shape_is(const Graph *g, int id, int rank, long long a, long long b, long long c) {
    if (id < 0) return false;
    const Node *n = &g->nodes[id];
    if (n->rank != rank) return false;
    if (n->dim[0] != a) return false;
    return rank == 1 || (n->dim[1] == b && n->dim[2] == c);
}

static void test_conv_shapes(void) {
    Error err = {0};
    Graph *g = graph_new("t");
    int x = graph_input(g, 224, 224, 3, NOLOC);
    /* torch: Conv2d(3,64,7,2,3) on 224 -> 112; params 64*3*7*7 = 9408; MACs 112*112*64*147 */
    int c = graph_conv2d(g, "conv1", x, 64, 7, 7, 2, 2, 3, 3, 1, false, INIT_KAIMING_NORMAL_FAN_OUT, NOLOC, &err);
    CHECK("conv_shape_stem", shape_is(g, c, 3, 112, 112, 64), "id %d", c);
    CHECK("conv_params_stem", graph_param_count(g) == 9408, "%lld", (long long)graph_param_count(g));
    CHECK("conv_macs_stem", node_macs(g, c) == 112LL * 112 * 64 * 147, "%lld", (long long)node_macs(g, c));
    int wi = graph_find_param(g, "conv1.weight");
    CHECK("conv_weight_layout", wi >= 0 && g->params[wi].rank == 4 && g->params[wi].dim[0] == 64 &&
          g->params[wi].dim[1] == 3 && g->params[wi].dim[2] == 7 && g->params[wi].dim[3] == 7, "index %d", wi);
    CHECK("conv_fans", wi >= 0 && g->params[wi].fan_in == 147 && g->params[wi].fan_out == 64 * 49,
          "fan_in %lld fan_out %lld", (long long)g->params[wi].fan_in, (long long)g->params[wi].fan_out);
    /* grouped 3x3, 128 -> 128, groups 32, stride 2 on 56: out 28; params 128*4*9 = 4608 */
    int y = graph_conv2d(g, "g", graph_input(g, 56, 56, 128, NOLOC), 128, 3, 3, 2, 2, 1, 1, 32, true,
                         INIT_PYTORCH_DEFAULT, NOLOC, &err);
    CHECK("conv_grouped_shape", shape_is(g, y, 3, 28, 28, 128), "id %d", y);
    int gw = graph_find_param(g, "g.weight"), gb = graph_find_param(g, "g.bias");
    CHECK("conv_grouped_params", gw >= 0 && gb >= 0 && g->params[gw].numel == 4608 && g->params[gb].numel == 128 &&
          g->params[gw].fan_in == 36 && g->params[gw].fan_out == 1152, "gw %d gb %d", gw, gb);
    CHECK("conv_grouped_macs", node_macs(g, y) == 28LL * 28 * 128 * 4 * 9, "%lld", (long long)node_macs(g, y));
    /* even kernel, odd size: floor((7 + 0 - 2) / 2) + 1 = 3 */
    int z = graph_conv2d(g, "e", graph_input(g, 7, 7, 1, NOLOC), 2, 2, 2, 2, 2, 0, 0, 1, false, INIT_PYTORCH_DEFAULT,
                         NOLOC, &err);
    CHECK("conv_floor", shape_is(g, z, 3, 3, 3, 2), "id %d", z);
    /* topological order */
    bool topo = true;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= i) topo = false;
    CHECK("topological_order", topo, "an input id is not below its node");
    graph_free(g);
}

static void expect_error(const char *name, int id, const char *err, const char *want) {
    CHECK(name, id == -1 && strstr(err, want) != NULL, "id %d, message '%s', expected '%s'", id, err, want);
}

static void test_errors(void) {
    Error err = {0};
    Graph *g = graph_new("t");
    int x = graph_input(g, 8, 8, 6, NOLOC);
    int v = graph_unary(g, OP_FLATTEN, x, NOLOC, &err);
    int n0 = g->n_nodes, p0 = g->n_params;
    error_clear(&err);
    expect_error("err_groups_cin", graph_conv2d(g, "a", x, 8, 3, 3, 1, 1, 1, 1, 4, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "groups (4) do not divide the input channels (6)");
    expect_error("err_groups_cout", graph_conv2d(g, "a", x, 9, 3, 3, 1, 1, 1, 1, 2, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "groups (2) do not divide the output channels (9)");
    expect_error("err_kernel_too_big", graph_conv2d(g, "a", x, 8, 11, 11, 1, 1, 1, 1, 1, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "kernel 11x11 is larger than its padded input 10x10");
    expect_error("err_neg_stride", graph_conv2d(g, "a", x, 8, 3, 3, -1, 1, 1, 1, 1, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "stride must be positive");
    expect_error("err_zero_kernel", graph_conv2d(g, "a", x, 8, 0, 3, 1, 1, 1, 1, 1, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "kernel must be positive");
    expect_error("err_conv_vector", graph_conv2d(g, "a", v, 8, 1, 1, 1, 1, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "needs a feature map");
    expect_error("err_linear_map", graph_linear(g, "fc", x, 10, true, INIT_PYTORCH_DEFAULT, NOLOC, &err),
                 err.msg, "linear needs a vector");
    int y = graph_input(g, 4, 4, 6, NOLOC);
    expect_error("err_add_shapes", graph_binary(g, OP_ADD, x, y, NOLOC, &err), err.msg,
                 "add of tensors with different shapes 6x8x8 and 6x4x4");
    expect_error("err_concat_sizes", graph_concat(g, (int[]){x, y}, 2, NOLOC, &err), err.msg,
                 "concat of feature maps with different sizes");
    PoolAttr big = {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 2, .pw = 2};
    expect_error("err_pool_pad", graph_pool(g, OP_MAXPOOL, x, &big, NOLOC, &err), err.msg,
                 "padding 2x2 is more than half the kernel 3x3");
    PoolAttr huge = {.kh = 9, .kw = 9, .sh = 1, .sw = 1};
    expect_error("err_pool_kernel", graph_pool(g, OP_AVGPOOL, x, &huge, NOLOC, &err), err.msg,
                 "kernel 9x9 is larger than its padded input 8x8");
    expect_error("err_dropout_p", graph_dropout(g, x, 1.5f, NOLOC, &err), err.msg, "dropout probability");
    int c1 = graph_input(g, 1, 1, 5, NOLOC);
    expect_error("err_mul_broadcast_channels", graph_binary(g, OP_MUL, x, c1, NOLOC, &err), err.msg,
                 "mul of tensors with different shapes");
    int gp = graph_unary(g, OP_GLOBAL_AVGPOOL, x, NOLOC, &err);
    int sb = graph_binary(g, OP_SUB, gp, x, NOLOC, &err);
    CHECK("sub_broadcast_first", sb >= 0 && shape_is(g, sb, 3, 8, 8, 6) && g->nodes[sb].in[0] == gp,
          "a {1,1,C} - {H,W,C} keeps its operand order and the map's shape");
    expect_error("err_leaky_relu_slope", graph_activation(g, OP_LEAKY_RELU, x, INFINITY, NOLOC, &err), err.msg,
                 "leaky_relu: the slope must be finite");
    int ok1 = graph_conv2d(g, "dup", x, 6, 1, 1, 1, 1, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err);
    int n1 = g->n_nodes, p1 = g->n_params;
    expect_error("err_duplicate_name", graph_conv2d(g, "dup", x, 6, 1, 1, 1, 1, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "parameter name 'dup.weight' is used twice");
    CHECK("failed_builder_adds_nothing", ok1 >= 0 && g->n_nodes == n1 && g->n_params == p1, "nodes %d->%d", n1, g->n_nodes);
    (void)n0;
    (void)p0;
    /* a spatial size reaching 0 through strided convs would need the kernel to
     * exceed the input first: 1x1 input, 3x3 kernel, no padding */
    int one = graph_input(g, 1, 1, 4, NOLOC);
    expect_error("err_spatial_zero", graph_conv2d(g, "s", one, 4, 3, 3, 2, 2, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err),
                 err.msg, "larger than its padded input");
    /* overflow of a parameter's element count */
    int wide = graph_input(g, 1, 1, 2000000000, NOLOC);
    int o = graph_conv2d(g, "o", wide, 2000000000, 1, 1, 1, 1, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err);
    CHECK("params_4e18_fit", o >= 0, "%s", err.msg);
    int o2 = graph_conv2d(g, "o2", o, 2000000000, 1, 1, 1, 1, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err);
    int o3 = o2 < 0 ? -1 : graph_conv2d(g, "o3", o2, 2000000000, 1, 1, 1, 1, 0, 0, 1, false, INIT_ZEROS, NOLOC, &err);
    CHECK("param_count_overflow", o3 >= 0 && graph_param_count(g) == -1, "count %lld", (long long)graph_param_count(g));
    graph_free(g);
}

static void test_other_ops(void) {
    Error err = {0};
    Graph *g = graph_new("t");
    int x = graph_input(g, 112, 112, 64, NOLOC);
    PoolAttr mp = {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1};
    int p = graph_pool(g, OP_MAXPOOL, x, &mp, NOLOC, &err);
    CHECK("maxpool_shape", shape_is(g, p, 3, 56, 56, 64), "%s", err.msg);
    /* ceil mode: torch MaxPool2d(3, 2, ceil_mode=True) on 6 -> 3 (floor: 2); on 5 -> 2 */
    PoolAttr cm = {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ceil_mode = true};
    int c6 = graph_pool(g, OP_MAXPOOL, graph_input(g, 6, 5, 2, NOLOC), &cm, NOLOC, &err);
    CHECK("pool_ceil_mode", shape_is(g, c6, 3, 3, 2, 2), "%s", err.msg);
    /* ceil mode with padding: AvgPool2d(2, 2, padding=1, ceil_mode=True) on 4 -> 3 (last window starts at 4 >= 4+1? no) */
    PoolAttr cp = {.kh = 2, .kw = 2, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .ceil_mode = true};
    int c4 = graph_pool(g, OP_AVGPOOL, graph_input(g, 4, 4, 1, NOLOC), &cp, NOLOC, &err);
    CHECK("pool_ceil_padding", shape_is(g, c4, 3, 3, 3, 1), "%s", err.msg);
    int gp = graph_unary(g, OP_GLOBAL_AVGPOOL, p, NOLOC, &err);
    CHECK("global_avgpool_shape", shape_is(g, gp, 3, 1, 1, 64), "%s", err.msg);
    int fl = graph_unary(g, OP_FLATTEN, p, NOLOC, &err);
    CHECK("flatten_shape", shape_is(g, fl, 1, 56 * 56 * 64, 0, 0), "%s", err.msg);
    int m = graph_binary(g, OP_MUL, gp, p, NOLOC, &err);
    CHECK("mul_broadcast_first", m >= 0 && shape_is(g, m, 3, 56, 56, 64) && g->nodes[m].in[0] == p &&
          g->nodes[m].in[1] == gp, "%s", err.msg);
    int cat = graph_concat(g, (int[]){p, p, p}, 3, NOLOC, &err);
    CHECK("concat_shape", shape_is(g, cat, 3, 56, 56, 192), "%s", err.msg);
    int bn = graph_batchnorm(g, "bn1", cat, 1e-5f, 0.1f, NOLOC, &err);
    const char *names[] = {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"};
    bool order = bn >= 0 && g->n_params == 5;
    for (int i = 0; order && i < 5; i++) order = strcmp(g->params[i].name, names[i]) == 0;
    CHECK("bn_param_names_order", order, "%d params", g->n_params);
    CHECK("bn_buffers", order && g->params[2].node == -1 && !g->params[2].trainable && g->params[4].rank == 0 &&
          g->params[4].numel == 1 && g->params[0].trainable && g->params[0].node >= 0, "buffer flags");
    CHECK("bn_param_count", graph_param_count(g) == 2 * 192, "%lld", (long long)graph_param_count(g));
    int fc = graph_linear(g, "fc", graph_unary(g, OP_FLATTEN, gp, NOLOC, &err), 10, true,
                          INIT_PYTORCH_DEFAULT, NOLOC, &err);
    CHECK("linear", shape_is(g, fc, 1, 10, 0, 0) && node_macs(g, fc) == 640 && graph_param_count(g) == 384 + 650,
          "%s", err.msg);
    graph_free(g);
}

/* ResNeXt built directly with the builders: the seed's layout (no max-pool,
 * stride on every stage's first block, on the grouped conv) and
 * torchvision's, to check the counts independent of the language. */
static int bottleneck(Graph *g, int x, const char *prefix, int width, int out, int card, int stride, bool tv) {
    char nm[96];
    Error err = {0};
    int cin = (int)g->nodes[x].dim[2];
    snprintf(nm, sizeof nm, "%s.conv1", prefix);
    int y = graph_conv2d(g, nm, x, width, 1, 1, 1, 1, 0, 0, 1, false, INIT_KAIMING_NORMAL_FAN_OUT, NOLOC, &err);
    snprintf(nm, sizeof nm, "%s.bn1", prefix);
    y = graph_unary(g, OP_RELU, graph_batchnorm(g, nm, y, 1e-5f, 0.1f, NOLOC, &err), NOLOC, &err);
    snprintf(nm, sizeof nm, "%s.conv2", prefix);
    y = graph_conv2d(g, nm, y, width, 3, 3, stride, stride, 1, 1, card, false, INIT_KAIMING_NORMAL_FAN_OUT, NOLOC, &err);
    snprintf(nm, sizeof nm, "%s.bn2", prefix);
    y = graph_unary(g, OP_RELU, graph_batchnorm(g, nm, y, 1e-5f, 0.1f, NOLOC, &err), NOLOC, &err);
    snprintf(nm, sizeof nm, "%s.conv3", prefix);
    y = graph_conv2d(g, nm, y, out, 1, 1, 1, 1, 0, 0, 1, false, INIT_KAIMING_NORMAL_FAN_OUT, NOLOC, &err);
    snprintf(nm, sizeof nm, "%s.bn3", prefix);
    y = graph_batchnorm(g, nm, y, 1e-5f, 0.1f, NOLOC, &err);
    int sc = x;
    if (stride != 1 || cin != out || !tv) {
        if (stride != 1 || cin != out) {
            snprintf(nm, sizeof nm, "%s.downsample.0", prefix);
            sc = graph_conv2d(g, nm, x, out, 1, 1, stride, stride, 0, 0, 1, false, INIT_KAIMING_NORMAL_FAN_OUT, NOLOC, &err);
            snprintf(nm, sizeof nm, "%s.downsample.1", prefix);
            sc = graph_batchnorm(g, nm, sc, 1e-5f, 0.1f, NOLOC, &err);
        }
    }
    return graph_unary(g, OP_RELU, graph_binary(g, OP_ADD, y, sc, NOLOC, &err), NOLOC, &err);
}

static Graph *resnext(int classes, int card, int d, const int *depths, bool tv) {
    char nm[64];
    Error err = {0};
    Graph *g = graph_new("resnext");
    int x = graph_input(g, 224, 224, 3, NOLOC);
    x = graph_conv2d(g, "conv1", x, 64, 7, 7, 2, 2, 3, 3, 1, false, INIT_KAIMING_NORMAL_FAN_OUT, NOLOC, &err);
    x = graph_unary(g, OP_RELU, graph_batchnorm(g, "bn1", x, 1e-5f, 0.1f, NOLOC, &err), NOLOC, &err);
    if (tv) {
        PoolAttr mp = {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1};
        x = graph_pool(g, OP_MAXPOOL, x, &mp, NOLOC, &err);
    }
    for (int s = 0; s < 4; s++)
        for (int b = 0; b < depths[s]; b++) {
            snprintf(nm, sizeof nm, "layer%d.%d", s + 1, b);
            int stride = b == 0 && (s > 0 || !tv) ? 2 : 1;
            x = bottleneck(g, x, nm, card * d << s, 256 << s, card, stride, tv);
        }
    x = graph_unary(g, OP_FLATTEN, graph_unary(g, OP_GLOBAL_AVGPOOL, x, NOLOC, &err), NOLOC, &err);
    if (!tv) x = graph_dropout(g, x, 0.5f, NOLOC, &err);
    g->output = graph_linear(g, "fc", x, classes, true, INIT_PYTORCH_DEFAULT, NOLOC, &err);
    return g;
}

static void test_networks(void) {
    int d50[4] = {3, 4, 6, 3}, d101[4] = {3, 4, 23, 3};
    struct { const char *name; int classes, card, d; const int *depths; bool tv; long long params, macs; } cases[] = {
        {"net_resnext50_seed", 10, 32, 4, d50, false, 23000394LL, 4305522688LL},
        {"net_resnext50_tv", 1000, 32, 4, d50, true, 25028904LL, 4230479872LL},
        {"net_resnet50_tv", 1000, 1, 64, d50, true, 25557032LL, 4089184256LL},
        {"net_resnext101_32x8d_tv", 1000, 32, 8, d101, true, 88791336LL, 16414015488LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Graph *g = resnext(cases[i].classes, cases[i].card, cases[i].d, cases[i].depths, cases[i].tv);
        long long p = (long long)graph_param_count(g), m = (long long)graph_macs(g);
        CHECK(cases[i].name, g->output >= 0 && p == cases[i].params && m == cases[i].macs,
              "output %d params %lld (want %lld) macs %lld (want %lld)", g->output, p, cases[i].params, m, cases[i].macs);
        graph_free(g);
    }
}

/* Lookups by name across many parameters and after a failed builder (the
 * name index is rebuilt when a builder backs out). */
static void test_param_lookup(void) {
    char nm[32];
    Error err = {0};
    Graph *g = graph_new("t");
    int x = graph_input(g, 4, 4, 2, NOLOC);
    for (int i = 0; i < 3000; i++) {
        snprintf(nm, sizeof nm, "l%d", i);
        x = graph_batchnorm(g, nm, x, 1e-5f, 0.1f, NOLOC, &err);
    }
    int bad = graph_batchnorm(g, "l7", x, 1e-5f, 0.1f, NOLOC, &err);
    bool ok = bad == -1 && g->n_params == 15000;
    for (int i = 0; ok && i < 3000; i++) {
        snprintf(nm, sizeof nm, "l%d.running_var", i);
        int k = graph_find_param(g, nm);
        ok = k == 5 * i + 3 && strcmp(g->params[k].name, nm) == 0;
    }
    CHECK("param_lookup_many", ok && graph_find_param(g, "l3000.weight") == -1 && graph_find_param(g, "l1") == -1,
          "lookup mismatch");
    graph_free(g);
}

int main(void) {
    test_param_lookup();
    test_conv_shapes();
    test_errors();
    test_other_ops();
    test_networks();
    return harness_status();
}
