/* SPDX-License-Identifier: MIT */
/*
 * prefetch.c: `bucketfs prefetch [--quiet] [--jobs N] PATH...`: fills the
 * block cache of a mount with the files named, and every file of the trees
 * named, so that reading them later costs no GET (a training job's data
 * set before the job, a service's state before it starts).
 *
 * It needs no help from the daemon: it walks the paths and reads each file
 * through the mount, whole and in order, from --jobs threads at once. A
 * sequential reader makes the daemon fetch the file's blocks with its
 * read-ahead (several ranged GETs in flight) and keep them in the block
 * cache; the bytes read are thrown away.
 *
 * NOTES ON THE DESIGN
 * 1. Nothing is fetched unless all of it fits. Before the first read the
 *    sizes of the files asked are summed per mount and compared with what
 *    the block cache can keep: cache_size less the 10% the evictor frees
 *    below it when the cache is full (store/blocks.c), since a larger set
 *    would evict its own first blocks before the last came in. Everything
 *    cached now is clean (write staging is elsewhere), so all of it can be
 *    freed for the set. When the set does not fit, prefetch names both
 *    sizes and exits 1 having read nothing. The sum counts every file whole,
 *    cached or not: the daemon does not say what part of a file is cached.
 * 2. Files with pending uploads, or open with unsaved writes, live in the
 *    staging copy: reading them costs no GET. They are left out of the sum
 *    and not read (the mount's upload report lists them, up to the ~60 KiB
 *    the report holds; a file beyond that is read, which is harmless).
 * 3. A file reached twice (PATH and a directory above it) is read once:
 *    the list is made unique by device and inode.
 * 4. The walk stays on the device of each PATH (FTS_XDEV) and does not
 *    follow symlinks below it; a PATH that is a symlink is followed.
 *
 * Exit status: 0 every file read, 1 some file could not be read or the set
 * does not fit in the cache, 2 usage, or a PATH missing or not on a
 * bucketfs mount (checked before anything is read).
 */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "cli-int.h"

#define JOBS_DEFAULT 8
#define JOBS_MAX 64
#define MOUNTS_MAX 16           /* distinct mounts named in one run */
#define READ_SIZE (1024 * 1024) /* one block: the daemon's default block_size */
#define BAR_EVERY_MS 100
#define FIT_PERCENT 90 /* the evictor's low-water mark, in % of cache_size */

struct file {
    char *path; /* owned */
    uint64_t size;
    dev_t dev;
    ino_t ino;
    size_t mount; /* index in plan.m */
};

struct mount {
    char *root;    /* owned: the mount point, a canonical path */
    char **skip;   /* owned, sorted: ROOT/NAME/key of files with local data */
    size_t nskip;
    uint64_t want; /* bytes of the files to read on this mount */
    size_t nfiles;
};

struct plan {
    struct file *v; /* owned */
    size_t n, cap;
    struct mount m[MOUNTS_MAX];
    size_t nm;
    uint64_t total;
    int failed; /* files that could not be walked */
};

/* Shared by the workers. next and stderr output are under lock; the
 * counters are atomic. */
struct pool {
    const struct plan *pl;
    pthread_mutex_t lock;
    size_t next;                /* protected by lock */
    atomic_uint_fast64_t bytes; /* read so far */
    atomic_size_t done, failed, finished;
    int bar;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: bucketfs prefetch [--quiet] [--jobs N] PATH...\n"
                 "\n"
                 "Reads every file named, and every file of the directories named, through\n"
                 "its bucketfs mount so that the block cache holds it: later reads send no\n"
                 "GET. Nothing is read when the files do not fit in the cache (90%% of\n"
                 "cache_size): prefetch says how much was asked and how much fits, and\n"
                 "exits 1. Files with pending uploads are local already and skipped.\n"
                 "\n"
                 "  -j, --jobs N   files read at once (1-64, default 8)\n"
                 "  -q, --quiet    no progress bar (drawn only when stderr is a terminal)\n"
                 "  -h, --help\n");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of mount m with local data (uploads report items), as paths
 * under its root, sorted for lookup. */
