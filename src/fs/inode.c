/* SPDX-License-Identifier: MIT */
/*
 * inode.c: the in-memory inode table (the kernel's view: lookup counts),
 * mappings, negative lookups, and turning store rows into struct stat.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

static size_t slot(uint64_t ino)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 52) % INODE_BUCKETS;
}

struct inode *fs_inode_get(struct bfs_fs *fs, uint64_t ino)
{
    for (struct inode *i = fs->inodes[slot(ino)]; i; i = i->next)
        if (i->ino == ino)
            return i;
    return NULL;
}

/* The key of a child: the parent's prefix plus the name (and '/' for a
 * directory). Mapping directories start at their mapping's prefix. */
static char *child_key(struct bfs_fs *fs, const struct inode *p, const struct bfs_node *n,
                       int *ret_map)
{
    struct bfs_buf b;

    bfs_buf_init(&b, 8192);
    if (p->ino == BFS_ROOT_INO) {
        struct mapping *m = fs_mapping_by_name(fs, n->name);

        if (!m)
            return NULL;
        for (size_t i = 0; i < fs->nmaps; i++)
            if (fs->maps[i] == m)
                *ret_map = (int)i;
        bfs_buf_adds(&b, m->prefix);
        return bfs_buf_steal(&b);
    }
    *ret_map = p->map;
    if (bfs_buf_addf(&b, "%s%s%s", p->key, n->name, n->kind == BFS_KIND_DIR ? "/" : "") < 0)
        return NULL;
    return bfs_buf_steal(&b);
}

