/*
 * loader.c — the parallel loader (loader.h): opens and validates a split,
 * fills the cache, and runs worker threads that turn samples into batches
 * in a ring of `depth` batch slots.
 *
 * Work is handed out one sample at a time in epoch order; a worker may only
 * start a sample whose batch fits in the ring (batch < released + depth), so
 * the queue is bounded. Each sample's randomness is keyed by (seed, epoch,
 * sample index), never by thread or timing, so any thread count gives the
 * same bytes.
 */
#include "data/loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/image.h"
#include "data/transforms.h"
#include "util.h"

typedef struct Slot {
    int batch; /* which batch of the epoch it holds, -1 none */
    int n, done;
    void *data;
    int64_t *labels;
    int *indices;
} Slot;

struct Loader {
    /* configuration */
    TransformOp *ops;
    int n_ops;
    bool train, drop_last, has_norm;
    float mean[3], std[3];
    float lut[3][256];
    LoaderOutput out;
    CacheMode cache;
    uint64_t seed;
    int batch, threads, decode_hint;
    int out_h, out_w;
    char *split_name;

    /* samples */
    Dataset ds;
    int n;          /* usable samples */
    int *src;       /* usable sample -> dataset index */
    Image *decoded; /* CACHE_DECODED: per usable sample */
    uint8_t **bytes; /* CACHE_JPEG */
    size_t *n_bytes;
    size_t cache_bytes;

    /* epoch state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_t *workers;
    int n_workers;
    Slot *slots;
    int depth;
    int *order;     /* this rank's samples of the epoch, in order */
    int epoch, n_batches;
    int shard_rank, shard_world; /* loader_shard; 0 of 1 when not sharded */
    bool shard_pad;
    int local_n;    /* samples this rank takes per epoch */
    bool active, stop, begun;
    long next_job, total_jobs;
    int released, served, in_flight;
    double stall;
    Error error;         /* the first sample that failed; set: the epoch stops */
    char cache_note[160]; /* why the cache mode differs from the recipe's */
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- parallel-for used at open (validation and caching) ---- */

typedef struct ParFor {
    void (*fn)(void *ctx, int i);
    void *ctx;
    int n;
    int next; /* atomic */
} ParFor;

static void *parfor_worker(void *arg) {
    ParFor *p = arg;
    for (;;) {
        int i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (i >= p->n) break;
        p->fn(p->ctx, i);
    }
    return NULL;
}

static void parallel_for(int threads, int n, void (*fn)(void *, int), void *ctx) {
    ParFor p = {fn, ctx, n, 0};
    if (threads > n) threads = n;
    if (threads <= 1) {
        parfor_worker(&p);
        return;
    }
    pthread_t *t = xmalloc(sizeof(pthread_t) * threads);
    int started = 0;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, parfor_worker, &p) == 0) started++;
        else break;
    if (started == 0) parfor_worker(&p);
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    free(t);
}

/* ---- open: validate each listed file, fill the cache ---- */

typedef struct Probe {
    int status; /* DecodeStatus */
    Image img;
    uint8_t *bytes;
    size_t n_bytes;
} Probe;

typedef struct ProbeCtx {
    Loader *L;
    Probe *probes;
} ProbeCtx;

/* Pass 1 (cache decoded only): read the file and its header, keep the bytes. */
static void read_one(void *arg, int i) {
    ProbeCtx *c = arg;
    Probe *p = &c->probes[i];
    size_t n = 0;
    char *data = read_file(c->L->ds.path[i], &n);
    if (!data) {
        p->status = DEC_UNREADABLE;
        return;
    }
    int w = 0, h = 0;
    p->status = image_probe((const uint8_t *)data, n, &w, &h);
    if (p->status != DEC_OK) {
        free(data);
        return;
    }
    int d = image_dct_scale(w, h, c->L->decode_hint);
    p->img.w = (w + d - 1) / d; /* the size it will decode to, for the memory estimate */
    p->img.h = (h + d - 1) / d;
    p->bytes = (uint8_t *)data;
    p->n_bytes = n;
}

