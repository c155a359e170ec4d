/* SPDX-License-Identifier: MIT */
/*
 * test-cli-config.c: the config file, -o options and --map specs: values
 * land in the right fields, and every mistake names its file and line.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/config.h"
#include "test.h"

static char path[64];

static void write_conf(const char *text)
{
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/bfs-test-conf-%d.conf", (int)getpid());
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void good_file(void)
{
    struct bfs_config c;
    char err[512] = "";

    bfs_config_init(&c);
    write_conf("[global]\nregion = eu-west-1\nendpoint = http://127.0.0.1:9000 ; local\n"
               "path_style = true\ncache_size = 20G\nmetadata_ttl = 2m\n\n"
               "[raw]\nbucket = climate-raw\nprefix = /raw\nread_only = true\n\n"
               "[models]\nbucket = models\nregion = us-west-2\nsse = aws:kms\n"
               "sse_kms_key_id = alias/models\nstorage_class = STANDARD_IA\n");
    CHECK(bfs_config_load(&c, path, err, sizeof(err)) == 0);
    CHECK(bfs_config_finish(&c, "/mnt/x", err, sizeof(err)) == 0);
    CHECK_STR(c.conn.region, "eu-west-1");
    CHECK(c.conn.path_style == 1);
    CHECK(c.cache_size == 20ull << 30);
    CHECK(c.metadata_ttl == 120);
    CHECK(c.nmaps == 2);
    CHECK_STR(c.maps[0].name, "raw");
    CHECK_STR(c.maps[0].prefix, "raw/");
    CHECK(c.maps[0].read_only == 1);
    CHECK(c.maps[1].read_only == 0);
    CHECK_STR(c.maps[1].conn.region, "us-west-2");
    CHECK_STR(c.maps[1].sse, "aws:kms");
    CHECK_STR(c.maps[1].storage_class, "STANDARD_IA");
    CHECK(c.cache_dir != NULL);
    bfs_config_done(&c);
}

static void bad_files(void)
{
    static const struct { const char *text, *want; } v[] = {
        {"[global]\nregion = x\nfrobnicate = 1\n", ":3: unknown key 'frobnicate'"},
        {"[global]\ncache_size = lots\n", ":2: bad value 'lots' for 'cache_size'"},
        {"[global]\n\n\nsecret_key =\n", ":4: bad value (hidden) for 'secret_key'"},
        {"[raw]\nbucket = b\ncache_dir = /x\n", ":3: 'cache_dir' belongs in [global]"},
        {"[global]\nbucket = b\n", ":2: 'bucket' belongs in a mapping section"},
        {"region = x\n", ":1: 'region' is outside any [section]"},
        {"[a/b]\n", ":1: 'a/b' cannot be a directory name"},
        {"[a]\nbucket=x\n[a]\n", ":3: mapping [a] defined twice"},
        {"[g\n", ":1: malformed section header"},
        {"[global]\nmetadata_ttl = 5 weeks\n", ":2: bad value '5 weeks'"},
        {"[global]\nlist_meta = some\n", ":2: bad value 'some' for 'list_meta'"},
        {"[global]\nregion =\n", ":2: bad value '' for 'region'"},
        {"[global]\nendpoint = 127.0.0.1:9000\n", ":2: bad value '127.0.0.1:9000'"},
        {"[m]\nbucket = b\nstorage_class = glacier\n", ":3: bad value 'glacier'"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct bfs_config c;
        char err[512] = "";

        bfs_config_init(&c);
        write_conf(v[i].text);
        CHECK(bfs_config_load(&c, path, err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, path) == err);
        if (!strstr(err, v[i].want))
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, err, v[i].want);
        CHECK(strstr(err, v[i].want) != NULL);
        bfs_config_done(&c);
    }
    {
        struct bfs_config c;
        char err[512] = "";

        bfs_config_init(&c);
        write_conf("[m]\nprefix = p\n");
        CHECK(bfs_config_load(&c, path, err, sizeof(err)) == 0);
        CHECK(bfs_config_finish(&c, "/mnt", err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, "no bucket") != NULL);
        bfs_config_done(&c);
    }
}

static void options_and_maps(void)
{
    struct bfs_config c;
    char err[512] = "";

    bfs_config_init(&c);
    CHECK(bfs_config_option(&c, "ro", err, sizeof(err)) == 0 && c.read_only == 1);
    CHECK(bfs_config_option(&c, "allow_other", err, sizeof(err)) == 0 && c.allow_other);
    CHECK(bfs_config_option(&c, "uid=1000", err, sizeof(err)) == 0 && c.uid == 1000);
    CHECK(bfs_config_option(&c, "file_mode=0600", err, sizeof(err)) == 0 && c.file_mode == 0600);
    CHECK(bfs_config_option(&c, "_netdev", err, sizeof(err)) == 0);
    CHECK(bfs_config_option(&c, "nofail", err, sizeof(err)) == 0);
    CHECK(bfs_config_option(&c, "noatime", err, sizeof(err)) == 0);
    CHECK_STR(c.fuse_opts, "noatime");
    CHECK(bfs_config_option(&c, "file_mode=999", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "-o file_mode") != NULL);
    CHECK(bfs_config_option(&c, "bogus", err, sizeof(err)) == -EINVAL);
    CHECK(bfs_config_option(&c, "block_size=3000", err, sizeof(err)) == -EINVAL);
    CHECK(c.request_timeout_ms == 30000);
    CHECK(bfs_config_option(&c, "request_timeout=5s", err, sizeof(err)) == 0 &&
          c.request_timeout_ms == 5000);
    CHECK(bfs_config_option(&c, "request_timeout=100ms", err, sizeof(err)) == -EINVAL);
    CHECK(c.list_meta == BFS_LIST_META_AUTO); /* the default: exact */
    CHECK(bfs_config_option(&c, "list_meta=auto", err, sizeof(err)) == 0 &&
          c.list_meta == BFS_LIST_META_AUTO);
    CHECK(bfs_config_option(&c, "list_meta=small", err, sizeof(err)) == 0 &&
          c.list_meta == BFS_LIST_META_SMALL);
    CHECK(bfs_config_option(&c, "list_meta=all", err, sizeof(err)) == 0 &&
          c.list_meta == BFS_LIST_META_ALL);
    CHECK(bfs_config_option(&c, "list_meta=none", err, sizeof(err)) == 0 &&
          c.list_meta == BFS_LIST_META_NONE);
    CHECK(bfs_config_option(&c, "ca_file=/etc/ca.pem", err, sizeof(err)) == 0);
    CHECK_STR(c.ca_file, "/etc/ca.pem");
    CHECK(bfs_config_add_map(&c, "raw=s3://bucket/some/prefix", err, sizeof(err)) == 0);
    CHECK(bfs_config_add_map(&c, "all=s3://b2", err, sizeof(err)) == 0);
    CHECK(c.nmaps == 2);
    CHECK_STR(c.maps[0].bucket, "bucket");
    CHECK_STR(c.maps[0].prefix, "some/prefix/");
    CHECK_STR(c.maps[1].prefix, "");
    CHECK(bfs_config_add_map(&c, "raw=s3://other", err, sizeof(err)) == -EINVAL);
    CHECK(bfs_config_add_map(&c, "nope", err, sizeof(err)) == -EINVAL);
    CHECK(bfs_config_add_map(&c, "x=http://b", err, sizeof(err)) == -EINVAL);
    CHECK(bfs_config_add_map(&c, "y=s3:///p", err, sizeof(err)) == -EINVAL);
    CHECK(bfs_config_finish(&c, "/mnt", err, sizeof(err)) == 0);
    CHECK(c.default_permissions == 1); /* follows allow_other */
    CHECK(c.maps[0].read_only == 1);   /* inherits ro */
    bfs_config_done(&c);
}

