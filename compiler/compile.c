/*
 * compile.c — compile_training: the training compiler's driver (compile.h).
 *
 * Lays out the fixed spaces (parameters with decayed ones first, gradients,
 * optimizer state, BN buffers, input, labels), then runs the passes in
 * order: fusion decisions, forward + loss lowering, reverse-mode autodiff,
 * the fused update, memory planning. Owns program_free.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "lower.h"
#include "util.h"

void compile_options_from_recipe(CompileOptions *o, const Recipe *r, int batch, const Target *target) {
    memset(o, 0, sizeof *o);
    o->target = target;
    o->batch = batch > 0 ? batch : r->batch;
    o->precision = target_precision(target, r->precision, 0); /* no device known: see target_precision */
    o->loss = LOSS_CROSS_ENTROPY;
    o->label_smoothing = r->label_smoothing;
    o->opt = r->opt;
    o->nesterov = r->nesterov;
    if (r->opt == OPT_LAMB) {
        o->lamb_max_grad_norm = r->max_grad_norm;
        o->lamb_trust_clip = r->trust_clip;
        o->lamb_always_adapt = r->always_adapt;
    }
    o->clip_grad_norm = r->clip_grad_norm;
    o->ema_decay = r->ema_decay;
    o->mix_labels = r->mixup_alpha > 0 || r->cutmix_alpha > 0;
    o->no_decay_bn_bias = r->no_decay_bn_bias;
    o->sync_bn = r->sync_bn;
    o->recompute = r->recompute;
    for (int i = 0; i < 3; i++) {
        o->mean[i] = 0;
        o->std[i] = 1;
    }
}

static bool is_decayed(const Param *p, bool no_decay_bn_bias) {
    if (!no_decay_bn_bias) return true;
    /* as timm's param_groups_weight_decay: no decay for norm weights, biases
     * and the file's own tensors (layer scales, gains: param()) */
    return !(p->role == ROLE_BN_WEIGHT || p->role == ROLE_BN_BIAS || p->role == ROLE_BIAS || p->role == ROLE_SCALE);
}

void program_free(Program *p) {
    if (!p) return;
    kir_module_free(p->module);
    for (int b = 0; b < p->n_bufs; b++) free(p->bufs[b].name);
    free(p->bufs);
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        for (int s = 0; s < p->n_steps[ph]; s++) {
            free(p->steps[ph][s].args);
            free(p->steps[ph][s].note);
        }
        free(p->steps[ph]);
    }
    free(p->param_offset);
    free(p);
}

static int *filled(int n, int v) {
    int *a = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) a[i] = v;
    return a;
}

/* The per-node and per-parameter tables of the passes, as "nothing yet". */
static void lower_tables(Lower *L) {
    const int n = L->g->n_nodes, np = L->g->n_params;
    L->fwd_buf = filled(n, -1);
    L->bwd_buf = filled(n, -1);
    L->grad_buf = filled(n, -1);
    L->grad_written = xcalloc((size_t)(n ? n : 1), sizeof(bool));
    L->grad_deferred = filled(n, -1);
    L->sums_partials = filled(n, -1);
    L->sums_rows = filled(n, 0);
    L->stats_partials = filled(n, -1);
    L->stats_rows = filled(n, 0);
    L->stats_buf = filled(n, -1);
    L->aux_buf = filled(n, -1);
    L->param_buf = filled(np, -1);
    L->pgrad_buf = filled(np, -1);
    L->param_copy_buf = filled(np, -1);
}

static void lower_free(Lower *L) {
    fuse_plan_free(&L->fp);
    free(L->fwd_buf);
    free(L->bwd_buf);
    free(L->grad_buf);
    free(L->grad_written);
    free(L->grad_deferred);
    free(L->sums_partials);
    free(L->sums_rows);
    free(L->stats_partials);
    free(L->stats_rows);
    free(L->stats_buf);
    free(L->aux_buf);
    free(L->param_buf);
    free(L->pgrad_buf);
    free(L->param_copy_buf);
    for (int ph = 0; ph < PHASE_COUNT; ph++) free(L->inplace[ph]);
    free(L->buf_pin_start);
    free(L->buf_pin_end);
}

