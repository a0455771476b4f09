/*
 * demo.c — builds the demo data set (demo.h) from sklearn's digits CSV.
 *
 * The CSV is gzip-compressed; it is read through `gzip -dc` rather than
 * linking zlib, and fetched (when not installed) with Debian's own tools, so
 * nothing but apt's configured mirror is contacted.
 */
#include "data/demo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image.h"
#include "data/transforms.h"
#include "util.h"

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Shell-quotes s in single quotes. */
static char *shell_quote(const char *s) {
    StrBuf b = {0};
    sb_putc(&b, '\'');
    for (; *s; s++) {
        if (*s == '\'') sb_puts(&b, "'\\''");
        else sb_putc(&b, *s);
    }
    sb_putc(&b, '\'');
    return sb_take(&b);
}

static char *fetch_csv(char *tmpdir, Error *err) {
    if (!mkdtemp(tmpdir)) {
        error_set(err, "cannot create a temporary directory: %s", strerror(errno));
        return NULL;
    }
    fprintf(stderr, "demo: fetching python3-sklearn with apt-get download into %s\n", tmpdir);
    char *cmd = xasprintf("cd %s && apt-get download python3-sklearn >download.log 2>&1 && "
                          "dpkg -x python3-sklearn_*.deb x >>download.log 2>&1", tmpdir);
    int rc = system(cmd);
    free(cmd);
    char *csv = xasprintf("%s/x%s", tmpdir, DEMO_CSV_IN_PACKAGE);
    if (rc != 0 || !file_exists(csv)) {
        error_set(err,
                  "could not obtain digits.csv.gz (apt-get download python3-sklearn + dpkg -x failed, log in "
                  "%s/download.log); install python3-sklearn or pass --csv FILE",
                  tmpdir);
        free(csv);
        return NULL;
    }
    return csv;
}

static void remove_tree(const char *dir) {
    char *q = shell_quote(dir);
    char *cmd = xasprintf("rm -rf %s", q);
    if (system(cmd) != 0) fprintf(stderr, "demo: could not remove %s\n", dir);
    free(cmd);
    free(q);
}

int demo_prepare(const char *out_dir, const char *csv_path, Error *err) {
    char tmpdir[] = "/tmp/rxc-demo-XXXXXX";
    bool used_tmp = false;
    char *csv = NULL;
    if (csv_path) csv = xstrdup(csv_path);
    else if (file_exists(DEMO_CSV_IN_PACKAGE)) csv = xstrdup(DEMO_CSV_IN_PACKAGE);
    else {
        csv = fetch_csv(tmpdir, err);
        if (!csv) return -1;
        used_tmp = true;
    }
    if (!file_exists(csv)) {
        error_set(err, "%s: no such file", csv);
        free(csv);
        return -1;
    }
    char *q = shell_quote(csv);
    char *cmd = xasprintf("gzip -dcf %s", q);
    free(q);
    FILE *in = popen(cmd, "r");
    free(cmd);
    if (!in) {
        error_set(err, "cannot run gzip: %s", strerror(errno));
        free(csv);
        return -1;
    }
    int count[2] = {0, 0}, rc = 0;
    char line[1024];
    int index = 0;
    while (fgets(line, sizeof line, in)) {
        int v[65], k = 0;
        char *s = line, *end;
        while (k < 65) {
            long x = strtol(s, &end, 10);
            if (end == s) break;
            v[k++] = (int)x;
            s = end;
            while (*s == ',' || *s == ' ') s++;
        }
        if (k == 0) continue;
        if (k != 65 || v[64] < 0 || v[64] > 9) {
            error_set(err, "%s: line %d is not 64 pixels and a label", csv, index + 1);
            rc = -1;
            break;
        }
        Image small, big;
        image_alloc(&small, 8, 8);
        for (int p = 0; p < 64; p++) {
            int g = (v[p] * 255 + 8) / 16;
            if (g > 255) g = 255;
            if (g < 0) g = 0;
            small.px[3 * p] = small.px[3 * p + 1] = small.px[3 * p + 2] = (uint8_t)g;
        }
        resize_bilinear(&small, 32, 32, &big);
        int val = index % 5 == 4;
        char *dir = xasprintf("%s/%s/%d", out_dir, val ? "val" : "train", v[64]);
        char *path = xasprintf("%s/%04d.jpg", dir, index);
        if (make_dirs(dir, 0755, NULL) != 0) {
            error_set(err, "cannot create %s: %s", dir, strerror(errno));
            rc = -1;
        } else if (image_write_jpeg(&big, path, 95, err) != 0) {
            rc = -1;
        }
        free(dir);
        free(path);
        image_free(&small);
        image_free(&big);
        if (rc) break;
        count[val]++;
        index++;
    }
    int status = pclose(in);
    if (!rc && (status != 0 || index == 0)) {
        error_set(err, "%s: could not decompress (gzip status %d, %d rows)", csv, status, index);
        rc = -1;
    }
    if (!rc) {
        char *readme = xasprintf("%s/README.txt", out_dir);
        FILE *f = fopen(readme, "w");
        if (f) {
            fprintf(f,
                    "Handwritten digits (sklearn's digits.csv.gz from Debian's python3-sklearn), written by "
                    "`rxc demo`.\n%d train and %d val images, 10 classes, 32x32 RGB JPEG.\n"
                    "Split: CSV row i (0-based) is in val/ when i %% 5 == 4, else in train/.\n",
                    count[0], count[1]);
            fclose(f);
        }
        free(readme);
        fprintf(stderr, "demo: wrote %d train and %d val images to %s\n", count[0], count[1], out_dir);
    }
    if (used_tmp) remove_tree(tmpdir);
    free(csv);
    return rc;
}