int fs_inode_insert(struct bfs_fs *fs, struct inode *i)
{
    pthread_mutex_lock(&fs->lock);
    i->next = fs->inodes[slot(i->ino)];
    fs->inodes[slot(i->ino)] = i;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

int fs_inode_ref(struct bfs_fs *fs, uint64_t parent, const struct bfs_node *n)
{
    struct inode *i, *p;
    char *key;
    int map = -1;

    pthread_mutex_lock(&fs->lock);
    i = fs_inode_get(fs, n->ino);
    if (i && i->kind == n->kind) {
        i->nlookup++;
        pthread_mutex_unlock(&fs->lock);
        return 0;
    }
    p = fs_inode_get(fs, parent);
    key = p ? child_key(fs, p, n, &map) : NULL;
    if (!key) {
        pthread_mutex_unlock(&fs->lock);
        return p ? -ENOMEM : -ESTALE;
    }
    if (i) { /* same row, other kind (file became directory): keep the count */
        free(i->key);
        i->key = key;
        i->kind = n->kind;
        i->nlookup++;
        pthread_mutex_unlock(&fs->lock);
        return 0;
    }
    i = calloc(1, sizeof(*i));
    if (!i) {
        free(key);
        pthread_mutex_unlock(&fs->lock);
        return -ENOMEM;
    }
    i->ino = n->ino;
    i->parent = parent;
    i->kind = n->kind;
    i->map = map;
    i->key = key;
    i->nlookup = 1;
    i->next = fs->inodes[slot(i->ino)];
    fs->inodes[slot(i->ino)] = i;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

void bfs_fs_forget(struct bfs_fs *fs, uint64_t ino, uint64_t nlookup)
{
    struct inode **pp, *i;

    if (ino == BFS_ROOT_INO)
        return;
    pthread_mutex_lock(&fs->lock);
    for (pp = &fs->inodes[slot(ino)]; (i = *pp); pp = &i->next) {
        if (i->ino != ino)
            continue;
        /* invariant 1: counts never go below zero */
        i->nlookup = nlookup >= i->nlookup ? 0 : i->nlookup - nlookup;
        if (i->nlookup == 0) {
            *pp = i->next;
            free(i->key);
            free(i);
        }
        break;
    }
    pthread_mutex_unlock(&fs->lock);
}

int fs_inode_target(struct bfs_fs *fs, uint64_t ino, struct mapping **ret_map, char **ret_key,
                    int *ret_kind)
{
    struct inode *i;
    int r = 0;

    pthread_mutex_lock(&fs->lock);
    i = fs_inode_get(fs, ino);
    if (!i) {
        r = -ESTALE;
    } else if (i->map < 0 || (size_t)i->map >= fs->nmaps) {
        r = -EPERM; /* the root has no object */
    } else {
        *ret_key = strdup(i->key);
        if (!*ret_key)
            r = -ENOMEM;
        *ret_map = fs->maps[i->map];
        if (ret_kind)
            *ret_kind = i->kind;
    }
    pthread_mutex_unlock(&fs->lock);
    return r;
}

void fs_node_to_stat(const struct bfs_fs *fs, const struct bfs_node *n, struct stat *st)
{
    const struct bfs_config *c = fs->cfg;
    mode_t type = n->kind == BFS_KIND_DIR ? S_IFDIR : n->kind == BFS_KIND_SYMLINK ? S_IFLNK
                                                                                   : S_IFREG;
    mode_t perm = n->kind == BFS_KIND_DIR ? c->dir_mode : c->file_mode;

    memset(st, 0, sizeof(*st));
    st->st_ino = n->ino;
    if (n->meta & BFS_META_MODE)
        perm = n->mode & 07777;
    if (n->kind == BFS_KIND_SYMLINK && !(n->meta & BFS_META_MODE))
        perm = 0777;
    if (n->kind == BFS_KIND_FILE && (n->meta & BFS_META_MODE) &&
        (S_ISFIFO(n->mode) || S_ISSOCK(n->mode) || S_ISCHR(n->mode) || S_ISBLK(n->mode)))
        type = n->mode & S_IFMT; /* a special file stored as a zero-byte object */
    st->st_mode = type | (perm & ~c->umask);
    st->st_nlink = n->kind == BFS_KIND_DIR ? 2 : 1;
    st->st_uid = n->meta & BFS_META_UID ? n->uid : c->uid;
    st->st_gid = n->meta & BFS_META_GID ? n->gid : c->gid;
    st->st_size = n->kind == BFS_KIND_DIR ? 4096 : (off_t)n->size;
    st->st_blksize = (blksize_t)fs->block;
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    fs_stat_times(st, n->mtime_ns, n->ctime_ns, n->atime_ns);
}

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec t = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

    if (t.tv_nsec < 0) { /* before 1970: the fraction counts up from a whole second */
        t.tv_sec--;
        t.tv_nsec += 1000000000;
    }
    return t;
}

void fs_stat_times(struct stat *st, int64_t mtime_ns, int64_t ctime_ns, int64_t atime_ns)
{
    st->st_mtim = ns_to_ts(mtime_ns);
    /* a change of the content is a change of the inode too; S3 keeps
     * neither ctime nor atime, so both default to mtime */
    st->st_ctim = ns_to_ts(ctime_ns > mtime_ns ? ctime_ns : mtime_ns);
    st->st_atim = ns_to_ts(atime_ns ? atime_ns : mtime_ns);
}

/* Parses a decimal (possibly fractional) metadata value. */
static int meta_num(const struct bfs_s3_meta *m, const char *name, double *ret)
{
    const char *v = bfs_s3_meta_get(m, name);
    char *end;
    double d;

    if (!v || !*v)
        return 0;
    d = strtod(v, &end);
    if (*end || d < 0 || d > 1e15)
        return 0;
    *ret = d;
    return 1;
}

/* "SECONDS[.FRACTION]" to ns, exactly (a double would round the ns). */
static int parse_mtime(const char *v, int64_t *ret)
{
    int64_t sec = 0, frac = 0, scale = 100000000;
    const char *p = v;

    if (!p || *p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (sec > (INT64_MAX / 1000000000 - 9) / 10)
            return -ERANGE;
        sec = sec * 10 + (*p - '0');
    }
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    if (*p)
        return -EINVAL;
    *ret = sec * 1000000000 + frac;
    return 0;
}

void fs_node_from_object(struct bfs_node *n, const struct bfs_s3_object *o, int headed)
{
    double v;

    n->size = o->size;
    bfs_s3_etag_normalize(o->etag, n->etag);
    n->mtime_ns = o->mtime_ns;
    n->meta = headed ? BFS_META_HEADED : 0;
    n->kind = BFS_KIND_FILE;
    if (meta_num(&o->meta, "mode", &v)) {
        n->mode = (uint32_t)v;
        n->meta |= BFS_META_MODE;
        if (S_ISLNK(n->mode))
            n->kind = BFS_KIND_SYMLINK;
    }
    if (meta_num(&o->meta, "uid", &v)) {
        n->uid = (uint32_t)v;
        n->meta |= BFS_META_UID;
    }
    if (meta_num(&o->meta, "gid", &v)) {
        n->gid = (uint32_t)v;
        n->meta |= BFS_META_GID;
    }
    if (meta_num(&o->meta, "mtime", &v) &&
        parse_mtime(bfs_s3_meta_get(&o->meta, "mtime"), &n->mtime_ns) == 0)
        n->meta |= BFS_META_MTIME;
}

int fs_name_valid(const char *name, size_t len)
{
    return len > 0 && len <= 255 && !(len == 1 && name[0] == '.') &&
           !(len == 2 && name[0] == '.' && name[1] == '.') && !memchr(name, '/', len) &&
           !memchr(name, '\0', len);
}

/* ---- telling the kernel ---- */

void bfs_fs_set_kernel(struct bfs_fs *fs, const struct bfs_fs_kernel *k)
{
    fs->kernel = *k;
}

void fs_kernel_inval_inode(struct bfs_fs *fs, uint64_t ino, int data, int wait)
{
    if (!fs->kernel.inval_inode)
        return;
    atomic_fetch_add(&fs->kernel_invals, 1);
    fs->kernel.inval_inode(fs->kernel.ctx, ino, data, wait);
}

void fs_kernel_inval_entry(struct bfs_fs *fs, uint64_t parent, const char *name, int wait)
{
    if (!fs->kernel.inval_entry)
        return;
    atomic_fetch_add(&fs->kernel_invals, 1);
    fs->kernel.inval_entry(fs->kernel.ctx, parent, name, wait);
}

/* ---- negative lookups ---- */

void fs_negative_add(struct bfs_fs *fs, uint64_t parent, const char *name)
{
    struct negative *n = calloc(1, sizeof(*n));

    if (!n || !(n->name = strdup(name))) {
        free(n);
        return;
    }
    n->parent = parent;
    /* another machine may make the name: asked again after the window
     * (a mapping name, at the root, waits for the TTL: ListBuckets) */
    n->until_ms = bfs_mono_ms() + (parent == BFS_ROOT_INO ? fs->ttl_ms : fs->reval_ms);
    pthread_mutex_lock(&fs->lock);
    if (fs->nneg >= NEG_MAX) { /* full: start over rather than grow */
        struct negative *x, *next;
        for (x = fs->neg; x; x = next) {
            next = x->next;
            free(x->name);
            free(x);
        }
        fs->neg = NULL;
        fs->nneg = 0;
    }
    n->next = fs->neg;
    fs->neg = n;
    fs->nneg++;
    pthread_mutex_unlock(&fs->lock);
}

int fs_negative_has(struct bfs_fs *fs, uint64_t parent, const char *name)
{
    int64_t now = bfs_mono_ms();
    struct negative **pp, *n;
    int found = 0;

    pthread_mutex_lock(&fs->lock);
    for (pp = &fs->neg; (n = *pp);) {
        if (n->until_ms < now) {
            *pp = n->next;
            free(n->name);
            free(n);
            fs->nneg--;
            continue;
        }
        if (n->parent == parent && strcmp(n->name, name) == 0)
            found = 1;
        pp = &n->next;
    }
    pthread_mutex_unlock(&fs->lock);
    return found;
}

void fs_negative_clear(struct bfs_fs *fs, uint64_t parent)
{
    struct negative **pp, *n;

    pthread_mutex_lock(&fs->lock);
    for (pp = &fs->neg; (n = *pp);) {
        if (n->parent == parent) {
            *pp = n->next;
            free(n->name);
            free(n);
            fs->nneg--;
        } else {
            pp = &n->next;
        }
    }
    pthread_mutex_unlock(&fs->lock);
}

/* Caller holds fs->lock. */
struct mapping *fs_mapping_by_name(struct bfs_fs *fs, const char *name)
{
    for (size_t i = 0; i < fs->nmaps; i++)
        if (strcmp(fs->maps[i]->name, name) == 0)
            return fs->maps[i];
    return NULL;
}

void fs_inode_rekey(struct bfs_fs *fs, uint64_t ino, uint64_t parent, const char *key)
{
    struct inode *i;
    char *old = NULL;
    size_t olen;

    pthread_mutex_lock(&fs->lock);
    i = fs_inode_get(fs, ino);
    if (i && (old = strdup(i->key))) {
        char *k = strdup(key);

        if (k) {
            free(i->key);
            i->key = k;
            i->parent = parent;
        }
    }
    /* every inode below a renamed directory has the old prefix */
    if (i && old && i->kind == BFS_KIND_DIR && (olen = strlen(old)) > 0) {
        for (size_t b = 0; b < INODE_BUCKETS; b++) {
            for (struct inode *j = fs->inodes[b]; j; j = j->next) {
                struct bfs_buf nk;

                if (j == i || j->map != i->map || strncmp(j->key, old, olen) != 0)
                    continue;
                bfs_buf_init(&nk, 8192);
                if (bfs_buf_addf(&nk, "%s%s", key, j->key + olen) == 0) {
                    char *k = bfs_buf_steal(&nk);

                    if (k) {
                        free(j->key);
                        j->key = k;
                    }
                }
                bfs_buf_done(&nk);
            }
        }
    }
    pthread_mutex_unlock(&fs->lock);
    free(old);
}
