/*
 * dataset.c — listing a split: ImageFolder trees (sorted as torchvision's
 * ImageFolder: classes by folder name, files by sorted recursive walk) and
 * CIFAR binary files; relabelling a split by another's class names; the
 * skip log of rejected entries.
 */
#include "data/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

const char *skip_reason_name(int reason) {
    if (reason < DEC_NSTATUS) return decode_status_name((DecodeStatus)reason);
    if (reason == SKIP_EMPTY_CLASS) return "empty class folder";
    if (reason == SKIP_OTHER_EXT) return "not a .jpg/.jpeg/.png file";
    return "unknown";
}

void skiplog_add(SkipLog *log, const char *path, int reason) {
    log->count[reason]++;
    log->total++;
    if (log->n_examples < SKIP_EXAMPLES) {
        log->example_path[log->n_examples] = xstrdup(path);
        log->example_reason[log->n_examples] = reason;
        log->n_examples++;
    }
}

void skiplog_print(const SkipLog *log, FILE *f, const char *indent) {
    if (log->total == 0) return;
    fprintf(f, "%sskipped %d:", indent, log->total);
    const char *sep = " ";
    for (int r = 0; r < SKIP_NREASONS; r++)
        if (log->count[r]) {
            fprintf(f, "%s%d %s", sep, log->count[r], skip_reason_name(r));
            sep = ", ";
        }
    fprintf(f, "\n");
    for (int i = 0; i < log->n_examples; i++)
        fprintf(f, "%s  %s (%s)\n", indent, log->example_path[i], skip_reason_name(log->example_reason[i]));
    if (log->total > log->n_examples) fprintf(f, "%s  ... and %d more\n", indent, log->total - log->n_examples);
}

void skiplog_free(SkipLog *log) {
    for (int i = 0; i < log->n_examples; i++) free(log->example_path[i]);
    memset(log, 0, sizeof *log);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Sorted names in dir (no dot entries, no hidden files); NULL if unreadable. */
static char **list_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        GROW(names, cap, *n + 1);
        names[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(names, *n, sizeof *names, cmp_str);
    return names ? names : xcalloc(1, sizeof(char *));
}

void dataset_free_names(char **names, int n) {
    for (int i = 0; i < n && names; i++) free(names[i]);
    free(names);
}

typedef struct Lister {
    Dataset *ds;
    int cap_path, cap_label;
} Lister;

static void add_sample(Lister *ls, char *path, int label) {
    Dataset *ds = ls->ds;
    GROW(ds->path, ls->cap_path, ds->n + 1);
    GROW(ds->label, ls->cap_label, ds->n + 1);
    ds->path[ds->n] = path;
    ds->label[ds->n] = label;
    ds->n++;
}

/* Files of one class, recursively; returns how many image files it found. */
static int walk_class(Lister *ls, const char *dir, int label, int depth) {
    int n, found = 0;
    char **names = list_dir(dir, &n);
    if (!names) {
        skiplog_add(&ls->ds->skipped, dir, DEC_UNREADABLE);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]);
        struct stat st;
        bool image_name = has_image_ext(names[i]);
        if (stat(path, &st) != 0) { /* dangling symlink, vanished file */
            if (image_name) {
                skiplog_add(&ls->ds->skipped, path, DEC_UNREADABLE);
                found++;
            }
            free(path);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (image_name) { /* an image name that cannot be read as a file */
                skiplog_add(&ls->ds->skipped, path, DEC_UNREADABLE);
                found++;
            } else if (depth < 16) {
                found += walk_class(ls, path, label, depth + 1);
            }
            free(path);
            continue;
        }
        if (!image_name) {
            skiplog_add(&ls->ds->skipped, path, SKIP_OTHER_EXT);
            free(path);
            continue;
        }
        add_sample(ls, path, label);
        found++;
    }
    dataset_free_names(names, n);
    return found;
}

static void read_class_names(Dataset *ds, const char *root, const char *file) {
    char *text = read_file(file, NULL);
    if (!text && file[0] != '/') {
        char *alt = xasprintf("%s/%s", root, file);
        text = read_file(alt, NULL);
        free(alt);
    }
    if (!text) return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *sp = line + strcspn(line, " \t");
        if (!*sp) continue;
        *sp++ = 0;
        while (*sp == ' ' || *sp == '\t') sp++;
        size_t len = strlen(sp);
        while (len && (sp[len - 1] == '\r' || sp[len - 1] == ' ')) sp[--len] = 0;
        for (int c = 0; c < ds->n_classes; c++)
            if (!strcmp(ds->class_folder[c], line) && len) {
                free(ds->class_display[c]);
                ds->class_display[c] = xstrdup(sp);
            }
    }
    free(text);
}

/* Imagenette's ten WordNet ids and the display names fast.ai publishes for
 * them: used when no class_names file is given. */
