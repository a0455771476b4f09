/*
 * fake_nccl.cc — a stand-in for libnccl.so.2 for the fake GPU harness
 * (fake_gpu.cc), so that the GPU executor's data-parallel path
 * (target/cuda/exec_cuda_nccl.c) runs end to end on a machine without GPUs:
 * two (or more) ranks under `mpirun --oversubscribe -np 2`, each a process
 * with its own fake libcuda, meet through a shared-memory segment whose
 * name travels in the ncclUniqueId (rank 0's ncclGetUniqueId makes it, MPI
 * broadcasts it, as with the real library).
 *
 * It implements exactly the entry points nccl_api.c resolves. Checks, each
 * a loud failure (a message on stderr and the stream's sticky error, as a
 * fault on a GPU):
 *   - every ncclAllReduce matches across the ranks: the same sequence
 *     number (the n-th call on each rank), count, datatype and operation;
 *   - it runs on a stream the program created, as an operation of that
 *     stream in the fake's stream/event model: reading and writing the
 *     buffer must be ordered after the kernels that produced it, exactly as
 *     a kernel's accesses are checked (fake_gpu.cc rxc_fake_gpu_enqueue);
 *     inside a stream capture it is recorded and runs at each replay;
 *   - the data are really summed, in rank order (so every rank gets
 *     bitwise the same result).
 * Only ncclFloat32 with ncclSum or ncclAvg is implemented; anything else is
 * ncclInvalidArgument. A rank that does not arrive within
 * RXC_FAKE_NCCL_TIMEOUT seconds (default 60) fails the call on the others.
 * RXC_FAKE_NCCL_VERSION is what ncclGetVersion reports (default 22809).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

namespace {

enum { SUCCESS = 0, UNHANDLED_CUDA = 1, SYSTEM_ERROR = 2, INVALID_ARGUMENT = 4, INVALID_USAGE = 5, REMOTE_ERROR = 6 };
enum { FLOAT32 = 7, SUM = 0, AVG = 4, MAX_RANKS = 8, CUDA_LAUNCH_FAILED = 719 };
const size_t SLOT_BYTES = 8u << 20; /* per rank per round; larger calls go in rounds */
const char MAGIC[] = "rxc-fake-nccl:";

struct Desc {
    uint64_t seq, count;
    int32_t datatype, op;
};

/* The segment: a barrier, the joined ranks, each rank's call, then the slots. */
struct Shared {
    std::atomic<uint32_t> arrived, generation;
    std::atomic<uint32_t> joined[MAX_RANKS];
    int32_t pid[MAX_RANKS]; /* a rank that exited fails the others' waits at once */
    Desc desc[MAX_RANKS];
    char pad[4096 - 8 - 8 * MAX_RANKS - sizeof(Desc) * MAX_RANKS];
};
static_assert(sizeof(Shared) == 4096, "the slots start at 4096");

struct Comm {
    int rank = 0, nranks = 0;
    Shared *sh = nullptr;
    size_t map_bytes = 0;
    uint64_t seq = 0;                /* calls executed (on the stream's thread) */
    std::atomic<int> async_error{0};
    std::vector<struct Call *> calls; /* kept: a captured graph replays them */
};

struct Call {
    Comm *comm;
    const float *send;
    float *recv;
    size_t count;
    int datatype, op;
};

double timeout_s() {
    const char *v = getenv("RXC_FAKE_NCCL_TIMEOUT");
    return v && *v ? atof(v) : 60.0;
}

double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* All ranks arrive, or false after the timeout. */
bool barrier(Comm *c, const char *where) {
    Shared *sh = c->sh;
    uint32_t gen = sh->generation.load();
    if (sh->arrived.fetch_add(1) + 1 == (uint32_t)c->nranks) {
        sh->arrived.store(0);
        sh->generation.fetch_add(1);
        return true;
    }
    double until = now_s() + timeout_s();
    for (long spins = 0; sh->generation.load() == gen; spins++) {
        for (int r = 0; spins % 4096 == 0 && r < c->nranks; r++)
            if (r != c->rank && sh->pid[r] > 0 && kill(sh->pid[r], 0) != 0) {
                fprintf(stderr, "fake nccl: rank %d of %d: rank %d (pid %d) exited while the others waited in %s\n",
                        c->rank, c->nranks, r, (int)sh->pid[r], where);
                return false;
            }
        if (now_s() > until) {
            fprintf(stderr, "fake nccl: rank %d of %d: waited %.0f s in %s for the other ranks: a rank made fewer "
                            "ncclAllReduce calls, or failed\n", c->rank, c->nranks, timeout_s(), where);
            return false;
        }
        usleep(20);
    }
    return true;
}

