/* server.c -- the worker's FastCGI connections on the event loop: accepting
 * them, reading requests, and writing replies without ever blocking.
 *
 * nginx keeps its connections (fastcgi_keep_conn, keepalive), so one
 * connection carries request after request, one at a time. Sockets are
 * non-blocking. A reply is written at once with one writev(2) when the
 * socket takes it (the fan-out case: thousands of small replies sharing
 * one body, copied nowhere); what it does not take is copied into the
 * connection's output queue and written on EPOLLOUT, so a peer that stops
 * reading stalls only itself, and is dropped after SERVER_SEND_MS.
 *
 * A connection closed while the loop handles a batch of events may still
 * be named by a later event of that batch: its memory is freed only in
 * server_tick(), after the batch. The listening sockets are accept.c's,
 * which hands each new connection to server_adopt().
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fastcgi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ev.h"
#include "outq.h"
#include "stats.h"
#include "util.h"

#define SERVER_READ (8 + 65535 + 255) /* a whole record fits */
#define SERVER_FIRST_MS 10000         /* a new connection's first request */
#define SERVER_IDLE_MS 300000   /* between requests (nginx's pool: 60 s) */
#define SERVER_PARTIAL_MS 10000 /* a whole request, from its first byte */
#define SERVER_SEND_MS 10000    /* a reply the peer does not read */
#define SERVER_MAX_QUEUE (1024 * 1024) /* unsent bytes of a stream */

struct conn {
    struct ev_watch w;
    struct wire_in in;
    char *buf; /* owned: the start of a record not read whole yet */
    size_t len;
    struct outq q;            /* reply bytes the socket did not take yet */
    int64_t deadline;         /* mono_ms(); 0: none */
    int64_t begun;            /* mono_ms() of a request's first byte; 0 */
    void *owner;              /* of the busy request */
    unsigned busy : 1;        /* a request is out for an answer */
    unsigned aborted : 1;     /* ... and its web server aborted it */
    unsigned dead : 1;        /* the socket is closed */
    unsigned reading : 1;     /* on_input() is running for it */
    unsigned served : 1;      /* it has carried a request already */
    unsigned close_after : 1; /* close once out is written */
    unsigned watch_out : 1;   /* EPOLLOUT is watched */
    struct conn *prev, *next; /* every open or busy connection */
    struct conn *zombie;      /* closed, freed after the batch */
};

static struct {
    struct server_callbacks cb;
    int stopping;
    struct conn *all, *zombies;
    size_t nbusy;
    char rbuf[SERVER_READ];
} conns;

static void on_input(struct conn *c);

/* --- lifetime ------------------------------------------------------------ */

static void
set_busy(struct conn *c, int busy)
{
    if (c->busy != (unsigned)busy)
        conns.nbusy += busy ? 1 : (size_t)-1;
    c->busy = (unsigned)busy;
}

/* Frees c after the current batch of events. */
static void
bury(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (conns.all == c)
        conns.all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->zombie = conns.zombies;
    conns.zombies = c;
}

/* Closes c's socket. Its memory goes once it has no busy request. */
static void
conn_close(struct conn *c)
{
    if (!c->dead) {
        ev_del(&c->w);
        close(c->w.fd);
        c->dead = 1;
    }
    if (!c->busy)
        bury(c);
}

static void
free_zombies(void)
{
    while (conns.zombies) {
        struct conn *c = conns.zombies;

        conns.zombies = c->zombie;
        wire_in_reset(&c->in);
        free(c->buf);
        outq_release(&c->q);
        free(c);
    }
}

/* The deadline c is under while it waits on its peer, if any. */
static void
set_deadline(struct conn *c)
{
    int64_t now = mono_ms();

    if (outq_pending(&c->q))
        c->deadline = now + SERVER_SEND_MS;
    else if (c->busy)
        c->deadline = 0; /* the request's holder bounds it */
    else if (c->len || c->in.id) {
        /* A total, not a gap: a peer trickling a byte at a time must not
         * hold the connection past it. */
        if (!c->begun)
            c->begun = now;
        c->deadline = c->begun + SERVER_PARTIAL_MS;
        return;
    } else
        c->deadline = now + (c->served ? SERVER_IDLE_MS : SERVER_FIRST_MS);
    c->begun = 0;
}

/* --- writing ------------------------------------------------------------- */