/* Validates one file and fills its cache entry. Full decode proves the file
 * is whole (truncation is only seen at the end); when the pixels are not
 * kept, a 1/8-scale decode does the same entropy decoding at a fraction of
 * the cost. */
static void probe_one(void *arg, int i) {
    ProbeCtx *c = arg;
    Loader *L = c->L;
    Probe *p = &c->probes[i];
    size_t n = 0;
    char *data;
    if (p->bytes) { /* read in pass 1 */
        data = (char *)p->bytes;
        n = p->n_bytes;
        p->bytes = NULL;
    } else {
        if (p->status != DEC_OK) return; /* pass 1 rejected it */
        data = read_file(L->ds.path[i], &n);
        if (!data) {
            p->status = DEC_UNREADABLE;
            return;
        }
    }
    if (n == 0) {
        free(data);
        p->status = DEC_EMPTY;
        return;
    }
    Image img;
    int hint = L->cache == CACHE_DECODED ? L->decode_hint : 1;
    p->status = image_decode((const uint8_t *)data, n, hint, &img, NULL);
    if (p->status != DEC_OK) {
        free(data);
        return;
    }
    if (L->cache == CACHE_DECODED) {
        p->img = img;
        free(data);
    } else {
        image_free(&img);
        if (L->cache == CACHE_JPEG) {
            p->bytes = (uint8_t *)data;
            p->n_bytes = n;
        } else {
            free(data);
        }
    }
}

/* Half the machine's memory: the most a decoded cache may take before the
 * loader keeps compressed bytes instead. RXC_CACHE_LIMIT_MIB overrides it
 * (tests). */
static size_t decoded_cache_limit(void) {
    const char *env = getenv("RXC_CACHE_LIMIT_MIB");
    if (env && *env) return (size_t)strtoull(env, NULL, 10) << 20;
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0) return (size_t)-1;
    return (size_t)pages * (size_t)size / 2;
}

static const char *cache_name(CacheMode m) {
    return m == CACHE_DECODED ? "decoded" : m == CACHE_JPEG ? "jpeg" : "none";
}

/* Applies the pipeline to sample s (up to normalize) into *out, drawing
 * from the sample's stream, which *rng holds afterwards (the float ops
 * after normalize continue it). */
static int process_sample(Loader *L, int s, int epoch, Image *out, SampleRng *rng, Error *err) {
    int d = L->src[s];
    *rng = sample_rng(L->seed, L->train ? epoch : 0, s);
    Image img;
    if (L->ds.pixels || L->cache == CACHE_DECODED) { /* pixels in memory: borrowed, never freed here */
        if (L->ds.pixels) {
            img.w = L->ds.mem_w;
            img.h = L->ds.mem_h;
            img.px = L->ds.pixels + (size_t)d * L->ds.mem_w * L->ds.mem_h * 3;
            img.full_w = img.full_h = 0;
        } else {
            img = L->decoded[s];
        }
        if (pipeline_apply_u8(L->ops, L->n_ops, &img, false, rng, err)) return -1;
        *out = img;
        return 0;
    }
    const uint8_t *data;
    size_t n;
    char *file = NULL;
    if (L->cache == CACHE_JPEG) {
        data = L->bytes[s];
        n = L->n_bytes[s];
    } else {
        file = read_file(L->ds.path[d], &n);
        if (!file) {
            error_set(err, "%s: %s", L->ds.path[d], strerror(errno));
            return -1;
        }
        data = (const uint8_t *)file;
    }
    int rc = pipeline_apply_encoded(L->ops, L->n_ops, data, n, rng, out, err);
    free(file);
    if (rc) error_prefix(err, "%s", L->ds.path[d]);
    return rc;
}