static int load_skips(struct mount *m)
{
    struct bfs_json *up = NULL;
    const struct bfs_json *items;
    struct bfs_buf b;
    int r = cli_read_json(m->root, "user.bucketfs.uploads", &up);

    if (r < 0)
        return r;
    items = bfs_json_get(up, "items");
    for (const struct bfs_json *it = items ? items->child : NULL; it && r == 0; it = it->next) {
        char **v = realloc(m->skip, (m->nskip + 1) * sizeof(*v)), *path = NULL;

        if (v)
            m->skip = v;
        bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
        if (v && bfs_buf_addf(&b, "%s/%s", m->root, bfs_json_str(it, "path")) == 0)
            path = bfs_buf_steal(&b);
        bfs_buf_done(&b);
        if (!path)
            r = -ENOMEM;
        else
            m->skip[m->nskip++] = path;
    }
    bfs_json_free(up);
    if (m->nskip)
        qsort(m->skip, m->nskip, sizeof(*m->skip), cmp_str);
    return r;
}

/* The index of the mount that holds the canonical path p, added when new;
 * -1 after printing why when p is on no bucketfs mount. */
static int mount_of(struct plan *pl, const char *arg, const char *p)
{
    char *root = cli_bucketfs_root(p);
    struct mount *m;
    int r;

    if (!root) {
        fprintf(stderr, "bucketfs prefetch: ");
        cli_put_safe(stderr, arg);
        fprintf(stderr, " is not on a bucketfs mount\n");
        return -1;
    }
    for (size_t i = 0; i < pl->nm; i++) {
        if (strcmp(pl->m[i].root, root) == 0) {
            free(root);
            return (int)i;
        }
    }
    if (pl->nm == MOUNTS_MAX) {
        fprintf(stderr, "bucketfs prefetch: more than %d mounts named\n", MOUNTS_MAX);
        free(root);
        return -1;
    }
    m = &pl->m[pl->nm++]; /* plan_done frees it from here on */
    memset(m, 0, sizeof(*m));
    m->root = root;
    r = load_skips(m);
    if (r < 0) {
        cli_report_errno("prefetch", root, -r);
        return -1;
    }
    return (int)(pl->nm - 1);
}

static int add_file(struct plan *pl, size_t mi, const FTSENT *e)
{
    struct file *f;

    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 256;
        struct file *v = realloc(pl->v, cap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        pl->v = v;
        pl->cap = cap;
    }
    f = &pl->v[pl->n];
    f->path = strdup(e->fts_path);
    if (!f->path)
        return -ENOMEM;
    f->size = (uint64_t)e->fts_statp->st_size;
    f->dev = e->fts_statp->st_dev;
    f->ino = e->fts_statp->st_ino;
    f->mount = mi;
    pl->n++;
    return 0;
}

static int skipped(const struct mount *m, const char *path)
{
    return m->nskip && bsearch(&path, m->skip, m->nskip, sizeof(*m->skip), cmp_str);
}

/* Adds the regular files under the canonical path p (of mount mi). */
static int walk(struct plan *pl, size_t mi, char *p)
{
    char *const roots[] = {p, NULL};
    FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_COMFOLLOW | FTS_XDEV | FTS_NOCHDIR, NULL);
    FTSENT *e;
    int r = 0;

    if (!fts)
        return -errno;
    while (r == 0) {
        errno = 0;
        e = fts_read(fts);
        if (!e) {
            r = -errno; /* 0 at the end of the walk */
            break;
        }
        if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR || e->fts_info == FTS_NS) {
            cli_report_errno("prefetch", e->fts_path, e->fts_errno);
            pl->failed++;
        } else if (e->fts_info == FTS_F && S_ISREG(e->fts_statp->st_mode) &&
                   !skipped(&pl->m[mi], e->fts_path)) {
            r = add_file(pl, mi, e);
        }
    }
    fts_close(fts);
    return r;
}

