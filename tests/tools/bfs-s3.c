/* SPDX-License-Identifier: MIT */
/*
 * bfs-s3: a command-line front end to the bucketfs S3 client, one command
 * per operation, used by the integration tests (tests/integration) to
 * drive the client against real servers and by developers to poke at one.
 *
 * Exit status: 0 success, 2 usage or local error, 3 S3 error (one line
 * "error: code=... status=... errno=... message=..." on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/s3.h"
#include "bucketfs/util.h"

struct opts {
    struct bfs_s3_config cfg;
    struct bfs_s3_creds_opts creds;
    const char *prefix, *delimiter, *start_after, *continuation, *content_type;
    const char *if_match, *if_none_match, *dst_if_match, *range, *out;
    int max_keys, single_page, md5, sha256, replace, jobs, stats, retries_set;
    int64_t expires, offset, length, part_size;
    struct bfs_s3_meta meta;
};

static int usage(void)
{
    fprintf(stderr,
            "usage: bfs-s3 [--endpoint URL] [--region R] [--path-style|--virtual-host]\n"
            "              [--profile P] [--passwd-file F] [--anonymous] [--unsigned-payload]\n"
            "              COMMAND ...\n"
            "commands: list-buckets | list B | head B K | get B K | put B K FILE |\n"
            "          copy SB SK DB DK | delete B K | delete-many B K... |\n"
            "          mpu-create B K | mpu-part B K ID N FILE | mpu-complete B K ID ETAG... |\n"
            "          mpu-abort B K ID | mpu-list B | mpu-upload B K FILE | presign B K | creds\n");
    return 2;
}

static const char *errno_name(int e)
{
    static const struct { int e; const char *n; } t[] = {
        {ENOENT, "ENOENT"}, {EACCES, "EACCES"}, {ESTALE, "ESTALE"}, {EALREADY, "EALREADY"},
        {EIO, "EIO"}, {EAGAIN, "EAGAIN"}, {ETIMEDOUT, "ETIMEDOUT"}, {ECONNREFUSED, "ECONNREFUSED"},
        {ECONNRESET, "ECONNRESET"}, {EHOSTUNREACH, "EHOSTUNREACH"}, {EINVAL, "EINVAL"},
        {ERANGE, "ERANGE"}, {EFBIG, "EFBIG"}, {EPROTO, "EPROTO"}, {ENOSYS, "ENOSYS"},
        {EPERM, "EPERM"}, {ENOTEMPTY, "ENOTEMPTY"}, {EEXIST, "EEXIST"}, {EOVERFLOW, "EOVERFLOW"},
        {ENAMETOOLONG, "ENAMETOOLONG"}, {E2BIG, "E2BIG"}, {EBUSY, "EBUSY"}};

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].e == -e || t[i].e == e)
            return t[i].n;
    return "E?";
}

static int fail(int rc, const struct bfs_s3_error *e)
{
    fprintf(stderr, "error: code=%s status=%d errno=%s message=%s\n",
            e->code[0] ? e->code : "Unknown", e->status, errno_name(rc), e->message);
    return 3;
}

static int open_file(const char *path, uint64_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "bfs-s3: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

static int cmd_list_buckets(struct bfs_s3_client *c)
{
    struct bfs_s3_bucket_list l;
    struct bfs_s3_error e;
    int rc = bfs_s3_list_buckets(c, &l, &e);

    if (rc < 0)
        return fail(rc, &e);
    for (size_t i = 0; i < l.n; i++)
        printf("%s\n", l.names[i]);
    bfs_s3_bucket_list_done(&l);
    return 0;
}

static int cmd_list(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_list_params p = {.prefix = o->prefix, .delimiter = o->delimiter,
                                   .start_after = o->start_after, .max_keys = o->max_keys};
    char *token = o->continuation ? strdup(o->continuation) : NULL;
    int pages = 0, rc = 0;

    do {
        struct bfs_s3_list_page pg;
        struct bfs_s3_error e;

        p.continuation = token;
        rc = bfs_s3_list_objects(c, argv[0], &p, &pg, &e);
        if (rc < 0) {
            free(token);
            return fail(rc, &e);
        }
        pages++;
        for (size_t i = 0; i < pg.nobjects; i++)
            printf("K\t%s\t%llu\t%s\t%lld\n", pg.objects[i].key,
                   (unsigned long long)pg.objects[i].size, pg.objects[i].etag,
                   (long long)(pg.objects[i].mtime_ns / 1000000000));
        for (size_t i = 0; i < pg.nprefixes; i++)
            printf("P\t%s\n", pg.prefixes[i]);
        free(token);
        token = pg.next_token;
        pg.next_token = NULL;
        bfs_s3_list_page_done(&pg);
        if (token && o->single_page)
            printf("NEXT\t%s\n", token);
    } while (token && !o->single_page);
    free(token);
    printf("PAGES\t%d\n", pages);
    return 0;
}

static int cmd_head(struct bfs_s3_client *c, char **argv)
{
    struct bfs_s3_object obj;
    struct bfs_s3_error e;
    int rc = bfs_s3_head_object(c, argv[0], argv[1], &obj, &e);

    if (rc < 0)
        return fail(rc, &e);
    printf("size=%llu\netag=%s\nlast_modified=%lld\ncontent_type=%s\n",
           (unsigned long long)obj.size, obj.etag, (long long)(obj.mtime_ns / 1000000000),
           obj.content_type ? obj.content_type : "");
    for (size_t i = 0; i < obj.meta.n; i++)
        printf("meta.%s=%s\n", obj.meta.names[i], obj.meta.values[i]);
    bfs_s3_object_done(&obj);
    return 0;
}

static int write_fd(void *ctx, const void *p, size_t n)
{
    int fd = *(int *)ctx;
    const char *b = p;

    while (n) {
        ssize_t w = write(fd, b, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int reset_fd(void *ctx)
{
    int fd = *(int *)ctx;

    if (fd == 1 || ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return -ESPIPE; /* stdout cannot take bytes back */
    return 0;
}