static void write_sample(const Loader *L, const Image *img, SampleRng *rng, void *dst) {
    if (L->out == LOADER_U8_NHWC) {
        memcpy(dst, img->px, (size_t)img->w * img->h * 3);
        return;
    }
    normalize_with_lut(img, (const float(*)[256])L->lut, dst);
    pipeline_apply_f32(L->ops, L->n_ops, dst, img->w, img->h, rng);
}

/* ---- workers ---- */

static void *worker_main(void *arg) {
    Loader *L = arg;
    size_t sample_elems = (size_t)L->out_h * L->out_w * 3;
    size_t elem = L->out == LOADER_U8_NHWC ? 1 : sizeof(float);
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && !(L->active && !error_is_set(&L->error) && L->next_job < L->total_jobs &&
                             L->next_job / L->batch < L->released + L->depth))
            pthread_cond_wait(&L->work_cv, &L->mu);
        if (L->stop) break;
        long pos = L->next_job++;
        int b = (int)(pos / L->batch), k = (int)(pos % L->batch);
        Slot *slot = &L->slots[b % L->depth];
        if (k == 0) {
            slot->batch = b;
            long remaining = L->total_jobs - (long)b * L->batch;
            slot->n = remaining < L->batch ? (int)remaining : L->batch;
            slot->done = 0;
        }
        int s = L->order[pos], epoch = L->epoch;
        L->in_flight++;
        pthread_mutex_unlock(&L->mu);

        Error err; /* per sample: clearing the message is enough, the 16 KiB stay as they are */
        error_clear(&err);
        Image img;
        SampleRng rng;
        int rc = process_sample(L, s, epoch, &img, &rng, &err);
        if (rc == 0) {
            if (img.w != L->out_w || img.h != L->out_h) {
                error_set(&err, "%s: sample is %dx%d after the pipeline, the batch needs %dx%d (add a crop)",
                          L->ds.path ? L->ds.path[L->src[s]] : "sample", img.w, img.h, L->out_w, L->out_h);
                rc = -1;
            } else {
                write_sample(L, &img, &rng, (char *)slot->data + (size_t)k * sample_elems * elem);
                slot->labels[k] = L->ds.label[L->src[s]];
                slot->indices[k] = s;
            }
            image_free(&img);
        }

        pthread_mutex_lock(&L->mu);
        L->in_flight--;
        if (rc && !error_is_set(&L->error)) {
            if (!error_is_set(&err)) error_set(&err, "no error"); /* still stops the epoch */
            L->error = err;
        }
        slot->done++;
        pthread_cond_broadcast(&L->done_cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* ---- open / close ---- */

/* local_n and n_batches from the sharding and drop_last. Returns 0 or -1. */
static int count_batches(Loader *L, Error *err) {
    int w = L->shard_world, r = L->shard_rank;
    L->local_n = L->shard_pad ? (L->n + w - 1) / w : (L->n - r + w - 1) / w;
    L->n_batches = L->drop_last ? L->local_n / L->batch : (L->local_n + L->batch - 1) / L->batch;
    if (L->n_batches == 0 && (L->drop_last || L->shard_pad)) {
        if (w > 1)
            error_set(err, "%s: %d usable images, fewer than one batch of %d on each of %d ranks%s", L->ds.dir,
                     L->n, L->batch, w, L->drop_last ? " with drop_last" : "");
        else
            error_set(err, "%s: %d usable images, fewer than one batch of %d with drop_last", L->ds.dir, L->n,
                     L->batch);
        return -1;
    }
    return 0;
}

int loader_shard(Loader *L, int rank, int world, bool pad, Error *err) {
    L->shard_rank = rank;
    L->shard_world = world;
    L->shard_pad = pad;
    return count_batches(L, err);
}

static TransformOp *copy_ops(const TransformOp *ops, int n) {
    TransformOp *c = xmalloc(sizeof(TransformOp) * (n > 0 ? n : 1));
    if (n) memcpy(c, ops, sizeof(TransformOp) * n);
    return c;
}

Loader *loader_open(const Recipe *r, const char *split, int batch, bool train, LoaderOutput out, int threads,
                    Error *err) {
    if (batch < 1) {
        error_set(err, "batch size must be at least 1");
        return NULL;
    }
    const char *root = r->data_root;
    if (!root || !*root) {
        if (r->layout == DATA_DEMO) root = "data/digits";
        else {
            error_set(err, "no data root given (data: root \"...\")");
            return NULL;
        }
    }
    Loader *L = xcalloc(1, sizeof *L);
    L->train = train;
    L->batch = batch;
    L->out = out;
    L->cache = r->cache;
    L->seed = r->seed;
    L->drop_last = train && r->drop_last;
    L->split_name = xstrdup(split);
    L->ops = copy_ops(train ? r->train_tf : r->val_tf, train ? r->n_train_tf : r->n_val_tf);
    L->n_ops = train ? r->n_train_tf : r->n_val_tf;
    L->threads = threads > 0 ? threads : r->workers > 0 ? r->workers : default_threads();
    L->decode_hint = pipeline_decode_hint(L->ops, L->n_ops);
    int ni = pipeline_normalize_index(L->ops, L->n_ops);
    L->has_norm = ni >= 0;
    for (int c = 0; c < 3; c++) {
        L->mean[c] = ni >= 0 ? L->ops[ni].mean[c] : 0.0f;
        L->std[c] = ni >= 0 ? L->ops[ni].std[c] : 1.0f;
    }
    normalize_lut(L->mean, L->std, L->lut);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work_cv, NULL);
    pthread_cond_init(&L->done_cv, NULL);

    int rc;
    if (r->layout == DATA_CIFAR10 || r->layout == DATA_CIFAR100) {
        bool is_train = !strcmp(split, r->train_split ? r->train_split : "train") || !strcmp(split, "train");
        rc = dataset_cifar(root, r->layout == DATA_CIFAR100, is_train, &L->ds, err);
    } else {
        rc = dataset_imagefolder(root, split, r->class_names, &L->ds, err);
        if (rc && r->layout == DATA_DEMO) error_append(err, " (create the demo set with `rxc demo --out %s`)", root);
    }
    if (rc) {
        loader_close(L);
        return NULL;
    }

    L->src = xmalloc(sizeof(int) * (L->ds.n > 0 ? L->ds.n : 1));
    if (L->ds.pixels) {
        for (int i = 0; i < L->ds.n; i++) L->src[L->n++] = i;
        L->cache_bytes = (size_t)L->ds.n * L->ds.mem_w * L->ds.mem_h * 3;
        L->cache = CACHE_DECODED;
    } else {
        Probe *probes = xcalloc(L->ds.n > 0 ? L->ds.n : 1, sizeof(Probe));
        ProbeCtx ctx = {L, probes};
        if (L->cache == CACHE_DECODED) {
            /* Estimate the decoded size from the headers first: a data set
             * that does not fit keeps its compressed bytes instead. */
            parallel_for(L->threads, L->ds.n, read_one, &ctx);
            size_t need = 0, limit = decoded_cache_limit();
            for (int i = 0; i < L->ds.n; i++)
                if (probes[i].status == DEC_OK) need += (size_t)probes[i].img.w * probes[i].img.h * 3;
            for (int i = 0; i < L->ds.n; i++) probes[i].img.w = probes[i].img.h = 0;
            if (need > limit) {
                L->cache = CACHE_JPEG;
                snprintf(L->cache_note, sizeof L->cache_note,
                         " (cache decoded would take %.1f GiB, over half of this machine's memory: keeping JPEG bytes)",
                         need / 1073741824.0);
            }
        }
        parallel_for(L->threads, L->ds.n, probe_one, &ctx);
        if (L->cache == CACHE_DECODED) L->decoded = xcalloc(L->ds.n + 1, sizeof(Image));
        if (L->cache == CACHE_JPEG) {
            L->bytes = xcalloc(L->ds.n + 1, sizeof(uint8_t *));
            L->n_bytes = xcalloc(L->ds.n + 1, sizeof(size_t));
        }
        for (int i = 0; i < L->ds.n; i++) {
            Probe *p = &probes[i];
            if (p->status != DEC_OK) {
                skiplog_add(&L->ds.skipped, L->ds.path[i], p->status);
                continue;
            }
            int s = L->n++;
            L->src[s] = i;
            if (L->cache == CACHE_DECODED) {
                L->decoded[s] = p->img;
                L->cache_bytes += (size_t)p->img.w * p->img.h * 3;
            } else if (L->cache == CACHE_JPEG) {
                L->bytes[s] = p->bytes;
                L->n_bytes[s] = p->n_bytes;
                L->cache_bytes += p->n_bytes;
            }
        }
        free(probes);
    }
    if (L->n == 0) {
        error_set(err, "%s: no usable image (%d listed, %d skipped; expected %s/<class>/*.jpg)", L->ds.dir,
                  L->ds.n, L->ds.skipped.total, L->ds.dir);
        loader_close(L);
        return NULL;
    }

    if (!pipeline_output_shape(L->ops, L->n_ops, &L->out_h, &L->out_w)) {
        Image img;
        SampleRng rng;
        if (process_sample(L, 0, 0, &img, &rng, err)) {
            loader_close(L);
            return NULL;
        }
        L->out_h = img.h;
        L->out_w = img.w;
        image_free(&img);
    }

    L->shard_world = 1;
    if (count_batches(L, err) != 0) {
        loader_close(L);
        return NULL;
    }
    L->depth = L->threads + 2 < 4 ? 4 : L->threads + 2;
    if (L->depth > 16) L->depth = 16;
    if (L->depth > L->n_batches + 1) L->depth = L->n_batches + 1;
    size_t elem = out == LOADER_U8_NHWC ? 1 : sizeof(float);
    L->slots = xcalloc(L->depth, sizeof(Slot));
    for (int i = 0; i < L->depth; i++) {
        L->slots[i].batch = -1;
        L->slots[i].data = xmalloc((size_t)batch * L->out_h * L->out_w * 3 * elem);
        L->slots[i].labels = xmalloc(sizeof(int64_t) * batch);
        L->slots[i].indices = xmalloc(sizeof(int) * batch);
    }
    L->order = xmalloc(sizeof(int) * L->n);
    L->workers = xmalloc(sizeof(pthread_t) * L->threads);
    for (int i = 0; i < L->threads; i++) {
        if (pthread_create(&L->workers[i], NULL, worker_main, L) != 0) break;
        L->n_workers++;
    }
    if (L->n_workers == 0) {
        error_set(err, "cannot start loader threads");
        loader_close(L);
        return NULL;
    }
    return L;
}

