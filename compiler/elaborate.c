/*
 * elaborate.c — evaluates the network section of a parsed .net file into the
 * graph IR (see elaborate.h and docs/language.md). Owns the run as a whole:
 * finding the one network, collecting the blocks, evaluating top-level
 * constants and the network parameters (input, classes, layout, init and
 * the user's own), running the network body with the evaluator and checking
 * its output, then the unused-name check. The other parts of the elaborator
 * are listed in elaborate_internal.h.
 */
#include "elaborate_internal.h"

#include <stdlib.h>
#include <string.h>

static bool in_list(const char *const *list, const char *name) {
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0) return true;
    return false;
}

static bool is_reserved_setting(const char *name) {
    return !strcmp(name, "input") || !strcmp(name, "classes") || !strcmp(name, "layout") || !strcmp(name, "init");
}

/* The word of a setting such as `layout torchvision` (an EX_NAME or a string). */
static const char *setting_word(const AstExpr *x) {
    if (x && x->kind == EX_NAME) return x->v.name;
    if (x && x->kind == EX_STRING) return x->v.s;
    return NULL;
}

static void collect_blocks(Elab *e) {
    const AstFile *ast = e->ast;
    e->blocks = xcalloc((size_t)(ast->n_decls ? ast->n_decls : 1), sizeof *e->blocks);
    for (int i = 0; i < ast->n_decls; i++) {
        const AstDecl *d = ast->decls[i];
        if (d->kind != DECL_BLOCK) continue;
        const BlockInfo *prev = find_block(e, d->name);
        if (prev) {
            diag_error(e->d, d->name_loc, "block '%s' is defined twice", d->name);
            diag_note(e->d, prev->decl->name_loc, "first defined here");
            continue;
        }
        if (in_list(elaborate_op_names, d->name) || in_list(elaborate_builtin_names, d->name)) {
            diag_error(e->d, d->name_loc, "a block may not be named like the %s '%s'",
                       in_list(elaborate_op_names, d->name) ? "primitive op" : "builtin", d->name);
            continue;
        }
        for (int k = 0; k < d->n_params; k++)
            for (int j = 0; j < k; j++)
                if (!strcmp(d->params[k].name, d->params[j].name))
                    diag_error(e->d, d->params[k].loc, "block '%s' has two parameters named '%s'", d->name,
                               d->params[k].name);
        e->blocks[e->n_blocks++] = (BlockInfo){.decl = d};
    }
}

static void eval_constants(Elab *e) {
    for (int i = 0; i < e->ast->n_decls; i++) {
        const AstDecl *d = e->ast->decls[i];
        if (d->kind != DECL_CONST || !d->stmt) continue;
        const AstStmt *s = d->stmt;
        int prev = frame_find(&e->globals, s->name);
        if (prev >= 0) {
            diag_error(e->d, s->name_loc, "constant '%s' is defined twice", s->name);
            continue;
        }
        Site *site = site_get(&e->sites, d, SITE_CONST, s->name, s->name_loc);
        site->executed = true;
        Value v = eval_expr(e, &e->globals, s->value);
        frame_set(&e->globals, s->name, v, site);
    }
}

/* Evaluates the network parameters (`name value` statements) into globals and
 * reads the reserved ones. Returns false when the input shape is unusable. */
