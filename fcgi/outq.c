/* outq.c -- a connection's output: written at once when the socket takes
 * it, else queued and written as the peer reads.
 *
 * The common case, a reply the socket takes whole, copies nothing: one
 * writev(2) of the caller's iovecs (a fan-out's thousands of replies share
 * one body), at most IOV_MAX at a time.
 */
#define _GNU_SOURCE
#include "outq.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Appends iov[0..n), skipping its first skip bytes, to q. */
static void
queue(struct outq *q, const struct iovec *iov, int n, size_t skip)
{
    size_t need = 0;

    for (int i = 0; i < n; i++)
        need += iov[i].iov_len;
    need -= skip;
    if (q->off && q->off == q->len)
        q->off = q->len = 0;
    q->buf = xrealloc(q->buf, q->len + need);
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(q->buf + q->len, p + skip, len - skip);
        q->len += len - skip;
        skip = 0;
    }
}

int
outq_flush(struct outq *q, int fd)
{
    int progress = 0;

    while (q->off < q->len) {
        ssize_t w = write(fd, q->buf + q->off, q->len - q->off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return progress;
        if (w < 0)
            return -1;
        q->off += (size_t)w;
        progress = 1;
    }
    outq_release(q);
    return progress;
}

void
outq_release(struct outq *q)
{
    free(q->buf);
    q->buf = NULL;
    q->len = q->off = 0;
}

int
outq_send(struct outq *q, int fd, const struct iovec *iov, int n)
{
    if (q->len > q->off) {
        queue(q, iov, n, 0);
        return 0;
    }
    while (n > 0) {
        ssize_t w = writev(fd, iov, n < IOV_MAX ? n : IOV_MAX);
        size_t done;

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            queue(q, iov, n, 0);
            return 0;
        }
        if (w < 0)
            return -1;
        done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0 && done > 0) {
            /* The socket is full: the rest waits for EPOLLOUT. */
            queue(q, iov, n, done);
            return 0;
        }
    }
    return 0;
}
