/*
 * cmd_frontend.c — the commands that show what a .net file means without
 * training it: `rxc check`, `rxc summary` (per-layer table or JSON, and the
 * training compiler's --kernels/--memory reports) and `rxc graph --dot`.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "frontend.h"
#include "graph.h"
#include "recipe.h"
#include "util.h"

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* Common argument handling: --set options, one FILE, and the flags a command
 * allows. Returns the file, or NULL after printing why. */
typedef struct Args {
    const char *file;
    SetOverride *sets;
    int n_sets;
    bool json, dot, kernels, memory, help, print;
    bool cuda; /* --device cuda: the program a GPU trains */
    int batch;
} Args;

static int parse_args(int argc, char **argv, const char *const *flags, Args *a, const char *usage) {
    memset(a, 0, sizeof *a);
    a->batch = 0;
    if (cli_take_sets(&argc, argv, &a->sets, &a->n_sets)) return 2;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (is_help(s)) { a->help = true; continue; }
        bool allowed = false;
        for (int f = 0; flags[f]; f++)
            if (!strcmp(flags[f], s) || (!strcmp(flags[f], "--batch") && !strncmp(s, "--batch=", 8))) allowed = true;
        if (s[0] == '-' && s[1] && !allowed) {
            fprintf(stderr, "rxc %s: unknown option '%s'\n%s", argv[0], s, usage);
            return 2;
        }
        if (!strcmp(s, "--json")) a->json = true;
        else if (!strcmp(s, "--dot")) a->dot = true;
        else if (!strcmp(s, "--print")) a->print = true;
        else if (!strcmp(s, "--kernels")) a->kernels = true;
        else if (!strcmp(s, "--memory")) a->memory = true;
        else if (!strcmp(s, "--device")) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (strcmp(v, "cpu") && strcmp(v, "cuda")) {
                fprintf(stderr, "rxc %s: --device is cpu or cuda, not '%s'\n", argv[0], v);
                return 2;
            }
            a->cuda = !strcmp(v, "cuda");
        } else if (!strncmp(s, "--batch", 7)) {
            const char *v = s[7] == '=' ? s + 8 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || n < 1 || n > (1 << 20)) {
                fprintf(stderr, "rxc %s: --batch needs a positive integer\n", argv[0]);
                return 2;
            }
            a->batch = (int)n;
        } else if (a->file) {
            fprintf(stderr, "rxc %s: more than one file ('%s' and '%s')\n%s", argv[0], a->file, s, usage);
            return 2;
        } else {
            a->file = s;
        }
    }
    if (a->help) return 0;
    if (!a->file) {
        fprintf(stderr, "rxc %s: which .net file?\n%s", argv[0], usage);
        return 2;
    }
    return 0;
}

static int load(const Args *a, Model *m) {
    LoadOptions opt = {a->sets, a->n_sets, a->batch};
    int rc = model_load(a->file, &opt, m);
    return rc == LOAD_OK ? 0 : rc == LOAD_IO_ERROR ? 1 : 2;
}

/* ---- check ---------------------------------------------------------------- */

static const char check_usage[] =
    "usage: rxc check FILE.net [--set NAME=VALUE ...] [--print]\n"
    "Checks a model file (syntax, names, types, shapes, the training recipe).\n"
    "  --print   print the file as rxc understood it: includes spliced in, overrides\n"
    "            applied, one statement per line (a self-contained .net file)\n"
    "Exit status: 0 when the file is good, 2 with diagnostics (file:line:col: error: ...)\n"
    "when it is not, 1 when it cannot be read.\n";

