/*
 * op_runner.c — a test driver for the training compiler's op-level checks:
 * the same interface as `rxc grad` (cli/cmd_step.c), built directly on
 * compile_training and the CPU executor, so tests/ops does not depend on
 * the trainer being ready.
 *
 *   op_runner FILE.net --batch B.safetensors --init W.safetensors --out O.safetensors
 *
 * B: x (N,C,H,W f32), y (N i64) and optionally dy (the output gradient, NCHW
 * or N x F): with dy the loss is sum(output * dy) (LOSS_EXTERNAL_GRAD), else
 * the file's cross-entropy (mean over the batch). W: every parameter and BN
 * buffer by name. O: output (NCHW or N x F), loss (N per-sample values),
 * grad.<param>, grad.x (NCHW), and the BN buffers after the step as
 * <name>. One forward-train and one backward phase (--update: then the
 * optimizer step). OP_DEVICE=cuda runs on the GPU executor instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "executor.h"
#include "frontend.h"
#include "safetensors.h"
#include "target_cpu.h"
#include "target_cuda.h"
#include "util.h"

static int die(const char *msg) {
    fprintf(stderr, "op_runner: %s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *file = NULL, *bpath = NULL, *wpath = NULL, *opath = NULL;
    int update = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) bpath = argv[++i];
        else if (!strcmp(argv[i], "--init") && i + 1 < argc) wpath = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) opath = argv[++i];
        else if (!strcmp(argv[i], "--update")) update = 1;
        else file = argv[i];
    }
    if (!file || !bpath || !wpath || !opath) return die("usage: op_runner FILE --batch B --init W --out O [--update]");
    Error err = {0};
    Model m;
    LoadOptions lo = {0};
    if (model_load(file, &lo, &m) != LOAD_OK) return die("cannot load the model");
    const Graph *g = m.graph;
    SafeTensors B, W, O = {0};
    if (st_read(bpath, &B, &err) || st_read(wpath, &W, &err)) return die(err.msg);
    const StTensor *x = st_find(&B, "x"), *y = st_find(&B, "y"), *dy = st_find(&B, "dy");
    if (!x || x->rank != 4) return die("B needs x (N,C,H,W)");
    int N = (int)x->shape[0];
    CompileOptions o;
    /* OP_DEVICE=cuda: the GPU executor; OP_LOWER_FOR=cuda: the CUDA target's
     * lowering with im2col + GEMM for every conv (its direct conv steps
     * turned off), run by the CPU executor: how the GPU's GEMM conv path,
     * which convs conv_cuda has no kernel for take, is checked against
     * PyTorch here (conv_cuda itself: tests/emu, and tests/cuda's fake GPU) */
    const char *dev = getenv("OP_DEVICE"), *lower_for = getenv("OP_LOWER_FOR");
    bool on_gpu = dev && !strcmp(dev, "cuda");
    Target gemm_convs = target_cuda;
    gemm_convs.conv_library_step = NULL;
    const Target *target = on_gpu ? &target_cuda : lower_for && !strcmp(lower_for, "cuda") ? &gemm_convs : &target_cpu;
    compile_options_from_recipe(&o, &m.recipe, N, target);
    o.loss = dy ? LOSS_EXTERNAL_GRAD : LOSS_CROSS_ENTROPY;
    o.want_input_grad = getenv("OP_NO_INPUT_GRAD") == NULL;
    if (getenv("OP_NO_RECOMPUTE")) o.no_recompute = true;
    /* OP_U8_NORMALIZE="m0,m1,m2,s0,s1,s2": x holds 0..255 and goes in as uint8,
     * normalized by the first kernel */
    const char *u8 = getenv("OP_U8_NORMALIZE");
    if (u8) {
        o.normalize_u8_input = true;
        if (sscanf(u8, "%f,%f,%f,%f,%f,%f", &o.mean[0], &o.mean[1], &o.mean[2], &o.std[0], &o.std[1], &o.std[2]) != 6)
            return die("OP_U8_NORMALIZE needs six numbers");
    }
    Program *p = compile_training(g, &o, &err);
    if (!p) return die(err.msg);
    if (memplan_verify(p, &err)) return die(err.msg);
    /* OP_DEVICE=cuda: the same checks on the GPU executor */
    Executor *e = on_gpu ? exec_cuda_new(p, 0, &err) : exec_cpu_new(p, &err);
    if (!e) return die(err.msg);

    for (int i = 0; i < g->n_params; i++) {
        const Param *pr = &g->params[i];
        if (p->param_offset[i] < 0) continue;
        const StTensor *t = st_find(&W, pr->name);
        if (!t || t->numel != pr->numel) {
            fprintf(stderr, "op_runner: %s missing or wrong size in W\n", pr->name);
            return 1;
        }
        float *v = xmalloc((size_t)t->numel * 4);
        st_to_f32(t, v);
        e->write(e, pr->trainable ? SPACE_PARAMS : SPACE_BUFFERS, p->param_offset[i] * 4, v, t->numel * 4);
        free(v);
    }
    const Node *in = &g->nodes[g->input];
    int64_t H = in->dim[0], Wd = in->dim[1], C = in->dim[2];
    if (x->shape[1] != C || x->shape[2] != H || x->shape[3] != Wd) return die("x does not match the network input");
    int64_t nx = (int64_t)N * H * Wd * C;
    float *xs = xmalloc((size_t)nx * 4), *xh = xmalloc((size_t)nx * 4);
    st_to_f32(x, xs);
    for (int n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < Wd; w++)
                    xh[((n * H + h) * Wd + w) * C + c] = xs[((n * C + c) * H + h) * Wd + w];
    if (u8) {
        unsigned char *xb = xmalloc((size_t)nx);
        for (int64_t i = 0; i < nx; i++) xb[i] = (unsigned char)xh[i];
        e->write(e, SPACE_INPUT, 0, xb, nx);
        free(xb);
    } else {
        e->write(e, SPACE_INPUT, 0, xh, nx * 4);
    }
    int64_t *labels = xcalloc((size_t)N, 8);
    if (y) memcpy(labels, y->data, (size_t)N * 8);
    e->write(e, SPACE_LABELS, 0, labels, (int64_t)N * 8);
    const Node *on = &g->nodes[g->output];
    int64_t F = node_numel(on);
    int out_nchw = on->rank == 3;
    int64_t oH = on->rank == 3 ? on->dim[0] : 1, oW = on->rank == 3 ? on->dim[1] : 1, oC = on->rank == 3 ? on->dim[2] : F;
    if (dy) {
        if (dy->numel != (int64_t)N * F) return die("dy has the wrong size");
        float *ds = xmalloc((size_t)dy->numel * 4), *dh = xmalloc((size_t)dy->numel * 4);
        st_to_f32(dy, ds);
        for (int n = 0; n < N; n++)
            for (int64_t c = 0; c < oC; c++)
                for (int64_t h = 0; h < oH; h++)
                    for (int64_t w = 0; w < oW; w++)
                        dh[((n * oH + h) * oW + w) * oC + c] = ds[((n * oC + c) * oH + h) * oW + w];
        e->write(e, SPACE_ARENA, p->bufs[p->dy_buf].offset, dh, dy->numel * 4);
        free(ds);
        free(dh);
    }
    double sc[SC_COUNT] = {0};
    sc[SC_GRAD_SCALE] = 1.0 / N;
    sc[SC_RNG_SEED] = 12345;
    sc[SC_LR] = 0.1;
    sc[SC_MOMENTUM] = 0.9;
    sc[SC_BETA1] = 0.9;
    sc[SC_BETA2] = 0.999;
    sc[SC_EPS] = 1e-8;
    sc[SC_WEIGHT_DECAY] = 0.01;
    sc[SC_STEP] = 1;
    sc[SC_BIAS_CORR1] = 0.1;
    sc[SC_BIAS_CORR2] = 1 - 0.999;
    sc[SC_FIRST_STEP] = 1;
    /* OP_EVAL: only the eval-mode forward (running statistics, no dropout) */
    int eval = getenv("OP_EVAL") != NULL;
    if (eval ? e->run(e, PHASE_FORWARD_EVAL, sc, &err)
             : (e->run(e, PHASE_FORWARD_TRAIN, sc, &err) || e->run(e, PHASE_BACKWARD, sc, &err)))
        return die(err.msg);

    float *outh = xmalloc((size_t)(N * F) * 4), *outs = xmalloc((size_t)(N * F) * 4);
    e->read(e, SPACE_ARENA, p->bufs[p->logits_buf].offset, outh, (int64_t)N * F * 4);
    for (int n = 0; n < N; n++)
        for (int64_t c = 0; c < oC; c++)
            for (int64_t h = 0; h < oH; h++)
                for (int64_t w = 0; w < oW; w++)
                    outs[((n * oC + c) * oH + h) * oW + w] = outh[((n * oH + h) * oW + w) * oC + c];
    int64_t oshape[4] = {N, oC, oH, oW}, fshape[2] = {N, F};
    if (out_nchw) st_add(&O, "output", ST_F32, 4, oshape, outs, true);
    else st_add(&O, "output", ST_F32, 2, fshape, outs, true);
    float *loss = xmalloc((size_t)N * 4);
    e->read(e, SPACE_ARENA, p->bufs[p->loss_buf].offset, loss, (int64_t)N * 4);
    int64_t lshape[1] = {N};
    st_add(&O, "loss", ST_F32, 1, lshape, loss, true);
    if (p->input_grad_buf >= 0 && !eval) {
        e->read(e, SPACE_ARENA, p->bufs[p->input_grad_buf].offset, xh, nx * 4);
        for (int n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t w = 0; w < Wd; w++)
                        xs[((n * C + c) * H + h) * Wd + w] = xh[((n * H + h) * Wd + w) * C + c];
        int64_t xshape[4] = {N, C, H, Wd};
        st_add(&O, "grad.x", ST_F32, 4, xshape, xs, true);
    }
    if (update && e->run(e, PHASE_UPDATE, sc, &err)) return die(err.msg);
    for (int i = 0; i < g->n_params; i++) {
        const Param *pr = &g->params[i];
        if (p->param_offset[i] < 0) continue;
        float *v = xmalloc((size_t)pr->numel * 4);
        char *nm;
        if (pr->trainable) {
            e->read(e, SPACE_GRADS, p->param_offset[i] * 4, v, pr->numel * 4);
            nm = xasprintf("grad.%s", pr->name);
            st_add(&O, nm, ST_F32, pr->rank, pr->dim, v, true);
            free(nm);
            e->read(e, SPACE_PARAMS, p->param_offset[i] * 4, v, pr->numel * 4);
            nm = xasprintf("param.%s", pr->name);
        } else {
            e->read(e, SPACE_BUFFERS, p->param_offset[i] * 4, v, pr->numel * 4);
            nm = xstrdup(pr->name);
        }
        st_add(&O, nm, ST_F32, pr->rank, pr->dim, v, true);
        free(nm);
        free(v);
    }
    if (st_write(opath, &O, &err)) return die(err.msg);
    st_free(&O);
    e->free(e);
    program_free(p);
    return 0;
}
