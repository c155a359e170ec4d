/* SPDX-License-Identifier: MIT */
/*
 * xml.c: reading the XML documents S3 replies with, and escaping the ones
 * we send (DeleteObjects, CompleteMultipartUpload).
 *
 * Replies are input from the network: a document that does not parse, or
 * lacks an element the operation needs, is -EPROTO, never a crash. Parsing
 * never touches the network (XML_PARSE_NONET) and expands no entities.
 * Element names are matched without their namespace.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "s3-int.h"

#define XML_FLAGS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

static xmlDocPtr parse(const char *xml, size_t len, const char *root_name, xmlNodePtr *ret_root)
{
    xmlDocPtr doc;
    xmlNodePtr root;

    if (!xml || len == 0 || len > BFS_BUF_CAP_XML)
        return NULL;
    doc = xmlReadMemory(xml, (int)len, "s3.xml", NULL, XML_FLAGS);
    if (!doc)
        return NULL;
    root = xmlDocGetRootElement(doc);
    if (!root || (root_name && strcmp((const char *)root->name, root_name) != 0)) {
        xmlFreeDoc(doc);
        return NULL;
    }
    *ret_root = root;
    return doc;
}

static int is(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr n = parent->children; n; n = n->next)
        if (is(n, name))
            return n;
    return NULL;
}

/* Text of a child element, malloc'd ("" when the element is empty), or NULL
 * when absent or out of memory. */
static char *child_text(xmlNodePtr parent, const char *name)
{
    xmlNodePtr n = child(parent, name);
    xmlChar *t;
    char *s;

    if (!n)
        return NULL;
    t = xmlNodeGetContent(n);
    s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return s;
}

static void copy_text(xmlNodePtr parent, const char *name, char *out, size_t size)
{
    char *t = child_text(parent, name);

    if (t) {
        strncpy(out, t, size - 1);
        out[size - 1] = '\0';
        free(t);
    }
}

int s3_xml_error(const char *xml, size_t len, struct bfs_s3_error *e)
{
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "Error", &root);

    if (!doc)
        return -EPROTO;
    copy_text(root, "Code", e->code, sizeof(e->code));
    copy_text(root, "Message", e->message, sizeof(e->message));
    copy_text(root, "RequestId", e->request_id, sizeof(e->request_id));
    xmlFreeDoc(doc);
    return 0;
}

static int ends_with(const xmlChar *name, const char *suffix)
{
    size_t n = strlen((const char *)name), m = strlen(suffix);

    return n > m && strcmp((const char *)name + n - m, suffix) == 0;
}

/* ErrorResponse/Error/{Code,Message} of STS (a different shape than S3's). */
static int sts_error(xmlNodePtr root, struct bfs_s3_error *e)
{
    xmlNodePtr err = child(root, "Error");

    if (!err)
        return -EPROTO;
    copy_text(err, "Code", e->code, sizeof(e->code));
    copy_text(err, "Message", e->message, sizeof(e->message));
    copy_text(root, "RequestId", e->request_id, sizeof(e->request_id));
    e->err = -EACCES;
    return -EACCES;
}

int s3_xml_sts_credentials(const char *xml, size_t len, struct bfs_s3_keys *ret,
                           int64_t *ret_expires_ns, struct bfs_s3_error *e)
{
    xmlNodePtr root, result = NULL, cred = NULL;
    xmlDocPtr doc = parse(xml, len, NULL, &root);
    char *ak = NULL, *sk = NULL, *tok = NULL, *exp = NULL;
    int64_t exp_ns = 0;
    int r = -EPROTO;

    if (!doc)
        return -EPROTO;
    if (strcmp((const char *)root->name, "ErrorResponse") == 0) {
        r = sts_error(root, e);
        goto out;
    }
    for (xmlNodePtr n = root->children; n && !result; n = n->next)
        if (n->type == XML_ELEMENT_NODE && ends_with(n->name, "Result"))
            result = n;
    if (result && ends_with(root->name, "Response"))
        cred = child(result, "Credentials");
    if (!cred)
        goto out;
    ak = child_text(cred, "AccessKeyId");
    sk = child_text(cred, "SecretAccessKey");
    tok = child_text(cred, "SessionToken");
    exp = child_text(cred, "Expiration");
    if (!ak || !sk || !tok || !exp || bfs_time_parse_iso8601(exp, &exp_ns) < 0)
        goto out;
    r = s3_keys_set(ret, ak, sk, tok);
    if (r == 0)
        *ret_expires_ns = exp_ns;
    else
        r = -EPROTO;
out:
    if (sk)
        explicit_bzero(sk, strlen(sk));
    if (tok)
        explicit_bzero(tok, strlen(tok));
    free(ak);
    free(sk);
    free(tok);
    free(exp);
    xmlFreeDoc(doc);
    return r;
}

