/* SPDX-License-Identifier: MIT */
/*
 * log.c: one line per message to stderr (foreground) or syslog (daemon).
 *
 * Only the top layers (cli, fuse) log above debug; the S3 client and the
 * store return errors and leave the wording to their callers.
 */
#include <pthread.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

#include "bucketfs/util.h"

static struct {
    enum bfs_log_level max;
    int use_syslog;
    pthread_mutex_t lock; /* serializes stderr lines */
} logstate = {BFS_LOG_INFO, 0, PTHREAD_MUTEX_INITIALIZER};

void bfs_log_setup(enum bfs_log_level max, int use_syslog)
{
    logstate.max = max;
    logstate.use_syslog = use_syslog;
    if (use_syslog)
        openlog("bucketfs", LOG_PID, LOG_DAEMON);
}

int bfs_log_enabled(enum bfs_log_level level)
{
    return level <= logstate.max;
}

void bfs_log(enum bfs_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    va_list ap;

    if (!bfs_log_enabled(level))
        return;
    va_start(ap, fmt);
    if (logstate.use_syslog) {
        vsyslog(prio[level], fmt, ap);
    } else {
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
        pthread_mutex_lock(&logstate.lock);
        fprintf(stderr, "bucketfs %s.%03ld %s: ", stamp, ts.tv_nsec / 1000000, names[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        pthread_mutex_unlock(&logstate.lock);
    }
    va_end(ap);
}
