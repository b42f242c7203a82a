/* load.c -- pgchat's load generator: node_chat clients over HTTP/1.1.
 *
 *   load [options] hold N              N readers parked in /recv
 *   load [options] fanout N M          ... and M messages sent to them
 *   load [options] send C SECONDS      C senders, as fast as they can
 *   load [options] mixed N C SECONDS   N readers while C senders send
 *   load [options] rooms N R SECONDS   N readers in R rooms, -m msg/s in all
 *                                      (default 500) to random rooms
 *   load [options] get C SECONDS PATH  C clients GETting PATH (ceiling)
 *
 * -P picks the server's protocol: pgchat (the default) and nodechat speak
 * node_chat's (/join, /recv?since=, /send); nodechat has one room and
 * answers the whole backlog at once. nchan is nginx's pub/sub module:
 * readers long-poll GET /sub/ROOM with If-Modified-Since/If-None-Match
 * from the last reply, messages are POSTed to /pub/ROOM, and a reply's
 * body is the message itself.
 *
 * -S makes the readers of every mode stream instead of polling: each opens
 * one EventSource stream (Accept: text/event-stream) and keeps it, pgchat's
 * GET /events?since=T&room=R with the room's session cookie from /join
 * (pgchat_ROOM=ID, as a browser sends it), nchan's EventSource subscriber
 * on the same /sub/ROOM. Each event is one message: pgchat's data is the
 * message as in /recv, nchan's the body itself; pgchat's "event: gap" is
 * its explicit gap. A stream the server ends (nchan's subscriber timeout)
 * is opened again at once with Last-Event-ID, as EventSource would after
 * its retry delay. A streaming reader counts as parked from the moment its
 * response's headers are in. The framing and the event lines are read by
 * sse.c, cut anywhere (nginx sends pgchat's stream chunked, nchan its own
 * until it closes).
 *
 * Every client is one keep-alive TCP connection driven by an epoll loop.
 * The loops (one per thread, -t, default 1) never block; the main thread
 * only orchestrates: it joins the sessions, sends the fan-out messages from
 * a connection of its own, reads /proc and asks psql. The result is one
 * JSON object on stdout; progress goes to stderr.
 *
 * The messages it sends read "b:<msgno>:<send_us>". A reader that receives
 * one knows which message it is (to count duplicates and missing ones) and
 * when it was sent (CLOCK_REALTIME, one clock on one machine), so the
 * delivery latency of every message at every client is measured without
 * any state shared between the clients.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sse.h"

#define MAX_MSGS (1u << 24)   /* message numbers in one run */
#define RECV_TIMEOUT_MS 35000 /* the server pings after 20 s */
#define REQ_TIMEOUT_MS 30000  /* any other request, and connecting */
#define RETRY_MS 100          /* after an error, before trying again */
#define EVENTS 1024
#define PAGE 200 /* messages in one /recv reply at the most */

/* ---- clocks, logging, memory ---------------------------------------- */

static int quiet;

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
mono_ms(void)
{
    return mono_us() / 1000;
}

