/*
 * recipe_augment.c — the augment pipelines of a .net file: each op's
 * arguments read and checked into a TransformOp (transform_from_expr, also
 * used by `rxc transform`), and the rules of a pipeline's order
 * (transforms_from_ops). The value readers are recipe.c's (recipe_read.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "recipe.h"
#include "recipe_read.h"
#include "util.h"

/* An image size: an int (square, or the shorter side for resize) or [h, w]. */
static bool get_size(Reader *rd, const AstExpr *e, const char *what, bool allow_int_as_short, int size[2]) {
    if (e->kind == EX_LIST) {
        double hw[2];
        if (get_numbers(rd, e, what, 2, 2, hw) != 2) return false;
        for (int i = 0; i < 2; i++)
            if (hw[i] != floor(hw[i]) || hw[i] < 1 || hw[i] > 65536) {
                read_error(rd, e->v.list.items[i]->loc, "%s must be whole numbers between 1 and 65536", what);
                return false;
            }
        size[0] = (int)hw[0];
        size[1] = (int)hw[1];
        return true;
    }
    int v;
    if (!get_int32(rd, e, what, 1, 65536, &v)) return false;
    size[0] = v;
    size[1] = allow_int_as_short ? 0 : v;
    return true;
}

/* random_resize's sizes: one to RXC_MAX_SIZES image sizes. */
static bool get_resize_sizes(Reader *rd, const AstExpr *e, TransformOp *op) {
    double sz[RXC_MAX_SIZES];
    int n = get_numbers(rd, e, "random_resize's sizes", 1, RXC_MAX_SIZES, sz);
    if (n < 0) return false;
    for (int i = 0; i < n; i++) {
        if (sz[i] != floor(sz[i]) || sz[i] < 1 || sz[i] > 65536) {
            read_error(rd, e->v.list.items[i]->loc, "random_resize's sizes must be whole numbers between 1 and 65536");
            return false;
        }
        op->sizes[i] = (int)sz[i];
    }
    op->n_sizes = n;
    return true;
}

/* random_resized_crop's or random_erasing's optional scale and ratio ranges
 * (NULL: the default), named `what` in messages. */
static bool get_scale_ratio(Reader *rd, const char *what, const AstExpr *scale, const AstExpr *ratio, TransformOp *op) {
    double pair[2];
    char name[64];
    if (scale) {
        snprintf(name, sizeof name, "%s's scale", what);
        if (get_numbers(rd, scale, name, 2, 2, pair) != 2) return false;
        if (!(pair[0] > 0 && pair[0] <= pair[1] && pair[1] <= 1)) {
            read_error(rd, scale->loc, "%s must be [lo, hi] with 0 < lo <= hi <= 1", name);
            return false;
        }
        op->scale[0] = (float)pair[0]; op->scale[1] = (float)pair[1];
    }
    if (ratio) {
        snprintf(name, sizeof name, "%s's ratio", what);
        if (get_numbers(rd, ratio, name, 2, 2, pair) != 2) return false;
        if (!(pair[0] > 0 && pair[0] <= pair[1] && isfinite(pair[1]))) {
            read_error(rd, ratio->loc, "%s must be [lo, hi] with 0 < lo <= hi", name);
            return false;
        }
        op->ratio[0] = (float)pair[0]; op->ratio[1] = (float)pair[1];
    }
    return true;
}

/* random_erasing's value: a number, three numbers (per channel), or `random`. */
static bool get_erase_value(Reader *rd, const AstExpr *e, TransformOp *op) {
    if (e->kind == EX_NAME && !strcmp(e->v.name, "random")) {
        op->erase_random = true;
        return true;
    }
    double v[3];
    if (e->kind == EX_LIST) {
        if (get_numbers(rd, e, "random_erasing's value", 3, 3, v) != 3) return false;
    } else if (get_number(rd, e, "random_erasing's value (a number, [r, g, b] or random)", &v[0])) {
        v[1] = v[2] = v[0];
    } else {
        return false;
    }
    for (int c = 0; c < 3; c++) op->erase_value[c] = (float)v[c];
    return true;
}

/* normalize's per-channel mean and std (std positive). */
static bool get_mean_std(Reader *rd, const AstExpr *mean, const AstExpr *std, TransformOp *op) {
    double m[3], sd[3];
    if (get_numbers(rd, mean, "normalize's mean", 3, 3, m) != 3) return false;
    if (get_numbers(rd, std, "normalize's std", 3, 3, sd) != 3) return false;
    for (int i = 0; i < 3; i++) {
        if (!(sd[i] > 0)) {
            read_error(rd, std->v.list.items[i]->loc, "normalize's std must be positive");
            return false;
        }
        op->mean[i] = (float)m[i];
        op->std[i] = (float)sd[i];
    }
    return true;
}