/* Watches for room to write exactly while something waits to be. */
static void
watch(struct conn *c)
{
    unsigned want = outq_pending(&c->q);

    if (c->dead || want == c->watch_out)
        return;
    if (ev_mod(&c->w, EV_IN | EV_RDHUP | (want ? EV_OUT : 0)) < 0)
        log_error("cannot watch a connection: %s", strerror(errno));
    c->watch_out = want;
}

/* Writes as much of c's queue as the socket takes. Returns 0, or -1 when
 * the connection broke. */
static int
flush(struct conn *c)
{
    int rc = outq_flush(&c->q, c->w.fd);

    if (rc > 0)
        c->deadline = mono_ms() + SERVER_SEND_MS; /* it reads: progress */
    return rc < 0 ? -1 : 0;
}

static int
send_iov(struct conn *c, const struct iovec *iov, int n)
{
    return outq_send(&c->q, c->w.fd, iov, n);
}

/* After queueing: closes a broken c, or watches for room to write. */
static void
after_send(struct conn *c, int rc)
{
    if (rc < 0) {
        conn_close(c);
        return;
    }
    if (!outq_pending(&c->q) && c->close_after) {
        conn_close(c);
        return;
    }
    watch(c);
    set_deadline(c);
}

/* Sends what the wire layer owes the web server (refusals, management
 * replies). Returns 0 or -1. */
static int
send_owed(struct conn *c)
{
    struct iovec iov = {c->in.out, c->in.olen};
    int rc;

    if (!c->in.olen)
        return 0;
    rc = send_iov(c, &iov, 1);
    c->in.olen = 0;
    return rc;
}

/* The busy request is over: c takes the next one, or closes. */
static void
request_over(struct conn *c, int rc)
{
    wire_done(&c->in);
    c->aborted = 0;
    c->owner = NULL;
    set_busy(c, 0);
    if (c->dead) {
        bury(c);
        return;
    }
    if (!c->in.keep || conns.stopping)
        c->close_after = 1;
    after_send(c, rc);
    /* Bytes that came while busy (a web server that does not wait). */
    if (!c->dead && c->len && !c->reading)
        on_input(c);
}

void
server_reply(struct conn *c, const struct iovec *iov, int n)
{
    int rc = 0;

    if (!c->dead) {
        if (c->aborted) {
            wire_end(&c->in, c->in.busy, FCGI_REQUEST_COMPLETE);
            rc = send_owed(c);
        } else {
            rc = send_iov(c, iov, n);
        }
    }
    request_over(c, rc);
}

int
server_send(struct conn *c, const struct iovec *iov, int n)
{
    int pending = outq_pending(&c->q);

    if (c->dead)
        return -1;
    if (send_iov(c, iov, n) < 0 || outq_pending(&c->q) > SERVER_MAX_QUEUE) {
        /* Broken, or a reader too slow for its stream: the holder, told
         * by the -1, drops the request, which frees the connection. */
        ev_del(&c->w);
        close(c->w.fd);
        c->dead = 1;
        return -1;
    }
    watch(c);
    if (!pending)
        set_deadline(c); /* else the deadline of no progress runs on */
    return 0;
}

void
server_drop(struct conn *c)
{
    int rc = 0;

    if (!c->dead && c->aborted) {
        wire_end(&c->in, c->in.busy, FCGI_REQUEST_COMPLETE);
        rc = send_owed(c);
    } else if (!c->dead) {
        c->close_after = 1;
    }
    request_over(c, rc);
}

void
server_set_owner(struct conn *c, void *owner)
{
    c->owner = owner;
}

void *
server_owner(const struct conn *c)
{
    return c->owner;
}

/* --- reading ------------------------------------------------------------- */

/* The busy request's peer went away or aborted it. */
static void
abort_busy(struct conn *c)
{
    c->aborted = 1;
    conns.cb.abort(c);
}

/* Keeps data[used..len) for the next read. */
static void
keep_rest(struct conn *c, const char *data, size_t len, size_t used)
{
    char *rest = NULL;

    if (used < len) {
        rest = xmalloc(len - used);
        memcpy(rest, data + used, len - used);
    }
    free(c->buf);
    c->buf = rest;
    c->len = len - used;
}

/* Parses what c has buffered plus data[0..len). Returns 0, or -1 when c is
 * to be closed. */