static int cmp_file(const void *a, const void *b)
{
    const struct file *x = a, *y = b;

    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Note 3: one entry per file; then the sums per mount. */
static void unique(struct plan *pl)
{
    size_t k = 0;

    qsort(pl->v, pl->n, sizeof(*pl->v), cmp_file);
    for (size_t i = 0; i < pl->n; i++) {
        if (k && cmp_file(&pl->v[k - 1], &pl->v[i]) == 0) {
            free(pl->v[i].path);
            continue;
        }
        pl->v[k++] = pl->v[i];
    }
    pl->n = k;
    for (size_t i = 0; i < pl->n; i++) {
        pl->m[pl->v[i].mount].want += pl->v[i].size;
        pl->m[pl->v[i].mount].nfiles++;
        pl->total += pl->v[i].size;
    }
}

/* Note 1: whether what is asked of each mount fits in its cache. Returns
 * 0, 1 after saying what does not fit, or 2 when a mount cannot be asked. */
static int check_fit(const struct plan *pl)
{
    int rc = 0;

    for (size_t i = 0; i < pl->nm; i++) {
        const struct mount *m = &pl->m[i];
        struct bfs_json *st = NULL;
        uint64_t limit, used, fits;
        char a[32], b[32], c[32], d[32];
        int r = cli_read_json(m->root, "user.bucketfs.stats", &st);

        if (r < 0) {
            cli_report_errno("prefetch", m->root, r == -EINVAL ? EPROTO : -r);
            return 2;
        }
        limit = bfs_json_u64(bfs_json_get(st, "cache"), "limit");
        used = bfs_json_u64(bfs_json_get(st, "cache"), "bytes");
        bfs_json_free(st);
        fits = limit / 100 * FIT_PERCENT;
        if (m->want <= fits)
            continue;
        cli_fmt_bytes(m->want, a);
        cli_fmt_bytes(fits, b);
        cli_fmt_bytes(limit, c);
        cli_fmt_bytes(used, d);
        fprintf(stderr, "bucketfs prefetch: the %zu files asked on ", m->nfiles);
        cli_put_safe(stderr, m->root);
        fprintf(stderr,
                " hold %s, more than the %s its cache keeps (cache_size %s, less the 10%%"
                " freed when it is full; %s cached now, all of which can be freed); nothing "
                "fetched: prefetch less, or remount with a larger cache_size\n",
                a, b, c, d);
        rc = 1;
    }
    return rc;
}

/* Reads the file f through the mount into buf (READ_SIZE bytes). */
static int fetch_one(struct pool *po, const struct file *f, char *buf)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC), err = 0;
    ssize_t n;

    if (fd < 0)
        return -errno;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while ((n = read(fd, buf, READ_SIZE)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        atomic_fetch_add(&po->bytes, (uint64_t)n);
    }
    close(fd);
    return err;
}

static void *worker(void *arg)
{
    struct pool *po = arg;
    char *buf = malloc(READ_SIZE);

    for (;;) {
        const struct file *f = NULL;
        int r;

        pthread_mutex_lock(&po->lock);
        if (po->next < po->pl->n)
            f = &po->pl->v[po->next++];
        pthread_mutex_unlock(&po->lock);
        if (!f)
            break;
        r = buf ? fetch_one(po, f, buf) : -ENOMEM;
        if (r == -ENOENT) { /* deleted since the walk: nothing to warm */
            atomic_fetch_add(&po->done, 1);
            continue;
        }
        if (r < 0) {
            pthread_mutex_lock(&po->lock);
            if (po->bar)
                cli_bar_clear();
            cli_report_errno("prefetch", f->path, -r);
            pthread_mutex_unlock(&po->lock);
            atomic_fetch_add(&po->failed, 1);
        }
        atomic_fetch_add(&po->done, 1);
    }
    free(buf);
    atomic_fetch_add(&po->finished, 1);
    return NULL;
}