static int cmd_get(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_get_params p = {.if_match = o->if_match, .if_none_match = o->if_none_match};
    struct bfs_s3_error e;
    int fd = 1, rc;
    struct bfs_s3_sink sink = {.write = write_fd, .reset = reset_fd, .ctx = &fd};
    unsigned long long a, b;

    if (o->range) {
        if (sscanf(o->range, "%llu-%llu", &a, &b) != 2 || b < a)
            return usage();
        p.ranged = 1, p.first = a, p.last = b;
    }
    if (o->out) {
        fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "bfs-s3: %s: %s\n", o->out, strerror(errno));
            return 2;
        }
    }
    int64_t n = bfs_s3_get_object(c, argv[0], argv[1], &p, &sink, NULL, &e);
    rc = n < 0 ? fail((int)n, &e) : 0;
    if (fd != 1)
        close(fd);
    return rc;
}

static int cmd_put(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_put_params p = {.meta = &o->meta, .content_type = o->content_type,
                                  .content_md5 = o->md5, .checksum_sha256 = o->sha256};
    struct bfs_s3_body body = {.fd = -1};
    struct bfs_s3_error e;
    char etag[BFS_S3_ETAG_MAX];
    int rc;

    body.fd = open_file(argv[2], &body.length);
    if (body.fd < 0)
        return 2;
    rc = bfs_s3_put_object(c, argv[0], argv[1], &body, &p, etag, &e);
    close(body.fd);
    if (rc < 0)
        return fail(rc, &e);
    printf("%s\n", etag);
    return 0;
}

static int cmd_copy(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_copy_params p = {.replace_meta = o->replace, .meta = &o->meta,
                                   .content_type = o->content_type, .if_match = o->if_match,
                                   .dst_if_match = o->dst_if_match,
                                   .dst_if_none_match = o->if_none_match};
    struct bfs_s3_error e;
    char etag[BFS_S3_ETAG_MAX];
    int rc = bfs_s3_copy_object(c, argv[0], argv[1], argv[2], argv[3], &p, etag, &e);

    if (rc < 0)
        return fail(rc, &e);
    printf("%s\n", etag);
    return 0;
}

