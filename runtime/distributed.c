/*
 * distributed.c — launcher detection, MPI start-up and shut-down, and the
 * collectives of distributed.h on top of mpi_api.h.
 *
 * Every collective is called by every rank in the same order from the main
 * thread (MPI_Init's default thread level is enough). MPI counts are ints,
 * so long buffers go in chunks.
 *
 * The watchdog. mpirun ends the whole job when a rank dies (and names it),
 * but a rank that hangs, or a launcher that leaves the survivors running,
 * would keep every other rank waiting in its next collective for ever. So
 * each blocking call (and the wait for gradient buckets) records when it
 * began, and a thread that calls no MPI wakes every second: a call older
 * than RXC_DIST_TIMEOUT seconds (default 50; 0: no watchdog) ends this
 * rank with a message and status 1, which makes the launcher end the rest.
 * Checkpoints are written to a temporary name and renamed, so the last one
 * stays intact whatever moment a rank is ended at.
 */
#include "distributed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_api.h"
#include "util.h"

typedef struct Watchdog {
    double timeout;              /* seconds; 0: none */
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* dist_close ends the thread without waiting out its second */
    bool stop;
    _Atomic int64_t since_ns;    /* when the pending collective began; 0: none pending */
    _Atomic(const char *) what;  /* that collective, for the message */
} Watchdog;

struct Dist {
    MpiApi api;
    int rank, size, local_rank;
    Watchdog dog;
};

#define DEFAULT_TIMEOUT_S 50.0

/* Elements per MPI call: well inside int, whatever the element size.
 * dist_isum_f32 takes at most this many. */