/* A secret in a file others may read is refused; 0600 is accepted. */
static void secret_file_mode(void)
{
    struct bfs_config c;
    char err[512] = "";

    bfs_config_init(&c);
    write_conf("[global]\naccess_key = AKID\nsecret_key = s3cr3t\n");
    CHECK(chmod(path, 0640) == 0);
    CHECK(bfs_config_load(&c, path, err, sizeof(err)) == -EACCES);
    CHECK(strstr(err, ":3: the file holds a secret") != NULL);
    CHECK(strstr(err, "0640") != NULL && strstr(err, "chmod 600") != NULL);
    CHECK(strstr(err, "s3cr3t") == NULL);
    bfs_config_done(&c);

    bfs_config_init(&c);
    CHECK(chmod(path, 0600) == 0);
    CHECK(bfs_config_load(&c, path, err, sizeof(err)) == 0);
    CHECK_STR(c.secret_key, "s3cr3t");
    bfs_config_done(&c);

    bfs_config_init(&c); /* no secret: any mode */
    write_conf("[global]\naccess_key = AKID\nregion = r\n");
    CHECK(chmod(path, 0644) == 0);
    CHECK(bfs_config_load(&c, path, err, sizeof(err)) == 0);
    bfs_config_done(&c);
}

/* What mount(8) and mount.fuse3 pass on from an fstab line. */
static void mount_helper_options(void)
{
    static const char *const quiet[] = {"rw", "_netdev", "nofail", "user", "users", "defaults",
                                        "relatime", "nodiratime", "lazytime", "x-systemd.automount",
                                        "x-systemd.requires=a.service", "comment=x"};
    static const char *const passed[] = {"dev", "suid", "nodev", "nosuid", "noexec", "noatime"};
    struct bfs_config c;
    char err[512] = "";

    bfs_config_init(&c);
    for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++)
        CHECK(bfs_config_option(&c, quiet[i], err, sizeof(err)) == 0);
    CHECK(c.fuse_opts == NULL);
    for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
        CHECK(bfs_config_option(&c, passed[i], err, sizeof(err)) == 0);
    CHECK_STR(c.fuse_opts, "dev,suid,nodev,nosuid,noexec,noatime");
    CHECK(bfs_config_option(&c, "gid=100", err, sizeof(err)) == 0 && c.gid == 100);
    CHECK(bfs_config_option(&c, "cache_sise=1G", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "unknown key 'cache_sise'") != NULL);
    CHECK(bfs_config_option(&c, "nosymfollow", err, sizeof(err)) == -EINVAL);
    bfs_config_done(&c);
}

int main(void)
{
    good_file();
    bad_files();
    options_and_maps();
    secret_file_mode();
    mount_helper_options();
    unlink(path);
    TEST_DONE();
}