int cmd_check(int argc, char **argv) {
    static const char *const flags[] = {"--print", NULL};
    Args a;
    int rc = parse_args(argc, argv, flags, &a, check_usage);
    if (rc || a.help) {
        if (a.help) fputs(check_usage, stdout);
        free(a.sets);
        return rc;
    }
    Model m;
    rc = load(&a, &m);
    if (rc == 0 && a.print) {
        fputs(m.resolved_text, stdout);
        model_free(&m);
    } else if (rc == 0) {
        printf("%s: ok: network %s, %" PRId64 " parameters, %" PRId64 " MACs per image\n", a.file, m.graph->name,
               graph_param_count(m.graph), graph_macs(m.graph));
        model_free(&m);
    }
    free(a.sets);
    return rc;
}

/* ---- summary -------------------------------------------------------------- */

static const char summary_usage[] =
    "usage: rxc summary FILE.net [--set NAME=VALUE ...] [--json]\n"
    "       rxc summary FILE.net [--kernels] [--memory] [--batch N] [--device cpu|cuda] [--json]\n"
    "Prints one row per layer (name, op, output shape C,H,W per image, parameters,\n"
    "multiply-accumulates per image), the totals, and the training recipe.\n"
    "  --json      one JSON object: name, input, classes, params, macs, layers[], recipe\n"
    "  --kernels   the kernels of one training step and what each fuses\n"
    "  --memory    the planned memory of a training step (--batch N, default the file's)\n"
    "  --device    whose program: cpu (default), or cuda (a GPU of sm_90: precision auto is bf16)\n";

static int64_t node_param_count(const Graph *g, const Node *n) {
    int64_t total = 0;
    for (int i = 0; i < n->n_in; i++) {
        const Node *in = &g->nodes[n->in[i]];
        if (in->op == OP_PARAM && in->a.param.index >= 0 && in->a.param.index < g->n_params &&
            g->params[in->a.param.index].trainable)
            total += g->params[in->a.param.index].numel;
    }
    return total;
}

/* PyTorch's order (C, H, W) is what users compare against. */
static void shape_text(const Node *n, char *buf, size_t len) {
    if (n->rank == 3) snprintf(buf, len, "%" PRId64 "x%" PRId64 "x%" PRId64, n->dim[2], n->dim[0], n->dim[1]);
    else if (n->rank == 1) snprintf(buf, len, "%" PRId64, n->dim[0]);
    else snprintf(buf, len, "?");
}

static cJSON *shape_json(const Node *n) {
    cJSON *a = cJSON_CreateArray();
    if (n->rank == 3) {
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)n->dim[2]));
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)n->dim[0]));
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)n->dim[1]));
    } else {
        for (int i = 0; i < n->rank; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)n->dim[i]));
    }
    return a;
}

static const char *const layout_words[] = {"imagefolder", "cifar10", "cifar100", "demo"};
static const char *const cache_words[] = {"decoded", "jpeg", "none"};
static const char *const opt_words[] = {"sgd", "adam", "adamw", "lamb"};
static const char *const sched_words[] = {"constant", "cosine", "step", "multistep"};
static const char *const device_words[] = {"auto", "cpu", "cuda"};
static const char *const policy_words[] = {"imagenet", "cifar10", "svhn"};