static const char *const imagenette_names[][2] = {
    {"n01440764", "tench"},         {"n02102040", "English springer"}, {"n02979186", "cassette player"},
    {"n03000684", "chain saw"},     {"n03028079", "church"},           {"n03394916", "French horn"},
    {"n03417042", "garbage truck"}, {"n03425413", "gas pump"},         {"n03445777", "golf ball"},
    {"n03888605", "parachute"},
};

static void builtin_class_names(Dataset *ds) {
    for (int c = 0; c < ds->n_classes; c++)
        for (size_t i = 0; i < sizeof imagenette_names / sizeof imagenette_names[0]; i++)
            if (!strcmp(ds->class_folder[c], imagenette_names[i][0])) {
                free(ds->class_display[c]);
                ds->class_display[c] = xstrdup(imagenette_names[i][1]);
            }
}

/* The sorted subfolders of dir (torchvision: classes are folders only). */
static char **list_class_folders(const char *dir, int *n) {
    int k;
    char **names = list_dir(dir, &k);
    if (!names) return NULL;
    *n = 0;
    for (int i = 0; i < k; i++) {
        char *sub = xasprintf("%s/%s", dir, names[i]);
        struct stat st;
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) names[(*n)++] = names[i];
        else free(names[i]);
        free(sub);
    }
    return names;
}

char **dataset_list_classes(const char *root, const char *split, int *n) {
    *n = 0;
    char *dir = xasprintf("%s/%s", root, split);
    char **names = list_class_folders(dir, n);
    free(dir);
    return names;
}