static void
sleep_us(int64_t us)
{
    struct timespec ts;

    if (us <= 0)
        return;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static double
cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

__attribute__((format(printf, 1, 2))) static void
note(const char *fmt, ...)
{
    va_list ap;

    if (quiet)
        return;
    va_start(ap, fmt);
    fputs("load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

__attribute__((format(printf, 1, 2), noreturn)) static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        die("out of memory");
    return p;
}

static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- latency histogram ----------------------------------------------
 * Log-linear, in microseconds: exact below 512 us, then 256 buckets per
 * power of two (0.4 % wide), so that millions of samples cost a fixed
 * 116 KB and histograms of several threads simply add up. */

#define H_LINEAR 512
#define H_SUB 256
#define H_BUCKETS (H_LINEAR + 55 * H_SUB)

struct hist {
    uint64_t n, max;
    uint64_t count[H_BUCKETS];
};

static size_t
h_index(uint64_t v)
{
    int e;

    if (v < H_LINEAR)
        return (size_t)v;
    e = 63 - __builtin_clzll(v); /* 9 .. 63 */
    return H_LINEAR + (size_t)(e - 9) * H_SUB + ((v >> (e - 8)) - H_SUB);
}

/* The middle of bucket i. */
static uint64_t
h_value(size_t i)
{
    size_t k;
    int shift;

    if (i < H_LINEAR)
        return i;
    k = i - H_LINEAR;
    shift = (int)(k / H_SUB) + 1;
    return ((k % H_SUB + H_SUB) << shift) + ((1ull << shift) >> 1);
}

static void
h_add(struct hist *h, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;

    h->count[h_index(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

static void
h_merge(struct hist *into, const struct hist *h)
{
    for (size_t i = 0; i < H_BUCKETS; i++)
        into->count[i] += h->count[i];
    into->n += h->n;
    if (h->max > into->max)
        into->max = h->max;
}

/* The p-quantile (0 < p < 1) in milliseconds; -1 without samples. */
static double
h_ms(const struct hist *h, double p)
{
    uint64_t rank, seen = 0;

    if (!h->n)
        return -1;
    rank = (uint64_t)(p * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t v = h_value(i);

            return (v > h->max ? h->max : v) / 1000.0;
        }
    }
    return h->max / 1000.0;
}

/* ---- HTTP responses -------------------------------------------------- */

struct resp {
    int status;
    int close;  /* the server closes the connection after this response */
    char *body; /* inside the buffer that was parsed */
    size_t body_len;
    const char *lm, *etag; /* nchan's cursor: Last-Modified, Etag */
    size_t lm_len, etag_len;
    const char *cookie; /* Set-Cookie's name=value, without attributes */
    size_t cookie_len;
    int chunked;
    long clen; /* Content-Length, or -1 */
};

/* Does header line p[0..n) start with name (lower case, with colon)?
 * Sets *value to what follows. */
static int
header_is(const char *p, size_t n, const char *name, const char **value)
{
    size_t k = strlen(name);

    if (n < k || strncasecmp(p, name, k) != 0)
        return 0;
    *value = p + k;
    return 1;
}

/* Does v[0..n) contain word, in any case? */
static int
has_word(const char *v, size_t n, const char *word)
{
    size_t k = strlen(word);

    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(v + i, word, k) == 0)
            return 1;
    return 0;
}

/* Walks a chunked body from pos. With compact, moves the data to out (the
 * check pass must have succeeded first, since moving corrupts a partial
 * body). Returns the end of the message, 0 when incomplete, -1 when bad. */
static long
chunks(char *buf, size_t len, size_t pos, size_t *out, int compact)
{
    for (;;) {
        char *eol = memmem(buf + pos, len - pos, "\r\n", 2), *end;
        unsigned long size;
        size_t data;

        if (!eol)
            return 0;
        size = strtoul(buf + pos, &end, 16);
        if (end == buf + pos || end > eol)
            return -1;
        data = (size_t)(eol - buf) + 2;
        if (size == 0) {
            size_t t = data; /* trailers, then an empty line */

            for (;;) {
                char *e2 = memmem(buf + t, len - t, "\r\n", 2);

                if (!e2)
                    return 0;
                if (e2 == buf + t)
                    return (long)(t + 2);
                t = (size_t)(e2 - buf) + 2;
            }
        }
        if (len < data + size + 2)
            return 0;
        if (compact) {
            memmove(buf + *out, buf + data, size);
            *out += size;
        }
        pos = data + size + 2;
    }
}

/* Parses the status line and headers at the start of buf[0..len) into r
 * (r->body and r->body_len are left alone). Returns their length when they
 * are all in, 0 when more are needed, -1 when it is no HTTP. */
static long
http_head(char *buf, size_t len, struct resp *r)
{
    char *end = memmem(buf, len, "\r\n\r\n", 4), *p;
    size_t hlen;

    if (!end)
        return len > 65536 ? -1 : 0;
    hlen = (size_t)(end - buf) + 4;
    if (hlen < 14 || memcmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    r->status = atoi(buf + 9);
    r->close = buf[7] == '0'; /* HTTP/1.0 closes unless told otherwise */
    r->lm = r->etag = r->cookie = NULL;
    r->lm_len = r->etag_len = r->cookie_len = 0;
    r->chunked = 0;
    r->clen = -1;
    for (p = (char *)memchr(buf, '\n', hlen) + 1; p < buf + hlen - 2;) {
        char *eol = memchr(p, '\n', (size_t)(buf + hlen - p));
        size_t n = (size_t)(eol - p);
        const char *v;

        if (header_is(p, n, "content-length:", &v))
            r->clen = strtol(v, NULL, 10);
        else if (header_is(p, n, "last-modified:", &v)) {
            while (*v == ' ')
                v++;
            r->lm = v;
            r->lm_len = (size_t)(eol - v) - (eol[-1] == '\r');
        } else if (header_is(p, n, "etag:", &v)) {
            while (*v == ' ')
                v++;
            r->etag = v;
            r->etag_len = (size_t)(eol - v) - (eol[-1] == '\r');
        } else if (header_is(p, n, "set-cookie:", &v)) {
            while (*v == ' ')
                v++;
            r->cookie = v;
            r->cookie_len = strcspn(v, ";\r\n");
        } else if (header_is(p, n, "transfer-encoding:", &v))
            r->chunked = has_word(v, (size_t)(eol - v), "chunked");
        else if (header_is(p, n, "connection:", &v)) {
            if (has_word(v, (size_t)(eol - v), "close"))
                r->close = 1;
            else if (has_word(v, (size_t)(eol - v), "keep-alive"))
                r->close = 0;
        }
        p = eol + 1;
    }
    return (long)hlen;
}

/* Parses the response at the start of buf[0..len). Returns the bytes it
 * takes when complete, 0 when more are needed, -1 when it is no HTTP.
 * at_eof: the peer closed, so a body without a length ends here. */
static long
http_parse(char *buf, size_t len, int at_eof, struct resp *r)
{
    long head = http_head(buf, len, r);
    size_t hlen;

    if (head <= 0)
        return head;
    hlen = (size_t)head;
    r->body = buf + hlen;
    r->body_len = 0;
    if (r->status < 200 || r->status == 204 || r->status == 304)
        return (long)hlen;
    if (r->chunked) {
        size_t out = hlen;
        long n = chunks(buf, len, hlen, &out, 0);

        if (n <= 0)
            return n;
        chunks(buf, len, hlen, &out, 1);
        r->body_len = out - hlen;
        return n;
    }
    if (r->clen >= 0) {
        if (len < hlen + (size_t)r->clen)
            return 0;
        r->body_len = (size_t)r->clen;
        return (long)(hlen + (size_t)r->clen);
    }
    if (!at_eof)
        return 0;
    r->close = 1;
    r->body_len = len - hlen;
    return (long)len;
}

/* ---- minimal JSON ----------------------------------------------------
 * Just enough to walk node_chat's replies: objects, arrays, strings (left
 * escaped: only our own texts are looked at, and they need no escapes),
 * integers and literals. */

static const char *
js_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': returns what follows the string, its raw contents in *s, *n. */
static const char *
js_str(const char *p, const char *e, const char **s, size_t *n)
{
    const char *b;

    if (p >= e || *p != '"')
        return NULL;
    b = ++p;
    while (p < e && *p != '"')
        p += *p == '\\' ? 2 : 1;
    if (p >= e)
        return NULL;
    *s = b;
    *n = (size_t)(p - b);
    return p + 1;
}

static const char *
js_skip(const char *p, const char *e, int depth)
{
    const char *b;

    p = js_ws(p, e);
    if (p >= e || depth > 32)
        return NULL;
    if (*p == '"') {
        const char *s;
        size_t n;

        return js_str(p, e, &s, &n);
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';

        p = js_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                const char *s;
                size_t n;

                p = js_str(js_ws(p, e), e, &s, &n);
                if (!p)
                    return NULL;
                p = js_ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            p = js_skip(p, e, depth + 1);
            if (!p)
                return NULL;
            p = js_ws(p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            return p < e && *p == close ? p + 1 : NULL;
        }
    }
    for (b = p; p < e && (strchr("+-.eE", *p) || (*p >= '0' && *p <= '9') ||
                          (*p >= 'a' && *p <= 'z'));
         p++)
        ;
    return p > b ? p : NULL;
}

/* Iterates an object's members or an array's elements. */
struct js_iter {
    const char *p, *e;
    int started;
};

/* Returns 1 with the next member (key, or NULL for an array element; its
 * value starts at *val and ends at it->p), 0 at the end, -1 on bad JSON. */
static int
js_next(struct js_iter *it, char open, const char **key, size_t *klen,
        const char **val)
{
    char close = open == '{' ? '}' : ']';
    const char *p = js_ws(it->p, it->e);

    if (p >= it->e)
        return -1;
    if (!it->started) {
        if (*p != open)
            return -1;
        it->started = 1;
        p = js_ws(p + 1, it->e);
        if (p < it->e && *p == close) {
            it->p = p + 1;
            return 0;
        }
    } else if (*p == close) {
        it->p = p + 1;
        return 0;
    } else if (*p == ',') {
        p = js_ws(p + 1, it->e);
    } else {
        return -1;
    }
    *key = NULL;
    if (open == '{') {
        p = js_str(p, it->e, key, klen);
        if (!p)
            return -1;
        p = js_ws(p, it->e);
        if (p >= it->e || *p != ':')
            return -1;
        p = js_ws(p + 1, it->e);
    }
    *val = p;
    p = js_skip(p, it->e, 0);
    if (!p)
        return -1;
    it->p = p;
    return 1;
}

static int
key_is(const char *key, size_t klen, const char *name)
{
    return key && klen == strlen(name) && memcmp(key, name, klen) == 0;
}

struct msg_in {
    const char *text; /* raw, NULL for join and part */
    size_t text_len;
    int64_t ts;
    int has_ts;
};

typedef void (*msg_fn)(void *ctx, const struct msg_in *m);

/* Reads one message object, p[0..e), into *m (which borrows from p).
 * Returns 0, or -1 when it is no message object. */
static int
parse_message(const char *p, const char *e, struct msg_in *m)
{
    struct js_iter obj = {p, e, 0};
    const char *key, *val;
    size_t klen;
    int r;

    m->text = NULL;
    m->text_len = 0;
    m->ts = 0;
    m->has_ts = 0;
    while ((r = js_next(&obj, '{', &key, &klen, &val)) == 1) {
        if (key_is(key, klen, "text") && *val == '"')
            js_str(val, obj.p, &m->text, &m->text_len);
        else if (key_is(key, klen, "timestamp")) {
            /* node_chat servers send it as a number or as a string of
             * digits */
            m->ts = strtoll(val + (*val == '"'), NULL, 10);
            m->has_ts = 1;
        }
    }
    return r < 0 ? -1 : 0;
}

/* Walks a /recv reply: calls fn for each message, sets *ping and *gap.
 * Returns the number of messages, or -1 when the body is no /recv reply. */
static int
parse_recv(const char *body, size_t len, int *ping, int *gap, msg_fn fn,
           void *ctx)
{
    struct js_iter top = {body, body + len, 0};
    const char *key, *val;
    size_t klen;
    int r, count = -1;

    *ping = *gap = 0;
    while ((r = js_next(&top, '{', &key, &klen, &val)) == 1) {
        if (key_is(key, klen, "ping"))
            *ping = *val == 't';
        else if (key_is(key, klen, "gap"))
            *gap = *val == 't';
        else if (key_is(key, klen, "messages")) {
            struct js_iter arr = {val, top.p, 0};
            const char *k2, *v2;
            size_t kl2;

            count = 0;
            while ((r = js_next(&arr, '[', &k2, &kl2, &v2)) == 1) {
                struct msg_in m;

                if (parse_message(v2, arr.p, &m) < 0)
                    return -1;
                fn(ctx, &m);
                count++;
            }
            if (r < 0)
                return -1;
        }
    }
    return r < 0 ? -1 : count;
}

/* Copies the top-level string member key of body into out. */
static int
json_string(const char *body, size_t len, const char *name, char *out,
            size_t size)
{
    struct js_iter top = {body, body + len, 0};
    const char *key, *val, *s;
    size_t klen, n;

    while (js_next(&top, '{', &key, &klen, &val) == 1) {
        if (key_is(key, klen, name) && js_str(val, top.p, &s, &n) && n < size) {
            memcpy(out, s, n);
            out[n] = '\0';
            return 0;
        }
    }
    return -1;
}

/* ---- the target ------------------------------------------------------ */

static struct {
    char host[300], port[16], prefix[256], hostport[300];
    struct sockaddr_storage addr;
    socklen_t addrlen;
} target;

/* Takes http://host:port/prefix, host:port/prefix or host:port. */
static int
target_parse(const char *url)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    const char *p = url, *slash, *colon;
    size_t n;

    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strstr(p, "://"))
        return -1; /* https is not spoken here */
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    n = (size_t)(slash - p);
    if (n == 0 || n >= sizeof(target.hostport))
        return -1;
    memcpy(target.hostport, p, n);
    target.hostport[n] = '\0';
    colon = strrchr(target.hostport, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(target.host, sizeof(target.host), "%.*s",
                 (int)(colon - target.hostport), target.hostport);
        snprintf(target.port, sizeof(target.port), "%s", colon + 1);
    } else {
        snprintf(target.host, sizeof(target.host), "%s", target.hostport);
        snprintf(target.port, sizeof(target.port), "80");
    }
    if (target.host[0] == '[') { /* [::1] */
        memmove(target.host, target.host + 1, strlen(target.host));
        target.host[strcspn(target.host, "]")] = '\0';
    }
    snprintf(target.prefix, sizeof(target.prefix), "%s", slash);
    n = strlen(target.prefix);
    while (n > 0 && target.prefix[n - 1] == '/')
        target.prefix[--n] = '\0';
    if (getaddrinfo(target.host, target.port, &hints, &ai) != 0)
        return -1;
    memcpy(&target.addr, ai->ai_addr, ai->ai_addrlen);
    target.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Percent-encodes s into out (what a query value needs). */
static void
url_encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s && o + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
            c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* ---- options and shared state ---------------------------------------- */

enum proto { P_PGCHAT, P_NODECHAT, P_NCHAN };

#define MAX_CPU 8

static struct {
    const char *url, *room, *db, *hist_file, *probe;
    enum proto proto;
    int ncpu;
    struct {
        const char *name, *comm; /* comm NULL: every process of the tree */
        pid_t pid;
    } cpu[MAX_CPU];
    int threads, interval_ms, rooms, max_connecting, ramp, pass_id;
    int stream;       /* -S: readers keep one event stream open */
    int room_heads;   /* -K: rooms' readers start at the room's head */
    double warmup;    /* -A: rooms: seconds of sends before the window */
    double send_rate; /* messages a second, all senders together; 0: flat out */
    double settle, drain, stall;
    pid_t server;
} opt = {
    .url = "http://127.0.0.1:8080",
    .threads = 1,
    .interval_ms = 300,
    .rooms = 1,
    .max_connecting = 256,
    .settle = 2,
    .drain = 15,
    .stall = 3,
};

enum phase { PH_HOLD, PH_SEND, PH_STOP, PH_EXIT };

struct session {
    char nick[40], room[80], id[160]; /* id and room: URL-encoded */
    char cookie[256]; /* what /join set: "pgchat_ROOM=ID", or "" */
};

static struct {
    atomic_int phase;
    atomic_uint_fast64_t next_msgno;
    atomic_uint_fast64_t *accepted; /* bitmap of msgnos answered 200 */
    char room[80];                  /* the readers', URL-encoded */
    char reader_id[160];            /* passed by readers with -I */
    char reader_cookie[256];        /* sent by streaming readers */
    const char *get_path;
    size_t senders;
    /* rooms mode: readers in nrooms rooms, senders to random ones */
    size_t nrooms;
    char (*room_names)[120];         /* URL-encoded */
    const struct session *room_sess; /* one per room (pgchat) */
    uint32_t *msg_room;              /* the room of each msgno */
    int64_t *room_since; /* -K: each room's head, its readers' cursor */
    atomic_uint_fast64_t lat_from; /* -A: latencies of msgnos from here */
} G;

/* The room of reader or sender index r (rooms mode), else G.room. */
static const char *
room_name(int r)
{
    return r >= 0 && G.room_names ? G.room_names[r] : G.room;
}

static int
ok_status(int status)
{
    if (opt.proto == P_NCHAN)
        return status >= 200 && status < 300;
    return status == 200;
}

static void
accept_msgno(uint64_t msgno)
{
    atomic_fetch_or_explicit(&G.accepted[msgno / 64], 1ull << (msgno % 64),
                             memory_order_relaxed);
}

static int
is_accepted(uint64_t msgno)
{
    return (atomic_load_explicit(&G.accepted[msgno / 64],
                                 memory_order_relaxed) >>
            (msgno % 64)) &
           1;
}

/* ---- clients on epoll ------------------------------------------------ */

enum role { READER, SENDER, GETTER };
enum state { IDLE, CONNECTING, READY, WRITING, WAITING };

struct worker;

struct conn {
    int fd;
    enum role role;
    enum state state;
    struct worker *w;
    char *rbuf;
    size_t rlen, rcap;
    char wbuf[768];
    size_t wlen, woff;
    int out_armed;    /* EPOLLOUT is asked for */
    int was_ready;    /* has connected once (senders_ready) */
    int in_retry;     /* in the worker's retry list */
    enum state last;  /* the state when the loop stopped */
    int64_t t_req;    /* now_us() just before the request was written */
    int64_t deadline; /* mono_ms() by which the reply must be in */
    int64_t retry_at; /* mono_ms() of the next try, while in the retry list */
    int room;         /* rooms mode: the reader's room; -1: G.room */
    char lm[64], etag[64]; /* nchan's cursor */
    struct sse *sse;       /* -S readers: the stream being read */
    int streaming;         /* ... whose response's headers are in */
    int parked;            /* counted in readers_waiting */
    long comments;         /* the stream's comment lines counted as pings */
    /* readers */
    int64_t since;
    uint64_t *seen; /* bitmap of the msgnos received */
    size_t seen_words;
    /* senders */
    const struct session *sess;
    uint64_t msgno;
    int64_t next_send; /* mono_us() of the next send, with -m */
};

/* Counters the main thread reads while the loops run. */
struct stats {
    atomic_long readers_waiting, senders_ready, inflight, responses, pings,
        early, uniq, dups, gaps, send_ok, send_fail, get_ok, err_connect,
        err_io, err_timeout, err_http, reconnects;
};

struct worker {
    pthread_t thread;
    int epfd;
    struct conn *conns;
    size_t nconns;
    struct conn **openq; /* to connect, a ring of nconns slots */
    size_t q_head, q_len;
    struct conn **retry; /* waiting for retry_at */
    size_t nretry;
    int connecting;
    long opened;
    int64_t t_start;
    unsigned seed;   /* rand_r: senders' rooms in rooms mode */
    struct hist lat; /* delivery latency at the readers */
    struct hist req; /* request latency of senders and getters */
    long status[600];
    struct stats st;
};

static struct worker *workers;
static int nworkers;

#define INC(w, f) atomic_fetch_add_explicit(&(w)->st.f, 1, memory_order_relaxed)
#define DEC(w, f) atomic_fetch_sub_explicit(&(w)->st.f, 1, memory_order_relaxed)

static long
sum_stat(size_t offset)
{
    long total = 0;

    for (int i = 0; i < nworkers; i++)
        total += atomic_load((atomic_long *)((char *)&workers[i].st + offset));
    return total;
}

#define SUM(f) sum_stat(offsetof(struct stats, f))

/* Whether reader c counts as parked: a long-poll reader from the moment
 * its request is written until the reply, a streaming one while its
 * stream is open. */
static void
set_parked(struct conn *c, int on)
{
    if (on == c->parked)
        return;
    c->parked = on;
    if (on)
        INC(c->w, readers_waiting);
    else
        DEC(c->w, readers_waiting);
}

static void conn_next(struct conn *c);

static void
enqueue_open(struct conn *c)
{
    struct worker *w = c->w;

    w->openq[(w->q_head + w->q_len) % w->nconns] = c;
    w->q_len++;
}

static void
epoll_set(struct conn *c, int out)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = c};

    if (out != c->out_armed) {
        epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->out_armed = out;
    }
}

/* Closes the connection; abort: with a reset, leaving no TIME_WAIT (the
 * runs open tens of thousands of connections to one port). */
static void
conn_close(struct conn *c, int abort)
{
    if (c->fd < 0)
        return;
    if (abort) {
        struct linger l = {1, 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    if (c->state == CONNECTING)
        c->w->connecting--;
    set_parked(c, 0);
    c->streaming = 0;
    if ((c->state == WAITING || c->state == WRITING) && c->role != READER)
        DEC(c->w, inflight);
    close(c->fd);
    c->fd = -1;
    c->rlen = 0;
    c->out_armed = 0;
    c->state = IDLE;
}

/* Puts the connection aside until mono_ms() reaches at: then it
 * reconnects (if it has no connection) or goes on (conn_next). */
static void
wake_at(struct conn *c, int64_t at)
{
    struct worker *w = c->w;

    if (c->in_retry)
        return;
    c->in_retry = 1;
    c->retry_at = at;
    w->retry[w->nretry++] = c;
}

static void
retry_later(struct conn *c)
{
    wake_at(c, mono_ms() + RETRY_MS);
}

enum failure { F_CONNECT, F_IO, F_TIMEOUT };

/* Counts the failure, drops the connection, and tries again soon. */
static void
conn_fail(struct conn *c, enum failure f)
{
    struct worker *w = c->w;

    if (c->fd < 0)
        return;
    switch (f) {
    case F_CONNECT:
        INC(w, err_connect);
        break;
    case F_IO:
        INC(w, err_io);
        break;
    case F_TIMEOUT:
        INC(w, err_timeout);
        break;
    }
    if (c->role == SENDER && (c->state == WRITING || c->state == WAITING))
        INC(w, send_fail);
    conn_close(c, 1);
    retry_later(c);
}

static int
conn_open(struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
                             .data.ptr = c};
    int one = 1;
    int fd = socket(target.addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&target.addr, target.addrlen) < 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = CONNECTING;
    c->out_armed = 1;
    c->deadline = mono_ms() + REQ_TIMEOUT_MS;
    c->w->connecting++;
    c->w->opened++;
    return 0;
}

/* Writes what is left of the request. */
static void
conn_flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            epoll_set(c, 1);
            return;
        }
        if (n <= 0) {
            conn_fail(c, F_IO);
            return;
        }
        c->woff += (size_t)n;
    }
    c->state = WAITING;
    if (c->role == READER && !opt.stream)
        set_parked(c, 1);
    epoll_set(c, 0);
}