#define CHUNK (1 << 28)

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *watch(void *arg) {
    Dist *d = arg;
    Watchdog *w = &d->dog;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        int64_t since = atomic_load(&w->since_ns);
        double waited = since ? (double)(monotonic_ns() - since) * 1e-9 : 0;
        if (w->stop || waited <= w->timeout) continue;
        char who[64] = "one of the other ranks has";
        if (d->size == 2) snprintf(who, sizeof who, "rank %d has", 1 - d->rank);
        fprintf(stderr,
                "rxc: rank %d of %d: waited %.0f s in %s for the other ranks: %s died or stopped responding; "
                "ending this rank (RXC_DIST_TIMEOUT=%g s)\n",
                d->rank, d->size, waited, atomic_load(&w->what), who, w->timeout);
        fflush(stderr);
        _exit(1);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void watchdog_start(Dist *d) {
    Watchdog *w = &d->dog;
    const char *env = getenv("RXC_DIST_TIMEOUT");
    w->timeout = env && env[0] ? atof(env) : DEFAULT_TIMEOUT_S;
    if (w->timeout <= 0) return;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->running = pthread_create(&w->thread, NULL, watch, d) == 0;
}

static void watchdog_stop(Dist *d) {
    Watchdog *w = &d->dog;
    if (!w->running) return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->running = false;
}

/* Around every call that waits for the other ranks. */
static void pending(Dist *d, const char *what) {
    atomic_store(&d->dog.what, what);
    atomic_store(&d->dog.since_ns, monotonic_ns());
}

static int done(Dist *d, int rc) {
    atomic_store(&d->dog.since_ns, 0);
    return rc;
}

int dist_mode_parse(const char *s, DistMode *m) {
    if (!strcmp(s, "auto")) *m = DIST_AUTO;
    else if (!strcmp(s, "on")) *m = DIST_ON;
    else if (!strcmp(s, "off")) *m = DIST_OFF;
    else return -1;
    return 0;
}

static bool env_set(const char *name) {
    const char *v = getenv(name);
    return v && v[0];
}

/* How many processes the launcher started: > 0 when its environment says,
 * -1 when launched but the count is only known after MPI_Init (PMIx), 0
 * when no launcher started this process. */
static int launched_size(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (env_set(names[i])) return atoi(getenv(names[i]));
    if (env_set("SLURM_NTASKS") && env_set("SLURM_STEP_ID") && env_set("SLURM_PROCID"))
        return atoi(getenv("SLURM_NTASKS"));
    if (env_set("PMIX_RANK")) return -1;
    return 0;
}

/* The launcher's word when it gives one (no communication); else the rank
 * among those sharing this node's memory. Called by every rank. */
static int find_local_rank(Dist *d) {
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (env_set(names[i])) return atoi(getenv(names[i]));
    MpiHandle node = NULL;
    int local = 0;
    if (d->api.Comm_split_type(d->api.comm_world, d->api.comm_type_shared, d->rank, d->api.info_null, &node) != 0)
        return 0;
    d->api.Comm_rank(node, &local);
    d->api.Comm_free(&node);
    return local;
}

int dist_open(DistMode mode, Dist **out, Error *err) {
    *out = NULL;
    if (mode == DIST_OFF) return 0;
    int launched = launched_size();
    if (launched == 0) {
        if (mode == DIST_ON)
            return error_set(err, "--distributed on, but this process was not started by mpirun or srun "
                                       "(e.g. mpirun -np 2 rxc train FILE.net)");
        return 0;
    }
    if (launched == 1 && mode == DIST_AUTO) return 0;
    Dist *d = xcalloc(1, sizeof *d);
    if (mpi_api_load(&d->api, err) != 0) {
        free(d);
        return -1;
    }
    /* Open MPI's nonblocking all-reduce (libnbc) picks a binomial tree for an
     * in-place buffer on few ranks: a reduce to rank 0 then a broadcast, about
     * twice the time of the blocking MPI_Allreduce for the gradient buckets'
     * sizes (measured, docs/performance.md). The ring is as fast as the
     * blocking call. A value the user set is kept. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring", 0);
    int initialized = 0;
    d->api.Initialized(&initialized);
    if (!initialized && d->api.Init(NULL, NULL) != 0) {
        mpi_api_unload(&d->api);
        free(d);
        return error_set(err, "MPI_Init failed");
    }
    d->api.Comm_rank(d->api.comm_world, &d->rank);
    d->api.Comm_size(d->api.comm_world, &d->size);
    d->local_rank = find_local_rank(d);
    watchdog_start(d);
    *out = d;
    return 0;
}

void dist_close(Dist *d, int status) {
    if (!d) return;
    watchdog_stop(d);
    fflush(stdout);
    fflush(stderr);
    if (status != 0) d->api.Abort(d->api.comm_world, status);
    d->api.Finalize();
    /* libmpi stays loaded: its atexit handlers may still run */
    free(d);
}

int dist_rank(const Dist *d) { return d ? d->rank : 0; }
int dist_size(const Dist *d) { return d ? d->size : 1; }
bool dist_is_root(const Dist *d) { return dist_rank(d) == 0; }
int dist_local_rank(const Dist *d) { return d ? d->local_rank : 0; }

static int sum_chunks(Dist *d, void *v, int64_t n, MpiHandle type, size_t elem) {
    pending(d, "an all-reduce");
    for (int64_t off = 0; off < n; off += CHUNK) {
        int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (d->api.Allreduce(d->api.in_place, (char *)v + (size_t)off * elem, count, type, d->api.op_sum,
                             d->api.comm_world) != 0)
            return done(d, -1);
    }
    return done(d, 0);
}

int dist_sum_f64(Dist *d, double *v, int n) { return d ? sum_chunks(d, v, n, d->api.t_double, sizeof *v) : 0; }
int dist_sum_f32(Dist *d, float *v, int64_t n) { return d ? sum_chunks(d, v, n, d->api.t_float, sizeof *v) : 0; }

int dist_isum_f32(Dist *d, float *v, int64_t n, DistRequest *req) {
    if (n > CHUNK) return -1;
    return d->api.Iallreduce(d->api.in_place, v, (int)n, d->api.t_float, d->api.op_sum, d->api.comm_world,
                             &req->handle) == 0
               ? 0
               : -1;
}

int dist_test(Dist *d, DistRequest *req, bool *done) {
    int flag = 0;
    int rc = d->api.Test(&req->handle, &flag, NULL);
    *done = flag != 0;
    return rc == 0 ? 0 : -1;
}

int dist_wait(Dist *d, DistRequest *req) {
    pending(d, "a gradient bucket's all-reduce");
    return done(d, d->api.Wait(&req->handle, NULL) == 0 ? 0 : -1);
}

int dist_broadcast(Dist *d, void *buf, int64_t bytes) {
    if (!d) return 0;
    pending(d, "a broadcast");
    for (int64_t off = 0; off < bytes; off += CHUNK) {
        int count = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
        if (d->api.Bcast((char *)buf + off, count, d->api.t_byte, 0, d->api.comm_world) != 0) return done(d, -1);
    }
    return done(d, 0);
}

int dist_gather(Dist *d, const void *send, int64_t bytes, void *recv) {
    if (!d) {
        memcpy(recv, send, (size_t)bytes);
        return 0;
    }
    if (bytes > CHUNK) return -1; /* logits of one rank's slice: far below */
    pending(d, "a gather");
    int rc = d->api.Gather(send, (int)bytes, d->api.t_byte, recv, (int)bytes, d->api.t_byte, 0, d->api.comm_world);
    return done(d, rc == 0 ? 0 : -1);
}

/* The space in host memory: the executor's own (CPU), or a staging copy
 * (a GPU executor's buffers broadcast, or its gradients under RXC_NCCL=off). */
static float *space_on_host(Executor *e, BufSpace space, int64_t bytes, bool *staged) {
    float *p = e->host_ptr ? e->host_ptr(e, space) : NULL;
    *staged = p == NULL;
    if (p) return p;
    p = xmalloc((size_t)bytes);
    if (e->read(e, space, 0, p, bytes) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static int space_done(Executor *e, BufSpace space, float *p, int64_t bytes, bool staged, int rc) {
    if (!staged) return rc;
    if (rc == 0 && e->write(e, space, 0, p, bytes) != 0) rc = -1;
    free(p);
    return rc;
}

int dist_sum_space(Dist *d, Executor *e, BufSpace space, int64_t bytes) {
    if (!d || bytes <= 0) return 0;
    bool staged;
    float *p = space_on_host(e, space, bytes, &staged);
    if (!p) return -1;
    return space_done(e, space, p, bytes, staged, dist_sum_f32(d, p, bytes / (int64_t)sizeof(float)));
}

int dist_broadcast_space(Dist *d, Executor *e, BufSpace space, int64_t bytes) {
    if (!d || bytes <= 0) return 0;
    bool staged;
    float *p = space_on_host(e, space, bytes, &staged);
    if (!p) return -1;
    return space_done(e, space, p, bytes, staged, dist_broadcast(d, p, bytes));
}
