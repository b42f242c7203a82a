/* util.h -- allocation that never fails, clocks, logging, memory figures. */
#ifndef PGCHAT_UTIL_H
#define PGCHAT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Out of memory aborts (as git and smallchat do): callers never see NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Wall clock in milliseconds since the epoch. */
int64_t now_ms(void);
/* Monotonic clock in milliseconds, for deadlines. */
int64_t mono_ms(void);

/* Resident memory of this process in bytes, or 0 when /proc cannot tell. */
long long rss_bytes(void);

/* rss_bytes() as of the last rss_refresh(): cheap enough for every reply,
 * from any thread. The event loop refreshes it once a second. */
long long rss_current(void);
void rss_refresh(void);

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level written; LOG_INFO unless PGCHAT_LOG_LEVEL says. */
void log_set_level(enum log_level level);

/* One line on stderr: "pgchat[pid] level: message". Safe from any thread. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* The next wait of an exponential back-off after one of ms (0: none yet):
 * min first, then twice the last, never more than max. */
int backoff_next(int ms, int min, int max);

#endif