/* The session cookie a streaming reader sends, as its browser would. */
static const char *
reader_cookie(const struct conn *c)
{
    return c->room >= 0 && G.room_sess ? G.room_sess[c->room].cookie
                                       : G.reader_cookie;
}

/* A streaming reader's request: pgchat's /events or nchan's EventSource
 * subscriber, resuming after the last event it got, if any. */
static int
stream_request(struct conn *c, char *buf, size_t size)
{
    const char *id = c->sse->id, *cookie = reader_cookie(c);
    char last[160] = "", path[512];

    if (id[0])
        snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    if (opt.proto == P_NCHAN)
        snprintf(path, sizeof(path), "%s/sub/%s", target.prefix,
                 room_name(c->room));
    else
        snprintf(path, sizeof(path), "%s/events?since=%" PRId64 "&room=%s",
                 target.prefix, c->since, room_name(c->room));
    return snprintf(buf, size,
                    "GET %s HTTP/1.1\r\nHost: %s\r\n"
                    "Accept: text/event-stream\r\n%s%s%s%s\r\n",
                    path, target.hostport, last, cookie[0] ? "Cookie: " : "",
                    cookie, cookie[0] ? "\r\n" : "");
}

static void
conn_request(struct conn *c)
{
    size_t size = sizeof(c->wbuf);
    int n;

    c->t_req = now_us();
    switch (c->role) {
    case READER:
        if (opt.stream)
            n = stream_request(c, c->wbuf, size);
        else if (opt.proto == P_NCHAN)
            n = snprintf(c->wbuf, size,
                         "GET %s/sub/%s HTTP/1.1\r\nHost: %s\r\n"
                         "%s%s%s%s%s%s\r\n",
                         target.prefix, room_name(c->room), target.hostport,
                         c->lm[0] ? "If-Modified-Since: " : "", c->lm,
                         c->lm[0] ? "\r\n" : "",
                         c->etag[0] ? "If-None-Match: " : "", c->etag,
                         c->etag[0] ? "\r\n" : "");
        else
            n = snprintf(
                c->wbuf, size,
                "GET %s/recv?since=%" PRId64 "&room=%s%s%s HTTP/1.1\r\n"
                "Host: %s\r\n\r\n",
                target.prefix, c->since, room_name(c->room),
                G.reader_id[0] ? "&id=" : "", G.reader_id, target.hostport);
        c->deadline = mono_ms() + RECV_TIMEOUT_MS;
        break;
    case SENDER: {
        const struct session *s = c->sess;

        c->msgno = atomic_fetch_add(&G.next_msgno, 1);
        if (c->msgno >= MAX_MSGS) {
            c->state = READY;
            return;
        }
        if (G.nrooms) {
            uint32_t r = (uint32_t)(rand_r(&c->w->seed) % G.nrooms);

            G.msg_room[c->msgno] = r;
            s = &G.room_sess[r];
        }
        if (opt.proto == P_NCHAN) {
            char text[64];
            int tn = snprintf(text, sizeof(text), "b:%" PRIu64 ":%" PRId64,
                              c->msgno, c->t_req);

            n = snprintf(c->wbuf, size,
                         "POST %s/pub/%s HTTP/1.1\r\nHost: %s\r\n"
                         "Content-Type: text/plain\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         target.prefix, s->room, target.hostport, tn, text);
        } else {
            n = snprintf(c->wbuf, size,
                         "GET %s/send?id=%s&room=%s&text=b%%3A%" PRIu64
                         "%%3A%" PRId64 " HTTP/1.1\r\nHost: %s\r\n\r\n",
                         target.prefix, s->id, s->room, c->msgno, c->t_req,
                         target.hostport);
        }
        c->deadline = mono_ms() + REQ_TIMEOUT_MS;
        INC(c->w, inflight);
        break;
    }
    case GETTER:
    default:
        n = snprintf(c->wbuf, size, "GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                     target.prefix, G.get_path, target.hostport);
        c->deadline = mono_ms() + REQ_TIMEOUT_MS;
        INC(c->w, inflight);
        break;
    }
    c->wlen = (size_t)n < size ? (size_t)n : size - 1;
    c->woff = 0;
    c->state = WRITING;
    conn_flush(c);
}

struct recv_ctx {
    struct conn *c;
    int64_t t_arrive;
};

/* One message at a reader: moves the cursor, and for our own messages
 * records latency and counts duplicates. */
static void
on_message(void *ctx, const struct msg_in *m)
{
    struct recv_ctx *rc = ctx;
    struct conn *c = rc->c;
    struct worker *w = c->w;
    uint64_t msgno;
    int64_t sent;
    char *end;

    if (m->has_ts && m->ts > c->since)
        c->since = m->ts;
    if (!m->text || m->text_len < 5 || memcmp(m->text, "b:", 2) != 0)
        return;
    msgno = strtoull(m->text + 2, &end, 10);
    if (*end != ':' || msgno >= MAX_MSGS)
        return;
    sent = strtoll(end + 1, NULL, 10);
    if (msgno >= atomic_load(&G.lat_from))
        h_add(&w->lat, rc->t_arrive - sent);
    if (msgno / 64 >= c->seen_words) {
        size_t words = c->seen_words ? c->seen_words : 1;

        while (words <= msgno / 64)
            words *= 2;
        c->seen = xrealloc(c->seen, words * sizeof(uint64_t));
        memset(c->seen + c->seen_words, 0,
               (words - c->seen_words) * sizeof(uint64_t));
        c->seen_words = words;
    }
    if (c->seen[msgno / 64] & (1ull << (msgno % 64))) {
        INC(w, dups);
        return;
    }
    c->seen[msgno / 64] |= 1ull << (msgno % 64);
    INC(w, uniq);
}

/* A complete response. Returns 1 when the next request should wait a bit
 * (the server said no: do not hammer it). */
static int
on_response(struct conn *c, struct resp *r, int64_t t_arrive)
{
    struct worker *w = c->w;
    int ok = ok_status(r->status);
    /* nchan's long-poll timeout: nothing new, poll again */
    int nchan_ping = opt.proto == P_NCHAN && c->role == READER &&
                     (r->status == 304 || r->status == 408);

    INC(w, responses);
    if (nchan_ping) {
        set_parked(c, 0);
        INC(w, pings);
        return 0;
    }
    if (!ok) {
        INC(w, err_http);
        w->status[r->status >= 100 && r->status < 600 ? r->status : 0]++;
    }
    if (c->role == READER) {
        set_parked(c, 0);
        if (ok && opt.proto == P_NCHAN) {
            struct recv_ctx rc = {c, t_arrive};
            struct msg_in m = {r->body, r->body_len, 0, 0};

            if (r->lm && r->lm_len < sizeof(c->lm)) {
                memcpy(c->lm, r->lm, r->lm_len);
                c->lm[r->lm_len] = '\0';
            }
            if (r->etag && r->etag_len < sizeof(c->etag)) {
                memcpy(c->etag, r->etag, r->etag_len);
                c->etag[r->etag_len] = '\0';
            }
            on_message(&rc, &m);
            if (atomic_load(&G.phase) == PH_HOLD)
                INC(w, early);
        } else if (ok) {
            struct recv_ctx rc = {c, t_arrive};
            int ping, gap;
            int n =
                parse_recv(r->body, r->body_len, &ping, &gap, on_message, &rc);

            if (n < 0) {
                INC(w, err_io); /* not a node_chat reply */
                return 1;
            }
            if (ping)
                INC(w, pings);
            if (gap)
                INC(w, gaps);
            if (n > 0 && atomic_load(&G.phase) == PH_HOLD)
                INC(w, early);
        }
        return !ok;
    }
    DEC(w, inflight);
    h_add(&w->req, t_arrive - c->t_req);
    if (c->role == SENDER) {
        if (ok) {
            INC(w, send_ok);
            accept_msgno(c->msgno);
        } else {
            INC(w, send_fail);
        }
    } else if (ok) {
        INC(w, get_ok);
    }
    return !ok;
}

/* What a connection does once it is free: readers poll again, senders and
 * getters go on while the main thread says so. */
static void
conn_next(struct conn *c)
{
    int phase = atomic_load(&G.phase);

    c->state = READY;
    if (phase == PH_EXIT)
        return;
    if (c->role == SENDER && phase == PH_SEND && opt.send_rate > 0) {
        /* paced: each sender keeps its own schedule, so that all of them
         * together send opt.send_rate messages a second */
        int64_t now = mono_us(),
                step = (int64_t)(G.senders * 1e6 / opt.send_rate);

        if (!c->next_send && G.nrooms)
            /* rooms: the senders' schedules spread over one step */
            c->next_send = now + rand_r(&c->w->seed) % (step + 1);
        else if (!c->next_send || c->next_send < now - step)
            c->next_send = now; /* first send, or fell behind */
        if (c->next_send > now + 500) {
            wake_at(c, (c->next_send + 999) / 1000);
            return;
        }
        c->next_send += step;
    }
    if (c->role == READER || phase == PH_SEND)
        conn_request(c);
}

/* One event of a stream. */
static void
on_event(void *ctx, const struct sse_event *ev)
{
    struct recv_ctx *rc = ctx;
    struct worker *w = rc->c->w;
    struct msg_in m = {ev->data, ev->data_len, 0, 0};

    if (strcmp(ev->type, "gap") == 0) {
        INC(w, gaps); /* pgchat: the newest 1000 follow */
        return;
    }
    if (strcmp(ev->type, "message") != 0)
        return;
    INC(w, responses);
    if (opt.proto != P_NCHAN &&
        parse_message(ev->data, ev->data + ev->data_len, &m) < 0) {
        INC(w, err_io); /* not a message of /recv's */
        return;
    }
    on_message(rc, &m);
    if (atomic_load(&G.phase) == PH_HOLD)
        INC(w, early);
}

/* The server ended a stream cleanly: EventSource opens it again, from its
 * last event's id. */
static void
stream_end(struct conn *c)
{
    INC(c->w, reconnects);
    conn_close(c, 0);
    enqueue_open(c);
}

/* A reader's stream: the response's headers, then its body as it comes,
 * never kept in c->rbuf beyond the read that brought it. A status other
 * than 200 is read whole, as any reply, and tried again later. */
static void
stream_read(struct conn *c)
{
    for (;;) {
        struct recv_ctx rc = {c, 0};
        struct resp r;
        size_t skip = 0; /* the headers, in the read that ends them */
        ssize_t n;
        int done;

        if (c->rcap - c->rlen < 4096) {
            c->rcap = c->rcap ? c->rcap * 2 : 16384;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            conn_fail(c, F_IO);
            return;
        }
        if (n == 0) {
            /* the end of a body without framing; anything else was cut */
            if (c->streaming && !c->sse->chunked)
                stream_end(c);
            else
                conn_fail(c, F_IO);
            return;
        }
        c->rlen += (size_t)n;
        rc.t_arrive = now_us();
        c->deadline = mono_ms() + RECV_TIMEOUT_MS;
        if (!c->streaming) {
            long head = http_head(c->rbuf, c->rlen, &r);

            if (head < 0 || c->state != WAITING) {
                conn_fail(c, F_IO);
                return;
            }
            if (head == 0)
                continue;
            if (r.status != 200) {
                long used = http_parse(c->rbuf, c->rlen, 0, &r);

                if (used < 0) {
                    conn_fail(c, F_IO);
                    return;
                }
                if (used == 0)
                    continue;
                on_response(c, &r, rc.t_arrive);
                conn_close(c, 0);
                retry_later(c);
                return;
            }
            c->streaming = 1;
            set_parked(c, 1);
            sse_restart(c->sse, r.chunked);
            skip = (size_t)head;
        }
        done = sse_feed(c->sse, c->rbuf + skip, c->rlen - skip, on_event, &rc);
        c->rlen = 0;
        if (c->sse->comments != c->comments) {
            /* keep-alives (pgchat's ": ping"; nchan's ": hi" and the
             * comment its timeout ends a stream with) */
            atomic_fetch_add_explicit(&c->w->st.pings,
                                      c->sse->comments - c->comments,
                                      memory_order_relaxed);
            c->comments = c->sse->comments;
        }
        if (done < 0) {
            conn_fail(c, F_IO);
            return;
        }
        if (done > 0) {
            stream_end(c);
            return;
        }
    }
}

static void
conn_read(struct conn *c)
{
    int eof = 0;

    if (c->sse) {
        stream_read(c);
        return;
    }

    for (;;) {
        ssize_t n;
        int64_t t;
        struct resp r;
        long used;

        if (c->rcap - c->rlen < 4096) {
            c->rcap = c->rcap ? c->rcap * 2 : 16384;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            conn_fail(c, F_IO);
            return;
        }
        if (n == 0)
            eof = 1;
        c->rlen += (size_t)n;
        t = now_us();
        used = c->rlen ? http_parse(c->rbuf, c->rlen, eof, &r) : 0;
        if (used < 0 || (used > 0 && c->state != WAITING)) {
            conn_fail(c, F_IO);
            return;
        }
        if (used > 0) {
            int slow = on_response(c, &r, t);

            c->state = READY;
            memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
            c->rlen -= (size_t)used;
            if (r.close || eof) {
                /* keepalive_requests and the like: the server ends the
                 * connection cleanly; a new one carries on. */
                INC(c->w, reconnects);
                conn_close(c, 0);
                if (slow)
                    retry_later(c);
                else
                    enqueue_open(c);
                return;
            }
            if (slow)
                retry_later(c);
            else
                conn_next(c);
            if (c->fd < 0)
                return; /* the next request failed */
            continue;
        }
        if (eof) {
            if (c->state == WAITING || c->state == WRITING) {
                conn_fail(c, F_IO);
            } else {
                /* an idle keep-alive connection closed by the server */
                INC(c->w, reconnects);
                conn_close(c, 0);
                if (!c->in_retry) /* else the retry reconnects */
                    enqueue_open(c);
            }
            return;
        }
    }
}

static void
conn_event(struct conn *c, uint32_t events)
{
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        c->w->connecting--;
        c->state = READY;
        if (err) {
            conn_fail(c, F_CONNECT);
            return;
        }
        epoll_set(c, 0);
        if (!c->was_ready && c->role != READER) {
            c->was_ready = 1;
            INC(c->w, senders_ready);
        }
        conn_next(c);
        return;
    }
    if ((events & EPOLLOUT) && c->state == WRITING)
        conn_flush(c);
    if (c->fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        conn_read(c);
}

/* Connects queued clients, at most opt.max_connecting at once and, with
 * -r, at most opt.ramp a second, so that the server sees a ramp and not a
 * SYN flood. */
static void
open_some(struct worker *w)
{
    long allowed = -1;

    if (opt.ramp > 0)
        allowed = (long)((mono_us() - w->t_start) / 1e6 * opt.ramp / nworkers) +
                  1 - w->opened;
    while (w->q_len > 0 && w->connecting < opt.max_connecting / nworkers + 1 &&
           allowed != 0) {
        struct conn *c = w->openq[w->q_head];

        w->q_head = (w->q_head + 1) % w->nconns;
        w->q_len--;
        if (conn_open(c) < 0) {
            INC(w, err_connect);
            retry_later(c);
        }
        if (allowed > 0)
            allowed--;
    }
}

static void
run_retries(struct worker *w)
{
    int64_t now = mono_ms();

    for (size_t i = 0; i < w->nretry;) {
        struct conn *c = w->retry[i];

        if (c->retry_at > now) {
            i++;
            continue;
        }
        w->retry[i] = w->retry[--w->nretry];
        c->in_retry = 0;
        if (c->fd < 0)
            enqueue_open(c);
        else
            conn_next(c);
    }
}

static void
check_timeouts(struct worker *w)
{
    int64_t now = mono_ms();

    for (size_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];

        if (c->fd >= 0 && c->state != READY && c->deadline < now)
            conn_fail(c, F_TIMEOUT);
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event ev[EVENTS];
    int last = -1;
    int64_t next_scan = 0;

    w->t_start = mono_us();
    for (size_t i = 0; i < w->nconns; i++)
        enqueue_open(&w->conns[i]);
    for (;;) {
        int phase = atomic_load(&G.phase), n;

        if (phase == PH_EXIT)
            break;
        if (phase != last && phase == PH_SEND) {
            for (size_t i = 0; i < w->nconns; i++)
                if (w->conns[i].state == READY && w->conns[i].fd >= 0 &&
                    !w->conns[i].in_retry)
                    conn_next(&w->conns[i]);
        }
        last = phase;
        open_some(w);
        if (w->nretry)
            run_retries(w);
        if (mono_ms() >= next_scan) {
            check_timeouts(w);
            next_scan = mono_ms() + 1000;
        }
        n = epoll_wait(w->epfd, ev, EVENTS, 5);
        for (int i = 0; i < n; i++)
            conn_event(ev[i].data.ptr, ev[i].events);
    }
    for (size_t i = 0; i < w->nconns; i++) {
        w->conns[i].last = w->conns[i].state;
        conn_close(&w->conns[i], 1);
    }
    return NULL;
}

/* Creates the clients: readers first, then senders (one per session) or
 * getters, dealt round-robin to the threads. */
static void
workers_start(size_t readers, size_t senders, const struct session *sess,
              size_t getters, int64_t since)
{
    size_t total = readers + senders + getters;

    G.senders = senders;
    nworkers = opt.threads;
    workers = xcalloc((size_t)nworkers, sizeof(*workers));
    for (int t = 0; t < nworkers; t++) {
        struct worker *w = &workers[t];
        size_t n =
            total / (size_t)nworkers + ((size_t)t < total % (size_t)nworkers);

        w->conns = xcalloc(n, sizeof(struct conn));
        w->openq = xcalloc(n, sizeof(struct conn *));
        w->retry = xcalloc(n, sizeof(struct conn *));
        w->seed = (unsigned)getpid() * 2654435761u + (unsigned)t;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0)
            die("epoll_create1: %s", strerror(errno));
    }
    for (size_t i = 0; i < total; i++) {
        struct worker *w = &workers[i % (size_t)nworkers];
        struct conn *c = &w->conns[w->nconns++];

        c->fd = -1;
        c->w = w;
        c->since = since;
        c->room = -1;
        if (i < readers) {
            c->role = READER;
            if (G.nrooms)
                c->room = (int)(i % G.nrooms);
            if (G.room_since)
                c->since = G.room_since[c->room];
            if (opt.stream) {
                c->sse = xcalloc(1, sizeof(*c->sse));
                sse_init(c->sse, 0);
            }
        } else if (i < readers + senders) {
            c->role = SENDER;
            c->sess = &sess[i - readers];
        } else {
            c->role = GETTER;
        }
    }
    for (int t = 0; t < nworkers; t++)
        if (pthread_create(&workers[t].thread, NULL, worker_main,
                           &workers[t]) != 0)
            die("pthread_create failed");
}

static void
workers_stop(void)
{
    atomic_store(&G.phase, PH_EXIT);
    for (int t = 0; t < nworkers; t++)
        pthread_join(workers[t].thread, NULL);
}

/* ---- the main thread's own client (blocking) ------------------------- */

struct bconn {
    int fd;
    char *buf;
    size_t len, cap;
    char *body;
    size_t body_len;
    char cookie[256]; /* the last reply's Set-Cookie name=value, or "" */
};

static int
bconn_connect(struct bconn *b)
{
    struct timeval tv = {40, 0};
    int one = 1;

    b->fd = socket(target.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b->fd < 0)
        return -1;
    setsockopt(b->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(b->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(b->fd, (struct sockaddr *)&target.addr, target.addrlen) < 0) {
        close(b->fd);
        b->fd = -1;
        return -1;
    }
    return 0;
}

static void
bconn_close(struct bconn *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

/* Sends method prefix+path (with body, for a POST). Returns the status
 * (body in b->body) or -1. *t_write: now_us() just before the request was
 * written. */
static int
breq(struct bconn *b, const char *method, const char *path, const char *body,
     int64_t *t_write)
{
    char req[1024];
    int n = body ? snprintf(req, sizeof(req),
                            "%s %s%s HTTP/1.1\r\nHost: %s\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            method, target.prefix, path, target.hostport,
                            strlen(body), body)
                 : snprintf(req, sizeof(req),
                            "%s %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", method,
                            target.prefix, path, target.hostport);

    b->cookie[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = b->fd >= 0;
        size_t off = 0;

        if (b->fd < 0 && bconn_connect(b) < 0)
            return -1;
        if (t_write)
            *t_write = now_us();
        while (off < (size_t)n) {
            ssize_t k = write(b->fd, req + off, (size_t)n - off);

            if (k <= 0)
                break;
            off += (size_t)k;
        }
        b->len = 0;
        for (;;) {
            struct resp r;
            long used;
            ssize_t k;

            if (b->cap - b->len < 4096) {
                b->cap = b->cap ? b->cap * 2 : 65536;
                b->buf = xrealloc(b->buf, b->cap);
            }
            /* one byte stays free for the NUL after the body */
            k = off == (size_t)n
                    ? read(b->fd, b->buf + b->len, b->cap - b->len - 1)
                    : -1;
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 || (k == 0 && b->len == 0)) {
                int closed = k == 0 || errno == EPIPE || errno == ECONNRESET;

                bconn_close(b);
                /* a kept-alive connection the server had just closed:
                 * nothing was received, so it is safe to ask again */
                if (reused && b->len == 0 && closed)
                    break;
                return -1;
            }
            b->len += (size_t)k;
            used = http_parse(b->buf, b->len, k == 0, &r);
            if (used < 0) {
                bconn_close(b);
                return -1;
            }
            if (used > 0) {
                b->body = r.body;
                b->body_len = r.body_len;
                if (r.cookie && r.cookie_len < sizeof(b->cookie)) {
                    memcpy(b->cookie, r.cookie, r.cookie_len);
                    b->cookie[r.cookie_len] = '\0';
                }
                b->body[b->body_len] = '\0';
                if (r.close)
                    bconn_close(b);
                return r.status;
            }
            if (k == 0) {
                bconn_close(b);
                return -1;
            }
        }
    }
    return -1;
}

static int
bget(struct bconn *b, const char *path, int64_t *t_write)
{
    return breq(b, "GET", path, NULL, t_write);
}

/* Sends message msgno (its text carries the time it is written) as s, in
 * s's room. Returns the status or -1; *t_write as breq's. */
static int
send_one(struct bconn *b, const struct session *s, uint64_t msgno,
         int64_t *t_write)
{
    char path[512], text[64];

    if (opt.proto == P_NCHAN) {
        snprintf(path, sizeof(path), "/pub/%s", s->room);
        snprintf(text, sizeof(text), "b:%" PRIu64 ":%" PRId64, msgno, now_us());
        return breq(b, "POST", path, text, t_write);
    }
    snprintf(path, sizeof(path),
             "/send?id=%s&room=%s&text=b%%3A%" PRIu64 "%%3A%" PRId64, s->id,
             s->room, msgno, now_us());
    return bget(b, path, t_write);
}

static int
join_session(struct bconn *b, const char *room, const char *nick,
             struct session *s)
{
    char path[512], id[128];
    int status;

    if (opt.proto == P_NCHAN) { /* nchan has no sessions */
        snprintf(s->nick, sizeof(s->nick), "%s", nick);
        snprintf(s->room, sizeof(s->room), "%s", room);
        s->id[0] = '\0';
        return 0;
    }
    snprintf(path, sizeof(path), "/join?nick=%s&room=%s", nick, room);
    status = bget(b, path, NULL);
    if (status != 200 ||
        json_string(b->body, b->body_len, "id", id, sizeof(id)) < 0) {
        note("cannot join as %s in %s: status %d %.200s", nick, room, status,
             status > 0 ? b->body : "");
        return -1;
    }
    snprintf(s->nick, sizeof(s->nick), "%s", nick);
    snprintf(s->room, sizeof(s->room), "%s", room);
    snprintf(s->cookie, sizeof(s->cookie), "%s", b->cookie);
    url_encode(id, s->id, sizeof(s->id));
    return 0;
}

static void
part_session(struct bconn *b, const struct session *s)
{
    char path[512];

    if (opt.proto == P_NCHAN)
        return;
    snprintf(path, sizeof(path), "/part?id=%s&room=%s", s->id, s->room);
    bget(b, path, NULL);
}

static void
max_ts(void *ctx, const struct msg_in *m)
{
    int64_t *since = ctx;

    if (m->has_ts && m->ts > *since)
        *since = m->ts;
}

/* The cursor after the newest message of the room, which must hold one
 * (a session was joined): readers starting there park at once. */
static int
room_cursor(struct bconn *b, const char *room, int64_t *since)
{
    *since = 0;
    if (opt.proto == P_NCHAN)
        return 0; /* readers start at the next message published */
    for (;;) {
        char path[256];
        int ping, gap, n;

        snprintf(path, sizeof(path), "/recv?since=%" PRId64 "&room=%s", *since,
                 room);
        if (bget(b, path, NULL) != 200)
            return -1;
        n = parse_recv(b->body, b->body_len, &ping, &gap, max_ts, since);
        if (n < 0)
            return -1;
        /* node_chat answers its whole backlog (200 at the most) at once */
        if (n < PAGE || opt.proto == P_NODECHAT)
            return 0;
    }
}

/* ---- the server, seen from outside: /proc and psql ------------------- */

struct procsum {
    long rss_kb, fds, fds_max;
    int nproc;
};

static long
count_fds(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    long n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (!d)
        return 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static long
rss_kb(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    long kb = 0;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Sums VmRSS and open descriptors over the processes named comm that
 * descend from root (opt.server: the bin/web that started the stack). */
static int
proc_scan(pid_t root, const char *comm, struct procsum *out)
{
    enum { MAXP = 8192 };
    static pid_t pid[MAXP], ppid[MAXP];
    static char mine[MAXP], named[MAXP];
    int n = 0, changed = 1;
    DIR *d = opendir("/proc");
    struct dirent *e;

    memset(out, 0, sizeof(*out));
    if (!d || root <= 0) {
        if (d)
            closedir(d);
        return -1;
    }
    while ((e = readdir(d)) && n < MAXP) {
        char path[300], buf[512], *rp;
        FILE *f;
        size_t len;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* pid (comm) state ppid ...; comm may hold spaces and parens */
        rp = strrchr(buf, ')');
        if (!rp || !strchr(buf, '('))
            continue;
        pid[n] = atoi(buf);
        ppid[n] = atoi(rp + 4);
        *rp = '\0';
        named[n] = strcmp(strchr(buf, '(') + 1, comm) == 0;
        mine[n] = pid[n] == root;
        n++;
    }
    closedir(d);
    while (changed) {
        changed = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; !mine[i] && j < n; j++)
                if (mine[j] && ppid[i] == pid[j])
                    mine[i] = changed = 1;
    }
    for (int i = 0; i < n; i++) {
        if (mine[i] && named[i]) {
            long fds = count_fds(pid[i]);

            out->rss_kb += rss_kb(pid[i]);
            out->fds += fds;
            if (fds > out->fds_max)
                out->fds_max = fds;
            out->nproc++;
        }
    }
    return 0;
}

/* Runs one query with psql; returns its single number, or -1. */
static long
psql_long(const char *sql)
{
    int fds[2], status;
    pid_t pid;
    char buf[64] = "";
    ssize_t n;

    if (!opt.db || pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("psql", "psql", "-X", "-q", "-tA", "-d", opt.db, "-c", sql,
               (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    n = pid > 0 ? read(fds[0], buf, sizeof(buf) - 1) : -1;
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (n <= 0 || pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

static long
pg_connections(void)
{
    return psql_long("SELECT count(*) FROM pg_stat_activity "
                     "WHERE application_name LIKE 'pgchat%'");
}

static long
db_messages(void)
{
    return psql_long("SELECT count(*) FROM messages");
}

/* ---- CPU per component (-C NAME:PID[:COMM]) ----------------------------
 * utime + stime from /proc/PID/stat of PID and its descendants (only those
 * named COMM, when given), in clock ticks. A process that ends between two
 * readings takes its time with it: the stacks here keep theirs. */

static void
cpu_ticks(long long *ticks)
{
    enum { MAXP = 16384 };
    static pid_t pid[MAXP], ppid[MAXP];
    static long long t[MAXP];
    static char comm[MAXP][32];
    static int mine[MAXP];
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;

    for (int k = 0; k < opt.ncpu; k++)
        ticks[k] = 0;
    if (!d)
        return;
    while ((e = readdir(d)) && n < MAXP) {
        char path[300], buf[1024], *rp, *lp;
        unsigned long long ut = 0, st = 0;
        FILE *f;
        size_t len;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        rp = strrchr(buf, ')');
        lp = strchr(buf, '(');
        if (!rp || !lp)
            continue;
        /* after "pid (comm) ": state ppid pgrp session tty tpgid flags
         * minflt cminflt majflt cmajflt utime stime */
        if (sscanf(rp + 2,
                   "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &ppid[n], &ut, &st) != 3)
            continue;
        pid[n] = atoi(buf);
        snprintf(comm[n], sizeof(comm[n]), "%.*s", (int)(rp - lp - 1), lp + 1);
        t[n] = (long long)(ut + st);
        n++;
    }
    closedir(d);
    for (int k = 0; k < opt.ncpu; k++) {
        int changed = 1;

        for (int i = 0; i < n; i++)
            mine[i] = pid[i] == opt.cpu[k].pid;
        while (changed) {
            changed = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; !mine[i] && j < n; j++)
                    if (mine[j] && ppid[i] == pid[j])
                        mine[i] = changed = 1;
        }
        for (int i = 0; i < n; i++)
            if (mine[i] &&
                (!opt.cpu[k].comm || strcmp(comm[i], opt.cpu[k].comm) == 0))
                ticks[k] += t[i];
    }
}

/* ---- the probe (-x CMD) -----------------------------------------------
 * "CMD begin" runs just before the measured window (the readers parked and
 * settled), "CMD end" just after it, each through sh -c and waited for,
 * outside the window's CPU figures. Every line "KEY NUMBER" that "CMD end"
 * prints (KEY of a-z, 0-9 and _) joins the result as "KEY": NUMBER: figures
 * of the server read over the window, such as bench/probe's from
 * pg_stat_statements and /metrics. */

static void emit_num(const char *key, double v);

static void
probe(const char *phase)
{
    char cmd[8192], line[256];
    FILE *f;
    int status;

    if (!opt.probe)
        return;
    snprintf(cmd, sizeof(cmd), "%s %s", opt.probe, phase);
    fflush(stdout);
    f = popen(cmd, "r");
    if (!f) {
        note("probe %s: %s", phase, strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char key[64];
        double v;
        int end = 0;

        if (strcmp(phase, "end") == 0 &&
            sscanf(line, "%63[a-z0-9_] %lf %n", key, &v, &end) == 2 &&
            line[end] == '\0')
            emit_num(key, v);
    }
    status = pclose(f);
    if (status != 0)
        note("probe %s: exit status %d", phase, status);
}

static struct {
    long long ticks[MAX_CPU];
    double self, wall;
} cpu_start;

static void
cpu_begin(void)
{
    probe("begin");
    cpu_ticks(cpu_start.ticks);
    cpu_start.self = cpu_seconds();
    cpu_start.wall = mono_us() / 1e6;
}

/* Emits cpu_NAME_pct (100: one core) since cpu_begin(), and the load
 * generator's own as cpu_load_pct; then the probe's figures. */

static void
cpu_end(void)
{
    long long ticks[MAX_CPU];
    double wall = mono_us() / 1e6 - cpu_start.wall,
           hz = (double)sysconf(_SC_CLK_TCK);
    char key[80];

    cpu_ticks(ticks);
    for (int k = 0; k < opt.ncpu; k++) {
        snprintf(key, sizeof(key), "cpu_%s_pct", opt.cpu[k].name);
        emit_num(key,
                 100 * (double)(ticks[k] - cpu_start.ticks[k]) / hz / wall);
    }
    emit_num("cpu_load_pct", 100 * (cpu_seconds() - cpu_start.self) / wall);
    emit_num("cpu_window_s", wall);
    probe("end");
}

/* ---- output ---------------------------------------------------------- */

static char out[16384];
static size_t outlen;

__attribute__((format(printf, 1, 2))) static void
emit(const char *fmt, ...)
{
    va_list ap;

    if (outlen >= sizeof(out))
        return;
    va_start(ap, fmt);
    outlen += (size_t)vsnprintf(out + outlen, sizeof(out) - outlen, fmt, ap);
    va_end(ap);
    if (outlen > sizeof(out))
        outlen = sizeof(out);
}

static void
emit_int(const char *key, long long v)
{
    emit(",\"%s\":%lld", key, v);
}

static void
emit_num(const char *key, double v)
{
    if (v < 0)
        emit(",\"%s\":null", key);
    else
        emit(",\"%s\":%.3f", key, v);
}

static void
emit_latency(const char *prefix, const struct hist *h)
{
    char key[64];

    snprintf(key, sizeof(key), "%s_p50_ms", prefix);
    emit_num(key, h_ms(h, 0.50));
    snprintf(key, sizeof(key), "%s_p99_ms", prefix);
    emit_num(key, h_ms(h, 0.99));
    snprintf(key, sizeof(key), "%s_max_ms", prefix);
    emit_num(key, h->n ? h->max / 1000.0 : -1);
    snprintf(key, sizeof(key), "%s_samples", prefix);
    emit_int(key, (long long)h->n);
}

/* Errors of every kind, and the HTTP statuses other than 200. */
static void
emit_errors(void)
{
    long status[600] = {0};
    int first = 1;

    emit_int("err_connect", SUM(err_connect));
    emit_int("err_io", SUM(err_io));
    emit_int("err_timeout", SUM(err_timeout));
    emit_int("err_http", SUM(err_http));
    emit_int("errors",
             SUM(err_connect) + SUM(err_io) + SUM(err_timeout) + SUM(err_http));
    emit_int("reconnects", SUM(reconnects));
    for (int t = 0; t < nworkers; t++)
        for (int i = 0; i < 600; i++)
            status[i] += workers[t].status[i];
    emit(",\"statuses\":{");
    for (int i = 0; i < 600; i++) {
        if (status[i]) {
            emit("%s\"%d\":%ld", first ? "" : ",", i, status[i]);
            first = 0;
        }
    }
    emit("}");
}

static void
merged(struct hist *lat, struct hist *req)
{
    memset(lat, 0, sizeof(*lat));
    memset(req, 0, sizeof(*req));
    for (int t = 0; t < nworkers; t++) {
        h_merge(lat, &workers[t].lat);
        h_merge(req, &workers[t].req);
    }
}

/* With -H: the delivery latency's distribution, for the plot: one line
 * per occupied bucket, "ms fraction-at-or-below". */
static void
write_hist(const struct hist *h)
{
    FILE *f;
    uint64_t seen = 0, last = 0;

    if (!opt.hist_file || !h->n)
        return;
    f = fopen(opt.hist_file, "w");
    if (!f) {
        note("cannot write %s: %s", opt.hist_file, strerror(errno));
        return;
    }
    /* at most about 300 points: a new one each 1/300 of the samples */
    for (size_t i = 0; i < H_BUCKETS; i++) {
        uint64_t step = h->n / 300 + 1;

        if (!h->count[i])
            continue;
        seen += h->count[i];
        if (seen - last < step && seen < h->n && last)
            continue;
        last = seen;
        fprintf(f, "%.3f %.6f\n",
                (h_value(i) > h->max ? h->max : h_value(i)) / 1000.0,
                (double)seen / (double)h->n);
    }
    fclose(f);
}

/* ---- the scenarios --------------------------------------------------- */

static struct procsum rsp0, ngx0; /* before any reader */

static void
measure_before(void)
{
    proc_scan(opt.server, "pgchat", &rsp0);
    proc_scan(opt.server, "nginx", &ngx0);
}

/* The hold figures: how many readers are parked, and what they cost. */
static void
measure_hold(size_t n, double connect_s)
{
    struct procsum rsp, ngx;
    long parked = SUM(readers_waiting);

    proc_scan(opt.server, "pgchat", &rsp);
    proc_scan(opt.server, "nginx", &ngx);
    note("parked %ld of %zu; responder RSS %ld kB, %ld fds", parked, n,
         rsp.rss_kb, rsp.fds);
    emit_num("connect_s", connect_s);
    emit_int("parked", parked);
    emit_int("hold_errors",
             SUM(err_connect) + SUM(err_io) + SUM(err_timeout) + SUM(err_http));
    emit_int("early_replies", SUM(early));
    emit_int("rss_before_kb", rsp0.rss_kb);
    emit_int("rss_kb", rsp.rss_kb);
    emit_num("rss_per_client_kb",
             n ? (double)(rsp.rss_kb - rsp0.rss_kb) / (double)n : 0);
    emit_int("responder_procs", rsp.nproc);
    emit_int("fds", rsp.fds);
    emit_int("fds_before", rsp0.fds);
    emit_int("nginx_rss_kb", ngx.rss_kb);
    emit_int("nginx_fds", ngx.fds);
    emit_int("nginx_fds_max", ngx.fds_max);
    emit_int("pg_conns", pg_connections());
}

/* Waits until all n readers are parked (a /recv outstanding, or a stream
 * open), or until it stops progressing. Returns the seconds it took. */
static double
wait_parked(size_t n)
{
    int64_t t0 = mono_us(), last_change = t0, next_note = t0 + 1000000;
    long last = -1;

    for (;;) {
        long k = SUM(readers_waiting);
        int64_t now = mono_us();

        if (k >= (long)n)
            break;
        if (k != last) {
            last = k;
            last_change = now;
        }
        /* stalled, or still short after a minute (a server that drops
         * connections as fast as it takes new ones) */
        if (now - last_change > 10000000 || now - t0 > 60000000) {
            note("only %ld of %zu readers parked", k, n);
            break;
        }
        if (now >= next_note) {
            note("%ld of %zu readers waiting", k, n);
            next_note = now + 1000000;
        }
        sleep_us(2000);
    }
    return (mono_us() - t0) / 1e6;
}

/* Waits until the readers hold want unique deliveries: at most seconds,
 * and no longer than opt.stall without a new one (a reader the server made
 * skip messages, "gap", will never get them). */
static void
wait_delivered(long want, double seconds)
{
    int64_t now = mono_us(), until = now + (int64_t)(seconds * 1e6);
    int64_t last_change = now;
    long got, last = -1;

    while ((got = SUM(uniq)) < want && (now = mono_us()) < until &&
           now - last_change < (int64_t)(opt.stall * 1e6)) {
        if (got != last) {
            last = got;
            last_change = now;
        }
        sleep_us(2000);
    }
}

/* Waits until no send or get is in flight, at most seconds. */
static void
wait_idle(double seconds)
{
    int64_t until = mono_us() + (int64_t)(seconds * 1e6);

    while (SUM(inflight) > 0 && mono_us() < until)
        sleep_us(1000);
}

/* After the run: waits until the responder has let go of the readers'
 * descriptors, so the next run starts from a quiet server. */
static void
wait_quiet(void)
{
    int64_t until = mono_us() + 15000000;
    struct procsum now;

    if (opt.server <= 0)
        return;
    do {
        sleep_us(100000);
        proc_scan(opt.server, "pgchat", &now);
    } while (now.fds > rsp0.fds + 16 && mono_us() < until);
}

/* Delivered, missing and unexpected messages over all readers. */
static long *room_accepted; /* rooms mode: accepted sends per room */

static void
emit_delivery(size_t readers, long accepted)
{
    long long delivered = 0, extra = 0, incomplete = 0, stuck_waiting = 0;
    long long expected = 0;
    long long behind = 0;
    int64_t stuck_since_min = 0, stuck_since_max = 0, stuck_oldest_us = 0;
    int64_t last_ts = 0;

    /* The newest timestamp any reader saw: committed, so a reader parked
     * with an older cursor is owed a reply the server did not send. */
    for (int t = 0; t < nworkers; t++)
        for (size_t i = 0; i < workers[t].nconns; i++)
            if (workers[t].conns[i].role == READER &&
                workers[t].conns[i].since > last_ts)
                last_ts = workers[t].conns[i].since;
    for (int t = 0; t < nworkers; t++) {
        for (size_t i = 0; i < workers[t].nconns; i++) {
            struct conn *c = &workers[t].conns[i];
            long got = 0;

            if (c->role != READER)
                continue;
            long want = G.nrooms ? room_accepted[c->room] : accepted;

            for (size_t wd = 0; wd < c->seen_words; wd++) {
                uint64_t bits = c->seen[wd];

                while (bits) {
                    int b = __builtin_ctzll(bits);
                    uint64_t msgno = wd * 64 + (uint64_t)b;

                    bits &= bits - 1;
                    if (is_accepted(msgno) &&
                        (!G.nrooms || G.msg_room[msgno] == (uint32_t)c->room))
                        got++;
                    else
                        extra++;
                }
            }
            delivered += got;
            expected += want;
            if (got < want) {
                incomplete++;
                /* where a reader that misses messages stands: waiting on
                 * the server (a wake-up that did not come), or not */
                if (c->last == WAITING)
                    stuck_waiting++;
                if (c->last == WAITING && c->since < last_ts)
                    behind++;
                if (!stuck_since_min || c->since < stuck_since_min)
                    stuck_since_min = c->since;
                if (c->since > stuck_since_max)
                    stuck_since_max = c->since;
                if (c->last == WAITING && now_us() - c->t_req > stuck_oldest_us)
                    stuck_oldest_us = now_us() - c->t_req;
            }
        }
    }
    (void)readers;
    emit_int("expected", expected);
    emit_int("delivered", delivered);
    emit_int("missing", expected - delivered);
    emit_int("duplicates", SUM(dups));
    emit_int("unexpected", extra); /* ours, but not answered 200 */
    emit_int("readers_incomplete", incomplete);
    emit_int("incomplete_waiting", stuck_waiting);
    emit_int("incomplete_parked_behind", behind);
    emit_int("incomplete_since_min", stuck_since_min);
    emit_int("incomplete_since_max", stuck_since_max);
    emit_num("incomplete_oldest_s", stuck_oldest_us / 1e6);
    emit_int("last_ts", last_ts);
    emit_int("gaps", SUM(gaps));
    emit_int("pings", SUM(pings));
}

/* hold (m == 0) and fanout. */
static int
mode_fanout(size_t n, size_t m)
{
    struct bconn b = {.fd = -1};
    struct session boot;
    struct hist send_lat, lat, req;
    char nick[32];
    int64_t since, t0;
    double connect_s, cpu0 = cpu_seconds(), wall0 = mono_us() / 1e6;
    long accepted = 0, send_errors = 0;

    memset(&send_lat, 0, sizeof(send_lat));
    snprintf(nick, sizeof(nick), "boot%d", (int)getpid());
    if (join_session(&b, G.room, nick, &boot) < 0 ||
        room_cursor(&b, G.room, &since) < 0)
        return -1;
    if (opt.pass_id)
        snprintf(G.reader_id, sizeof(G.reader_id), "%s", boot.id);
    snprintf(G.reader_cookie, sizeof(G.reader_cookie), "%s", boot.cookie);
    measure_before();
    workers_start(n, 0, NULL, 0, since);
    connect_s = wait_parked(n);
    sleep_us((int64_t)(opt.settle * 1e6));
    measure_hold(n, connect_s);

    atomic_store(&G.phase, PH_SEND);
    cpu_begin();
    t0 = mono_us();
    for (size_t k = 0; k < m; k++) {
        uint64_t msgno = atomic_fetch_add(&G.next_msgno, 1);
        int64_t t_write = 0;
        int status;

        sleep_us(t0 + (int64_t)k * opt.interval_ms * 1000 - mono_us());
        /* the text carries the time the request is written: breq takes
         * it just before, and the text is built from the same clock */
        status = send_one(&b, &boot, msgno, &t_write);
        if (status > 0)
            h_add(&send_lat, now_us() - t_write);
        if (ok_status(status)) {
            accept_msgno(msgno);
            accepted++;
        } else {
            send_errors++;
            note("send %" PRIu64 ": status %d", msgno, status);
        }
    }
    if (m > 0) {
        wait_delivered((long)n * accepted, opt.drain);
        note("fanout: %ld of %ld delivered", SUM(uniq), (long)n * accepted);
    }
    cpu_end();
    workers_stop();
    merged(&lat, &req);
    write_hist(&lat);
    emit_int("sent", (long long)m);
    emit_int("accepted", accepted);
    emit_int("send_errors", send_errors);
    emit_delivery(n, accepted);
    emit_latency("lat", &lat);
    emit_latency("send", &send_lat);
    emit_errors();
    emit_num("load_cpu_pct",
             100 * (cpu_seconds() - cpu0) / (mono_us() / 1e6 - wall0));
    part_session(&b, &boot);
    bconn_close(&b);
    wait_quiet();
    return 0;
}

/* Joins c sessions, in opt.rooms rooms named ROOM, ROOM-1, ROOM-2 ... */
static struct session *
join_senders(struct bconn *b, size_t c)
{
    struct session *s = xcalloc(c, sizeof(*s));

    for (size_t i = 0; i < c; i++) {
        char nick[32], room[100];
        size_t r = i % (size_t)opt.rooms;

        snprintf(nick, sizeof(nick), "s%dx%zu", (int)getpid(), i);
        if (r == 0)
            snprintf(room, sizeof(room), "%s", G.room);
        else
            snprintf(room, sizeof(room), "%s-%zu", G.room, r);
        if (join_session(b, room, nick, &s[i]) < 0)
            return NULL;
    }
    return s;
}

static void
wait_senders_ready(size_t c)
{
    int64_t until = mono_us() + 10000000;

    while (SUM(senders_ready) < (long)c && mono_us() < until)
        sleep_us(1000);
}

/* Sends (or gets) for the given seconds from the clients already started;
 * returns the seconds from the start until the last reply. */
static double
send_for(double seconds)
{
    int64_t t0 = mono_us();

    atomic_store(&G.phase, PH_SEND);
    sleep_us((int64_t)(seconds * 1e6));
    atomic_store(&G.phase, PH_STOP);
    wait_idle(30);
    return (mono_us() - t0) / 1e6;
}

static int
mode_send(size_t c, double seconds)
{
    struct bconn b = {.fd = -1};
    struct session *sess = join_senders(&b, c);
    struct hist lat, req;
    long before, after, ok;
    double elapsed, cpu0 = cpu_seconds();

    if (!sess)
        return -1;
    before = db_messages();
    workers_start(0, c, sess, 0, 0);
    wait_senders_ready(c);
    cpu_begin();
    elapsed = send_for(seconds);
    cpu_end();
    after = db_messages();
    ok = SUM(send_ok);
    note("send: %ld accepted in %.1f s, table grew by %ld", ok, elapsed,
         after - before);
    workers_stop();
    merged(&lat, &req);
    emit_int("senders", (long long)c);
    emit_num("send_rate_limit", opt.send_rate);
    emit_int("rooms", opt.rooms);
    emit_num("seconds", elapsed);
    emit_int("accepted", ok);
    emit_int("send_failed", SUM(send_fail));
    emit_num("rate", ok / elapsed);
    emit_int("db_before", before);
    emit_int("db_after", after);
    emit_int("db_delta", before >= 0 && after >= 0 ? after - before : -1);
    emit("%s", before >= 0 && after >= 0
                   ? (after - before == ok ? ",\"db_check\":true"
                                           : ",\"db_check\":false")
                   : ",\"db_check\":null");
    emit_latency("lat", &req);
    emit_errors();
    emit_num("load_cpu_pct", 100 * (cpu_seconds() - cpu0) / elapsed);
    for (size_t i = 0; i < c; i++)
        part_session(&b, &sess[i]);
    bconn_close(&b);
    return 0;
}

static int
mode_mixed(size_t n, size_t c, double seconds)
{
    struct bconn b = {.fd = -1};
    struct session *sess;
    struct hist lat, req;
    int64_t since;
    long ok;
    double connect_s, elapsed, cpu0 = cpu_seconds(), wall0 = mono_us() / 1e6;

    opt.rooms = 1; /* every reader must see every message */
    sess = join_senders(&b, c);
    if (!sess || room_cursor(&b, G.room, &since) < 0)
        return -1;
    if (opt.pass_id)
        snprintf(G.reader_id, sizeof(G.reader_id), "%s", sess[0].id);
    if (c > 0)
        snprintf(G.reader_cookie, sizeof(G.reader_cookie), "%s",
                 sess[0].cookie);
    measure_before();
    workers_start(n, c, sess, 0, since);
    connect_s = wait_parked(n);
    wait_senders_ready(c);
    sleep_us((int64_t)(opt.settle * 1e6));
    measure_hold(n, connect_s);
    cpu_begin();
    elapsed = send_for(seconds);
    ok = SUM(send_ok);
    wait_delivered((long)n * ok, opt.drain);
    note("mixed: %ld sends in %.1f s, %ld of %ld delivered", ok, elapsed,
         SUM(uniq), (long)n * ok);
    cpu_end();
    workers_stop();
    merged(&lat, &req);
    write_hist(&lat);
    emit_int("senders", (long long)c);
    emit_num("send_rate_limit", opt.send_rate);
    emit_num("seconds", elapsed);
    emit_int("accepted", ok);
    emit_int("send_failed", SUM(send_fail));
    emit_num("rate", ok / elapsed);
    emit_delivery(n, ok);
    emit_latency("lat", &lat);
    emit_latency("send", &req);
    emit_errors();
    emit_num("load_cpu_pct",
             100 * (cpu_seconds() - cpu0) / (mono_us() / 1e6 - wall0));
    for (size_t i = 0; i < c; i++)
        part_session(&b, &sess[i]);
    bconn_close(&b);
    wait_quiet();
    return 0;
}

/* n readers in r rooms (reader i in room i % r), while senders send
 * opt.send_rate messages a second in all (default 500), each to a random
 * room: every room gets one every r / rate seconds on average. */
static int
mode_rooms(size_t n, size_t r, double seconds)
{
    struct bconn b = {.fd = -1};
    struct session *sess = xcalloc(r, sizeof(*sess));
    /* enough senders that the offered rate holds while replies slow
     * down: each waits for its reply before the next send */
    size_t senders = 128;
    struct hist lat, req;
    long ok, ok0, want = 0, pg_before, pg_during;
    double connect_s, elapsed;
    int64_t since;

    if (opt.proto == P_NODECHAT)
        die("rooms: node_chat has one room");
    if (r < 1 || n < r)
        die("rooms: need at least one reader in each room");
    if (opt.send_rate <= 0)
        opt.send_rate = 500;
    G.nrooms = r;
    G.room_names = xcalloc(r, sizeof(*G.room_names));
    G.msg_room = xcalloc(MAX_MSGS, sizeof(*G.msg_room));
    room_accepted = xcalloc(r, sizeof(*room_accepted));
    for (size_t i = 0; i < r; i++) {
        char nick[40];

        snprintf(G.room_names[i], sizeof(G.room_names[i]), "%s-%zu", G.room, i);
        snprintf(nick, sizeof(nick), "s%dr%zu", (int)getpid(), i);
        if (join_session(&b, G.room_names[i], nick, &sess[i]) < 0)
            return -1;
    }
    G.room_sess = sess;
    /* pgchat: a cursor of now parks every reader (every message of ours is
     * stored later, with a greater timestamp); with -K each room's head
     * instead, read as a page load reads it (/recv?since=0 to the end):
     * the cursor a client holds once it has read the room */
    since = now_us() / 1000;
    if (opt.room_heads && opt.proto == P_PGCHAT) {
        G.room_since = xcalloc(r, sizeof(*G.room_since));
        for (size_t i = 0; i < r; i++)
            if (room_cursor(&b, G.room_names[i], &G.room_since[i]) < 0)
                return -1;
    }
    measure_before();
    workers_start(n, senders, sess, 0, since);
    connect_s = wait_parked(n);
    wait_senders_ready(senders);
    sleep_us((int64_t)(opt.settle * 1e6));
    emit_num("connect_s", connect_s);
    emit_int("parked", SUM(readers_waiting));
    pg_before = pg_connections();
    /* -A: the same sends first, outside the window: every worker has
     * learnt the rooms its readers come to by then. Their messages are
     * checked for delivery like the others, but in no other figure. */
    if (opt.warmup > 0) {
        atomic_store(&G.phase, PH_SEND);
        sleep_us((int64_t)(opt.warmup * 1e6));
    }
    cpu_begin();
    ok0 = SUM(send_ok);
    atomic_store(&G.lat_from, atomic_load(&G.next_msgno));
    elapsed = send_for(seconds);
    pg_during = pg_connections();
    ok = SUM(send_ok) - ok0;
    for (uint64_t m = 0; m < atomic_load(&G.next_msgno) && m < MAX_MSGS; m++)
        if (is_accepted(m))
            room_accepted[G.msg_room[m]]++;
    for (size_t i = 0; i < n; i++)
        want += room_accepted[i % r];
    wait_delivered(want, opt.drain);
    note("rooms: %ld sends in %.1f s, %ld of %ld delivered", ok, elapsed,
         SUM(uniq), want);
    cpu_end();
    workers_stop();
    merged(&lat, &req);
    write_hist(&lat);
    emit_int("n", (long long)n);
    emit_int("rooms", (long long)r);
    emit_int("senders", (long long)senders);
    emit_int("room_heads", opt.room_heads);
    emit_num("warmup_s", opt.warmup);
    emit_num("send_rate_limit", opt.send_rate);
    emit_num("seconds", elapsed);
    emit_int("accepted", ok);
    emit_int("warmup_accepted", ok0);
    emit_int("send_failed", SUM(send_fail));
    emit_num("rate", ok / elapsed);
    emit_int("pg_conns", pg_during > pg_before ? pg_during : pg_before);
    emit_delivery(n, ok);
    emit_latency("lat", &lat);
    emit_latency("send", &req);
    emit_errors();
    for (size_t i = 0; i < r; i++)
        part_session(&b, &sess[i]);
    bconn_close(&b);
    wait_quiet();
    return 0;
}

static int
mode_get(size_t c, double seconds, const char *path)
{
    struct hist lat, req;
    double elapsed, cpu0 = cpu_seconds();
    long ok;

    G.get_path = path;
    workers_start(0, 0, NULL, c, 0);
    wait_senders_ready(c);
    cpu_begin();
    elapsed = send_for(seconds);
    cpu_end();
    workers_stop();
    ok = SUM(get_ok);
    merged(&lat, &req);
    emit_int("conns", (long long)c);
    emit_num("seconds", elapsed);
    emit_int("ok", ok);
    emit_num("rate", ok / elapsed);
    emit_latency("lat", &req);
    emit_errors();
    emit_num("load_cpu_pct", 100 * (cpu_seconds() - cpu0) / elapsed);
    return 0;
}

/* ---- main ------------------------------------------------------------ */

static void
usage(void)
{
    fputs("usage: load [options] hold N\n"
          "       load [options] fanout N M\n"
          "       load [options] send C SECONDS\n"
          "       load [options] mixed N C SECONDS\n"
          "       load [options] rooms N R SECONDS\n"
          "       load [options] get C SECONDS PATH\n"
          "options:\n"
          "  -P PROTO    pgchat (default), nodechat or nchan\n"
          "  -C NAME:PID[:COMM]  report the CPU of PID and its descendants\n"
          "              (those named COMM) as cpu_NAME_pct; up to 8\n"
          "  -H FILE     write the delivery latency distribution to FILE\n"
          "  -u URL      base URL: http://host:port[/prefix] (default "
          "http://127.0.0.1:8080)\n"
          "  -R ROOM     room (default bench<pid>); send -k spreads senders "
          "over ROOM, ROOM-1 ...\n"
          "  -k ROOMS    send: rooms the senders are spread over (default 1)\n"
          "  -t THREADS  epoll threads (default 1)\n"
          "  -s SECONDS  settle time before the hold figures (default 2)\n"
          "  -i MS       fanout: time between two sends (default 300)\n"
          "  -w SECONDS  longest wait for the last deliveries (default 15)\n"
          "  -W SECONDS  ... and without any new delivery (default 3)\n"
          "  -c N        connections being set up at once (default 256)\n"
          "  -r N        new connections a second at most (default: no limit)\n"
          "  -m RATE     send, mixed, rooms: messages a second, all senders\n"
          "              together (rooms: default 500)\n"
          "              (default: as fast as they can)\n"
          "  -I          readers pass the one session's id, as browsers do\n"
          "  -S          readers stream: pgchat's /events, nchan's "
          "EventSource\n"
          "  -K          rooms: each room's readers start at its head (read "
          "from since=0),\n"
          "              not at now\n"
          "  -A SECONDS  rooms: send for SECONDS before the measured window "
          "(a warm-up)\n"
          "  -p PID      the stack's root process: RSS and fds of its pgchat "
          "and nginx descendants\n"
          "  -d URL      database URL, for psql (PostgreSQL connections, "
          "message count)\n"
          "  -x CMD      run \"CMD begin\" before the measured window and "
          "\"CMD end\"\n"
          "              after it; the lines \"KEY NUMBER\" of the latter join "
          "the result\n"
          "  -q          no progress on stderr\n",
          stderr);
    exit(2);
}

static long
arg_num(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end || v < 0)
        usage();
    return v;
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int
main(int argc, char **argv)
{
    const char *mode;
    char room[64];
    int ch, rc = -1;
    struct rlimit rl;
    int64_t wall0 = now_us();

    while ((ch = getopt(argc, argv, "u:R:k:t:s:i:w:W:c:r:m:ISKA:p:d:qP:C:H:x:")) !=
           -1) {
        switch (ch) {
        case 'P':
            if (strcmp(optarg, "pgchat") == 0)
                opt.proto = P_PGCHAT;
            else if (strcmp(optarg, "nodechat") == 0)
                opt.proto = P_NODECHAT;
            else if (strcmp(optarg, "nchan") == 0)
                opt.proto = P_NCHAN;
            else
                usage();
            break;
        case 'C': {
            char *name = optarg, *p = strchr(optarg, ':'), *q;

            if (!p || opt.ncpu == MAX_CPU)
                usage();
            *p++ = '\0';
            q = strchr(p, ':');
            if (q)
                *q++ = '\0';
            opt.cpu[opt.ncpu].name = name;
            opt.cpu[opt.ncpu].pid = (pid_t)arg_num(p);
            opt.cpu[opt.ncpu].comm = q;
            opt.ncpu++;
            break;
        }
        case 'H':
            opt.hist_file = optarg;
            break;
        case 'u':
            opt.url = optarg;
            break;
        case 'R':
            opt.room = optarg;
            break;
        case 'k':
            opt.rooms = (int)arg_num(optarg);
            break;
        case 't':
            opt.threads = (int)arg_num(optarg);
            break;
        case 's':
            opt.settle = atof(optarg);
            break;
        case 'i':
            opt.interval_ms = (int)arg_num(optarg);
            break;
        case 'w':
            opt.drain = atof(optarg);
            break;
        case 'W':
            opt.stall = atof(optarg);
            break;
        case 'c':
            opt.max_connecting = (int)arg_num(optarg);
            break;
        case 'r':
            opt.ramp = (int)arg_num(optarg);
            break;
        case 'm':
            opt.send_rate = atof(optarg);
            break;
        case 'I':
            opt.pass_id = 1;
            break;
        case 'S':
            opt.stream = 1;
            break;
        case 'K':
            opt.room_heads = 1;
            break;
        case 'A':
            opt.warmup = atof(optarg);
            break;
        case 'p':
            opt.server = (pid_t)arg_num(optarg);
            break;
        case 'd':
            opt.db = optarg;
            break;
        case 'x':
            opt.probe = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 2 || opt.threads < 1 || opt.rooms < 1 || opt.max_connecting < 1)
        usage();
    mode = argv[0];
    if (opt.stream && opt.proto == P_NODECHAT)
        die("-S: node_chat has no event stream");
    if (target_parse(opt.url) < 0)
        die("cannot use the URL '%s'", opt.url);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    snprintf(room, sizeof(room), "bench%d", (int)getpid());
    url_encode(opt.room ? opt.room : room, G.room, sizeof(G.room));
    G.accepted = xcalloc(MAX_MSGS / 64, sizeof(*G.accepted));

    getrlimit(RLIMIT_NOFILE, &rl);
    emit("{\"mode\":\"%s\"", mode);
    emit(",\"url\":\"%s\",\"room\":\"%s\"", target.hostport, G.room);
    emit_int("threads", opt.threads);
    emit_int("stream", opt.stream);
    emit_int("nofile", (long long)rl.rlim_cur);
    emit_int("start_us", wall0);
    if (strcmp(mode, "hold") == 0 && argc == 2) {
        emit_int("n", arg_num(argv[1]));
        rc = mode_fanout((size_t)arg_num(argv[1]), 0);
    } else if (strcmp(mode, "fanout") == 0 && argc == 3) {
        emit_int("n", arg_num(argv[1]));
        emit_int("m", arg_num(argv[2]));
        emit_int("interval_ms", opt.interval_ms);
        rc = mode_fanout((size_t)arg_num(argv[1]), (size_t)arg_num(argv[2]));
    } else if (strcmp(mode, "send") == 0 && argc == 3) {
        rc = mode_send((size_t)arg_num(argv[1]), atof(argv[2]));
    } else if (strcmp(mode, "mixed") == 0 && argc == 4) {
        emit_int("n", arg_num(argv[1]));
        rc = mode_mixed((size_t)arg_num(argv[1]), (size_t)arg_num(argv[2]),
                        atof(argv[3]));
    } else if (strcmp(mode, "rooms") == 0 && argc == 4) {
        rc = mode_rooms((size_t)arg_num(argv[1]), (size_t)arg_num(argv[2]),
                        atof(argv[3]));
    } else if (strcmp(mode, "get") == 0 && argc == 4) {
        emit(",\"path\":\"%s\"", argv[3]);
        rc = mode_get((size_t)arg_num(argv[1]), atof(argv[2]), argv[3]);
    } else {
        usage();
    }
    if (rc < 0)
        die("%s failed", mode);
    emit_num("wall_s", (now_us() - wall0) / 1e6);
    emit("}\n");
    fwrite(out, 1, outlen, stdout);
    return 0;
}
