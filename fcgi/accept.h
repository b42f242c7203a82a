/* accept.h -- the listening sockets nginx connects to: taking its
 * connections, on the event loop, from the allowed addresses only.
 */
#ifndef PGCHAT_ACCEPT_H
#define PGCHAT_ACCEPT_H

#include <stdint.h>

/* Watches the listening sockets (write_fd may be -1); adopt(fd) gets each
 * connection taken, non-blocking. Returns 0 or -1. */
int accept_init(int listen_fd, int write_fd, void (*adopt)(int fd));

/* Stops taking connections (the sockets stay open for the other workers). */
void accept_stop(void);

/* After running out of descriptors the sockets are not watched for a
 * moment: when to watch them again, and doing it. */
int64_t accept_due(void);
void accept_tick(int64_t now);

#endif