char *slot(Comm *c, int r) { return (char *)c->sh + sizeof(Shared) + (size_t)r * SLOT_BYTES; }

bool same_call(const Desc &a, const Desc &b) {
    return a.seq == b.seq && a.count == b.count && a.datatype == b.datatype && a.op == b.op;
}

/* One all-reduce, on the stream's worker thread of the fake GPU. */
int run_call(void *arg) {
    Call *k = (Call *)arg;
    Comm *c = k->comm;
    Desc me = {++c->seq, k->count, k->datatype, k->op};
    c->sh->desc[c->rank] = me;
    if (!barrier(c, "an all-reduce")) {
        c->async_error = REMOTE_ERROR;
        return CUDA_LAUNCH_FAILED;
    }
    for (int r = 0; r < c->nranks; r++) {
        const Desc &o = c->sh->desc[r];
        if (!same_call(me, o)) {
            fprintf(stderr, "fake nccl: rank %d: ncclAllReduce #%llu does not match rank %d's: count %llu vs %llu, "
                            "datatype %d vs %d, op %d vs %d, call #%llu vs #%llu\n",
                    c->rank, (unsigned long long)me.seq, r, (unsigned long long)me.count, (unsigned long long)o.count,
                    me.datatype, o.datatype, me.op, o.op, (unsigned long long)me.seq, (unsigned long long)o.seq);
            c->async_error = INVALID_USAGE;
            return CUDA_LAUNCH_FAILED;
        }
    }
    size_t per_round = SLOT_BYTES / sizeof(float);
    std::vector<float> sum;
    for (size_t off = 0; off < k->count; off += per_round) {
        size_t n = k->count - off < per_round ? k->count - off : per_round;
        memcpy(slot(c, c->rank), k->send + off, n * sizeof(float));
        if (!barrier(c, "an all-reduce's exchange")) {
            c->async_error = REMOTE_ERROR;
            return CUDA_LAUNCH_FAILED;
        }
        sum.assign(n, 0.0f);
        for (int r = 0; r < c->nranks; r++) {
            const float *x = (const float *)slot(c, r);
            for (size_t i = 0; i < n; i++) sum[i] += x[i];
        }
        if (k->op == AVG)
            for (size_t i = 0; i < n; i++) sum[i] /= (float)c->nranks;
        if (!barrier(c, "an all-reduce's exchange")) { /* every rank has read every slot */
            c->async_error = REMOTE_ERROR;
            return CUDA_LAUNCH_FAILED;
        }
        memcpy(k->recv + off, sum.data(), n * sizeof(float));
    }
    return 0;
}

using EnqueueFn = int (*)(void *, const char *, uintptr_t, uintptr_t, size_t, int (*)(void *), void *);

EnqueueFn fake_gpu_enqueue() {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    return lib ? (EnqueueFn)dlsym(lib, "rxc_fake_gpu_enqueue") : nullptr;
}

} /* namespace */

extern "C" {

typedef struct { char internal[128]; } ncclUniqueId;

int ncclGetVersion(int *v) {
    const char *env = getenv("RXC_FAKE_NCCL_VERSION");
    *v = env && *env ? atoi(env) : 22809;
    return SUCCESS;
}

const char *ncclGetErrorString(int r) {
    switch (r) {
    case SUCCESS: return "no error (fake nccl)";
    case UNHANDLED_CUDA: return "unhandled cuda error (fake nccl)";
    case SYSTEM_ERROR: return "unhandled system error (fake nccl)";
    case INVALID_ARGUMENT: return "invalid argument (fake nccl)";
    case INVALID_USAGE: return "invalid usage: the ranks' calls do not match (fake nccl)";
    case REMOTE_ERROR: return "remote process exited or there was a network error (fake nccl)";
    default: return "unknown result (fake nccl)";
    }
}

int ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof *id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id->internal, sizeof id->internal, "%s/rxc_fake_nccl_%ld_%ld", MAGIC, (long)getpid(), (long)ts.tv_nsec);
    return SUCCESS;
}