static int cmd_delete(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_error e;
    int rc = bfs_s3_delete_object_if(c, argv[0], argv[1], o->if_match, &e);

    return rc < 0 ? fail(rc, &e) : 0;
}

static int cmd_delete_many(struct bfs_s3_client *c, int argc, char **argv)
{
    struct bfs_s3_error e;
    size_t n = (size_t)argc - 1;
    int *errs = calloc(n + 1, sizeof(int)), rc;

    if (!errs)
        return 2;
    rc = bfs_s3_delete_objects(c, argv[0], (const char *const *)argv + 1, n, errs, &e);
    if (rc < 0) {
        free(errs);
        return fail(rc, &e);
    }
    for (size_t i = 0; i < n; i++) {
        if (errs[i])
            printf("error\t%s\t%s\n", argv[i + 1], errno_name(errs[i]));
        else
            printf("deleted\t%s\n", argv[i + 1]);
    }
    free(errs);
    return 0;
}

static int cmd_mpu_create(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_put_params p = {.meta = &o->meta, .content_type = o->content_type};
    struct bfs_s3_error e;
    char *id;
    int rc = bfs_s3_mpu_create(c, argv[0], argv[1], &p, &id, &e);

    if (rc < 0)
        return fail(rc, &e);
    printf("%s\n", id);
    free(id);
    return 0;
}

static int cmd_mpu_part(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_body body = {.fd = -1};
    struct bfs_s3_error e;
    char etag[BFS_S3_ETAG_MAX];
    uint64_t size;
    int64_t num;
    int rc;

    if (bfs_parse_int(argv[3], 1, BFS_S3_PARTS_MAX, &num) < 0)
        return usage();
    body.fd = open_file(argv[4], &size);
    if (body.fd < 0)
        return 2;
    body.offset = (uint64_t)o->offset;
    body.length = o->length >= 0 ? (uint64_t)o->length : size - body.offset;
    rc = bfs_s3_mpu_part(c, argv[0], argv[1], argv[2], (int)num, &body, etag, &e);
    close(body.fd);
    if (rc < 0)
        return fail(rc, &e);
    printf("%s\n", etag);
    return 0;
}

static int cmd_mpu_complete(struct bfs_s3_client *c, int argc, char **argv)
{
    struct bfs_s3_error e;
    char etag[BFS_S3_ETAG_MAX];
    int rc = bfs_s3_mpu_complete(c, argv[0], argv[1], argv[2], argv + 3, argc - 3, etag, &e);

    if (rc < 0)
        return fail(rc, &e);
    printf("%s\n", etag);
    return 0;
}

static int cmd_mpu_abort(struct bfs_s3_client *c, char **argv)
{
    struct bfs_s3_error e;
    int rc = bfs_s3_mpu_abort(c, argv[0], argv[1], argv[2], &e);

    return rc < 0 ? fail(rc, &e) : 0;
}

static int cmd_mpu_list(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_upload_list l;
    struct bfs_s3_error e;
    int rc = bfs_s3_mpu_list(c, argv[0], o->prefix, &l, &e);

    if (rc < 0)
        return fail(rc, &e);
    for (size_t i = 0; i < l.n; i++)
        printf("U\t%s\t%s\n", l.keys[i], l.upload_ids[i]);
    bfs_s3_upload_list_done(&l);
    return 0;
}

/* ---- mpu-upload: parts in parallel (the S3 client's part sender) ---- */

static int cmd_mpu_upload(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    struct bfs_s3_parts parts = {.jobs = o->jobs > 0 && o->jobs <= 64 ? o->jobs : 4};
    struct bfs_s3_put_params p = {.meta = &o->meta, .content_type = o->content_type};
    struct bfs_s3_error e = {0};
    char *id = NULL, **etags = NULL, etag[BFS_S3_ETAG_MAX];
    int rc, ret = 0;

    parts.fd = open_file(argv[2], &parts.size);
    if (parts.fd < 0)
        return 2;
    parts.part_size = bfs_s3_part_size(parts.size, o->part_size > 0 ? (uint64_t)o->part_size : 0);
    rc = bfs_s3_mpu_create(c, argv[0], argv[1], &p, &id, &e);
    if (rc == 0) {
        rc = bfs_s3_mpu_send_parts(c, argv[0], argv[1], id, &parts, &etags, &e);
        if (rc == 0)
            rc = bfs_s3_mpu_complete(c, argv[0], argv[1], id, etags, bfs_s3_parts_count(&parts),
                                     etag, &e);
        if (rc < 0)
            (void)bfs_s3_mpu_abort(c, argv[0], argv[1], id, NULL);
    }
    if (rc < 0)
        ret = fail(rc, &e);
    else
        printf("%s\n", etag);
    bfs_s3_etags_free(etags, bfs_s3_parts_count(&parts));
    free(id);
    close(parts.fd);
    return ret;
}

