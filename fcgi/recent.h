/* recent.h -- the newest messages of a room, as the event loop read them
 * from the database, so that readers close behind are answered without a
 * query.
 *
 * The window is exact: it holds every message with floor < ts <= head, in
 * order, and never more than RECENT_MAX of them, so an answer from it never
 * needs the "gap" rule (which starts at 1000 behind).
 */
#ifndef PGCHAT_RECENT_H
#define PGCHAT_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define RECENT_MAX 1000

struct recent {
    struct msg *items; /* owned, ascending ts */
    size_t len, cap;
    int64_t floor, head;
    int valid;
};

void recent_init(struct recent *rc);

/* Frees the messages; rc is empty and invalid afterwards. */
void recent_release(struct recent *rc);

/* Takes list, which holds every message with since < ts <= head: the window
 * becomes exactly that. Frees list. */
void recent_set(struct recent *rc, int64_t since, struct msg_list *list,
                int64_t head);

/* Takes list, which holds every message with rc->head < ts <= head (head
 * may be the last message's timestamp, when the list is only a first
 * part). Appends it and drops the oldest beyond RECENT_MAX. Frees list. */
void recent_append(struct recent *rc, struct msg_list *list, int64_t head);

/* Drops the oldest messages beyond max; the floor follows. */
void recent_trim(struct recent *rc, size_t max);

/* Sets *out to a view of the messages after since, at most limit; the view
 * borrows rc's messages until rc next changes, and must not be freed.
 * Returns 0, or -1 when the window cannot tell (invalid, or since before
 * floor). */
int recent_slice(const struct recent *rc, int64_t since, size_t limit,
                 struct msg_list *out);

#endif
