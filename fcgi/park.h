/* park.h -- readers: /recv and /events requests the event loop holds,
 * each waiting in its room until a message or its deadline, when it gets
 * its keep-alive.
 *
 * A waiting reader costs its socket and this record: no thread, no
 * database connection.
 */
#ifndef PGCHAT_PARK_H
#define PGCHAT_PARK_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "rooms.h"

struct reader {
    struct req *req; /* owned until answered */
    struct room *room;
    int64_t since;    /* the cursor */
    const char *id;   /* borrowed from req: a session to keep alive, or NULL */
    int stream;       /* an event stream: it stays after each delivery */
    int64_t deadline; /* mono_ms() at which it gets a ping */
    struct reader *next, *prev;   /* the room's readers */
    struct reader *tnext, *tprev; /* every reader, by deadline */
};

/* Returns a reader for r (taken) in rm, not waiting yet. */
struct reader *park_new(struct req *r, struct room *rm, int64_t since,
                        const char *id);

/* Makes rd wait in its room until deadline_ms from now. If its client
 * leaves meanwhile, it is dropped and freed. */
void park_wait(struct reader *rd, int deadline_ms);

/* Answers rd with body (status 200) and frees it; it stops waiting if it
 * did. */
void park_answer(struct reader *rd, const char *body, size_t len);

/* A stream rd has had data: it waits on, with a new deadline. */
void park_again(struct reader *rd, int deadline_ms);

/* Ends rd's stream and frees rd. */
void park_end(struct reader *rd);

/* Drops rd, whose client has gone, and frees it. */
void park_drop(struct reader *rd);

/* Answers rd with {"error":message} and frees it. */
void park_error(struct reader *rd, int status, const char *message);

/* The reader that waited longest, or NULL. */
struct reader *park_oldest(void);

/* The next one by deadline, or NULL. */
struct reader *park_next(const struct reader *rd);

/* How many readers wait, in this worker. */
size_t park_count(void);

#endif