int dataset_imagefolder(const char *root, const char *split, const char *class_names_file, Dataset *ds,
                        Error *err) {
    memset(ds, 0, sizeof *ds);
    ds->dir = xasprintf("%s/%s", root, split);
    struct stat st;
    if (stat(ds->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        error_set(err, "%s: %s", ds->dir, stat(ds->dir, &st) != 0 ? strerror(errno) : "not a directory");
        return -1;
    }
    int n;
    char **names = list_class_folders(ds->dir, &n);
    if (!names) {
        error_set(err, "%s: %s", ds->dir, strerror(errno));
        return -1;
    }
    Lister ls = {ds, 0, 0};
    for (int i = 0; i < n; i++) {
        char *cdir = xasprintf("%s/%s", ds->dir, names[i]);
        int c = ds->n_classes++;
        ds->class_folder = xrealloc(ds->class_folder, sizeof(char *) * ds->n_classes);
        ds->class_display = xrealloc(ds->class_display, sizeof(char *) * ds->n_classes);
        ds->class_folder[c] = xstrdup(names[i]);
        ds->class_display[c] = xstrdup(names[i]);
        if (walk_class(&ls, cdir, c, 0) == 0) skiplog_add(&ds->skipped, cdir, SKIP_EMPTY_CLASS);
        free(cdir);
    }
    dataset_free_names(names, n);
    if (ds->n_classes == 0) {
        error_set(err, "%s: no class folders (expected %s/<class>/*.jpg)", ds->dir, ds->dir);
        return -1;
    }
    builtin_class_names(ds);
    if (class_names_file && *class_names_file) read_class_names(ds, root, class_names_file);
    return 0;
}

/* ---- labels by class name ---- */

/* The index of ds's class c in classes: by folder name, else by display name
 * (checkpoints that list only display names, such as Imagenette's). */
static int find_class(const Dataset *ds, int c, char *const *classes, int n_classes) {
    for (int j = 0; j < n_classes; j++)
        if (!strcmp(classes[j], ds->class_folder[c])) return j;
    for (int j = 0; j < n_classes; j++)
        if (!strcmp(classes[j], ds->class_display[c])) return j;
    return -1;
}

static void list_some(StrBuf *b, char *const *names, int n) {
    for (int j = 0; j < n && j < 12; j++) sb_printf(b, "%s%s", j ? ", " : "", names[j]);
    if (n > 12) sb_printf(b, ", ... (%d in all)", n);
}

int dataset_relabel(Dataset *ds, char *const *classes, int n_classes, Error *err) {
    int *map = xmalloc(sizeof(int) * (size_t)(ds->n_classes ? ds->n_classes : 1));
    for (int c = 0; c < ds->n_classes; c++) {
        map[c] = find_class(ds, c, classes, n_classes);
        if (map[c] >= 0) continue;
        StrBuf known = {0};
        list_some(&known, classes, n_classes);
        error_set(err, "%s: class '%s' is not a class of the training split (%s); rename or remove it",
                  ds->dir, ds->class_folder[c], known.s ? known.s : "none");
        free(known.s);
        free(map);
        return -1;
    }
    for (int i = 0; i < ds->n; i++) ds->label[i] = map[ds->label[i]];
    char **folder = xcalloc((size_t)(n_classes ? n_classes : 1), sizeof *folder);
    char **display = xcalloc((size_t)(n_classes ? n_classes : 1), sizeof *display);
    for (int c = 0; c < ds->n_classes; c++) {
        if (display[map[c]]) free(ds->class_display[c]); /* two folders under one name: one class */
        else display[map[c]] = ds->class_display[c];
        free(ds->class_folder[c]);
    }
    for (int j = 0; j < n_classes; j++) {
        folder[j] = xstrdup(classes[j]);
        if (!display[j]) display[j] = xstrdup(classes[j]);
    }
    free(ds->class_folder);
    free(ds->class_display);
    ds->class_folder = folder;
    ds->class_display = display;
    ds->n_classes = n_classes;
    free(map);
    return 0;
}

/* ---- CIFAR ---- */

static char *find_file(const char *root, const char *sub, const char *name) {
    char *p = xasprintf("%s/%s", root, name);
    struct stat st;
    if (stat(p, &st) == 0) return p;
    free(p);
    p = xasprintf("%s/%s/%s", root, sub, name);
    if (stat(p, &st) == 0) return p;
    free(p);
    return NULL;
}

static void cifar_names(Dataset *ds, const char *root, const char *sub, const char *file) {
    char *path = find_file(root, sub, file);
    char *text = path ? read_file(path, NULL) : NULL;
    free(path);
    char *save = NULL, *line = text ? strtok_r(text, "\r\n", &save) : NULL;
    for (int c = 0; c < ds->n_classes; c++) {
        ds->class_folder[c] = line && *line ? xstrdup(line) : xasprintf("%d", c);
        ds->class_display[c] = xstrdup(ds->class_folder[c]);
        if (line) line = strtok_r(NULL, "\r\n", &save);
    }
    free(text);
}

int dataset_cifar(const char *root, bool cifar100, bool train, Dataset *ds, Error *err) {
    memset(ds, 0, sizeof *ds);
    const char *sub = cifar100 ? "cifar-100-binary" : "cifar-10-batches-bin";
    const char *train10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                             "data_batch_5.bin"};
    const char *test10[] = {"test_batch.bin"}, *train100[] = {"train.bin"}, *test100[] = {"test.bin"};
    const char **files = cifar100 ? (train ? train100 : test100) : (train ? train10 : test10);
    int n_files = cifar100 ? 1 : (train ? 5 : 1);
    int label_bytes = cifar100 ? 2 : 1, rec = label_bytes + 3072;
    ds->dir = xasprintf("%s (%s %s)", root, cifar100 ? "CIFAR-100" : "CIFAR-10", train ? "train" : "test");
    ds->mem_w = ds->mem_h = 32;
    ds->n_classes = cifar100 ? 100 : 10;
    ds->class_folder = xcalloc(ds->n_classes, sizeof(char *));
    ds->class_display = xcalloc(ds->n_classes, sizeof(char *));
    cifar_names(ds, root, sub, cifar100 ? "fine_label_names.txt" : "batches.meta.txt");
    for (int f = 0; f < n_files; f++) {
        char *path = find_file(root, sub, files[f]);
        if (!path) {
            error_set(err, "%s: no %s (CIFAR binary format expected in %s or %s/%s)", root, files[f], root,
                      root, sub);
            return -1;
        }
        size_t len;
        char *data = read_file(path, &len);
        if (!data || len % rec != 0 || len == 0) {
            error_set(err, "%s: %s", path, !data ? strerror(errno) : "size is not a whole number of records");
            free(data);
            free(path);
            return -1;
        }
        free(path);
        int count = (int)(len / rec);
        ds->pixels = xrealloc(ds->pixels, (size_t)(ds->n + count) * 3072 + 1); /* +1: see image.h */
        ds->label = xrealloc(ds->label, sizeof(int) * (ds->n + count));
        for (int i = 0; i < count; i++) {
            const uint8_t *r = (const uint8_t *)data + (size_t)i * rec;
            int label = r[label_bytes - 1];
            if (label >= ds->n_classes) label = ds->n_classes - 1;
            ds->label[ds->n] = label;
            uint8_t *dst = ds->pixels + (size_t)ds->n * 3072;
            for (int p = 0; p < 1024; p++)
                for (int c = 0; c < 3; c++) dst[3 * p + c] = r[label_bytes + c * 1024 + p];
            ds->n++;
        }
        free(data);
    }
    return 0;
}

void dataset_free(Dataset *ds) {
    for (int i = 0; i < ds->n_classes; i++) {
        free(ds->class_folder[i]);
        free(ds->class_display[i]);
    }
    free(ds->class_folder);
    free(ds->class_display);
    if (ds->path)
        for (int i = 0; i < ds->n; i++) free(ds->path[i]);
    free(ds->path);
    free(ds->label);
    free(ds->pixels);
    free(ds->dir);
    skiplog_free(&ds->skipped);
    memset(ds, 0, sizeof *ds);
}