void loader_close(Loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = true;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->n_workers; i++) pthread_join(L->workers[i], NULL);
    free(L->workers);
    if (L->slots)
        for (int i = 0; i < L->depth; i++) {
            free(L->slots[i].data);
            free(L->slots[i].labels);
            free(L->slots[i].indices);
        }
    free(L->slots);
    if (L->decoded)
        for (int i = 0; i < L->n; i++) image_free(&L->decoded[i]);
    free(L->decoded);
    if (L->bytes)
        for (int i = 0; i < L->n; i++) free(L->bytes[i]);
    free(L->bytes);
    free(L->n_bytes);
    free(L->order);
    free(L->src);
    free(L->ops);
    free(L->split_name);
    dataset_free(&L->ds);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->work_cv);
    pthread_cond_destroy(&L->done_cv);
    free(L);
}

/* ---- epochs and batches ---- */

/* Rank r keeps positions r, r + N, r + 2N, ... of the epoch's order; when
 * padded, positions past the end wrap to its start (DistributedSampler). */
static void take_shard(Loader *L) {
    int *all = xmalloc(sizeof(int) * (size_t)L->n);
    memcpy(all, L->order, sizeof(int) * (size_t)L->n);
    for (int i = 0; i < L->local_n; i++) L->order[i] = all[((long)i * L->shard_world + L->shard_rank) % L->n];
    free(all);
}