static void transform_text(const TransformOp *t, StrBuf *b) {
    sb_puts(b, transform_name(t->kind));
    switch (t->kind) {
    case TF_RESIZE:
        if (t->size[1]) sb_printf(b, "([%d, %d])", t->size[0], t->size[1]);
        else sb_printf(b, "(%d)", t->size[0]);
        break;
    case TF_RANDOM_RESIZE:
        sb_putc(b, '(');
        sb_putc(b, '[');
        for (int i = 0; i < t->n_sizes; i++) sb_printf(b, "%s%d", i ? ", " : "", t->sizes[i]);
        sb_puts(b, "])");
        break;
    case TF_RANDOM_CROP: sb_printf(b, "([%d, %d], padding=%d)", t->size[0], t->size[1], t->padding); break;
    case TF_CENTER_CROP: sb_printf(b, "([%d, %d])", t->size[0], t->size[1]); break;
    case TF_RANDOM_RESIZED_CROP:
        sb_printf(b, "([%d, %d], scale=[%g, %g], ratio=[%g, %g])", t->size[0], t->size[1], t->scale[0], t->scale[1],
                  t->ratio[0], t->ratio[1]);
        break;
    case TF_HFLIP: sb_printf(b, "(p=%g)", t->p); break;
    case TF_AUTOAUGMENT: sb_printf(b, "(%s, fill=%d)", policy_words[t->policy], t->fill); break;
    case TF_NORMALIZE:
        sb_printf(b, "(mean=[%g, %g, %g], std=[%g, %g, %g])", t->mean[0], t->mean[1], t->mean[2], t->std[0], t->std[1],
                  t->std[2]);
        break;
    case TF_RANDAUGMENT: sb_printf(b, "(n=%d, m=%d, bins=%d, fill=%d)", t->num_ops, t->magnitude, t->bins, t->fill); break;
    case TF_TRIVIALAUGMENT: sb_printf(b, "(bins=%d, fill=%d)", t->bins, t->fill); break;
    case TF_RANDOM_ERASING:
        sb_printf(b, "(p=%g, scale=[%g, %g], ratio=[%g, %g], ", t->p, t->scale[0], t->scale[1], t->ratio[0], t->ratio[1]);
        if (t->erase_random) sb_puts(b, "value=random)");
        else sb_printf(b, "value=[%g, %g, %g])", t->erase_value[0], t->erase_value[1], t->erase_value[2]);
        break;
    case TF_COUNT: break;
    }
}

static char *pipeline_text(const TransformOp *t, int n) {
    StrBuf b = {0};
    for (int i = 0; i < n; i++) {
        if (i) sb_puts(&b, " -> ");
        transform_text(&t[i], &b);
    }
    if (!b.s) sb_puts(&b, "(none)");
    return sb_take(&b);
}

static char *optimizer_text(const Recipe *r) {
    if (r->opt == OPT_SGD)
        return xasprintf("sgd(lr=%g, momentum=%g, nesterov=%s, weight_decay=%g, no_decay_bn_bias=%s)", r->lr,
                         r->momentum, r->nesterov ? "true" : "false", r->weight_decay,
                         r->no_decay_bn_bias ? "true" : "false");
    if (r->opt == OPT_LAMB)
        return xasprintf("lamb(lr=%g, betas=[%g, %g], eps=%g, weight_decay=%g, no_decay_bn_bias=%s, max_grad_norm=%g, "
                         "trust_clip=%s, always_adapt=%s)",
                         r->lr, r->beta1, r->beta2, r->eps, r->weight_decay, r->no_decay_bn_bias ? "true" : "false",
                         r->max_grad_norm, r->trust_clip ? "true" : "false", r->always_adapt ? "true" : "false");
    return xasprintf("%s(lr=%g, betas=[%g, %g], eps=%g, weight_decay=%g, no_decay_bn_bias=%s)", opt_words[r->opt], r->lr,
                     r->beta1, r->beta2, r->eps, r->weight_decay, r->no_decay_bn_bias ? "true" : "false");
}

static char *schedule_text(const Recipe *r) {
    const char *per = r->sched_per_step ? "per_step=true" : "per_step=false";
    switch (r->sched) {
    case SCHED_CONSTANT: return xstrdup("constant");
    case SCHED_COSINE: return xasprintf("cosine(eta_min=%g, t_max=%d, %s)", r->eta_min, r->t_max, per);
    case SCHED_STEP: return xasprintf("step(step_size=%d, gamma=%g, %s)", r->step_size, r->gamma, per);
    case SCHED_MULTISTEP: {
        StrBuf b = {0};
        sb_puts(&b, "multistep(milestones=[");
        for (int i = 0; i < r->n_milestones; i++) sb_printf(&b, "%s%d", i ? ", " : "", r->milestones[i]);
        sb_printf(&b, "], gamma=%g, %s)", r->gamma, per);
        return sb_take(&b);
    }
    }
    return xstrdup("?");
}

