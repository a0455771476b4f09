/*
 * run_dir.c — the run directory's lock, the removal of dead writers'
 * temporary files, and the best/last checkpoint repair (see run_dir.h).
 */
#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runlog.h"
#include "safetensors.h"
#include "util.h"

struct RunDir {
    char *dir;
    int lock_fd;
};

char *run_dir_path(const RunDir *d, const char *name) { return xasprintf("%s/%s", d->dir, name); }

/* The writer's process id when name is "<anything>.tmp.<pid>", else 0. */
static long temp_file_pid(const char *name) {
    const char *tag = strstr(name, ".tmp.");
    while (tag && strstr(tag + 1, ".tmp.")) tag = strstr(tag + 1, ".tmp.");
    if (!tag || tag == name || !tag[5]) return 0;
    char *end = NULL;
    long pid = strtol(tag + 5, &end, 10);
    return *end || pid <= 0 ? 0 : pid;
}

/* Only a process that no longer exists is dead; one we may not signal is alive. */
static bool process_is_dead(long pid) { return kill((pid_t)pid, 0) != 0 && errno == ESRCH; }

static void remove_dead_temp_files(const char *dir, FILE *note) {
    DIR *d = opendir(dir);
    if (!d) return;
    int removed = 0;
    double bytes = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = temp_file_pid(e->d_name);
        if (!pid || pid == (long)getpid() || !process_is_dead(pid)) continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0) {
            removed++;
            bytes += (double)st.st_size;
        }
        free(path);
    }
    closedir(d);
    if (removed && note)
        fprintf(note, "rxc: note: removed %d temporary file%s (%.1f MB) that killed runs left in %s\n", removed,
                removed == 1 ? "" : "s", bytes / 1e6, dir);
}

/* The process id a holder wrote into the lock file, or 0. */
static long lock_holder(int fd) {
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

int run_dir_open(const char *dir, FILE *note, RunDir **out, Error *err) {
    *out = NULL;
    if (!dir || !*dir) return error_set(err, "no run directory given");
    if (make_dirs(dir, 0777, err) != 0) return RUN_DIR_FAILED;
    char *lock_path = xasprintf("%s/.lock", dir);
    /* CLOEXEC: the C compiler rxc starts must not inherit (and outlive) the lock. */
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_set(err, "cannot open %s: %s", lock_path, strerror(errno));
        free(lock_path);
        return RUN_DIR_FAILED;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
        close(fd);
        free(lock_path);
        if (e != EWOULDBLOCK) {
            error_set(err, "cannot lock %s/.lock: %s", dir, strerror(e));
            return RUN_DIR_FAILED;
        }
        char who[48] = "another process";
        if (pid > 0) snprintf(who, sizeof who, "process %ld", pid);
        error_set(err, "run directory %s is in use by %s; wait for it to finish or choose another --run-dir",
                  dir, who);
        return RUN_DIR_IN_USE;
    }
    free(lock_path);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* The pid only names the holder in another run's message: a failed write is harmless. */
    ssize_t wrote = ftruncate(fd, 0) == 0 ? pwrite(fd, pid, (size_t)n, 0) : -1;
    (void)wrote;
    remove_dead_temp_files(dir, note);
    RunDir *d = xcalloc(1, sizeof *d);
    d->dir = xstrdup(dir);
    d->lock_fd = fd;
    *out = d;
    return 0;
}

void run_dir_close(RunDir *d) {
    if (!d) return;
    /* The lock file stays: removing it would let a third process lock a new
     * file while a second still waits on this one. */
    close(d->lock_fd);
    free(d->dir);
    free(d);
}

/* ---- best / last ---------------------------------------------------------- */

static long long meta_ll(const SafeTensors *st, const char *key, long long fallback) {
    const char *v = st_get_meta(st, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : fallback;
    return v && end != v && !*end ? x : fallback;
}

int run_dir_reconcile_best(const RunDir *d, FILE *note, Error *err) {
    char *last_path = run_dir_path(d, "last.safetensors"), *best_path = run_dir_path(d, "best.safetensors");
    SafeTensors last, best;
    long long best_epoch = 0, last_epoch = 0, last_batch = 0, best_holds = -1;
    if (st_read_meta(last_path, &last, NULL) == 0) {
        best_epoch = meta_ll(&last, "best_epoch", 0);
        last_epoch = meta_ll(&last, "epoch", 0);
        last_batch = meta_ll(&last, "batch_in_epoch", 0);
        st_free(&last);
    }
    if (best_epoch > 0 && st_read_meta(best_path, &best, NULL) == 0) {
        best_holds = meta_ll(&best, "epoch", -1);
        st_free(&best);
    }
    int rc = 0;
    if (best_epoch > 0 && best_holds < best_epoch) {
        char held[48] = "is missing";
        if (best_holds >= 0) snprintf(held, sizeof held, "holds epoch %lld", best_holds);
        if (last_epoch == best_epoch && last_batch == 0) {
            SafeTensors st;
            rc = st_read(last_path, &st, err) == 0 ? 0 : -1;
            if (rc == 0) {
                rc = st_write(best_path, &st, err) == 0 ? 0 : -1;
                st_free(&st);
            }
            if (rc == 0 && note)
                fprintf(note, "rxc: note: %s %s but the run's best is epoch %lld (a write was interrupted): "
                              "rewritten from %s\n", best_path, held, best_epoch, last_path);
        } else if (note) {
            fprintf(note, "rxc: warning: %s %s but the run's best is epoch %lld, which no checkpoint holds any more\n",
                    best_path, held, best_epoch);
        }
    }
    free(last_path);
    free(best_path);
    return rc;
}
