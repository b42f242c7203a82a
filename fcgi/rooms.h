/* rooms.h -- the rooms a worker's readers wait in: what the event loop
 * knows of each (its head, its window of newest messages) and who waits.
 */
#ifndef PGCHAT_ROOMS_H
#define PGCHAT_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "recent.h"

struct reader;

struct room {
    char *name;             /* owned */
    struct recent recent;   /* the newest messages, for readers close behind */
    int64_t head;           /* newest timestamp known to be committed */
    int known;              /* head is trustworthy: learnt while listening */
    int dirty;              /* waiting readers may be behind head */
    int querying;           /* a query for this room is in flight */
    struct reader *readers; /* waiting here (park.h) */
    size_t nreaders;
    int64_t used;        /* mono_ms() of the last request */
    int64_t heard;       /* mono_ms() of the last NOTIFY or answer about it */
    int64_t quiet_until; /* no fan-out before this mono_ms() (batching) */
    int64_t notified_us; /* stats_now_us() of the first NOTIFY the fan-out
                          * has not answered yet; 0: none */
    struct room *hnext;
};

/* Borrowed until rooms_prune(): the room called name, made if need be. */
struct room *rooms_get(const char *name);

/* Borrowed: the room called name, or NULL. */
struct room *rooms_find(const char *name);

/* Calls fn for every room. fn must not add or remove rooms. */
void rooms_each(void (*fn)(struct room *rm));

/* Forgets rooms nobody has waited in or asked about for a while, and
 * rooms nobody has asked about at all (only notifications brought them). */
void rooms_prune(int64_t now);

/* Takes list, every message after since as a query read it along with the
 * room's head: learns the head, and keeps the list as the room's window
 * when it reaches the head and covers more than the window did (or
 * extends it, when since is the window's head). Whatever is not kept is
 * freed. */
void rooms_learn(struct room *rm, int64_t since, struct msg_list *list,
                 int64_t head, int limit);

/* Frees every room. */
void rooms_free(void);

#endif
