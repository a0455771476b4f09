/*
 * plot.c — SVG line charts (see plot.h). Layout: each panel is PANEL_W x
 * PANEL_H pixels with a fixed margin for tick labels; the figure title sits
 * above the panels.
 */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { PANEL_W = 420, PANEL_H = 320, MARGIN_L = 58, MARGIN_R = 14, MARGIN_T = 30, MARGIN_B = 44, TITLE_H = 28 };

/* Colour-blind-safe palette (Okabe-Ito). */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define N_PALETTE (int)(sizeof palette / sizeof palette[0])

char *plot_xml_escape(const char *s) {
    StrBuf b = {0};
    sb_puts(&b, "");
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_puts(&b, "&amp;"); break;
        case '<': sb_puts(&b, "&lt;"); break;
        case '>': sb_puts(&b, "&gt;"); break;
        case '"': sb_puts(&b, "&quot;"); break;
        default: sb_putc(&b, *s);
        }
    }
    return sb_take(&b);
}

static void text(StrBuf *b, double x, double y, const char *anchor, int size, const char *extra, const char *s) {
    char *e = plot_xml_escape(s);
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"%s>%s</text>\n", x, y, anchor,
              size, extra ? extra : "", e);
    free(e);
}

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` ticks. */
static double nice_step(double range, int want) {
    double raw = range / want;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(double v, double step, char *buf, size_t n) {
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6) decimals = 6;
    snprintf(buf, n, "%.*f", decimals, fabs(v) < step * 1e-6 ? 0.0 : v);
}

typedef struct Range { double lo, hi; bool any; } Range;

static void range_add(Range *r, double v) {
    if (!isfinite(v)) return;
    if (!r->any) { r->lo = r->hi = v; r->any = true; return; }
    if (v < r->lo) r->lo = v;
    if (v > r->hi) r->hi = v;
}

static void draw_panel(StrBuf *b, const PlotPanel *pn, double ox, double oy) {
    double pw = PANEL_W - MARGIN_L - MARGIN_R, ph = PANEL_H - MARGIN_T - MARGIN_B;
    double x0 = ox + MARGIN_L, y0 = oy + MARGIN_T; /* top-left of the plotting area */
    Range rx = {0}, ry = {0};
    for (int s = 0; s < pn->n_series; s++)
        for (int i = 0; i < pn->series[s].n; i++) {
            double x = pn->series[s].x[i], y = pn->series[s].y[i];
            if (!isfinite(y) || (pn->log2_x && !(x > 0))) continue;
            range_add(&rx, pn->log2_x ? log2(x) : x);
            range_add(&ry, y);
        }
    if (!rx.any) { rx.lo = 0; rx.hi = 1; }
    if (!ry.any) { ry.lo = 0; ry.hi = 1; }
    if (rx.hi - rx.lo < 1e-12) { rx.lo -= 0.5; rx.hi += 0.5; }
    if (ry.hi - ry.lo < 1e-12) { double d = fabs(ry.lo) > 0 ? fabs(ry.lo) * 0.05 : 0.5; ry.lo -= d; ry.hi += d; }
    double ystep = nice_step(ry.hi - ry.lo, 5);
    ry.lo = floor(ry.lo / ystep) * ystep;
    ry.hi = ceil(ry.hi / ystep) * ystep;
    double xstep = pn->log2_x ? 1 : nice_step(rx.hi - rx.lo, 6);
    if (!pn->log2_x && xstep < 1 && rx.hi - rx.lo >= 1) xstep = 1; /* epochs are integers */
    if (pn->log2_x) { rx.lo -= 0.25; rx.hi += 0.25; }
#define PX(x) (x0 + ((pn->log2_x ? log2(x) : (x)) - rx.lo) / (rx.hi - rx.lo) * pw)
#define PY(y) (y0 + ph - ((y) - ry.lo) / (ry.hi - ry.lo) * ph)

    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" stroke=\"#444\"/>\n",
              x0, y0, pw, ph);
    char buf[64];
    /* y grid and labels */
    for (double v = ry.lo; v <= ry.hi + ystep * 1e-6; v += ystep) {
        double y = PY(v);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, y, x0 + pw, y);
        fmt_tick(v, ystep, buf, sizeof buf);
        text(b, x0 - 5, y + 4, "end", 11, NULL, buf);
    }
    /* x ticks: at each distinct data x on a log2 axis, at round numbers otherwise */
    if (pn->log2_x) {
        for (int e = (int)ceil(rx.lo); e <= (int)floor(rx.hi); e++) {
            double x = x0 + (e - rx.lo) / (rx.hi - rx.lo) * pw;
            sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, y0, x, y0 + ph);
            snprintf(buf, sizeof buf, "%.0f", pow(2, e));
            text(b, x, y0 + ph + 16, "middle", 11, NULL, buf);
        }
    } else {
        for (double v = ceil(rx.lo / xstep) * xstep; v <= rx.hi + xstep * 1e-6; v += xstep) {
            double x = PX(v);
            sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, y0, x, y0 + ph);
            fmt_tick(v, xstep, buf, sizeof buf);
            text(b, x, y0 + ph + 16, "middle", 11, NULL, buf);
        }
    }
    if (pn->title) text(b, x0 + pw / 2, oy + 20, "middle", 14, " font-weight=\"bold\"", pn->title);
    if (pn->xlabel) text(b, x0 + pw / 2, oy + PANEL_H - 8, "middle", 12, NULL, pn->xlabel);
    if (pn->ylabel) {
        char *e = plot_xml_escape(pn->ylabel);
        sb_printf(b, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
                  ox + 14, y0 + ph / 2, e);
        free(e);
    }
    /* series */
    for (int s = 0; s < pn->n_series; s++) {
        const PlotSeries *se = &pn->series[s];
        const char *col = palette[((se->color % N_PALETTE) + N_PALETTE) % N_PALETTE];
        const char *dash = se->dashed ? " stroke-dasharray=\"5,3\"" : "";
        bool open = false;
        for (int i = 0; i < se->n; i++) {
            double x = se->x[i], y = se->y[i];
            if (!isfinite(y) || (pn->log2_x && !(x > 0))) {
                if (open) sb_puts(b, "\"/>\n");
                open = false;
                continue;
            }
            if (!open) sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col, dash);
            sb_printf(b, "%s%.1f,%.1f", open ? " " : "", PX(x), PY(y));
            open = true;
        }
        if (open) sb_puts(b, "\"/>\n");
        if (se->markers)
            for (int i = 0; i < se->n; i++)
                if (isfinite(se->y[i]) && !(pn->log2_x && !(se->x[i] > 0)))
                    sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\"/>\n", PX(se->x[i]), PY(se->y[i]), col);
    }
    /* legend, top right inside the plotting area, on a translucent box so
     * that curves under it stay visible but do not obscure the labels */
    int n_labels = 0;
    for (int s = 0; s < pn->n_series; s++) n_labels += pn->series[s].label != NULL;
    /* Curves that end high (accuracy) get the legend in the bottom corner. */
    double end_sum = 0;
    int n_end = 0;
    for (int s = 0; s < pn->n_series; s++)
        for (int i = pn->series[s].n - 1; i >= 0; i--)
            if (isfinite(pn->series[s].y[i])) {
                end_sum += (pn->series[s].y[i] - ry.lo) / (ry.hi - ry.lo);
                n_end++;
                break;
            }
    double box_h = 15.0 * n_labels + 4;
    double box_y = n_end && end_sum / n_end > 0.5 ? y0 + ph - box_h - 3 : y0 + 3;
    if (n_labels)
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"124\" height=\"%.0f\" fill=\"white\" fill-opacity=\"0.8\"/>\n",
                  x0 + pw - 126, box_y, box_h);
    double ly = box_y + 11;
    for (int s = 0; s < pn->n_series; s++) {
        const PlotSeries *se = &pn->series[s];
        if (!se->label) continue;
        const char *col = palette[((se->color % N_PALETTE) + N_PALETTE) % N_PALETTE];
        double lx = x0 + pw - 120;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", lx, ly - 4,
                  lx + 20, ly - 4, col, se->dashed ? " stroke-dasharray=\"5,3\"" : "");
        text(b, lx + 25, ly, "start", 11, NULL, se->label);
        ly += 15;
    }
#undef PX
#undef PY
}

int plot_svg(const char *path, const char *title, const PlotPanel *panels, int n_panels, Error *err) {
    int width = PANEL_W * (n_panels > 0 ? n_panels : 1), height = PANEL_H + TITLE_H;
    StrBuf b = {0};
    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
              "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              width, height, width, height);
    if (title) text(&b, width / 2.0, 20, "middle", 15, " font-weight=\"bold\"", title);
    for (int i = 0; i < n_panels; i++) draw_panel(&b, &panels[i], (double)PANEL_W * i, TITLE_H);
    sb_puts(&b, "</svg>\n");

    int rc = write_file_atomic(path, b.s, b.len, err);
    free(b.s);
    return rc;
}

/* One column of the rows (the double at byte offset `field` of each), with
 * their epochs in *x; both malloc'd. */
static double *epoch_column(const EpochRecord *rows, int n, size_t field, double **x) {
    double *y = xcalloc((size_t)n + 1, sizeof *y);
    *x = xcalloc((size_t)n + 1, sizeof **x);
    for (int i = 0; i < n; i++) {
        (*x)[i] = rows[i].epoch;
        memcpy(&y[i], (const char *)&rows[i] + field, sizeof y[i]);
    }
    return y;
}

int plot_training_curves(const char *path, const char *title, const EpochRecord *rows, int n, Error *err) {
    static const size_t fields[4] = {offsetof(EpochRecord, train_loss), offsetof(EpochRecord, val_loss),
                                     offsetof(EpochRecord, train_acc), offsetof(EpochRecord, val_acc)};
    double *x[4], *v[4];
    for (int k = 0; k < 4; k++) v[k] = epoch_column(rows, n, fields[k], &x[k]);
    PlotSeries loss[2] = {{"train", x[0], v[0], n, 0, true, n < 30}, {"val", x[0], v[1], n, 1, false, n < 30}};
    PlotSeries acc[2] = {{"train", x[0], v[2], n, 0, true, n < 30}, {"val", x[0], v[3], n, 1, false, n < 30}};
    PlotPanel panels[2] = {{"loss", "epoch", "loss", loss, 2, false}, {"accuracy", "epoch", "accuracy", acc, 2, false}};
    int rc = plot_svg(path, title, panels, 2, err);
    for (int k = 0; k < 4; k++) {
        free(x[k]);
        free(v[k]);
    }
    return rc;
}

int plot_ablation(const char *path, const char *title, const AblationPlotVariant *v, int n, Error *err) {
    double *cx = xcalloc((size_t)n + 1, sizeof *cx), *best = xcalloc((size_t)n + 1, sizeof *best);
    double *fin = xcalloc((size_t)n + 1, sizeof *fin);
    PlotSeries *acc = xcalloc((size_t)n + 1, sizeof *acc), *loss = xcalloc((size_t)n + 1, sizeof *loss);
    double **xs = xcalloc((size_t)n + 1, sizeof *xs), **ya = xcalloc((size_t)n + 1, sizeof *ya);
    double **yl = xcalloc((size_t)n + 1, sizeof *yl);
    int n_curves = 0;
    for (int i = 0; i < n; i++) {
        cx[i] = v[i].cardinality;
        best[i] = v[i].best_val_acc;
        fin[i] = v[i].final_val_acc;
        if (!v[i].n_rows) continue;
        int k = n_curves++, rows = v[i].n_rows;
        double *unused;
        ya[k] = epoch_column(v[i].rows, rows, offsetof(EpochRecord, val_acc), &xs[k]);
        yl[k] = epoch_column(v[i].rows, rows, offsetof(EpochRecord, train_loss), &unused);
        free(unused);
        acc[k] = (PlotSeries){v[i].label, xs[k], ya[k], rows, i, false, rows < 30};
        loss[k] = (PlotSeries){v[i].label, xs[k], yl[k], rows, i, false, rows < 30};
    }
    PlotSeries card[2] = {{"best val", cx, best, n, 0, false, true}, {"final val", cx, fin, n, 1, true, true}};
    PlotPanel panels[3] = {
        {"accuracy vs cardinality", "cardinality C", "validation accuracy", card, 2, true},
        {"validation accuracy", "epoch", "validation accuracy", acc, n_curves, false},
        {"training loss", "epoch", "training loss", loss, n_curves, false},
    };
    char *full_title = xasprintf("cardinality ablation: %s", title);
    int rc = plot_svg(path, full_title, panels, 3, err);
    free(full_title);
    for (int k = 0; k < n_curves; k++) {
        free(xs[k]);
        free(ya[k]);
        free(yl[k]);
    }
    free(xs);
    free(ya);
    free(yl);
    free(acc);
    free(loss);
    free(cx);
    free(best);
    free(fin);
    return rc;
}