void bfs_s3_bucket_list_done(struct bfs_s3_bucket_list *l)
{
    for (size_t i = 0; l->names && i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    free(l->created_ns);
    memset(l, 0, sizeof(*l));
}

int s3_xml_list_buckets(const char *xml, size_t len, struct bfs_s3_bucket_list *ret)
{
    struct bfs_s3_bucket_list l = {0};
    xmlNodePtr root, buckets;
    xmlDocPtr doc = parse(xml, len, "ListAllMyBucketsResult", &root);
    size_t cap = 0;
    int r = 0;

    if (!doc)
        return -EPROTO;
    buckets = child(root, "Buckets");
    for (xmlNodePtr n = buckets ? buckets->children : NULL; n; n = n->next) {
        char *name, *created;

        if (!is(n, "Bucket"))
            continue;
        if (l.n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(l.names, ncap * sizeof(*nn));
            int64_t *nc;

            if (nn)
                l.names = nn;
            nc = nn ? realloc(l.created_ns, ncap * sizeof(*nc)) : NULL;
            if (!nc) {
                r = -ENOMEM;
                break;
            }
            l.created_ns = nc;
            cap = ncap;
        }
        name = child_text(n, "Name");
        if (!name || !*name) {
            free(name);
            r = -EPROTO;
            break;
        }
        created = child_text(n, "CreationDate");
        l.created_ns[l.n] = 0;
        if (created)
            (void)bfs_time_parse_iso8601(created, &l.created_ns[l.n]);
        free(created);
        l.names[l.n++] = name;
    }
    xmlFreeDoc(doc);
    if (r < 0) {
        bfs_s3_bucket_list_done(&l);
        return r;
    }
    *ret = l;
    return 0;
}

/* With encoding-type=url, S3 sends keys form-encoded ('+' for a space). */
static int decode_key(char *s, int encoded, char **ret)
{
    if (!encoded) {
        *ret = s;
        return 0;
    }
    for (char *p = s; *p; p++)
        if (*p == '+')
            *p = ' ';
    int r = bfs_uri_decode(s, ret);
    free(s);
    return r;
}

static int parse_contents(xmlNodePtr n, int encoded, struct bfs_s3_object *o)
{
    char *key = child_text(n, "Key"), *size = child_text(n, "Size");
    char *etag = child_text(n, "ETag"), *lm = child_text(n, "LastModified");
    int64_t sz = 0;
    int r = -EPROTO;

    memset(o, 0, sizeof(*o));
    if (!key || !size || bfs_parse_int(size, 0, INT64_MAX, &sz) < 0)
        goto out;
    r = decode_key(key, encoded, &o->key);
    key = NULL;
    if (r < 0)
        goto out;
    o->size = (uint64_t)sz;
    if (etag)
        bfs_s3_etag_normalize(etag, o->etag);
    if (lm)
        (void)bfs_time_parse_iso8601(lm, &o->mtime_ns);
out:
    free(key);
    free(size);
    free(etag);
    free(lm);
    return r;
}

void bfs_s3_list_page_done(struct bfs_s3_list_page *p)
{
    for (size_t i = 0; p->objects && i < p->nobjects; i++)
        bfs_s3_object_done(&p->objects[i]);
    for (size_t i = 0; p->prefixes && i < p->nprefixes; i++)
        free(p->prefixes[i]);
    free(p->objects);
    free(p->prefixes);
    free(p->next_token);
    memset(p, 0, sizeof(*p));
}

static size_t count_children(xmlNodePtr root, const char *name)
{
    size_t n = 0;

    for (xmlNodePtr c = root->children; c; c = c->next)
        n += is(c, name);
    return n;
}

static int parse_prefix(xmlNodePtr n, int encoded, char **ret)
{
    char *p = child_text(n, "Prefix");

    if (!p)
        return -EPROTO;
    return decode_key(p, encoded, ret);
}

int s3_xml_list_objects(const char *xml, size_t len, struct bfs_s3_list_page *ret)
{
    struct bfs_s3_list_page pg = {0};
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "ListBucketResult", &root);
    char *enc, *trunc;
    int encoded, r = 0;

    if (!doc)
        return -EPROTO;
    enc = child_text(root, "EncodingType");
    encoded = enc && strcmp(enc, "url") == 0;
    free(enc);
    pg.objects = calloc(count_children(root, "Contents") + 1, sizeof(*pg.objects));
    pg.prefixes = calloc(count_children(root, "CommonPrefixes") + 1, sizeof(*pg.prefixes));
    if (!pg.objects || !pg.prefixes)
        r = -ENOMEM;
    for (xmlNodePtr n = root->children; n && r == 0; n = n->next) {
        if (is(n, "Contents")) {
            r = parse_contents(n, encoded, &pg.objects[pg.nobjects]);
            if (r == 0)
                pg.nobjects++;
        } else if (is(n, "CommonPrefixes")) {
            r = parse_prefix(n, encoded, &pg.prefixes[pg.nprefixes]);
            if (r == 0)
                pg.nprefixes++;
        }
    }
    trunc = child_text(root, "IsTruncated");
    if (r == 0 && trunc && strcmp(trunc, "true") == 0) {
        pg.next_token = child_text(root, "NextContinuationToken");
        if (!pg.next_token || !*pg.next_token)
            r = -EPROTO; /* truncated without a way to go on */
    }
    free(trunc);
    xmlFreeDoc(doc);
    if (r < 0) {
        bfs_s3_list_page_done(&pg);
        return r;
    }
    *ret = pg;
    return 0;
}

