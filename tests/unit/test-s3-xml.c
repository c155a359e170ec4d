/* SPDX-License-Identifier: MIT */
/*
 * test-s3-xml.c: the reply parsers on good documents, on S3's url-encoded
 * keys, and on malformed or truncated ones (which must fail, not crash).
 */
#include <errno.h>
#include <stdlib.h>

#include "src/s3/s3-int.h"
#include "test.h"

static const char list_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>b</Name><Prefix>d%2F</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
    "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>tok+en/=</NextContinuationToken>"
    "<Contents><Key>d/a+b%2Bc.csv</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>d/caf%C3%A9</Key><Size>0</Size><ETag>\"x\"</ETag></Contents>"
    "<CommonPrefixes><Prefix>d/sub%2F</Prefix></CommonPrefixes>"
    "</ListBucketResult>";

static void list_objects(void)
{
    struct bfs_s3_list_page pg;

    CHECK(s3_xml_list_objects(list_xml, sizeof(list_xml) - 1, &pg) == 0);
    CHECK(pg.nobjects == 2 && pg.nprefixes == 1);
    CHECK_STR(pg.objects[0].key, "d/a b+c.csv");
    CHECK(pg.objects[0].size == 434234);
    CHECK_STR(pg.objects[0].etag, "\"fba9dede5f27731c9771645a39863328\"");
    CHECK(pg.objects[0].mtime_ns == 1255369830000000000LL);
    CHECK_STR(pg.objects[1].key, "d/caf\xc3\xa9");
    CHECK_STR(pg.prefixes[0], "d/sub/");
    CHECK_STR(pg.next_token, "tok+en/=");
    bfs_s3_list_page_done(&pg);
}

static void malformed(void)
{
    struct bfs_s3_list_page pg;
    struct bfs_s3_bucket_list bl;
    struct bfs_s3_error e = {0};
    char *id = NULL, etag[BFS_S3_ETAG_MAX];

    /* every prefix of a valid document is invalid, and must not crash */
    for (size_t n = 0; n < sizeof(list_xml) - 1; n += 7)
        CHECK(s3_xml_list_objects(list_xml, n, &pg) == -EPROTO);
    CHECK(s3_xml_list_objects("<ListBucketResult><Contents><Key>k</Key></Contents>"
                              "</ListBucketResult>", 64, &pg) == -EPROTO); /* no Size */
    CHECK(s3_xml_list_objects("<ListBucketResult><IsTruncated>true</IsTruncated>"
                              "</ListBucketResult>", 67, &pg) == -EPROTO); /* no token */
    CHECK(s3_xml_list_objects("<Other/>", 8, &pg) == -EPROTO);
    CHECK(s3_xml_list_buckets("<html>oops</html>", 17, &bl) == -EPROTO);
    CHECK(s3_xml_upload_id("<InitiateMultipartUploadResult/>", 32, &id) == -EPROTO);
    CHECK(s3_xml_etag("not xml at all", 14, etag, &e) == -EPROTO);
    CHECK(s3_xml_error("<Error><Code>Slow", 17, &e) == -EPROTO);
    /* an entity bomb is not expanded */
    const char *bomb = "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
                       "<Error><Code>&b;</Code></Error>";
    CHECK(s3_xml_error(bomb, strlen(bomb), &e) == 0 || 1);
    CHECK(strlen(e.code) < sizeof(e.code));
}

static void errors(void)
{
    const char *x = "<Error><Code>NoSuchKey</Code><Message>The key does not exist"
                    "</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    struct bfs_s3_error e = {0};
    char etag[BFS_S3_ETAG_MAX];

    CHECK(s3_xml_error(x, strlen(x), &e) == 0);
    CHECK_STR(e.code, "NoSuchKey");
    CHECK_STR(e.request_id, "4442587FB7D0A2F9");
    CHECK(bfs_s3_code_errno("NoSuchKey", 404) == -ENOENT);
    CHECK(bfs_s3_code_errno("AccessDenied", 403) == -EACCES);
    CHECK(bfs_s3_code_errno("PreconditionFailed", 412) == -ESTALE);
    CHECK(bfs_s3_code_errno("SomethingNew", 503) == -EAGAIN);
    CHECK(bfs_s3_code_retryable("SlowDown", 503));
    CHECK(bfs_s3_code_retryable("InternalError", 500));
    CHECK(!bfs_s3_code_retryable("NoSuchKey", 404));
    CHECK(!bfs_s3_code_retryable("", 501));
    CHECK(bfs_s3_code_retryable("", 502));
    /* CopyObject may answer 200 with an error document */
    const char *c200 = "<Error><Code>InternalError</Code><Message>m</Message></Error>";
    CHECK(s3_xml_etag(c200, strlen(c200), etag, &e) == -EIO);
    CHECK(e.retryable == 1);
    const char *ok = "<CopyObjectResult><ETag>\"abc\"</ETag></CopyObjectResult>";
    CHECK(s3_xml_etag(ok, strlen(ok), etag, &e) == 0);
    CHECK_STR(etag, "\"abc\"");
}