static cJSON *recipe_json(const Recipe *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(o, "data");
    if (r->data_root) cJSON_AddStringToObject(data, "root", r->data_root);
    else cJSON_AddNullToObject(data, "root");
    cJSON_AddStringToObject(data, "layout", layout_words[r->layout]);
    cJSON_AddStringToObject(data, "train_split", r->train_split ? r->train_split : "");
    cJSON_AddStringToObject(data, "val_split", r->val_split ? r->val_split : "");
    cJSON_AddStringToObject(data, "cache", cache_words[r->cache]);
    cJSON_AddNumberToObject(data, "workers", r->workers);
    cJSON_AddBoolToObject(data, "drop_last", r->drop_last);
    char *tr = pipeline_text(r->train_tf, r->n_train_tf), *va = pipeline_text(r->val_tf, r->n_val_tf);
    cJSON_AddStringToObject(o, "augment_train", tr);
    cJSON_AddStringToObject(o, "augment_val", va);
    free(tr);
    free(va);
    cJSON_AddNumberToObject(o, "epochs", r->epochs);
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddNumberToObject(o, "accum", r->accum_steps);
    cJSON_AddNumberToObject(o, "seed", (double)r->seed);
    cJSON_AddBoolToObject(o, "deterministic", r->deterministic);
    cJSON *opt = cJSON_AddObjectToObject(o, "optimizer");
    cJSON_AddStringToObject(opt, "kind", opt_words[r->opt]);
    cJSON_AddNumberToObject(opt, "lr", r->lr);
    cJSON_AddNumberToObject(opt, "momentum", r->momentum);
    cJSON_AddBoolToObject(opt, "nesterov", r->nesterov);
    cJSON_AddNumberToObject(opt, "beta1", r->beta1);
    cJSON_AddNumberToObject(opt, "beta2", r->beta2);
    cJSON_AddNumberToObject(opt, "eps", r->eps);
    cJSON_AddNumberToObject(opt, "weight_decay", r->weight_decay);
    cJSON_AddBoolToObject(opt, "no_decay_bn_bias", r->no_decay_bn_bias);
    if (r->opt == OPT_LAMB) {
        cJSON_AddNumberToObject(opt, "max_grad_norm", r->max_grad_norm);
        cJSON_AddBoolToObject(opt, "trust_clip", r->trust_clip);
        cJSON_AddBoolToObject(opt, "always_adapt", r->always_adapt);
    }
    cJSON *sch = cJSON_AddObjectToObject(o, "schedule");
    cJSON_AddStringToObject(sch, "kind", sched_words[r->sched]);
    cJSON_AddNumberToObject(sch, "eta_min", r->eta_min);
    cJSON_AddNumberToObject(sch, "t_max", r->t_max);
    cJSON_AddNumberToObject(sch, "step_size", r->step_size);
    cJSON_AddNumberToObject(sch, "gamma", r->gamma);
    cJSON *ms = cJSON_AddArrayToObject(sch, "milestones");
    for (int i = 0; i < r->n_milestones; i++) cJSON_AddItemToArray(ms, cJSON_CreateNumber(r->milestones[i]));
    cJSON_AddBoolToObject(sch, "per_step", r->sched_per_step);
    cJSON_AddNumberToObject(sch, "warmup_epochs", r->warmup_epochs);
    cJSON_AddNumberToObject(sch, "warmup_start", r->warmup_start);
    cJSON_AddNumberToObject(sch, "warmup_steps", r->warmup_steps);
    cJSON_AddStringToObject(sch, "warmup_kind", r->warmup_kind == WARMUP_CONSTANT ? "constant" : "linear");
    if (r->warmup_from_lr_init) cJSON_AddNumberToObject(sch, "warmup_lr_init", r->warmup_lr_init);
    cJSON_AddBoolToObject(sch, "warmup_prefix", !r->warmup_overlaps);
    cJSON_AddNumberToObject(o, "label_smoothing", r->label_smoothing);
    cJSON_AddNumberToObject(o, "clip_grad_norm", r->clip_grad_norm);
    cJSON *mix = cJSON_AddObjectToObject(o, "mix");
    cJSON_AddNumberToObject(mix, "mixup", r->mixup_alpha);
    cJSON_AddNumberToObject(mix, "cutmix", r->cutmix_alpha);
    cJSON_AddNumberToObject(mix, "prob", r->mix_prob);
    cJSON_AddNumberToObject(mix, "switch_prob", r->mix_switch_prob);
    if (r->ema_decay > 0) {
        cJSON *ema = cJSON_AddObjectToObject(o, "ema");
        cJSON_AddNumberToObject(ema, "decay", r->ema_decay);
        cJSON_AddNumberToObject(ema, "every", r->ema_every);
    }
    cJSON_AddStringToObject(o, "device", device_words[r->device]);
    cJSON_AddStringToObject(o, "precision", precision_name(r->precision));
    cJSON_AddStringToObject(o, "recompute", recompute_name(r->recompute));
    cJSON_AddStringToObject(o, "run_dir", r->run_dir ? r->run_dir : "");
    return o;
}