static int cmd_presign(struct bfs_s3_client *c, struct opts *o, char **argv)
{
    char *url;
    int rc = bfs_s3_presign_get(c, argv[0], argv[1], o->expires, time(NULL), &url);

    if (rc < 0) {
        fprintf(stderr, "bfs-s3: presign: %s (expiry must be 1 s to 7 days)\n", strerror(-rc));
        return 2;
    }
    printf("%s\n", url);
    free(url);
    return 0;
}

/* ---- dispatch ---- */

struct command {
    const char *name;
    int min_args, max_args; /* after the name; -1: no limit */
};

static const struct command commands[] = {
    {"list-buckets", 0, 0}, {"list", 1, 1}, {"head", 2, 2}, {"get", 2, 2}, {"put", 3, 3},
    {"copy", 4, 4}, {"delete", 2, 2}, {"delete-many", 2, -1}, {"mpu-create", 2, 2},
    {"mpu-part", 5, 5}, {"mpu-complete", 4, -1}, {"mpu-abort", 3, 3}, {"mpu-list", 1, 1},
    {"mpu-upload", 3, 3}, {"presign", 2, 2}, {"creds", 0, 0},
};

static int run(struct bfs_s3_client *c, struct opts *o, const char *cmd, int argc, char **argv)
{
    if (!strcmp(cmd, "list-buckets")) return cmd_list_buckets(c);
    if (!strcmp(cmd, "list")) return cmd_list(c, o, argv);
    if (!strcmp(cmd, "head")) return cmd_head(c, argv);
    if (!strcmp(cmd, "get")) return cmd_get(c, o, argv);
    if (!strcmp(cmd, "put")) return cmd_put(c, o, argv);
    if (!strcmp(cmd, "copy")) return cmd_copy(c, o, argv);
    if (!strcmp(cmd, "delete")) return cmd_delete(c, o, argv);
    if (!strcmp(cmd, "delete-many")) return cmd_delete_many(c, argc, argv);
    if (!strcmp(cmd, "mpu-create")) return cmd_mpu_create(c, o, argv);
    if (!strcmp(cmd, "mpu-part")) return cmd_mpu_part(c, o, argv);
    if (!strcmp(cmd, "mpu-complete")) return cmd_mpu_complete(c, argc, argv);
    if (!strcmp(cmd, "mpu-abort")) return cmd_mpu_abort(c, argv);
    if (!strcmp(cmd, "mpu-list")) return cmd_mpu_list(c, o, argv);
    if (!strcmp(cmd, "mpu-upload")) return cmd_mpu_upload(c, o, argv);
    if (!strcmp(cmd, "presign")) return cmd_presign(c, o, argv);
    return usage();
}