/* The loader's error into the caller's, under mu: returns -1. */
static int loader_failed(Loader *L, Error *err) {
    if (err) *err = L->error;
    pthread_mutex_unlock(&L->mu);
    return -1;
}

int loader_begin_epoch(Loader *L, int epoch, Error *err) {
    pthread_mutex_lock(&L->mu);
    L->active = false;
    while (L->in_flight > 0) pthread_cond_wait(&L->done_cv, &L->mu);
    if (error_is_set(&L->error)) return loader_failed(L, err);
    L->epoch = epoch;
    for (int i = 0; i < L->n; i++) L->order[i] = i;
    if (L->train) { /* Fisher-Yates keyed by (seed, epoch) */
        Rng rng = {L->seed, 0x5348554600000000ULL | (uint32_t)epoch, 0};
        for (int i = L->n - 1; i > 0; i--) {
            int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
            int t = L->order[i];
            L->order[i] = L->order[j];
            L->order[j] = t;
        }
    }
    if (L->shard_world > 1) take_shard(L);
    L->next_job = 0;
    L->total_jobs = L->drop_last ? (long)L->n_batches * L->batch : L->local_n;
    L->released = L->served = 0;
    for (int i = 0; i < L->depth; i++) L->slots[i].batch = -1;
    L->active = true;
    L->begun = true;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

int loader_next(Loader *L, Batch *out, Error *err) {
    if (!L->begun && loader_begin_epoch(L, 0, err)) return -1;
    pthread_mutex_lock(&L->mu);
    if (L->served > 0 && L->released < L->served) {
        L->released = L->served; /* the batch handed out last time is free again */
        pthread_cond_broadcast(&L->work_cv);
    }
    if (error_is_set(&L->error)) return loader_failed(L, err);
    if (L->served >= L->n_batches) {
        pthread_mutex_unlock(&L->mu);
        return 0;
    }
    int b = L->served;
    Slot *slot = &L->slots[b % L->depth];
    double t0 = now_seconds();
    while (!error_is_set(&L->error) && !(slot->batch == b && slot->done == slot->n)) pthread_cond_wait(&L->done_cv,
                                                                                                       &L->mu);
    L->stall += now_seconds() - t0;
    if (error_is_set(&L->error)) return loader_failed(L, err);
    L->served++;
    out->data = slot->data;
    out->labels = slot->labels;
    out->indices = slot->indices;
    out->n = slot->n;
    out->h = L->out_h;
    out->w = L->out_w;
    out->kind = L->out;
    pthread_mutex_unlock(&L->mu);
    return out->n;
}

double loader_stall_seconds(const Loader *L) { return L->stall; }
int loader_num_samples(const Loader *L) { return L->n; }
int loader_num_classes(const Loader *L) { return L->ds.n_classes; }
int loader_num_batches(const Loader *L) { return L->n_batches; }
int loader_num_skipped(const Loader *L) { return L->ds.skipped.total; }

const char *loader_class_name(const Loader *L, int c) {
    return c >= 0 && c < L->ds.n_classes ? L->ds.class_display[c] : "?";
}
const char *loader_class_folder(const Loader *L, int c) {
    return c >= 0 && c < L->ds.n_classes ? L->ds.class_folder[c] : "?";
}

int loader_use_classes(Loader *L, char *const *classes, int n_classes, FILE *warn, Error *err) {
    pthread_mutex_lock(&L->mu); /* the workers read the labels */
    int rc = dataset_relabel(&L->ds, classes, n_classes, err);
    pthread_mutex_unlock(&L->mu);
    if (rc) return -1;
    int *count = xcalloc((size_t)(n_classes ? n_classes : 1), sizeof *count);
    for (int s = 0; s < L->n; s++) count[L->ds.label[L->src[s]]]++;
    StrBuf empty = {0};
    int n_empty = 0;
    for (int c = 0; c < n_classes; c++)
        if (!count[c]) sb_printf(&empty, "%s%s", n_empty++ ? ", " : "", classes[c]);
    if (n_empty && warn)
        fprintf(warn, "rxc: warning: %d training class%s with no images in %s: %s\n", n_empty,
                n_empty == 1 ? "" : "es", L->ds.dir, empty.s);
    free(empty.s);
    free(count);
    return 0;
}

int loader_match_classes(Loader *L, const Loader *train, FILE *warn, Error *err) {
    return loader_use_classes(L, train->ds.class_folder, train->ds.n_classes, warn, err);
}

char *loader_class_text(const Loader *L, bool folders) {
    bool differ = false;
    StrBuf b = {0};
    for (int c = 0; c < L->ds.n_classes; c++) {
        differ = differ || strcmp(L->ds.class_folder[c], L->ds.class_display[c]) != 0;
        sb_puts(&b, folders ? L->ds.class_folder[c] : L->ds.class_display[c]);
        sb_putc(&b, '\n');
    }
    if (folders && !differ) {
        free(b.s);
        return NULL;
    }
    return sb_take(&b);
}

void loader_sample_shape(const Loader *L, int *h, int *w) {
    *h = L->out_h;
    *w = L->out_w;
}

bool loader_normalize(const Loader *L, float mean[3], float std[3]) {
    for (int c = 0; c < 3; c++) {
        mean[c] = L->mean[c];
        std[c] = L->std[c];
    }
    return L->has_norm;
}

void loader_report(const Loader *L, FILE *f) {
    double mib = L->cache_bytes / (1024.0 * 1024.0);
    fprintf(f, "data: %s: %d images, %d classes, %dx%d samples, cache %s (%.1f MiB in memory), %d threads%s\n",
            L->ds.dir, L->n, L->ds.n_classes, L->out_w, L->out_h, cache_name(L->cache), mib, L->n_workers,
            L->cache_note);
    skiplog_print(&L->ds.skipped, f, "  ");
    if (L->train && L->batch > L->n)
        fprintf(f, "rxc: note: batch %d is larger than the %d images of %s: each epoch is one step on a batch of %d\n",
                L->batch, L->n, L->ds.dir, L->n);
}

/* ---- one file, for predict and tools ---- */

int loader_prepare_file(const Recipe *r, bool train, const char *path, uint64_t sample_seed, LoaderOutput out,
                        void *dst, size_t dst_bytes, int *h, int *w, Error *err) {
    size_t n;
    char *data = read_file(path, &n);
    if (!data) {
        error_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    const TransformOp *ops = train ? r->train_tf : r->val_tf;
    int n_ops = train ? r->n_train_tf : r->n_val_tf;
    Image img;
    SampleRng rng = {rng_key(sample_seed, 0xF11E, 0), 0};
    int rc = pipeline_apply_encoded(ops, n_ops, (const uint8_t *)data, n, &rng, &img, err);
    free(data);
    if (rc) return error_prefix(err, "%s", path);
    *h = img.h;
    *w = img.w;
    if (dst) {
        size_t need = (size_t)img.w * img.h * 3 * (out == LOADER_U8_NHWC ? 1 : sizeof(float));
        if (need > dst_bytes) {
            error_set(err, "%s: %dx%d after the pipeline does not fit the buffer", path, img.w, img.h);
            image_free(&img);
            return -1;
        }
        if (out == LOADER_U8_NHWC) memcpy(dst, img.px, need);
        else {
            int ni = pipeline_normalize_index(ops, n_ops);
            float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
            if (ni >= 0)
                for (int c = 0; c < 3; c++) {
                    mean[c] = ops[ni].mean[c];
                    std[c] = ops[ni].std[c];
                }
            normalize_to_f32(&img, mean, std, dst);
            pipeline_apply_f32(ops, n_ops, dst, img.w, img.h, &rng);
        }
    }
    image_free(&img);
    return 0;
}