int ncclCommInitRank(void **out, int nranks, ncclUniqueId id, int rank) {
    if (strncmp(id.internal, MAGIC, sizeof MAGIC - 1) != 0) {
        fprintf(stderr, "fake nccl: ncclCommInitRank: the uniqueId is not one ncclGetUniqueId made (not broadcast?)\n");
        return INVALID_ARGUMENT;
    }
    if (nranks < 1 || nranks > MAX_RANKS || rank < 0 || rank >= nranks) return INVALID_ARGUMENT;
    const char *name = id.internal + sizeof MAGIC - 1;
    Comm *c = new Comm;
    c->rank = rank;
    c->nranks = nranks;
    c->map_bytes = sizeof(Shared) + (size_t)nranks * SLOT_BYTES;
    int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)c->map_bytes) != 0) {
        perror("fake nccl: shm_open");
        if (fd >= 0) close(fd);
        delete c;
        return SYSTEM_ERROR;
    }
    void *p = mmap(nullptr, c->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        delete c;
        return SYSTEM_ERROR;
    }
    c->sh = (Shared *)p;
    /* every rank joins before anyone unlinks the name */
    c->sh->pid[rank] = (int32_t)getpid();
    c->sh->joined[rank].store(1);
    double until = now_s() + timeout_s();
    for (int r = 0; r < nranks; r++)
        while (!c->sh->joined[r].load()) {
            if (now_s() > until) {
                fprintf(stderr, "fake nccl: rank %d: rank %d never joined %s\n", rank, r, name);
                munmap(p, c->map_bytes);
                delete c;
                return REMOTE_ERROR;
            }
            usleep(100);
        }
    if (!barrier(c, "ncclCommInitRank")) return REMOTE_ERROR;
    if (rank == 0) shm_unlink(name);
    *out = c;
    return SUCCESS;
}

int ncclAllReduce(const void *send, void *recv, size_t count, int datatype, int op, void *comm, void *stream) {
    Comm *c = (Comm *)comm;
    if (!c) return INVALID_ARGUMENT;
    if (datatype != FLOAT32 || (op != SUM && op != AVG)) {
        fprintf(stderr, "fake nccl: ncclAllReduce: datatype %d op %d (only ncclFloat32 with ncclSum or ncclAvg)\n",
                datatype, op);
        return INVALID_ARGUMENT;
    }
    EnqueueFn enqueue = fake_gpu_enqueue();
    if (!enqueue) {
        fprintf(stderr, "fake nccl: the fake libcuda.so.1 (fake_gpu.cc) is not loaded\n");
        return UNHANDLED_CUDA;
    }
    Call *k = new Call{c, (const float *)send, (float *)recv, count, datatype, op};
    c->calls.push_back(k);
    char what[96];
    snprintf(what, sizeof what, "ncclAllReduce of %zu floats (rank %d)", count, c->rank);
    int rc = enqueue(stream, what, (uintptr_t)send, (uintptr_t)recv, count * sizeof(float), run_call, k);
    return rc ? UNHANDLED_CUDA : SUCCESS;
}

int ncclCommGetAsyncError(void *comm, int *async_error) {
    *async_error = comm ? ((Comm *)comm)->async_error.load() : INVALID_ARGUMENT;
    return SUCCESS;
}

static int comm_free(void *comm) {
    Comm *c = (Comm *)comm;
    if (!c) return INVALID_ARGUMENT;
    if (c->sh) munmap(c->sh, c->map_bytes);
    for (Call *k : c->calls) delete k;
    delete c;
    return SUCCESS;
}

int ncclCommDestroy(void *comm) { return comm_free(comm); }
int ncclCommAbort(void *comm) { return comm_free(comm); }

} /* extern "C" */