static bool eval_network_params(Elab *e, const AstDecl *net, int in_chw[3], int *classes, bool *tv) {
    bool have_input = false, have_classes = false, input_ok = true;
    for (int i = 0; i < net->body.n; i++) {
        const AstStmt *s = net->body.items[i];
        if (s->kind != ST_SETTING) continue;
        if (is_reserved_setting(s->name)) {
            /* reserved: checked here, never "unused" */
            bool dup = false;
            for (int k = 0; k < i && !dup; k++)
                dup = net->body.items[k]->kind == ST_SETTING && !strcmp(net->body.items[k]->name, s->name);
            if (dup) {
                diag_error(e->d, s->name_loc, "network parameter '%s' is set twice", s->name);
                continue;
            }
            if (!strcmp(s->name, "layout") || !strcmp(s->name, "init")) {
                const char *w = setting_word(s->value);
                bool is_layout = !strcmp(s->name, "layout");
                const char *alt = is_layout ? "rxc" : "pytorch";
                if (!w || (strcmp(w, "torchvision") && strcmp(w, alt))) {
                    diag_error(e->d, s->value ? s->value->loc : s->loc, "%s must be torchvision or %s", s->name, alt);
                    continue;
                }
                if (is_layout) *tv = !strcmp(w, "torchvision");
                else e->conv_init = !strcmp(w, "torchvision") ? INIT_KAIMING_NORMAL_FAN_OUT : INIT_PYTORCH_DEFAULT;
                continue;
            }
            Value v = eval_expr(e, &e->globals, s->value);
            if (!strcmp(s->name, "classes")) {
                have_classes = true;
                if (v.k == V_ERR) continue;
                int c;
                if (to_int_range(e->d, v, s->value->loc, "classes", 1, INT32_MAX, &c)) *classes = c;
                else v = VERR; /* uses of a bad count stay quiet */
                frame_set(&e->globals, "classes", v, NULL);
                continue;
            }
            /* input CxHxW */
            have_input = true;
            input_ok = false;
            if (v.k == V_ERR) continue;
            if (v.k != V_LIST || v.u.list.n != 3) {
                diag_error(e->d, s->value->loc, "input must be CxHxW, e.g. 3x224x224");
                continue;
            }
            input_ok = true;
            for (int k = 0; k < 3 && input_ok; k++)
                input_ok = to_int_range(e->d, v.u.list.items[k], s->value->loc, k ? "input size" : "input channels", 1,
                                        1 << 20, &in_chw[k]);
            continue;
        }
        if (frame_find(&e->globals, s->name) >= 0) {
            diag_error(e->d, s->name_loc, "'%s' is already defined (a network parameter or a top-level constant)",
                       s->name);
            continue;
        }
        Site *site = site_get(&e->sites, s, SITE_NETPARAM, s->name, s->name_loc);
        site->executed = true;
        Value v = eval_expr(e, &e->globals, s->value);
        frame_set(&e->globals, s->name, v, site);
    }
    if (!have_input) {
        diag_error(e->d, net->name_loc, "network '%s' does not say its input shape (add e.g. 'input 3x224x224')",
                   net->name);
        return false;
    }
    if (!have_classes) {
        diag_error(e->d, net->name_loc, "network '%s' does not say its number of classes (add e.g. 'classes 10')",
                   net->name);
        frame_set(&e->globals, "classes", VERR, NULL);
    }
    return input_ok;
}


Graph *elaborate(const AstFile *ast, Diag *d) {
    Elab e = {.ast = ast, .d = d, .conv_init = INIT_KAIMING_NORMAL_FAN_OUT, .errors0 = diag_errors(d)};
    const AstDecl *net = NULL;
    for (int i = 0; i < ast->n_decls; i++) {
        const AstDecl *dc = ast->decls[i];
        if (dc->kind != DECL_NETWORK) continue;
        if (net) {
            diag_error(d, dc->name_loc, "a model has one network; '%s' is the second", dc->name);
            diag_note(d, net->name_loc, "the first is here");
            continue;
        }
        net = dc;
    }
    if (!net) {
        SrcLoc top = {.file = ast->path, .line = 0, .col = 0};
        diag_error(d, top, "%s: no network section (a model needs 'network NAME { ... }')", ast->path ? ast->path : "model");
        return NULL;
    }
    e.net = net;
    e.arena = arena_new();
    e.g = graph_new(net->name);
    e.scope = xstrdup("");
    collect_blocks(&e);
    eval_constants(&e);

    int chw[3] = {0, 0, 0}, classes = 0;
    bool tv = false;
    bool input_ok = eval_network_params(&e, net, chw, &classes, &tv);
    e.g->classes = classes;
    e.g->torchvision_layout = tv;

    Frame nf = {0};
    if (input_ok) {
        int in = graph_input(e.g, chw[1], chw[2], chw[0], net->loc);
        frame_set(&nf, "input", vtensor(in), NULL);
    } else {
        frame_set(&nf, "input", VERR, NULL);
    }
    Value ret = {.k = V_NONE};
    Flow flow = exec_body(&e, &nf, &net->body, &ret);
    if (flow != FLOW_RETURN) diag_error(d, net->name_loc, "network '%s' does not return its output", net->name);
    else if (ret.k == V_TENSOR) e.g->output = ret.u.tensor;
    else if (ret.k != V_ERR)
        diag_error(d, net->name_loc, "network '%s' returns %s; it must return a tensor", net->name, kind_name(ret.k));

    if (e.g->output < 0 && diag_errors(d) == e.errors0)
        diag_error(d, net->name_loc, "network '%s' has no output", net->name);
    if (!e.budget_reported) report_unused(&e);

    free(nf.b);
    free(e.globals.b);
    free(e.blocks);
    site_table_free(&e.sites);
    naming_free(&e);
    arena_free(e.arena);
    if (diag_errors(d) > e.errors0) {
        graph_free(e.g);
        return NULL;
    }
    return e.g;
}