void bfs_s3_version_page_done(struct bfs_s3_version_page *p)
{
    for (size_t i = 0; p->versions && i < p->nversions; i++)
        bfs_s3_object_done(&p->versions[i].o);
    for (size_t i = 0; p->prefixes && i < p->nprefixes; i++)
        free(p->prefixes[i]);
    free(p->versions);
    free(p->prefixes);
    free(p->next_key);
    free(p->next_version);
    memset(p, 0, sizeof(*p));
}

/* A <Version> or <DeleteMarker> (which has no Size and no ETag). */
static int parse_version(xmlNodePtr n, int encoded, struct bfs_s3_version *v)
{
    char *key = child_text(n, "Key"), *id = child_text(n, "VersionId");
    char *latest = child_text(n, "IsLatest"), *size = NULL;
    char *etag = NULL, *lm = child_text(n, "LastModified");
    int64_t sz = 0;
    int r = -EPROTO;

    memset(v, 0, sizeof(*v));
    v->delete_marker = is(n, "DeleteMarker");
    if (!v->delete_marker) {
        size = child_text(n, "Size");
        etag = child_text(n, "ETag");
    }
    if (!key || !id || !*id || strlen(id) >= sizeof(v->version_id) || !lm ||
        bfs_time_parse_iso8601(lm, &v->o.mtime_ns) < 0 ||
        (!v->delete_marker && (!size || bfs_parse_int(size, 0, INT64_MAX, &sz) < 0)))
        goto out;
    r = decode_key(key, encoded, &v->o.key);
    key = NULL;
    if (r < 0)
        goto out;
    memcpy(v->version_id, id, strlen(id) + 1);
    v->o.size = (uint64_t)sz;
    v->latest = latest && strcmp(latest, "true") == 0;
    if (etag)
        bfs_s3_etag_normalize(etag, v->o.etag);
out:
    free(key);
    free(id);
    free(latest);
    free(size);
    free(etag);
    free(lm);
    return r;
}

