/* request.c -- one FastCGI request: parameters, bounded body, replies.
 *
 * A reply on the loop thread is written at once, borrowing its body (a
 * fan-out's thousands of replies share one). From another thread it is
 * made into one buffer and posted to the loop, which writes it: sockets
 * belong to the loop thread alone.
 */
#define _GNU_SOURCE
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "ev.h"
#include "stats.h"
#include "util.h"
#include "views.h"

static enum req_method
parse_method(const char *m)
{
    if (!m || strcmp(m, "GET") == 0)
        return REQ_GET;
    if (strcmp(m, "HEAD") == 0)
        return REQ_HEAD;
    if (strcmp(m, "POST") == 0)
        return REQ_POST;
    return REQ_OTHER;
}

static int
is_form(const char *type)
{
    static const char form[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(form) - 1;

    return type && strncasecmp(type, form, n) == 0 &&
           (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

/* Decodes the form body in (already read whole, up to WIRE_MAX_BODY) into
 * r->form, or sets r->body_status. */
static void
read_body(struct req *r, const struct wire_in *in)
{
    const char *cl = wire_param(&r->params, "CONTENT_LENGTH");
    long len = cl && *cl ? strtol(cl, NULL, 10) : 0;

    if (len <= 0)
        return;
    if (len > WIRE_MAX_BODY || in->body_over) {
        r->body_status = 413;
        return;
    }
    if (!is_form(wire_param(&r->params, "CONTENT_TYPE"))) {
        r->body_status = 415;
        return;
    }
    if ((size_t)len != in->blen)
        r->body_status = 400;
    else if (query_parse(&r->form, in->body, in->blen) < 0)
        r->bad_input = 1;
}

/* The endpoint's name in uri: what follows base (PGCHAT_BASE, set by
 * nginx/pgchat.conf when the chat lives under a prefix; "/" otherwise),
 * provided it has no further '/'. Anything else routes nowhere (""). */
static const char *
route_name(const char *uri, const char *base)
{
    size_t n;

    if (!base || !*base)
        base = "/";
    n = strlen(base);
    if (!uri || strncmp(uri, base, n) != 0 || strchr(uri + n, '/'))
        return "";
    return uri + n;
}

struct req *
req_new(struct conn *c, const struct wire_in *in)
{
    struct req *r = xcalloc(1, sizeof(*r));
    const char *uri, *qs;

    r->conn = c;
    r->id = in->busy;
    server_set_owner(c, r);
    if (wire_params_decode(&r->params, in->params, in->plen) < 0)
        r->bad_input = 1;
    r->method = parse_method(wire_param(&r->params, "REQUEST_METHOD"));
    uri = wire_param(&r->params, "DOCUMENT_URI");
    if (!uri)
        uri = wire_param(&r->params, "SCRIPT_NAME");
    r->path = route_name(uri, wire_param(&r->params, "PGCHAT_BASE"));
    qs = wire_param(&r->params, "QUERY_STRING");
    if (qs && query_parse(&r->query, qs, strlen(qs)) < 0)
        r->bad_input = 1;
    if (r->method == REQ_POST)
        read_body(r, in);
    return r;
}

const char *
req_param(const struct req *r, const char *name)
{
    const char *v = query_get(&r->form, name);

    return v ? v : query_get(&r->query, name);
}

const char *
req_env(const struct req *r, const char *name)
{
    return wire_param(&r->params, name);
}

static const char *
reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void
req_free(struct req *r)
{
    wire_params_release(&r->params);
    query_release(&r->query);
    query_release(&r->form);
    free(r);
}

/* A reply made on another thread, on its way to the loop. */
struct posted {
    struct req *r;
    size_t len;
    char bytes[]; /* the records, whole */
};

static void
deliver(void *arg)
{
    struct posted *p = arg;
    struct iovec iov = {p->bytes, p->len};
    struct conn *c = p->r->conn;

    req_free(p->r);
    server_reply(c, &iov, 1);
    free(p);
}

void
req_reply(struct req *r, int status, const char *body, size_t len)
{
    req_reply_with(r, status, "", body, len);
}

void
req_reply_with(struct req *r, int status, const char *headers, const char *body,
               size_t len)
{
    req_reply_as(r, status, "application/json; charset=utf-8", headers, body,
                 len);
}

void
req_reply_as(struct req *r, int status, const char *content_type,
             const char *headers, const char *body, size_t len)
{
    char head[1024];
    size_t blen = r->method == REQ_HEAD ? 0 : len, total;
    unsigned char small_hdrs[64], *hdrs = small_hdrs;
    struct iovec small_iov[8], *iov = small_iov;
    int n;

    n = snprintf(head, sizeof(head),
                 "Status: %d %s\r\n"
                 "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n"
                 "%s"
                 "\r\n",
                 status, reason(status), content_type, len, headers);
    if (n < 0 || (size_t)n >= sizeof(head))
        abort(); /* our own headers: a bug, never input */
    stats_request(r->path, status);
    total = (size_t)n + blen;

    /* Replies above 65535 bytes take several records: rare, allocated. */
    if (wire_reply_hdrs(total) > sizeof(small_hdrs) ||
        wire_reply_iovs(total) > sizeof(small_iov) / sizeof(small_iov[0])) {
        hdrs = xmalloc(wire_reply_hdrs(total));
        iov = xmalloc(wire_reply_iovs(total) * sizeof(*iov));
    }
    n = wire_reply(r->id, head, (size_t)n, body, blen, hdrs, iov);
    if (ev_on_loop()) {
        struct conn *c = r->conn;

        req_free(r);
        server_reply(c, iov, n);
    } else {
        size_t size = 0;
        struct posted *p;

        for (int i = 0; i < n; i++)
            size += iov[i].iov_len;
        p = xmalloc(sizeof(*p) + size);
        p->r = r;
        p->len = 0;
        for (int i = 0; i < n; i++) {
            memcpy(p->bytes + p->len, iov[i].iov_base, iov[i].iov_len);
            p->len += iov[i].iov_len;
        }
        ev_post(deliver, p);
    }
    if (hdrs != small_hdrs) {
        free(hdrs);
        free(iov);
    }
}

void
req_error(struct req *r, int status, const char *message)
{
    size_t len;
    char *body = views_error(message, &len);

    req_reply(r, status, body, len);
    free(body);
}

void
req_error_retry(struct req *r, int status, const char *message, int retry_s)
{
    char header[40];
    size_t len;
    char *body = views_error(message, &len);

    snprintf(header, sizeof(header), "Retry-After: %d\r\n", retry_s);
    req_reply_with(r, status, header, body, len);
    free(body);
}

/* Readable by no script, sent to no other site; Secure over HTTPS. */
void
req_session_cookie(const struct req *r, const char *room, const char *token,
                   char *buf, size_t size)
{
    const char *base = req_env(r, "PGCHAT_BASE");
    const char *https = req_env(r, "HTTPS");

    snprintf(buf, size,
             "Set-Cookie: pgchat_%s=%s; Path=%s; HttpOnly; SameSite=Strict%s%s"
             "\r\n",
             room, token ? token : "", base && *base ? base : "/",
             https && strcmp(https, "on") == 0 ? "; Secure" : "",
             token ? "" : "; Max-Age=0");
}

void
req_ok(struct req *r)
{
    size_t len;
    char *body = views_rss(rss_current(), &len);

    req_reply(r, 200, body, len);
    free(body);
}

/* Writes data as part of r's reply, on the loop thread. */
static int
stream_out(struct req *r, const char *head, size_t hlen, const char *data,
           size_t len)
{
    unsigned char small_hdrs[64], *hdrs = small_hdrs;
    struct iovec small_iov[8], *iov = small_iov;
    size_t total = hlen + len;
    int n, rc;

    if (wire_reply_hdrs(total) > sizeof(small_hdrs) ||
        wire_reply_iovs(total) > sizeof(small_iov) / sizeof(small_iov[0])) {
        hdrs = xmalloc(wire_reply_hdrs(total));
        iov = xmalloc(wire_reply_iovs(total) * sizeof(*iov));
    }
    n = wire_stdout(r->id, head, hlen, data, len, hdrs, iov);
    rc = server_send(r->conn, iov, n);
    if (hdrs != small_hdrs) {
        free(hdrs);
        free(iov);
    }
    return rc;
}

int
req_stream_begin(struct req *r, const char *content_type)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "Status: 200 OK\r\n"
                     "Content-Type: %s\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "\r\n",
                     content_type);

    stats_request(r->path, 200);
    return stream_out(r, head, (size_t)n, "", 0);
}

int
req_stream(struct req *r, const char *data, size_t len)
{
    return stream_out(r, "", 0, data, len);
}

void
req_stream_end(struct req *r)
{
    unsigned char hdrs[64];
    struct iovec iov[8];
    struct conn *c = r->conn;
    int n = wire_reply(r->id, "", 0, "", 0, hdrs, iov);

    req_free(r);
    server_reply(c, iov, n);
}

void
req_drop(struct req *r)
{
    struct conn *c = r->conn;

    req_free(r);
    server_drop(c);
}
