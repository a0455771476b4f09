/*
 * progress.h — what the user sees during an epoch.
 *
 * On a terminal (isatty) a one-line bar redrawn in place, at most a few
 * times a second:
 *   epoch 3/200 [#########...........]  61/148  412.3 img/s  loss 1.8613  ETA 0:13 (run 1:11:02)
 * Otherwise (a log file, a pipe, CI) a plain line every `log_every` steps:
 *   epoch 3/200 step 60/148 loss 1.8613 412.3 img/s ETA 0:13 (run 1:11:02)
 * "loss" is the running mean over the epoch so far; ETA is the rest of the
 * epoch's training, "run" the rest of the run at this epoch's pace
 * (validation not counted), shown while epochs remain.
 * The epoch line itself is the trainer's (runlog_epoch_line); call
 * progress_end before printing it so that the bar is cleared first.
 *
 * A Progress is a plain struct owned by the caller; nothing is global.
 */
#ifndef RXC_PROGRESS_H
#define RXC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct Progress {
    FILE *out;
    bool tty;              /* redraw in place */
    int epoch, epochs;
    int64_t steps;         /* steps in this epoch (0: unknown) */
    int log_every;         /* non-terminal: a line every log_every steps */
    double t_start;        /* monotonic seconds at progress_begin */
    double t_last_draw;
    int64_t images;        /* images so far in this epoch */
    double loss_avg;       /* running mean of the step losses */
    int64_t n_loss;
    bool drawn;            /* a bar is on screen and must be cleared */
} Progress;

/* Starts an epoch. out is usually stderr, NULL to print nothing (the ranks
 * other than 0 of a distributed run); log_every <= 0 means 50. The bar
 * is used when out is a terminal and RXC_PROGRESS is not "lines"
 * (RXC_PROGRESS=bar forces the bar, e.g. for a demo recording). */
void progress_begin(Progress *p, FILE *out, int epoch, int epochs, int64_t steps, int log_every);

/* After training step `step` (1-based within the epoch) with `batch_images`
 * images and the step's mean loss. */
void progress_step(Progress *p, int64_t step, int64_t batch_images, double loss);

/* Clears the bar (terminal) so that the next line starts clean. */
void progress_end(Progress *p);

/* Formats seconds as "M:SS" or "H:MM:SS" into buf. Returns buf. */
char *progress_format_duration(double seconds, char *buf, size_t buflen);

/* Monotonic clock in seconds. */
double progress_now(void);

#endif
