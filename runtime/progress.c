/*
 * progress.c — the in-epoch progress display: a bar redrawn in place on a
 * terminal, plain periodic lines elsewhere (see progress.h).
 */
#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BAR_CELLS = 24 };
/* Redrawing more often than this only costs terminal bandwidth. */
#define REDRAW_SECONDS 0.2

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

char *progress_format_duration(double seconds, char *buf, size_t buflen) {
    if (!(seconds >= 0) || seconds > 1e8) { /* NaN, negative or absurd: unknown */
        snprintf(buf, buflen, "?");
        return buf;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, buflen, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, buflen, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

static bool want_bar(FILE *out) {
    if (!out) return false;
    const char *mode = getenv("RXC_PROGRESS");
    if (mode && !strcmp(mode, "bar")) return true;
    if (mode && !strcmp(mode, "lines")) return false;
    return isatty(fileno(out)) != 0;
}

void progress_begin(Progress *p, FILE *out, int epoch, int epochs, int64_t steps, int log_every) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = want_bar(out);
    p->epoch = epoch;
    p->epochs = epochs;
    p->steps = steps;
    p->log_every = log_every > 0 ? log_every : 50;
    p->t_start = progress_now();
    p->t_last_draw = -1;
}

static void draw(Progress *p, int64_t step, double now) {
    if (!p->out) return;
    double elapsed = now - p->t_start;
    double ips = elapsed > 0 ? (double)p->images / elapsed : 0;
    double eta = (p->steps > 0 && step > 0) ? elapsed / (double)step * (double)(p->steps - step) : -1;
    char eta_s[32], run_s[48] = "";
    progress_format_duration(eta, eta_s, sizeof eta_s);
    /* The rest of the run, from this epoch's pace (validation not counted). */
    if (eta >= 0 && p->epochs > p->epoch) {
        char d[32];
        double epoch_time = elapsed / (double)step * (double)p->steps;
        progress_format_duration(eta + epoch_time * (p->epochs - p->epoch), d, sizeof d);
        snprintf(run_s, sizeof run_s, " (run %s)", d);
    }
    if (p->tty) {
        char bar[BAR_CELLS + 1];
        int filled = p->steps > 0 ? (int)(BAR_CELLS * step / p->steps) : 0;
        if (filled > BAR_CELLS) filled = BAR_CELLS;
        for (int i = 0; i < BAR_CELLS; i++) bar[i] = i < filled ? '#' : '.';
        bar[BAR_CELLS] = 0;
        /* \r and erase-to-end-of-line: the bar is redrawn over itself. */
        fprintf(p->out, "\r\033[Kepoch %d/%d [%s] %lld/%lld  %.1f img/s  loss %.4f  ETA %s%s", p->epoch,
                p->epochs, bar, (long long)step, (long long)p->steps, ips, p->loss_avg, eta_s, run_s);
        p->drawn = true;
    } else {
        fprintf(p->out, "epoch %d/%d step %lld/%lld loss %.4f %.1f img/s ETA %s%s\n", p->epoch, p->epochs,
                (long long)step, (long long)p->steps, p->loss_avg, ips, eta_s, run_s);
    }
    fflush(p->out);
    p->t_last_draw = now;
}

void progress_step(Progress *p, int64_t step, int64_t batch_images, double loss) {
    p->images += batch_images;
    p->n_loss++;
    p->loss_avg += (loss - p->loss_avg) / (double)p->n_loss;
    double now = progress_now();
    if (p->tty) {
        if (p->t_last_draw < 0 || now - p->t_last_draw >= REDRAW_SECONDS || step == p->steps) draw(p, step, now);
    } else if (step % p->log_every == 0) {
        draw(p, step, now);
    }
}

void progress_end(Progress *p) {
    if (p->tty && p->drawn) {
        fprintf(p->out, "\r\033[K");
        fflush(p->out);
    }
    p->drawn = false;
}
