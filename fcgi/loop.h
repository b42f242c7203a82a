/* loop.h -- the worker's event loop: parked /recv requests, timers, and the
 * one PostgreSQL connection that LISTENs.
 */
#ifndef PGCHAT_LOOP_H
#define PGCHAT_LOOP_H

#include "request.h"

/* Sets up the loop and its connection. Call once, before any thread may
 * call loop_submit(). Returns 0 or -1. */
int loop_init(void);

/* Takes r, a /recv with room and since set: answers it or parks it. Safe
 * from any thread. */
void loop_submit(struct req *r);

/* Copies token: the session is marked active with the next batch of
 * keep-alives. Safe from any thread. */
void loop_touch(const char *token);

/* How many requests are parked now. Safe from any thread. */
size_t loop_parked(void);

/* Runs until SIGTERM or SIGINT. Returns 0. */
int loop_run(void);

/* After loop_run(), once nothing new is accepted: answers what is queued
 * and every parked request with a ping, and writes the last keep-alives. */
void loop_finish(void);

/* Last: answers any later submission with 503 and closes the connection. */
void loop_close(void);

#endif
