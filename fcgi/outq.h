/* outq.h -- a connection's output: written at once when the socket takes
 * it, else queued and written as the peer reads. Never blocks.
 */
#ifndef PGCHAT_OUTQ_H
#define PGCHAT_OUTQ_H

#include <stddef.h>
#include <sys/uio.h>

struct outq {
    char *buf; /* owned: bytes the socket did not take yet */
    size_t len, off;
};

/* Sends iov[0..n) on the non-blocking fd after what q holds; what the
 * socket does not take is copied into q. Returns 0, or -1 when the
 * connection broke. */
int outq_send(struct outq *q, int fd, const struct iovec *iov, int n);

/* Writes what the socket takes of q. Returns 1 when some was written, 0
 * when none could be, -1 when the connection broke. */
int outq_flush(struct outq *q, int fd);

/* Bytes q holds. */
static inline size_t
outq_pending(const struct outq *q)
{
    return q->len - q->off;
}

/* Frees what q holds; q is empty afterwards. */
void outq_release(struct outq *q);

#endif