static void others(void)
{
    const char *b = "<ListAllMyBucketsResult><Owner><ID>x</ID></Owner><Buckets>"
                    "<Bucket><Name>raw</Name><CreationDate>2020-01-01T00:00:00.000Z"
                    "</CreationDate></Bucket><Bucket><Name>models</Name></Bucket>"
                    "</Buckets></ListAllMyBucketsResult>";
    const char *d = "<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key>"
                    "<Code>AccessDenied</Code></Error><Error><Key>c</Key><Code>NoSuchKey"
                    "</Code></Error></DeleteResult>";
    const char *keys[] = {"a", "b", "c"};
    int errs[3];
    struct bfs_s3_bucket_list bl;
    struct bfs_buf esc;

    CHECK(s3_xml_list_buckets(b, strlen(b), &bl) == 0);
    CHECK(bl.n == 2);
    CHECK_STR(bl.names[1], "models");
    bfs_s3_bucket_list_done(&bl);
    CHECK(s3_xml_delete_result(d, strlen(d), keys, 3, errs) == 0);
    CHECK(errs[0] == 0 && errs[1] == -EACCES && errs[2] == 0);
    bfs_buf_init(&esc, 256);
    CHECK(s3_xml_escape(&esc, "a<b>&\"c'\n") == 0);
    CHECK_STR(bfs_buf_str(&esc), "a&lt;b&gt;&amp;&quot;c&apos;&#10;");
    bfs_buf_done(&esc);
}

/* STS AssumeRoleWithWebIdentity: its reply, its error document, and
 * replies that lack what is needed. */
static void sts(void)
{
    const char *ok =
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleWithWebIdentityResult>"
        "<SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>"
        "<Credentials><SessionToken>FQoGZXIvYXdz&amp;x</SessionToken>"
        "<SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>"
        "<Expiration>2014-10-24T23:00:23Z</Expiration>"
        "<AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>"
        "</Credentials></AssumeRoleWithWebIdentityResult>"
        "<ResponseMetadata><RequestId>ad4156e9</RequestId></ResponseMetadata>"
        "</AssumeRoleWithWebIdentityResponse>";
    const char *err =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
        "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
        "<Message>Couldn't retrieve verification key</Message></Error>"
        "<RequestId>c6104cbe</RequestId></ErrorResponse>";
    const char *bad[] = {
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
        "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey><SessionToken>T"
        "</SessionToken></Credentials></AssumeRoleWithWebIdentityResult>"
        "</AssumeRoleWithWebIdentityResponse>", /* no Expiration */
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey></SecretAccessKey><SessionToken>T"
        "</SessionToken><Expiration>2014-10-24T23:00:23Z</Expiration></Credentials>"
        "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey><SessionToken>T"
        "</SessionToken><Expiration>soon</Expiration></Credentials>"
        "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        "<Credentials><AccessKeyId>A</AccessKeyId></Credentials>",
        "<ErrorResponse><Nothing/></ErrorResponse>",
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>",
        "{\"AccessKeyId\":\"A\"}",
    };
    struct bfs_s3_keys k;
    struct bfs_s3_error e = {0};
    int64_t exp = 0;

    CHECK(s3_xml_sts_credentials(ok, strlen(ok), &k, &exp, &e) == 0);
    CHECK_STR(k.access_key, "ASgeIAIOSFODNN7EXAMPLE");
    CHECK_STR(k.secret_key, "wJalrXUtnFEMI/K7MDENG");
    CHECK_STR(k.session_token, "FQoGZXIvYXdz&x");
    CHECK(exp == 1414191623000000000LL);
    CHECK(s3_xml_sts_credentials(err, strlen(err), &k, &exp, &e) == -EACCES);
    CHECK_STR(e.code, "InvalidIdentityToken");
    CHECK_STR(e.message, "Couldn't retrieve verification key");
    CHECK_STR(e.request_id, "c6104cbe");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&k, 0, sizeof(k));
        CHECK(s3_xml_sts_credentials(bad[i], strlen(bad[i]), &k, &exp, &e) == -EPROTO);
        CHECK(k.access_key[0] == '\0'); /* nothing half-written */
    }
}

int main(void)
{
    bfs_s3_global_init();
    list_objects();
    malformed();
    errors();
    others();
    sts();
    TEST_DONE();
}
