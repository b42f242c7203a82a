/* util.c -- allocation that never fails, clocks, logging, memory figures.
 *
 * Log lines are written with one write(2) each so that lines from several
 * threads and worker processes never interleave inside a line.
 */
#define _GNU_SOURCE
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;

static void
oom(size_t n)
{
    log_error("out of memory allocating %zu bytes", n);
    abort();
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        oom(n);
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        oom(n * size);
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        oom(n);
    return q;
}

char *
xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static _Atomic long long rss_cache;

long long
rss_current(void)
{
    return rss_cache;
}

void
rss_refresh(void)
{
    rss_cache = rss_bytes();
}

void
log_set_level(enum log_level level)
{
    min_level = level;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024];
    va_list ap;
    int n;

    if (level < min_level)
        return;
    n = snprintf(line, sizeof(line), "pgchat[%d] %s: ", (int)getpid(),
                 names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to complain to. */
    }
}

int
backoff_next(int ms, int min, int max)
{
    ms = ms ? 2 * ms : min;
    return ms > max ? max : ms;
}