static int parse_meta(struct opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char *name;
    int rc;

    if (!eq || eq == arg)
        return -EINVAL;
    name = strndup(arg, (size_t)(eq - arg));
    rc = name ? bfs_s3_meta_add(&o->meta, name, eq + 1) : -ENOMEM;
    free(name);
    return rc;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum { OPT_ENDPOINT = 256, OPT_REGION, OPT_PATH, OPT_VHOST, OPT_PROFILE, OPT_PASSWD, OPT_UNSIGNED,
           OPT_PREFIX, OPT_DELIM, OPT_START, OPT_CONT, OPT_MAXKEYS, OPT_SINGLE, OPT_RANGE, OPT_IFM, OPT_INM, OPT_DIFM,
           OPT_META, OPT_CTYPE, OPT_MD5, OPT_SHA, OPT_REPLACE, OPT_OFFSET, OPT_LENGTH, OPT_PSIZE, OPT_JOBS,
           OPT_EXPIRES, OPT_LOWSPEED, OPT_RETRIES, OPT_STATS, OPT_ANON };
    static const struct option lo[] = {
        {"endpoint", 1, 0, OPT_ENDPOINT}, {"region", 1, 0, OPT_REGION}, {"path-style", 0, 0, OPT_PATH},
        {"virtual-host", 0, 0, OPT_VHOST}, {"profile", 1, 0, OPT_PROFILE},
        {"passwd-file", 1, 0, OPT_PASSWD}, {"unsigned-payload", 0, 0, OPT_UNSIGNED},
        {"prefix", 1, 0, OPT_PREFIX}, {"delimiter", 1, 0, OPT_DELIM}, {"start-after", 1, 0, OPT_START},
        {"continuation", 1, 0, OPT_CONT}, {"max-keys", 1, 0, OPT_MAXKEYS},
        {"single-page", 0, 0, OPT_SINGLE}, {"range", 1, 0, OPT_RANGE}, {"if-match", 1, 0, OPT_IFM},
        {"if-none-match", 1, 0, OPT_INM},
        {"dst-if-match", 1, 0, OPT_DIFM}, {"meta", 1, 0, OPT_META}, {"content-type", 1, 0, OPT_CTYPE},
        {"md5", 0, 0, OPT_MD5}, {"checksum-sha256", 0, 0, OPT_SHA}, {"replace", 0, 0, OPT_REPLACE},
        {"offset", 1, 0, OPT_OFFSET}, {"length", 1, 0, OPT_LENGTH}, {"part-size", 1, 0, OPT_PSIZE},
        {"jobs", 1, 0, OPT_JOBS}, {"expires", 1, 0, OPT_EXPIRES},
        {"low-speed-time", 1, 0, OPT_LOWSPEED}, {"max-retries", 1, 0, OPT_RETRIES},
        {"stats", 0, 0, OPT_STATS}, {"anonymous", 0, 0, OPT_ANON}, {0, 0, 0, 0}};
    int64_t v;
    int ch;

    while ((ch = getopt_long(argc, argv, "+o:", lo, NULL)) != -1) {
        switch (ch) {
        case OPT_ENDPOINT: o->cfg.endpoint = optarg; break;
        case OPT_REGION: o->cfg.region = optarg; break;
        case OPT_PATH: o->cfg.addressing = BFS_S3_ADDR_PATH; break;
        case OPT_VHOST: o->cfg.addressing = BFS_S3_ADDR_VHOST; break;
        case OPT_PROFILE: o->creds.profile = optarg; break;
        case OPT_PASSWD: o->creds.passwd_file = optarg; break;
        case OPT_ANON: o->creds.anonymous = 1; break;
        case OPT_UNSIGNED: o->cfg.unsigned_payload = 1; break;
        case OPT_PREFIX: o->prefix = optarg; break;
        case OPT_DELIM: o->delimiter = optarg; break;
        case OPT_START: o->start_after = optarg; break;
        case OPT_CONT: o->continuation = optarg; break;
        case OPT_MAXKEYS:
            if (bfs_parse_int(optarg, 1, 1000, &v) < 0) return -1;
            o->max_keys = (int)v;
            break;
        case OPT_SINGLE: o->single_page = 1; break;
        case OPT_RANGE: o->range = optarg; break;
        case OPT_IFM: o->if_match = optarg; break;
        case OPT_DIFM: o->dst_if_match = optarg; break;
        case OPT_INM: o->if_none_match = optarg; break;
        case OPT_META: if (parse_meta(o, optarg) < 0) return -1; break;
        case OPT_CTYPE: o->content_type = optarg; break;
        case OPT_MD5: o->md5 = 1; break;
        case OPT_SHA: o->sha256 = 1; break;
        case OPT_REPLACE: o->replace = 1; break;
        case 'o':
            o->out = optarg; break;
        case OPT_OFFSET:
            if (bfs_parse_int(optarg, 0, INT64_MAX, &o->offset) < 0) return -1;
            break;
        case OPT_LENGTH:
            if (bfs_parse_int(optarg, 0, INT64_MAX, &o->length) < 0) return -1;
            break;
        case OPT_PSIZE:
            if (bfs_parse_int(optarg, 1, INT64_MAX, &o->part_size) < 0) return -1;
            break;
        case OPT_JOBS:
            if (bfs_parse_int(optarg, 1, 64, &v) < 0) return -1;
            o->jobs = (int)v;
            break;
        case OPT_EXPIRES:
            if (bfs_parse_duration(optarg, &o->expires) < 0) return -1;
            break;
        case OPT_LOWSPEED:
            if (bfs_parse_int(optarg, 1, 3600, &v) < 0) return -1;
            o->cfg.low_speed_time_s = (long)v;
            break;
        case OPT_RETRIES:
            if (bfs_parse_int(optarg, 0, 20, &v) < 0) return -1;
            o->cfg.max_retries = v ? (int)v : -1;
            o->retries_set = 1;
            break;
        case OPT_STATS: o->stats = 1; break;
        default: return -1;
        }
    }
    return optind;
}

