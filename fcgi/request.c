/* request.c -- one FastCGI request: parameters, bounded body, replies.
 *
 * libfcgi's close waits up to two seconds for the peer to close first
 * (OS_Close shuts the socket down and reads until EOF). nginx closes only
 * once it has read the whole reply, so that wait is a round trip through
 * nginx on every request, taken on the thread that replies -- for a fan-out
 * the event loop. Replies here are complete when FCGX_Finish_r() closes, and
 * on a unix socket there is no RST to lose them to, so requests are marked
 * detached, which makes libfcgi close at once.
 */
#define _GNU_SOURCE
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

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

/* Reads a form body into r->form, or sets r->body_status. */
static void
read_body(struct req *r)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", r->fcgx.envp);
    long len = cl && *cl ? strtol(cl, NULL, 10) : 0;
    char *body;
    int got = 0, n;

    if (len <= 0)
        return;
    if (len > REQ_MAX_BODY) {
        r->body_status = 413;
        return;
    }
    if (!is_form(FCGX_GetParam("CONTENT_TYPE", r->fcgx.envp))) {
        r->body_status = 415;
        return;
    }
    body = xmalloc(len);
    while (got < len &&
           (n = FCGX_GetStr(body + got, len - got, r->fcgx.in)) > 0)
        got += n;
    if (got != len)
        r->body_status = 400;
    else if (query_parse(&r->form, body, len) < 0)
        r->bad_input = 1;
    free(body);
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
req_accept(int listen_fd)
{
    struct req *r = xcalloc(1, sizeof(*r));
    const char *uri, *qs;

    if (FCGX_InitRequest(&r->fcgx, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0 ||
        FCGX_Accept_r(&r->fcgx) < 0) {
        FCGX_Free(&r->fcgx, 1);
        free(r);
        return NULL;
    }
    r->method = parse_method(FCGX_GetParam("REQUEST_METHOD", r->fcgx.envp));
    uri = FCGX_GetParam("DOCUMENT_URI", r->fcgx.envp);
    if (!uri)
        uri = FCGX_GetParam("SCRIPT_NAME", r->fcgx.envp);
    r->path = route_name(uri, FCGX_GetParam("PGCHAT_BASE", r->fcgx.envp));
    qs = FCGX_GetParam("QUERY_STRING", r->fcgx.envp);
    if (qs && query_parse(&r->query, qs, strlen(qs)) < 0)
        r->bad_input = 1;
    if (r->method == REQ_POST)
        read_body(r);
    return r;
}

const char *
req_param(const struct req *r, const char *name)
{
    const char *v = query_get(&r->form, name);

    return v ? v : query_get(&r->query, name);
}

static const char *
reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
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
    query_release(&r->query);
    query_release(&r->form);
    free(r->token);
    free(r);
}

void
req_reply(struct req *r, int status, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "Status: %d %s\r\n"
                     "Content-Type: application/json; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "\r\n",
                     status, reason(status), len);

    FCGX_PutStr(head, n, r->fcgx.out);
    if (r->method != REQ_HEAD)
        FCGX_PutStr(body, (int)len, r->fcgx.out);
    r->fcgx.detached = 1;
    FCGX_Finish_r(&r->fcgx);
    req_free(r);
}

void
req_drop(struct req *r)
{
    r->fcgx.detached = 1;
    FCGX_Free(&r->fcgx, 1);
    req_free(r);
}

int
req_fd(const struct req *r)
{
    return r->fcgx.ipcFd;
}
