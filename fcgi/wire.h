/* wire.h -- the FastCGI wire format (FastCGI 1.0, responder role): the
 * records of a request read from a byte stream, and the records of a reply.
 *
 * Pure functions on memory: no descriptors, no threads. server.c owns the
 * connections and calls these. The record layout and constants are
 * libfcgi's own (<fastcgi.h>, Debian's libfcgi-dev).
 */
#ifndef PGCHAT_WIRE_H
#define PGCHAT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Bytes of parameters in one request at the most (nginx sends a few
 * hundred; its large_client_header_buffers bound them far below this). */
#define WIRE_MAX_PARAMS (256 * 1024)

/* Bytes of body in one request at the most: more is refused with 413.
 * nginx's client_max_body_size is the same, so this only matters when
 * nginx is configured otherwise. */
#define WIRE_MAX_BODY (64 * 1024)

/* A connection's input: fill it with wire_feed() until it says READY.
 *
 * One request at a time (FCGI_MPXS_CONNS is 0): while one is being read or
 * is out for an answer ("busy"), another BEGIN_REQUEST is refused with
 * END_REQUEST/CANT_MPX_CONN, and a role other than the responder's with
 * UNKNOWN_ROLE. Records of request ids that are not active are ignored, as
 * the specification asks. */
struct wire_in {
    uint16_t id;     /* the request being read; 0 before BEGIN_REQUEST */
    uint16_t busy;   /* the request handed on and not answered yet, or 0 */
    int keep;        /* the web server keeps the connection (KEEP_CONN) */
    int params_done; /* the empty PARAMS record has come */
    char *params;    /* owned: the raw name-value pairs */
    size_t plen, pcap;
    char *body; /* owned: STDIN, up to max_body bytes */
    size_t blen, bcap, max_body;
    int body_over; /* STDIN had more than max_body bytes (dropped) */
    char *out;     /* owned: records owed to the web server, to send */
    size_t olen, ocap;
    int close_after; /* a request without KEEP_CONN was aborted: close the
                        connection once out is sent */
};

enum wire_status {
    WIRE_MORE = 0,   /* everything given was used; more is needed */
    WIRE_READY = 1,  /* a whole request is in; *used says how much was */
    WIRE_ABORT = 2,  /* the busy request was aborted by the web server */
    WIRE_ERROR = -1, /* not FastCGI, or not what a responder accepts */
};

/* Parses the records in buf[0..len) into in. Only whole records are used;
 * *used says how many bytes were. Returns:
 * - WIRE_READY once a request's empty STDIN record was read: in->busy is
 *   its id. The caller takes in->params, in->body and in->keep, calls
 *   wire_in_next(), and later wire_done() once it has answered;
 * - WIRE_ABORT when ABORT_REQUEST names the busy request: the caller drops
 *   its answer and calls wire_end(in, in->busy, ...) and wire_done();
 * - WIRE_MORE, or WIRE_ERROR (the connection is to be closed).
 * Replies owed (management records, refusals, a request aborted while
 * being read) are appended to in->out: the caller sends them. */
enum wire_status wire_feed(struct wire_in *in, const char *buf, size_t len,
                           size_t *used);

/* Frees the request just read (params, body), keeping in->busy, max_body
 * and what is owed in in->out, so that the next records can be read. */
void wire_in_next(struct wire_in *in);

/* The busy request was answered: another may begin. */
void wire_done(struct wire_in *in);

/* Appends END_REQUEST for id with protocol status (FCGI_REQUEST_COMPLETE,
 * ...) to in->out. */
void wire_end(struct wire_in *in, uint16_t id, int status);

/* Frees everything in owns, as before its first use, keeping max_body. */
void wire_in_reset(struct wire_in *in);

/* A request's parameters, decoded: names[i] = values[i], NUL-terminated. */
struct wire_params {
    char *mem; /* owned: every name and value */
    const char **names, **values;
    size_t n;
};

/* Decodes the name-value pairs in raw[0..len) into p, which owns copies.
 * Returns 0, or -1 when they are malformed (p is then empty). */
int wire_params_decode(struct wire_params *p, const char *raw, size_t len);

/* Borrowed: the value of the parameter name, or NULL. */
const char *wire_param(const struct wire_params *p, const char *name);

void wire_params_release(struct wire_params *p);

/* The iovecs that send head and body as request id's STDOUT, then the end
 * of STDOUT and END_REQUEST: hdrs is scratch for the record headers and
 * must hold wire_reply_hdrs(hlen + blen) bytes, iov must have
 * wire_reply_iovs(hlen + blen) entries. The iovecs borrow head, body and
 * hdrs. Returns how many iovecs were filled. */
size_t wire_reply_hdrs(size_t len);
size_t wire_reply_iovs(size_t len);
int wire_reply(uint16_t id, const char *head, size_t hlen, const char *body,
               size_t blen, unsigned char *hdrs, struct iovec *iov);

/* The same records without the end (no empty STDOUT, no END_REQUEST): a
 * part of a reply that goes on, such as an event stream. */
int wire_stdout(uint16_t id, const char *head, size_t hlen, const char *body,
                size_t blen, unsigned char *hdrs, struct iovec *iov);

#endif