Program *compile_training(const Graph *g, const CompileOptions *o, Error *err) {
    if (!g || g->input < 0 || g->output < 0) {
        error_set(err, "the network has no input or no output");
        return NULL;
    }
    assert(o->target && "CompileOptions.target is set by compile_options_from_recipe");
    if (o->precision == PREC_AUTO) {
        error_set(err, "precision auto is resolved for a device before compiling (target_precision)");
        return NULL;
    }
    if (!target_runs_precision(o->target, o->precision)) {
        error_set(err, "the %s target cannot run precision %s", o->target->name, precision_name(o->precision));
        return NULL;
    }
    if (o->batch < 1) {
        error_set(err, "batch size must be at least 1, got %d", o->batch);
        return NULL;
    }
    const Node *outn = &g->nodes[g->output];
    if (o->loss == LOSS_CROSS_ENTROPY && outn->rank != 1) {
        error_set(err, "cross-entropy needs a vector output (logits), the network ends in a feature map");
        return NULL;
    }
    if (o->normalize_u8_input && g->nodes[g->input].dim[2] != 3) {
        error_set(err, "uint8 input normalization needs 3 input channels");
        return NULL;
    }

    Program *p = xcalloc(1, sizeof *p);
    p->module = kir_module_new();
    p->batch = o->batch;
    p->dy_buf = p->input_grad_buf = -1;
    p->n_params = g->n_params;
    p->param_offset = xmalloc((size_t)(g->n_params ? g->n_params : 1) * sizeof(int64_t));

    /* The lowering passes stop at the first error they record, so they need
     * somewhere to record it even when the caller does not want it. */
    Error unwanted;
    if (!err) err = &unwanted;
    error_clear(err);
    Lower L = {.g = g, .o = o, .p = p, .N = o->batch, .err = err,
               .act = o->precision == PREC_BF16 ? KD_BF16 : KD_F32};
    lower_tables(&L);

    /* fixed spaces: decayed parameters first, then the rest */
    int64_t off = 0, boff = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->n_params; i++) {
            const Param *pr = &g->params[i];
            if (!pr->trainable || is_decayed(pr, o->no_decay_bn_bias) != (pass == 0)) continue;
            p->param_offset[i] = off;
            L.param_buf[i] = lw_new_buf(&L, pr->name, SPACE_PARAMS, off * 4, pr->numel, KD_F32);
            char *gn = xasprintf("grad.%s", pr->name);
            L.pgrad_buf[i] = lw_new_buf(&L, gn, SPACE_GRADS, off * 4, pr->numel, KD_F32);
            free(gn);
            off += pr->numel;
            if (pass == 0) p->n_decayed = off;
        }
    for (int i = 0; i < g->n_params; i++) {
        const Param *pr = &g->params[i];
        if (pr->trainable) continue;
        if (pr->role == ROLE_NUM_BATCHES) {
            p->param_offset[i] = -1;
            continue;
        }
        p->param_offset[i] = boff;
        L.param_buf[i] = lw_new_buf(&L, pr->name, SPACE_BUFFERS, boff * 4, pr->numel, KD_F32);
        boff += pr->numel;
    }
    const Node *in = &g->nodes[g->input];
    int64_t in_numel = (int64_t)o->batch * node_numel(in);
    p->space_bytes[SPACE_PARAMS] = off * 4;
    p->space_bytes[SPACE_GRADS] = off * 4;
    p->space_bytes[SPACE_STATE] = off * 4 * (o->opt == OPT_SGD ? 1 : 2) + (o->opt == OPT_LAMB ? lamb_scratch_floats(g) * 4 : 0);
    p->space_bytes[SPACE_BUFFERS] = boff * 4;
    p->space_bytes[SPACE_PARAM_COPY] = L.act == KD_BF16 ? off * 2 : 0;
    p->space_bytes[SPACE_EMA] = o->ema_decay > 0 ? (off + boff) * 4 : 0;
    p->space_bytes[SPACE_INPUT] = in_numel * (o->normalize_u8_input ? 1 : 4);
    p->space_bytes[SPACE_LABELS] = (int64_t)o->batch * 8;
    p->input_buf = lw_new_buf(&L, "input", SPACE_INPUT, 0, in_numel, o->normalize_u8_input ? KD_U8 : KD_F32);
    p->labels_buf = lw_new_buf(&L, "labels", SPACE_LABELS, 0, o->batch, KD_I64);
    p->loss_buf = lw_arena(&L, "loss", o->batch);
    if (o->loss == LOSS_EXTERNAL_GRAD) p->dy_buf = lw_arena(&L, "dy", (int64_t)o->batch * node_numel(outn));

    int rc = fuse_plan(g, o, &L.fp, err);
    if (rc == 0) plan_conv_norm_inputs(&L);
    if (rc == 0) rc = lower_forward(&L);
    if (rc == 0) {
        p->logits_buf = L.fwd_buf[g->output];
        rc = autodiff_backward(&L);
    }
    if (rc == 0) rc = lower_update(&L);
    if (rc == 0) rc = lower_ema(&L);
    if (rc == 0) rc = memplan_run(&L, err);
    if (rc == 0 && o->want_input_grad && p->input_grad_buf < 0) {
        error_set(err, "no gradient reaches the network input");
        rc = -1;
    }
    lower_free(&L);
    if (rc != 0) {
        program_free(p);
        return NULL;
    }
    p->state_bytes = p->space_bytes[SPACE_PARAMS] + p->space_bytes[SPACE_GRADS] + p->space_bytes[SPACE_STATE] +
                     p->space_bytes[SPACE_BUFFERS] + p->space_bytes[SPACE_PARAM_COPY] + p->space_bytes[SPACE_EMA];
    return p;
}