/* randaugment(n=2, m=9, bins=31, fill=0) or trivialaugment(bins=31, fill=0). */
static int get_tv_augment(Reader *rd, const AstExpr *e, TransformOp *op) {
    static const char *const ra_ps[] = {"n", "m", "bins", "fill"};
    static const char *const ta_ps[] = {"bins", "fill"};
    bool ra = op->kind == TF_RANDAUGMENT;
    Spec s = ra ? (Spec){"randaugment", ra_ps, 4, 0} : (Spec){"trivialaugment", ta_ps, 2, 0};
    const AstExpr *v[4];
    const AstExpr **bins_fill = ra ? v + 2 : v;
    op->num_ops = 2;
    op->magnitude = 9;
    op->bins = 31;
    op->fill = 0;
    if (!bind_call(rd, e, &s, v)) return -1;
    if (ra && v[0] && !get_int32(rd, v[0], "randaugment's n", 0, 16, &op->num_ops)) return -1;
    if (bins_fill[0] && !get_int32(rd, bins_fill[0], ra ? "randaugment's bins" : "trivialaugment's bins", 2, 1024, &op->bins))
        return -1;
    if (bins_fill[1] && !get_int32(rd, bins_fill[1], ra ? "randaugment's fill" : "trivialaugment's fill", 0, 255, &op->fill))
        return -1;
    if (ra && v[1] && !get_int32(rd, v[1], "randaugment's m", 0, op->bins - 1, &op->magnitude)) return -1;
    if (ra && !v[1] && op->magnitude >= op->bins) {
        read_error(rd, e->loc, "randaugment's m (9) must be below bins (%d)", op->bins);
        return -1;
    }
    return 0;
}

static const char *const tf_names_list[] = {"resize", "random_resize", "random_crop", "center_crop",
                                            "random_resized_crop", "hflip", "autoaugment", "normalize",
                                            "randaugment", "trivialaugment", "random_erasing"};