int main(int argc, char **argv)
{
    struct opts o = {.length = -1, .expires = 3600};
    struct bfs_s3_creds *creds = NULL;
    struct bfs_s3_client *c = NULL;
    const struct command *cmd = NULL;
    char err[1024] = "";
    int first, nargs, rc;

    if (getenv("BFS_S3_DEBUG"))
        bfs_log_setup(BFS_LOG_DEBUG, 0);
    first = parse_opts(argc, argv, &o);
    if (first < 0 || first >= argc)
        return usage();
    /* options may also follow the command and its arguments */
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, argv[first]) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage();
    {
        char **rest = argv + first;
        int nrest = argc - first, npos = 0;
        char **pos = calloc((size_t)nrest + 1, sizeof(char *));

        if (!pos)
            return 2;
        optind = 1;
        /* collect positional arguments, parsing options among them */
        while (optind < nrest) {
            int r = parse_opts(nrest, rest, &o);

            if (r < 0) {
                free(pos);
                return usage();
            }
            while (optind < nrest && rest[optind][0] != '-')
                pos[npos++] = rest[optind++];
            if (optind < nrest && strcmp(rest[optind], "-") == 0)
                pos[npos++] = rest[optind++];
        }
        nargs = npos;
        if (nargs < cmd->min_args || (cmd->max_args >= 0 && nargs > cmd->max_args)) {
            free(pos);
            return usage();
        }
        if (bfs_s3_global_init() < 0) {
            free(pos);
            return 2;
        }
        o.creds.bucket = nargs > 0 ? pos[0] : NULL;
        rc = bfs_s3_creds_new(&o.creds, &creds, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "bfs-s3: %s\n", err);
            free(pos);
            return 2;
        }
        if (!strcmp(cmd->name, "creds")) {
            struct bfs_s3_keys k;

            printf("source=%s\n", bfs_s3_creds_source(creds));
            if (bfs_s3_creds_get(creds, &k) == 0)
                printf("access_key=%s\n", k.access_key);
            if (bfs_s3_creds_expiry(creds))
                printf("expires=%lld\n", (long long)(bfs_s3_creds_expiry(creds) / 1000000000));
            explicit_bzero(&k, sizeof(k));
            bfs_s3_creds_free(creds);
            free(pos);
            return 0;
        }
        rc = bfs_s3_client_new(&o.cfg, creds, &c, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "bfs-s3: %s\n", err);
            free(pos);
            return 2;
        }
        rc = run(c, &o, cmd->name, nargs, pos);
        free(pos);
        if (o.stats) {
            struct bfs_s3_stats st;

            bfs_s3_client_stats(c, &st);
            fprintf(stderr, "stats: requests=%llu retries=%llu errors=%llu\n",
                    (unsigned long long)st.requests, (unsigned long long)st.retries,
                    (unsigned long long)st.errors);
        }
    }
    bfs_s3_client_free(c);
    bfs_s3_meta_done(&o.meta);
    return rc;
}
