/*
 * plot.h — small line charts as hand-written SVG (no dependencies): the
 * training curves of a run and the plots of a cardinality ablation.
 *
 * A figure is one or more panels side by side; each panel has axes with
 * round-number ticks, a legend, and series of (x, y) points. NaN y values
 * are gaps. Files are written to a temporary name and renamed
 * (write_file_atomic), so a viewer never sees half a figure, even when a run
 * is interrupted while plotting.
 */
#ifndef RXC_PLOT_H
#define RXC_PLOT_H

#include <stdbool.h>
#include <stddef.h>

#include "runlog.h"
#include "error.h"

typedef struct PlotSeries {
    const char *label;
    const double *x, *y;
    int n;
    int color;      /* palette index (cycles); series with equal colours belong together */
    bool dashed;    /* e.g. train dashed, val solid */
    bool markers;   /* a dot at every point */
} PlotSeries;

typedef struct PlotPanel {
    const char *title, *xlabel, *ylabel;
    const PlotSeries *series;
    int n_series;
    bool log2_x;    /* x on a log2 axis with a tick at every data x (cardinality) */
} PlotPanel;

/* Writes the figure. Returns 0, or -1 with a message in err. */
int plot_svg(const char *path, const char *title, const PlotPanel *panels, int n_panels, Error *err);

/* The run directory's curves.svg: loss (train dashed, val solid) and
 * accuracy against epoch. */
int plot_training_curves(const char *path, const char *title, const EpochRecord *rows, int n, Error *err);

/* One variant of a cardinality ablation (rxc ablate). */
typedef struct AblationPlotVariant {
    const char *label;                   /* e.g. "4x24d" */
    int cardinality;
    double best_val_acc, final_val_acc;  /* NAN when not trained */
    const EpochRecord *rows;             /* the epochs of its run (n_rows may be 0) */
    int n_rows;
} AblationPlotVariant;

/* The ablation's figure, titled "cardinality ablation: <title>": best and
 * final validation accuracy against cardinality (log2 axis), then every
 * variant's validation accuracy and training loss against epoch. */
int plot_ablation(const char *path, const char *title, const AblationPlotVariant *v, int n, Error *err);

/* Escapes &, <, >, " for SVG text into a malloc'd string. */
char *plot_xml_escape(const char *s);

#endif