/* NextKeyMarker and NextVersionIdMarker of a truncated page. */
static int version_markers(xmlNodePtr root, int encoded, struct bfs_s3_version_page *pg)
{
    char *trunc = child_text(root, "IsTruncated"), *key;
    int r = 0;

    if (trunc && strcmp(trunc, "true") == 0) {
        key = child_text(root, "NextKeyMarker");
        pg->next_version = child_text(root, "NextVersionIdMarker");
        if (!pg->next_version)
            pg->next_version = strdup("");
        if (key && *key) {
            r = decode_key(key, encoded, &pg->next_key); /* takes key */
        } else {
            free(key);
            r = -EPROTO; /* truncated without a way to go on */
        }
        if (r == 0 && !pg->next_version)
            r = -ENOMEM;
    }
    free(trunc);
    return r;
}

int s3_xml_list_versions(const char *xml, size_t len, struct bfs_s3_version_page *ret)
{
    struct bfs_s3_version_page pg = {0};
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "ListVersionsResult", &root);
    char *enc;
    int encoded, r = 0;

    if (!doc)
        return -EPROTO;
    enc = child_text(root, "EncodingType");
    encoded = enc && strcmp(enc, "url") == 0;
    free(enc);
    pg.versions = calloc(count_children(root, "Version") + count_children(root, "DeleteMarker") + 1,
                         sizeof(*pg.versions));
    pg.prefixes = calloc(count_children(root, "CommonPrefixes") + 1, sizeof(*pg.prefixes));
    if (!pg.versions || !pg.prefixes)
        r = -ENOMEM;
    /* document order is the order of the versions: by key, newest first */
    for (xmlNodePtr n = root->children; n && r == 0; n = n->next) {
        if (is(n, "Version") || is(n, "DeleteMarker")) {
            r = parse_version(n, encoded, &pg.versions[pg.nversions]);
            if (r == 0)
                pg.nversions++;
        } else if (is(n, "CommonPrefixes")) {
            r = parse_prefix(n, encoded, &pg.prefixes[pg.nprefixes]);
            if (r == 0)
                pg.nprefixes++;
        }
    }
    if (r == 0)
        r = version_markers(root, encoded, &pg);
    xmlFreeDoc(doc);
    if (r < 0) {
        bfs_s3_version_page_done(&pg);
        return r;
    }
    *ret = pg;
    return 0;
}

int s3_xml_versioning(const char *xml, size_t len, char ret[16])
{
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "VersioningConfiguration", &root);

    if (!doc)
        return -EPROTO;
    ret[0] = '\0';
    copy_text(root, "Status", ret, 16);
    xmlFreeDoc(doc);
    return 0;
}

int s3_xml_upload_id(const char *xml, size_t len, char **ret)
{
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "InitiateMultipartUploadResult", &root);
    char *id;

    if (!doc)
        return -EPROTO;
    id = child_text(root, "UploadId");
    xmlFreeDoc(doc);
    if (!id || !*id) {
        free(id);
        return -EPROTO;
    }
    *ret = id;
    return 0;
}

int s3_xml_etag(const char *xml, size_t len, char etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *e)
{
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, NULL, &root);
    char *t;

    if (!doc)
        return -EPROTO;
    if (is(root, "Error")) {
        struct bfs_s3_error tmp = {0};

        copy_text(root, "Code", tmp.code, sizeof(tmp.code));
        copy_text(root, "Message", tmp.message, sizeof(tmp.message));
        copy_text(root, "RequestId", tmp.request_id, sizeof(tmp.request_id));
        tmp.status = 200;
        tmp.err = bfs_s3_code_errno(tmp.code, 500);
        tmp.retryable = bfs_s3_code_retryable(tmp.code, 500);
        if (e)
            *e = tmp;
        xmlFreeDoc(doc);
        return tmp.err;
    }
    t = child_text(root, "ETag");
    xmlFreeDoc(doc);
    if (!t || strlen(t) + 2 >= BFS_S3_ETAG_MAX) {
        free(t);
        return -EPROTO;
    }
    if (!*t) {
        free(t);
        return -ENODATA; /* Ceph RGW 16.2 sends <ETag></ETag> on Complete */
    }
    bfs_s3_etag_normalize(t, etag);
    free(t);
    return 0;
}

