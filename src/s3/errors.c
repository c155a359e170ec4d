/* SPDX-License-Identifier: MIT */
/*
 * errors.c: the one table that turns S3 error Codes into errno values and
 * says which of them are worth a retry.
 *
 * Codes not in the table fall back on the HTTP status: 5xx is transient,
 * 403 is EACCES, 404 ENOENT, other 4xx EIO.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "s3-int.h"

static const struct {
    const char *code;
    int err;
    int retry;
} table[] = {
    {"NoSuchKey", ENOENT, 0},
    {"NoSuchBucket", ENOENT, 0},
    {"NoSuchUpload", ENOENT, 0},
    {"NotFound", ENOENT, 0},
    {"AccessDenied", EACCES, 0},
    {"AllAccessDisabled", EACCES, 0},
    {"InvalidAccessKeyId", EACCES, 0},
    {"SignatureDoesNotMatch", EACCES, 0},
    {"ExpiredToken", EACCES, 0},
    {"InvalidToken", EACCES, 0},
    {"TokenRefreshRequired", EACCES, 0},
    {"RequestTimeTooSkewed", EACCES, 0},
    {"AccountProblem", EACCES, 0},
    {"PreconditionFailed", ESTALE, 0},
    {"NotModified", EALREADY, 0},
    {"InvalidRange", ERANGE, 0},
    {"EntityTooLarge", EFBIG, 0},
    {"EntityTooSmall", EINVAL, 0},
    {"KeyTooLongError", ENAMETOOLONG, 0},
    {"MetadataTooLarge", E2BIG, 0},
    {"BucketNotEmpty", ENOTEMPTY, 0},
    {"BucketAlreadyExists", EEXIST, 0},
    {"BucketAlreadyOwnedByYou", EEXIST, 0},
    {"InvalidBucketName", EINVAL, 0},
    {"InvalidArgument", EINVAL, 0},
    {"InvalidRequest", EINVAL, 0},
    {"InvalidPart", EINVAL, 0},
    {"InvalidPartOrder", EINVAL, 0},
    {"MalformedXML", EINVAL, 0},
    {"InvalidObjectState", EIO, 0},
    {"QuotaExceeded", EDQUOT, 0},
    {"NotImplemented", ENOSYS, 0},
    {"MethodNotAllowed", EPERM, 0},
    {"SlowDown", EAGAIN, 1},
    {"ConditionalRequestConflict", EAGAIN, 1}, /* a concurrent conditional write */
    {"ServiceUnavailable", EAGAIN, 1},
    {"Throttling", EAGAIN, 1},
    {"ThrottlingException", EAGAIN, 1},
    {"RequestLimitExceeded", EAGAIN, 1},
    {"TooManyRequests", EAGAIN, 1},
    {"InternalError", EIO, 1},
    {"RequestTimeout", ETIMEDOUT, 1},
    {"BadDigest", EIO, 1},
    {"XAmzContentSHA256Mismatch", EIO, 1},
    {"IncompleteBody", EIO, 1},
    {"OperationAborted", EAGAIN, 1},
};

static int lookup(const char *code)
{
    for (size_t i = 0; code && *code && i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].code, code) == 0)
            return (int)i;
    return -1;
}

int bfs_s3_code_errno(const char *code, int status)
{
    int i = lookup(code);

    if (i >= 0)
        return -table[i].err;
    switch (status) {
    case 304: return -EALREADY;
    case 400: return -EINVAL;
    case 401:
    case 403: return -EACCES;
    case 404: return -ENOENT;
    case 409: return -EBUSY;
    case 412: return -ESTALE;
    case 416: return -ERANGE;
    case 429: return -EAGAIN;
    case 501: return -ENOSYS;
    case 503: return -EAGAIN;
    default: return -EIO;
    }
}

int bfs_s3_code_retryable(const char *code, int status)
{
    int i = lookup(code);

    if (i >= 0)
        return table[i].retry;
    return status == 429 || (status >= 500 && status != 501);
}

void bfs_s3_error_set(struct bfs_s3_error *e, int err, int status, const char *code,
                      const char *message)
{
    if (!e)
        return;
    memset(e, 0, sizeof(*e));
    e->err = err;
    e->status = status;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    snprintf(e->message, sizeof(e->message), "%s", message ? message : "");
}
