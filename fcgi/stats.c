/* stats.c -- the worker's counters for /stats, the whole responder's for
 * /metrics, and their Prometheus text.
 *
 * Histograms keep one count per bucket (not cumulative, so an observation
 * is one addition) and are added up when written out.
 */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util.h"

struct stats stats;

static struct stats_all private_block;
struct stats_all *stats_all = &private_block;

static const char *const endpoints[STATS_ENDPOINTS] = {
    "who",    "join",    "part",   "send",    "delete", "ban",
    "unban",  "recv",    "events", "healthz", "stats",  "history",
    "search", "metrics", "limits", "other",
};

static const int codes[STATS_CODES - 1] = {200, 400, 401, 403, 404, 405, 413,
                                           414, 415, 429, 500, 502, 503};

/* Upper bounds: sends per transaction, and seconds of a fan-out. */
static const long long batch_le[STATS_BATCH_BUCKETS] = {1,  2,  4,   8,  16,
                                                        32, 64, 128, 256};
static const char *const fanout_le[STATS_FANOUT_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",   "0.25",   "0.5",   "1",    "2.5",   "5"};
static const long long fanout_le_us[STATS_FANOUT_BUCKETS] = {
    1000,   2500,   5000,   10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000};

int
stats_map(void)
{
    void *p = mmap(NULL, sizeof(struct stats_all), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        log_error("cannot map the shared counters");
        return -1;
    }
    memset(p, 0, sizeof(struct stats_all));
    stats_all = p;
    return 0;
}

void
stats_request(const char *path, int status)
{
    int e = STATS_ENDPOINTS - 1, c = STATS_CODES - 1;

    for (int i = 0; path && i < STATS_ENDPOINTS - 1; i++)
        if (strcmp(path, endpoints[i]) == 0)
            e = i;
    for (int i = 0; i < STATS_CODES - 1; i++)
        if (codes[i] == status)
            c = i;
    stats_add(&stats_all->requests[e][c], 1);
}

void
stats_batch(long long n)
{
    int b = STATS_BATCH_BUCKETS;

    for (int i = STATS_BATCH_BUCKETS - 1; i >= 0 && n <= batch_le[i]; i--)
        b = i;
    stats_add(&stats_all->batch.bucket[b], 1);
    stats_add(&stats_all->batch.count, 1);
    stats_add(&stats_all->batch.sum, n);
}

int64_t
stats_now_us(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

void
stats_fanout(int64_t us)
{
    int b = STATS_FANOUT_BUCKETS;

    for (int i = STATS_FANOUT_BUCKETS - 1; i >= 0 && us <= fanout_le_us[i]; i--)
        b = i;
    stats_add(&stats_all->fanout.bucket[b], 1);
    stats_add(&stats_all->fanout.count, 1);
    stats_add(&stats_all->fanout.sum, us);
}

/* --- the text format ----------------------------------------------------- */

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort(); /* our own formats: a bug */
        if ((size_t)n < o->cap - o->len)
            break;
        o->cap = o->cap * 2 + (size_t)n;
        o->buf = xrealloc(o->buf, o->cap);
    }
    o->len += (size_t)n;
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
counter(struct out *o, const char *name, const char *help, long long v)
{
    family(o, name, "counter", help);
    put(o, "%s %lld\n", name, v);
}

static void
histogram(struct out *o, const char *name, const char *help,
          const struct stats_hist *h, int nb, const char *const *le_text,
          const long long *le_num, double unit)
{
    long long cum = 0;

    family(o, name, "histogram", help);
    for (int i = 0; i < nb; i++) {
        cum += h->bucket[i];
        if (le_text)
            put(o, "%s_bucket{le=\"%s\"} %lld\n", name, le_text[i], cum);
        else
            put(o, "%s_bucket{le=\"%lld\"} %lld\n", name, le_num[i], cum);
    }
    cum += h->bucket[nb];
    put(o, "%s_bucket{le=\"+Inf\"} %lld\n", name, cum);
    put(o, "%s_sum %.6f\n", name, (double)h->sum / unit);
    put(o, "%s_count %lld\n", name, cum);
}

char *
stats_metrics(size_t *len)
{
    const struct stats_all *s = stats_all;
    struct out o = {xmalloc(4096), 0, 4096};

    family(&o, "pgchat_parked_requests", "gauge",
           "Requests waiting for messages now (/recv and /events), in every "
           "worker.");
    put(&o, "pgchat_parked_requests %lld\n", (long long)s->parked);
    family(&o, "pgchat_requests_total", "counter",
           "Requests answered, by endpoint and status code.");
    for (int e = 0; e < STATS_ENDPOINTS; e++)
        for (int c = 0; c < STATS_CODES; c++) {
            long long v = s->requests[e][c];

            if (!v)
                continue;
            if (c < STATS_CODES - 1)
                put(&o,
                    "pgchat_requests_total{endpoint=\"%s\",code=\"%d\"} "
                    "%lld\n",
                    endpoints[e], codes[c], v);
            else
                put(&o,
                    "pgchat_requests_total{endpoint=\"%s\","
                    "code=\"other\"} %lld\n",
                    endpoints[e], v);
        }
    counter(&o, "pgchat_messages_stored_total",
            "Messages /send has committed (a repeated mid counts again).",
            s->messages_stored);
    histogram(&o, "pgchat_send_batch_size",
              "Sends stored per transaction (group commit).", &s->batch,
              STATS_BATCH_BUCKETS, NULL, batch_le, 1);
    histogram(&o, "pgchat_fanout_seconds",
              "From a NOTIFY to the last reply of the fan-out it caused "
              "handed to the connections.",
              &s->fanout, STATS_FANOUT_BUCKETS, fanout_le, NULL, 1e6);
    counter(&o, "pgchat_db_reconnects_total",
            "Database connections made (the first ones included).",
            s->db_reconnects);
    counter(&o, "pgchat_db_timeouts_total",
            "Database calls given up after PGCHAT_DB_TIMEOUT.", s->db_timeouts);
    counter(&o, "pgchat_room_queries_total",
            "Queries the event loops sent to read a room (chat_recv).",
            s->room_queries);
    counter(&o, "pgchat_notify_batches_total",
            "Notifications whose payload carried the messages committed.",
            s->notify_batches);
    counter(&o, "pgchat_notify_appended_total",
            "... of them appended to a room's window without a query.",
            s->notify_appended);
    *len = o.len;
    return o.buf;
}