static void print_json(const Model *m) {
    const Graph *g = m->graph;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "name", g->name ? g->name : "");
    cJSON_AddStringToObject(root, "file", m->path);
    if (g->input >= 0) cJSON_AddItemToObject(root, "input", shape_json(&g->nodes[g->input]));
    if (g->output >= 0) cJSON_AddItemToObject(root, "output", shape_json(&g->nodes[g->output]));
    cJSON_AddNumberToObject(root, "classes", g->classes);
    cJSON_AddNumberToObject(root, "params", (double)graph_param_count(g));
    cJSON_AddNumberToObject(root, "macs", (double)graph_macs(g));
    cJSON_AddBoolToObject(root, "torchvision_layout", g->torchvision_layout);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (n->op == OP_PARAM) continue;
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "id", id);
        if (n->name) cJSON_AddStringToObject(l, "name", n->name);
        else cJSON_AddNullToObject(l, "name");
        cJSON_AddStringToObject(l, "op", op_name(n->op));
        cJSON_AddItemToObject(l, "shape", shape_json(n));
        cJSON_AddNumberToObject(l, "params", (double)node_param_count(g, n));
        cJSON_AddNumberToObject(l, "macs", (double)node_macs(g, id));
        cJSON_AddItemToArray(layers, l);
    }
    cJSON *params = cJSON_AddArrayToObject(root, "parameters");
    for (int i = 0; i < g->n_params; i++) {
        const Param *p = &g->params[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int k = 0; k < p->rank; k++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)p->dim[k]));
        cJSON_AddBoolToObject(o, "trainable", p->trainable);
        cJSON_AddItemToArray(params, o);
    }
    cJSON_AddItemToObject(root, "recipe", recipe_json(&m->recipe));
    cJSON_AddStringToObject(root, "source_sha256", m->source_sha256);
    char *text = cJSON_PrintUnformatted(root);
    puts(text);
    free(text);
    cJSON_Delete(root);
}