int s3_xml_delete_result(const char *xml, size_t len, const char *const *keys, size_t n,
                         int *errs)
{
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "DeleteResult", &root);

    if (!doc)
        return -EPROTO;
    for (size_t i = 0; i < n; i++)
        errs[i] = 0; /* quiet mode reports errors only */
    for (xmlNodePtr c = root->children; c; c = c->next) {
        char *key, *code;

        if (!is(c, "Error"))
            continue;
        key = child_text(c, "Key");
        code = child_text(c, "Code");
        for (size_t i = 0; key && i < n; i++) {
            if (strcmp(keys[i], key) == 0 && !(code && strcmp(code, "NoSuchKey") == 0))
                errs[i] = bfs_s3_code_errno(code, 500);
        }
        free(key);
        free(code);
    }
    xmlFreeDoc(doc);
    return 0;
}

void bfs_s3_upload_list_done(struct bfs_s3_upload_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        free(l->upload_ids[i]);
    }
    free(l->keys);
    free(l->upload_ids);
    free(l->initiated_ns);
    memset(l, 0, sizeof(*l));
}

static int add_upload(struct bfs_s3_upload_list *l, xmlNodePtr n)
{
    char *key = child_text(n, "Key"), *id = child_text(n, "UploadId");
    char *init = child_text(n, "Initiated");
    size_t m = l->n + 1;
    char **k2 = NULL, **i2 = NULL;
    int64_t *t2 = NULL;
    int r = -ENOMEM;

    if (!key || !id) {
        r = -EPROTO;
        goto out;
    }
    k2 = realloc(l->keys, m * sizeof(*k2));
    if (k2)
        l->keys = k2;
    i2 = realloc(l->upload_ids, m * sizeof(*i2));
    if (i2)
        l->upload_ids = i2;
    t2 = realloc(l->initiated_ns, m * sizeof(*t2));
    if (t2)
        l->initiated_ns = t2;
    if (!k2 || !i2 || !t2)
        goto out;
    l->keys[l->n] = key;
    l->upload_ids[l->n] = id;
    l->initiated_ns[l->n] = 0;
    if (init)
        (void)bfs_time_parse_iso8601(init, &l->initiated_ns[l->n]);
    l->n = m;
    key = id = NULL;
    r = 0;
out:
    free(key);
    free(id);
    free(init);
    return r;
}

int s3_xml_list_uploads(const char *xml, size_t len, struct bfs_s3_upload_list *acc,
                        char **ret_next_key, char **ret_next_id)
{
    xmlNodePtr root;
    xmlDocPtr doc = parse(xml, len, "ListMultipartUploadsResult", &root);
    char *trunc;
    int r = 0;

    if (!doc)
        return -EPROTO;
    for (xmlNodePtr c = root->children; c && r == 0; c = c->next)
        if (is(c, "Upload"))
            r = add_upload(acc, c);
    *ret_next_key = *ret_next_id = NULL;
    trunc = child_text(root, "IsTruncated");
    if (r == 0 && trunc && strcmp(trunc, "true") == 0) {
        *ret_next_key = child_text(root, "NextKeyMarker");
        *ret_next_id = child_text(root, "NextUploadIdMarker");
        if (!*ret_next_key || !**ret_next_key) {
            free(*ret_next_key);
            free(*ret_next_id);
            *ret_next_key = *ret_next_id = NULL;
            r = -EPROTO;
        }
    }
    free(trunc);
    xmlFreeDoc(doc);
    return r;
}

int s3_xml_escape(struct bfs_buf *b, const char *s)
{
    int r = 0;

    for (; *s && r == 0; s++) {
        switch (*s) {
        case '<': r = bfs_buf_adds(b, "&lt;"); break;
        case '>': r = bfs_buf_adds(b, "&gt;"); break;
        case '&': r = bfs_buf_adds(b, "&amp;"); break;
        case '"': r = bfs_buf_adds(b, "&quot;"); break;
        case '\'': r = bfs_buf_adds(b, "&apos;"); break;
        case '\r': r = bfs_buf_adds(b, "&#13;"); break;
        case '\n': r = bfs_buf_adds(b, "&#10;"); break;
        default: r = bfs_buf_add(b, s, 1);
        }
    }
    return r;
}
