/* recv.h -- every /recv and /events of the worker, decided on the loop
 * thread: answered from a room's window, parked until news, or kept alive
 * at its deadline (a ping; a stream's keep-alive, stream.h).
 */
#ifndef PGCHAT_RECV_H
#define PGCHAT_RECV_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* Hands keep-alives on: ids (the callee takes the array and each string)
 * name sessions whose readers were served since the last call. */
typedef void (*recv_touch_fn)(char **ids, size_t n);

/* Sets up the LISTEN connection. Returns 0 or -1. */
int recv_init(recv_touch_fn touch);

/* Takes r, a /recv of room after since; id (borrowed from r) names the
 * session to keep alive, or is NULL. Answers now or parks it. */
void recv_recv(struct req *r, const char *room, int64_t since, const char *id);

/* Takes r, a GET /events of room after since: the same, as a stream of
 * Server-Sent Events that stays open, with a comment line as keep-alive. */
void recv_events(struct req *r, const char *room, int64_t since,
                 const char *id);

/* Whether this worker holds room in memory now (a reader there would not
 * make it exist). */
int recv_holds_room(const char *room);

/* Whether this worker's LISTEN connection is up and answering. */
int recv_healthy(void);

/* The next mono_ms() at which recv_tick() has work, and that work: pings,
 * batched fan-outs, keep-alives, forgetting idle rooms. */
int64_t recv_due(void);
void recv_tick(int64_t now);

/* Stopping: every parked reader gets its ping now, and so does every later
 * /recv (its client simply asks again, elsewhere); the last keep-alives
 * are handed on. */
void recv_stop(void);

/* Last: closes the LISTEN connection and forgets every room. */
void recv_close(void);

#endif