static void group_digits(int64_t v, char *buf, size_t len) {
    char raw[32];
    snprintf(raw, sizeof raw, "%" PRId64, v);
    int n = (int)strlen(raw), k = 0;
    for (int i = 0; i < n && (size_t)k + 2 < len; i++) {
        if (i && (n - i) % 3 == 0 && raw[i - 1] != '-') buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = 0;
}

static void print_table(const Model *m) {
    const Graph *g = m->graph;
    int name_w = 5;
    for (int id = 0; id < g->n_nodes; id++)
        if (g->nodes[id].name && (int)strlen(g->nodes[id].name) > name_w) name_w = (int)strlen(g->nodes[id].name);
    if (name_w > 48) name_w = 48;
    StrBuf out = {0};
    sb_printf(&out, "network %s (%s)\n\n", g->name ? g->name : "?", m->path);
    sb_printf(&out, "%-*s  %-14s %-16s %12s %16s\n", name_w, "layer", "op", "output (CxHxW)", "params", "MACs");
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (n->op == OP_PARAM) continue;
        char shape[64], params[32], macs[32];
        shape_text(n, shape, sizeof shape);
        int64_t pc = node_param_count(g, n), mc = node_macs(g, id);
        group_digits(pc, params, sizeof params);
        group_digits(mc, macs, sizeof macs);
        sb_printf(&out, "%-*s  %-14s %-16s %12s %16s\n", name_w, n->name ? n->name : "-", op_name(n->op), shape,
                  pc ? params : "", mc ? macs : "");
    }
    char total_p[32], total_m[32];
    group_digits(graph_param_count(g), total_p, sizeof total_p);
    group_digits(graph_macs(g), total_m, sizeof total_m);
    sb_printf(&out, "\ntotal: %s trainable parameters, %s multiply-accumulates per image", total_p, total_m);
    if (g->input >= 0) {
        const Node *in = &g->nodes[g->input];
        sb_printf(&out, " (%" PRId64 "x%" PRId64 "x%" PRId64 ")", in->dim[2], in->dim[0], in->dim[1]);
    }
    sb_printf(&out, "\nclasses: %d\n", g->classes);

    const Recipe *r = &m->recipe;
    char *tr = pipeline_text(r->train_tf, r->n_train_tf), *va = pipeline_text(r->val_tf, r->n_val_tf);
    char *opt = optimizer_text(r), *sch = schedule_text(r);
    sb_printf(&out, "\ntraining run\n");
    sb_printf(&out, "  data          %s (%s; splits %s, %s; cache %s; workers %d%s)\n",
              r->data_root ? r->data_root : "(no root given)", layout_words[r->layout], r->train_split, r->val_split,
              cache_words[r->cache], r->workers, r->workers == 0 ? " = all cores" : "");
    sb_printf(&out, "  augment train %s\n  augment val   %s\n", tr, va);
    sb_printf(&out, "  epochs %d, batch %d, accum %d, seed %" PRIu64 ", deterministic %s\n", r->epochs, r->batch,
              r->accum_steps, r->seed, r->deterministic ? "true" : "false");
    sb_printf(&out, "  optimizer     %s\n  schedule      %s", opt, sch);
    if (r->warmup_epochs || r->warmup_steps) {
        const char *unit = r->warmup_steps ? "steps" : "epochs";
        int length = r->warmup_steps ? r->warmup_steps : r->warmup_epochs;
        if (r->warmup_kind == WARMUP_CONSTANT) sb_printf(&out, ", warmup %d %s at %g x lr", length, unit, r->warmup_start);
        else if (r->warmup_from_lr_init) sb_printf(&out, ", warmup %d %s from lr %g", length, unit, r->warmup_lr_init);
        else sb_printf(&out, ", warmup %d %s from %g", length, unit, r->warmup_start);
        if (r->warmup_overlaps) sb_printf(&out, " (overlapping the schedule)");
    }
    sb_printf(&out, "\n  loss          cross_entropy(label_smoothing=%g)\n", r->label_smoothing);
    if (r->clip_grad_norm > 0) sb_printf(&out, "  clip_grad_norm %g\n", r->clip_grad_norm);
    if (r->mixup_alpha > 0 || r->cutmix_alpha > 0)
        sb_printf(&out, "  mix           mixup %g, cutmix %g, prob %g, switch_prob %g\n", r->mixup_alpha, r->cutmix_alpha,
                  r->mix_prob, r->mix_switch_prob);
    if (r->ema_decay > 0) sb_printf(&out, "  ema           decay %g, every %d optimizer step(s)\n", r->ema_decay, r->ema_every);
    sb_printf(&out, "  device %s, precision %s, recompute %s, run_dir %s\n", device_words[r->device],
              precision_name(r->precision), recompute_name(r->recompute), r->run_dir ? r->run_dir : "");
    fputs(out.s, stdout);
    free(out.s);
    free(tr);
    free(va);
    free(opt);
    free(sch);
}

