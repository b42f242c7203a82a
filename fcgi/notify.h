/* notify.h -- the worker's LISTEN connection to PostgreSQL: its life
 * (connecting, LISTEN, being checked, replaced when it stops answering),
 * the NOTIFYs it hears, and the queries the event loop runs on it, one at
 * a time, never waiting. (The sockets nginx connects to are accept.h's.)
 */
#ifndef PGCHAT_NOTIFY_H
#define PGCHAT_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct notify_callbacks {
    /* A notification: room has a new head. Where the payload carried it,
     * batch (taken by the callee; else NULL) is every message committed
     * after prev up to head. */
    void (*notify)(const char *room, int64_t head, int64_t prev,
                   struct msg_list *batch);
    /* LISTEN is in place on a new connection: what was learnt before may
     * have missed notifications. */
    void (*up)(void);
    /* The connection is gone: heads learnt on it are no longer kept up. */
    void (*down)(void);
    /* The rooms marked private, read before up() on every new connection
     * and again whenever they change: n names, borrowed. */
    void (*private_rooms)(char *const *names, size_t n);
};

/* Answer to notify_recv(): list (taken by the callee) is NULL when the
 * query failed or the connection went away. */
typedef void (*notify_fn)(void *arg, struct msg_list *list, int64_t head);

/* Connects to conninfo (as "pgchat-listen") on the loop. Returns 0 or -1. */
int notify_init(const char *conninfo, const struct notify_callbacks *cb);

/* Queues the query for at most limit messages of room after since; fn gets
 * the answer, on the loop thread, never from within this call. Returns 0,
 * or -1 when the connection is not up (fn is then never called). */
int notify_recv(const char *room, int64_t since, int limit, notify_fn fn,
                void *arg);

/* Reads notifications that have come but not been read yet (one recv(2)),
 * so that an answer about to be given is not older than it needs to be. */
void notify_drain(void);

/* Whether LISTEN is in place. */
int notify_up(void);

/* Whether LISTEN is in place and nothing sent has waited past the bound:
 * what /healthz reports. */
int notify_healthy(void);

/* The next mono_ms() at which notify_tick() has work (a timeout, a check of
 * an idle connection, a reconnection), and that work. */
int64_t notify_due(void);
void notify_tick(int64_t now);

/* Closes the connection; queued queries fail (their callbacks get NULL). */
void notify_close(void);

#endif
