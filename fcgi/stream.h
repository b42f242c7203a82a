/* stream.h -- the /events reply: Server-Sent Events (text/event-stream)
 * on an open FastCGI reply, its head, its retry, its events and its
 * keep-alive. On the loop thread.
 *
 * Each message is one event whose id is its timestamp, so a client that
 * reconnects says where it was in Last-Event-ID; readers skipped past the
 * window get "event: gap" first. Every PGCHAT_RECV_TIMEOUT without news a
 * stream gets a comment line, which keeps proxies from closing it, and an
 * "event: ping", which lets a client that sees nothing for two intervals
 * know the stream is dead (EventSource hides comments from scripts).
 */
#ifndef PGCHAT_STREAM_H
#define PGCHAT_STREAM_H

#include <stddef.h>

#include "msg.h"
#include "request.h"

/* Sends the head of r's reply, not buffered by nginx, and the retry
 * interval. Returns 0, or -1 when the client has gone (then drop r). */
int stream_open(struct req *r);

/* Returns the events of list (a gap event first when list->gap), for the
 * caller to free; "" for an empty list. */
char *stream_events(const struct msg_list *list, size_t *len);

/* Sends the keep-alive. Returns 0, or -1 when the client has gone or
 * reads too slowly (then drop r). */
int stream_keep_alive(struct req *r);

#endif
