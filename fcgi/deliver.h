/* deliver.h -- giving messages to waiting readers, and keeping alive those
 * still waiting. On the loop thread.
 */
#ifndef PGCHAT_DELIVER_H
#define PGCHAT_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "park.h"
#include "rooms.h"

#define DELIVER_PAGE 200 /* messages in one reply at the most */

/* Returns {"messages":[...],"rss":N} (plus "gap", "ping" when set) for the
 * caller to free; list may be NULL. */
char *deliver_body(const struct msg_list *list, int ping, size_t *len);

/* Gives list to every reader of rm whose cursor is since: long-poll readers
 * are answered, streams get events and wait on. The room is then quiet for
 * a batch interval. Returns 1 when a stream is still behind rm's head. */
int deliver_cursor(struct room *rm, int64_t since, const struct msg_list *list);

/* The same for every reader of rm behind its head that rm's window can
 * serve, one body per cursor. Returns the cursor of the first group the
 * window cannot serve, or -1; *behind as deliver_cursor() returns. */
int64_t deliver_window(struct room *rm, int *behind);

/* Keeps alive the readers whose deadline is before until (a ping, or a
 * stream's comment line); with all, ends every one. */
void deliver_keep_alive(int64_t until, int all);

#endif