static int
parse(struct conn *c, const char *data, size_t len)
{
    char *joined = NULL;

    if (c->len) {
        joined = xmalloc(c->len + len);
        memcpy(joined, c->buf, c->len);
        memcpy(joined + c->len, data, len);
        data = joined;
        len += c->len;
    }
    for (;;) {
        size_t used;
        enum wire_status st = wire_feed(&c->in, data, len, &used);

        if (st == WIRE_ERROR || send_owed(c) < 0) {
            free(joined);
            return -1;
        }
        data += used;
        len -= used;
        if (st == WIRE_READY) {
            stats_add(&stats.requests, 1);
            set_busy(c, 1);
            c->served = 1;
            conns.cb.request(c, &c->in);
            wire_in_next(&c->in);
            if (c->dead)
                break;
        } else if (st == WIRE_ABORT) {
            abort_busy(c);
            if (c->dead)
                break;
        } else {
            break;
        }
        if (c->busy)
            break; /* the rest waits for the answer */
    }
    if (!c->dead)
        keep_rest(c, data, len, 0);
    free(joined);
    if (!c->dead && c->in.close_after) {
        /* A request without KEEP_CONN was aborted: its END_REQUEST goes
         * out, then the connection closes. */
        c->close_after = 1;
        after_send(c, 0);
    }
    return 0;
}

static void
on_input(struct conn *c)
{
    c->reading = 1;
    if (c->len && !c->busy && parse(c, "", 0) < 0)
        goto broken;
    while (!c->dead) {
        ssize_t n = recv(c->w.fd, conns.rbuf, sizeof(conns.rbuf), 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            goto broken; /* the web server closed it, or it broke */
        if (c->busy && c->len + (size_t)n > SERVER_READ)
            goto broken; /* it talks on without waiting: not nginx */
        /* While busy, only ABORT_REQUEST or a refused second request
         * can come. */
        if (parse(c, conns.rbuf, (size_t)n) < 0)
            goto broken;
    }
    c->reading = 0;
    if (!c->dead) {
        watch(c);
        set_deadline(c);
    }
    return;
broken:
    c->reading = 0;
    if (c->busy && !c->dead) {
        ev_del(&c->w);
        close(c->w.fd);
        c->dead = 1;
        abort_busy(c);
        return;
    }
    conn_close(c);
}

static void
on_conn(struct ev_watch *w, uint32_t events)
{
    struct conn *c = (struct conn *)w;

    if (c->dead)
        return; /* closed earlier in this batch */
    if (events & EV_OUT) {
        after_send(c, flush(c));
        if (c->dead)
            return;
    }
    if (events & (EV_IN | EV_RDHUP | EV_HUP | EV_ERR))
        on_input(c);
}

/* --- connections ------------------------------------------------------- */

void
server_adopt(int fd)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    c->w.fd = fd;
    c->w.fn = on_conn;
    c->in.max_body = WIRE_MAX_BODY;
    if (ev_add(&c->w, EV_IN | EV_RDHUP) < 0) {
        log_error("cannot watch a connection: %s", strerror(errno));
        close(fd);
        free(c);
        return;
    }
    c->next = conns.all;
    if (conns.all)
        conns.all->prev = c;
    conns.all = c;
    set_deadline(c);
    stats_add(&stats.connections, 1);
}

int
server_init(const struct server_callbacks *cb)
{
    conns.cb = *cb;
    return 0;
}

void
server_stop(void)
{
    struct conn *c, *next;

    conns.stopping = 1;
    /* Idle connections close now, so that nginx sends its next requests
     * to the other workers; the rest close once answered. */
    for (c = conns.all; c; c = next) {
        next = c->next;
        if (!c->busy && !outq_pending(&c->q))
            conn_close(c);
        else
            c->close_after = 1;
    }
}

size_t
server_busy(void)
{
    size_t n = conns.nbusy;

    for (struct conn *c = conns.all; c; c = c->next)
        if (!c->busy && outq_pending(&c->q))
            n++;
    return n;
}

int64_t
server_due(void)
{
    /* Deadlines are checked once a second: their bounds are seconds. */
    return conns.zombies ? 0 : mono_ms() + 1000;
}

void
server_tick(int64_t now)
{
    static int64_t next_scan;
    struct conn *c, *next;

    free_zombies();
    if (now < next_scan)
        return;
    next_scan = now + 1000;
    for (c = conns.all; c; c = next) {
        next = c->next;
        if (c->dead || !c->deadline || now < c->deadline)
            continue;
        if (outq_pending(&c->q))
            log_warn("dropped a FastCGI connection that read nothing for "
                     "%d s",
                     SERVER_SEND_MS / 1000);
        if (c->busy) {
            /* Its reply cannot be delivered: the holder is told. */
            ev_del(&c->w);
            close(c->w.fd);
            c->dead = 1;
            abort_busy(c);
        } else {
            conn_close(c);
        }
    }
    free_zombies();
}
