/* fastcgi.h -- the FastCGI wire format (FastCGI 1.0, responder role): the
 * records of a request read from a byte stream, and the records of a reply.
 *
 * Pure functions on memory: no descriptors, no threads. server.c owns the
 * connections and calls these.
 */
#ifndef PGCHAT_FASTCGI_H
#define PGCHAT_FASTCGI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Bytes of parameters in one request at the most (nginx sends a few
 * hundred; its large_client_header_buffers bound them far below this). */
#define FCGI_MAX_PARAMS (256 * 1024)

/* A request being read: fill it with fcgi_feed() until it says READY. */
struct fcgi_in {
    uint16_t id;     /* the request's id; 0 before BEGIN_REQUEST */
    int keep;        /* the web server keeps the connection (KEEP_CONN) */
    int params_done; /* the empty PARAMS record has come */
    char *params;    /* owned: the raw name-value pairs */
    size_t plen, pcap;
    char *body; /* owned: STDIN, up to max_body bytes */
    size_t blen, bcap, max_body;
    int body_over; /* STDIN had more than max_body bytes (dropped) */
    char *mgmt;    /* owned: replies to management records, to send */
    size_t mlen, mcap;
};

enum fcgi_status {
    FCGI_MORE = 0,   /* everything given was used; more is needed */
    FCGI_READY = 1,  /* a whole request is in; *used says how much was */
    FCGI_ERROR = -1, /* not FastCGI, or not what a responder accepts */
};

/* Parses the records in buf[0..len) into in. Only whole records are used;
 * *used says how many bytes were. Returns FCGI_READY once the request's
 * empty STDIN record was read (the caller then takes in->params and
 * in->body, and calls fcgi_in_reset before the next request), FCGI_MORE, or
 * FCGI_ERROR. Management records get their replies in in->mgmt. */
enum fcgi_status fcgi_feed(struct fcgi_in *in, const char *buf, size_t len,
                           size_t *used);

/* Frees what in owns and makes it ready for the next request, keeping
 * max_body. */
void fcgi_in_reset(struct fcgi_in *in);

/* A request's parameters, decoded: names[i] = values[i], NUL-terminated. */
struct fcgi_params {
    char *mem; /* owned: every name and value */
    const char **names, **values;
    size_t n;
};

/* Decodes the name-value pairs in raw[0..len) into p, which owns copies.
 * Returns 0, or -1 when they are malformed (p is then empty). */
int fcgi_params_decode(struct fcgi_params *p, const char *raw, size_t len);

/* Borrowed: the value of the parameter name, or NULL. */
const char *fcgi_param(const struct fcgi_params *p, const char *name);

void fcgi_params_release(struct fcgi_params *p);

/* The iovecs that send head and body as request id's STDOUT, then the end
 * of STDOUT and END_REQUEST: hdrs is scratch for the record headers and
 * must hold fcgi_reply_hdrs(hlen + blen) bytes, iov must have
 * fcgi_reply_iovs(hlen + blen) entries. The iovecs borrow head, body and
 * hdrs. Returns how many iovecs were filled. */
size_t fcgi_reply_hdrs(size_t len);
size_t fcgi_reply_iovs(size_t len);
int fcgi_reply(uint16_t id, const char *head, size_t hlen, const char *body,
               size_t blen, unsigned char *hdrs, struct iovec *iov);

#endif