int cmd_summary(int argc, char **argv) {
    static const char *const flags[] = {"--json", "--kernels", "--memory", "--batch", "--device", NULL};
    Args a;
    int rc = parse_args(argc, argv, flags, &a, summary_usage);
    if (rc || a.help) {
        if (a.help) fputs(summary_usage, stdout);
        free(a.sets);
        return rc;
    }
    Model m;
    rc = load(&a, &m);
    if (rc == 0) {
        if (a.kernels || a.memory) {
            rc = summary_training_report(&m, a.batch ? a.batch : m.recipe.batch, a.kernels, a.memory, a.json, a.cuda);
        } else if (a.json) {
            print_json(&m);
        } else {
            print_table(&m);
        }
        model_free(&m);
    }
    free(a.sets);
    return rc;
}

/* ---- graph ---------------------------------------------------------------- */

static const char graph_usage[] =
    "usage: rxc graph FILE.net --dot [--set NAME=VALUE ...]\n"
    "Prints the graph IR for Graphviz (`rxc graph m.net --dot | dot -Tsvg > m.svg`):\n"
    "one box per op with its layer name and output shape (CxHxW); parameters are\n"
    "shown inside the op that owns them. Without --dot, prints one line per node.\n";

static void dot_escape(StrBuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_putc(b, '\\');
        sb_putc(b, *s);
    }
}

int cmd_graph(int argc, char **argv) {
    static const char *const flags[] = {"--dot", NULL};
    Args a;
    int rc = parse_args(argc, argv, flags, &a, graph_usage);
    if (rc || a.help) {
        if (a.help) fputs(graph_usage, stdout);
        free(a.sets);
        return rc;
    }
    Model m;
    rc = load(&a, &m);
    if (rc) {
        free(a.sets);
        return rc;
    }
    const Graph *g = m.graph;
    StrBuf out = {0};
    if (a.dot) {
        sb_puts(&out, "digraph \"");
        dot_escape(&out, g->name ? g->name : "network");
        sb_puts(&out, "\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
        for (int id = 0; id < g->n_nodes; id++) {
            const Node *n = &g->nodes[id];
            if (n->op == OP_PARAM) continue;
            char shape[64];
            shape_text(n, shape, sizeof shape);
            sb_printf(&out, "  n%d [label=\"", id);
            if (n->name) {
                dot_escape(&out, n->name);
                sb_puts(&out, "\\n");
            }
            sb_printf(&out, "%s\\n%s", op_name(n->op), shape);
            int64_t pc = node_param_count(g, n);
            if (pc) sb_printf(&out, "\\n%" PRId64 " params", pc);
            sb_puts(&out, "\"");
            if (id == g->input || id == g->output) sb_puts(&out, ", style=bold");
            sb_puts(&out, "];\n");
            for (int i = 0; i < n->n_in; i++)
                if (g->nodes[n->in[i]].op != OP_PARAM) sb_printf(&out, "  n%d -> n%d;\n", n->in[i], id);
        }
        sb_puts(&out, "}\n");
    } else {
        for (int id = 0; id < g->n_nodes; id++) {
            const Node *n = &g->nodes[id];
            char shape[64];
            shape_text(n, shape, sizeof shape);
            sb_printf(&out, "%%%d = %s(", id, op_name(n->op));
            for (int i = 0; i < n->n_in; i++) sb_printf(&out, "%s%%%d", i ? ", " : "", n->in[i]);
            sb_printf(&out, ") : %s", shape);
            if (n->op == OP_PARAM) sb_printf(&out, "  %s", g->params[n->a.param.index].name);
            else if (n->name) sb_printf(&out, "  %s", n->name);
            sb_putc(&out, '\n');
        }
    }
    fputs(out.s ? out.s : "", stdout);
    free(out.s);
    model_free(&m);
    free(a.sets);
    return 0;
}