static void draw(struct pool *po)
{
    if (!po->bar)
        return;
    pthread_mutex_lock(&po->lock);
    cli_bar_draw("prefetch", atomic_load(&po->bytes), po->pl->total,
                 po->pl->n - atomic_load(&po->done));
    pthread_mutex_unlock(&po->lock);
}

/* Reads every file of pl from jobs threads. Returns the exit status. */
static int run(const struct plan *pl, int jobs, int bar)
{
    struct pool po = {.pl = pl, .bar = bar};
    pthread_t th[JOBS_MAX];
    int64_t t0 = bfs_mono_ms();
    int started = 0;

    pthread_mutex_init(&po.lock, NULL);
    for (; started < jobs && (size_t)started < pl->n; started++) {
        if (pthread_create(&th[started], NULL, worker, &po) != 0)
            break;
    }
    if (started == 0 && pl->n) /* no thread could start: read from this one */
        (void)worker(&po);
    while (atomic_load(&po.finished) < (size_t)started) {
        draw(&po);
        bfs_sleep_ms(BAR_EVERY_MS);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&po.lock);
    if (bar) {
        char a[32];

        cli_bar_clear();
        cli_fmt_bytes(atomic_load(&po.bytes), a);
        fprintf(stderr, "prefetch: %s in %zu file%s read in %.1f s\n", a, pl->n,
                pl->n == 1 ? "" : "s", (double)(bfs_mono_ms() - t0) / 1000);
    }
    if (po.failed)
        fprintf(stderr, "bucketfs prefetch: %zu of %zu files could not be read\n",
                (size_t)atomic_load(&po.failed), pl->n);
    return po.failed || pl->failed ? 1 : 0;
}

static int parse_args(int argc, char **argv, int *quiet, int *jobs)
{
    static const struct option lo[] = {{"quiet", 0, 0, 'q'}, {"jobs", 1, 0, 'j'},
                                       {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int64_t v;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "qj:h", lo, NULL)) != -1) {
        if (ch == 'q') {
            *quiet = 1;
        } else if (ch == 'j' && bfs_parse_int(optarg, 1, JOBS_MAX, &v) == 0) {
            *jobs = (int)v;
        } else if (ch == 'j') {
            fprintf(stderr, "bucketfs prefetch: bad --jobs '");
            cli_put_safe(stderr, optarg);
            fprintf(stderr, "' (a number from 1 to %d)\n", JOBS_MAX);
            return 2;
        } else if (ch == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (argc == optind) {
        fprintf(stderr, "bucketfs prefetch: no path given\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Walks every PATH into pl. Returns -1, or the exit status on failure. */
static int plan_paths(struct plan *pl, int argc, char **argv)
{
    for (int i = optind; i < argc; i++) {
        char *p = realpath(argv[i], NULL);
        int mi, r;

        if (!p) {
            cli_report_errno("prefetch", argv[i], errno);
            return 2;
        }
        mi = mount_of(pl, argv[i], p);
        r = mi < 0 ? 0 : walk(pl, (size_t)mi, p);
        free(p);
        if (mi < 0)
            return 2;
        if (r < 0) {
            cli_report_errno("prefetch", argv[i], -r);
            return r == -ENOMEM ? 1 : 2;
        }
    }
    return -1;
}

static void plan_done(struct plan *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->v[i].path);
    free(pl->v);
    for (size_t i = 0; i < pl->nm; i++) {
        for (size_t j = 0; j < pl->m[i].nskip; j++)
            free(pl->m[i].skip[j]);
        free(pl->m[i].skip);
        free(pl->m[i].root);
    }
}

int cli_prefetch(int argc, char **argv)
{
    struct plan pl = {0};
    int quiet = 0, jobs = JOBS_DEFAULT;
    int rc = parse_args(argc, argv, &quiet, &jobs);

    if (rc >= 0)
        return rc;
    rc = plan_paths(&pl, argc, argv);
    if (rc < 0) {
        unique(&pl);
        rc = check_fit(&pl);
    }
    if (rc == 0)
        rc = run(&pl, jobs, !quiet && isatty(STDERR_FILENO));
    plan_done(&pl);
    return rc;
}