int transform_from_expr(const AstExpr *e, TransformOp *op, Diag *d) {
    Reader rd = {.d = d};
    AstFile empty = {0};
    rd.ast = &empty;
    memset(op, 0, sizeof *op);
    op->p = 0.5f;
    op->fill = 128;
    op->scale[0] = 0.08f; op->scale[1] = 1.0f;
    op->ratio[0] = 3.0f / 4.0f; op->ratio[1] = 4.0f / 3.0f;
    const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : NULL;
    SrcLoc name_loc = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc;
    if (!name) {
        read_error(&rd, e->loc, "expected an augmentation op such as resize(256) or hflip");
        return -1;
    }
    int kind = -1;
    for (int i = 0; i < TF_COUNT; i++)
        if (!strcmp(name, tf_names_list[i])) kind = i;
    if (kind < 0) {
        const char *near = diag_closest(name, tf_names_list, TF_COUNT);
        if (near) read_error(&rd, name_loc, "unknown augmentation op '%s'; did you mean '%s'?", name, near);
        else read_error(&rd, name_loc, "unknown augmentation op '%s' (known: resize, random_resize, random_crop, center_crop, random_resized_crop, hflip, autoaugment, randaugment, trivialaugment, normalize, random_erasing)", name);
        return -1;
    }
    op->kind = (TransformKind)kind;
    const AstExpr *v[4];
    switch (op->kind) {
    case TF_RESIZE: {
        static const char *const ps[] = {"size"};
        Spec s = {"resize", ps, 1, 1};
        if (!bind_call(&rd, e, &s, v) || !get_size(&rd, v[0], "resize's size", true, op->size)) return -1;
        break;
    }
    case TF_RANDOM_RESIZE: {
        static const char *const ps[] = {"sizes"};
        Spec s = {"random_resize", ps, 1, 1};
        if (!bind_call(&rd, e, &s, v) || !get_resize_sizes(&rd, v[0], op)) return -1;
        break;
    }
    case TF_RANDOM_CROP: {
        static const char *const ps[] = {"size", "padding"};
        Spec s = {"random_crop", ps, 2, 1};
        if (!bind_call(&rd, e, &s, v) || !get_size(&rd, v[0], "random_crop's size", false, op->size)) return -1;
        if (v[1] && !get_int32(&rd, v[1], "random_crop's padding", 0, 4096, &op->padding)) return -1;
        break;
    }
    case TF_CENTER_CROP: {
        static const char *const ps[] = {"size"};
        Spec s = {"center_crop", ps, 1, 1};
        if (!bind_call(&rd, e, &s, v) || !get_size(&rd, v[0], "center_crop's size", false, op->size)) return -1;
        break;
    }
    case TF_RANDOM_RESIZED_CROP: {
        static const char *const ps[] = {"size", "scale", "ratio"};
        Spec s = {"random_resized_crop", ps, 3, 1};
        if (!bind_call(&rd, e, &s, v) || !get_size(&rd, v[0], "random_resized_crop's size", false, op->size)) return -1;
        if (!get_scale_ratio(&rd, "random_resized_crop", v[1], v[2], op)) return -1;
        break;
    }
    case TF_HFLIP: {
        static const char *const ps[] = {"p"};
        Spec s = {"hflip", ps, 1, 0};
        double p;
        if (!bind_call(&rd, e, &s, v)) return -1;
        if (v[0]) {
            if (!get_range(&rd, v[0], "hflip's p", 0, 1, false, &p)) return -1;
            op->p = (float)p;
        }
        break;
    }
    case TF_AUTOAUGMENT: {
        static const char *const ps[] = {"policy", "fill"};
        static const char *const policies[] = {"imagenet", "cifar10", "svhn"};
        Spec s = {"autoaugment", ps, 2, 1};
        int pol;
        if (!bind_call(&rd, e, &s, v) || !get_word(&rd, v[0], "autoaugment policy", policies, 3, &pol)) return -1;
        op->policy = (AutoAugmentPolicy)pol;
        if (v[1] && !get_int32(&rd, v[1], "autoaugment's fill", 0, 255, &op->fill)) return -1;
        break;
    }
    case TF_NORMALIZE: {
        static const char *const ps[] = {"mean", "std"};
        Spec s = {"normalize", ps, 2, 2};
        if (!bind_call(&rd, e, &s, v) || !get_mean_std(&rd, v[0], v[1], op)) return -1;
        break;
    }
    case TF_RANDAUGMENT:
    case TF_TRIVIALAUGMENT:
        if (get_tv_augment(&rd, e, op)) return -1;
        break;
    case TF_RANDOM_ERASING: {
        static const char *const ps[] = {"p", "scale", "ratio", "value"};
        Spec s = {"random_erasing", ps, 4, 0};
        double p;
        op->scale[0] = 0.02f; op->scale[1] = 0.33f;
        op->ratio[0] = 0.3f; op->ratio[1] = 3.3f;
        if (!bind_call(&rd, e, &s, v) || !get_scale_ratio(&rd, "random_erasing", v[1], v[2], op)) return -1;
        if (v[0]) {
            if (!get_range(&rd, v[0], "random_erasing's p", 0, 1, false, &p)) return -1;
            op->p = (float)p;
        }
        if (v[3] && !get_erase_value(&rd, v[3], op)) return -1;
        break;
    }
    case TF_COUNT: break;
    }
    return 0;
}

int transforms_from_ops(AstExpr *const *ops, int n, TransformOp **out, int *n_out, Diag *d) {
    TransformOp *tf = xcalloc((size_t)(n > 0 ? n : 1), sizeof *tf);
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (transform_from_expr(ops[i], &tf[i], d)) bad++;
    /* normalize turns the image into floats: only float ops (random_erasing) follow it, and they need it */
    bool floats = false;
    for (int i = 0; i < n && !bad; i++) {
        bool float_op = tf[i].kind == TF_RANDOM_ERASING;
        if (floats && !float_op) {
            diag_error(d, ops[i]->loc, "%s must come before normalize (which turns the image into floats)",
                       transform_name(tf[i].kind));
            bad++;
        } else if (!floats && float_op) {
            diag_error(d, ops[i]->loc, "%s works on the normalized image: put it after normalize",
                       transform_name(tf[i].kind));
            bad++;
        }
        if (tf[i].kind == TF_NORMALIZE) {
            if (floats) {
                diag_error(d, ops[i]->loc, "a second normalize");
                bad++;
            }
            floats = true;
        }
    }
    if (bad) {
        free(tf);
        return -1;
    }
    free(*out);
    *out = tf;
    *n_out = n;
    return 0;
}

