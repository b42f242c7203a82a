/* views.h -- the JSON bodies of every reply.
 *
 * Each function returns a NUL-terminated string that the caller frees with
 * free(), and stores its length in *len.
 */
#ifndef PGCHAT_VIEWS_H
#define PGCHAT_VIEWS_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* {"error":MESSAGE} */
char *views_error(const char *message, size_t *len);

/* {"rss":N} */
char *views_rss(long long rss, size_t *len);

/* {"rss":N,"timestamp":T}: a send's reply, T the stored message's. */
char *views_sent(long long rss, int64_t ts, size_t *len);

/* {"id":ID,"nick":NICK,"rss":N,"starttime":MS}, plus "moderator":true
 * when moderator is set and "delete_window":S when delete_window_s > 0
 * (behind a site's login: what the client may offer to delete). */
char *views_join(const char *id, const char *nick, long long rss,
                 int64_t starttime, int moderator, int delete_window_s,
                 size_t *len);

/* {"nicks":[...],"rss":N} */
char *views_who(char *const *nicks, size_t n, long long rss, size_t *len);

/* {"messages":[...],"rss":N} plus "gap":true and "ping":true when set.
 * list may be NULL for no messages. */
char *views_messages(const struct msg_list *list, long long rss, int ping,
                     size_t *len);

/* Gives every message of list its JSON (msg.json) where it has none yet,
 * so that the replies that carry it copy it instead of making it again. */
void views_prepare(struct msg_list *list);

/* One message as JSON, the same bytes views_prepare() gives it. */
char *views_message(const struct msg *m, size_t *len);

/* Reads a notification's batch, a JSON array of [ts, nick, type, text,
 * mid] (text and mid may be null). Returns the messages, which the caller
 * frees with msg_list_free(), or NULL when json is not exactly that. */
struct msg_list *views_parse_batch(const char *json);

/* {"messages":[...],"more":bool,"rss":N}: a page of /history. */
char *views_history(const struct msg_list *list, int more, long long rss,
                    size_t *len);

/* {"status":"ok","rss":N} */
char *views_health(long long rss, size_t *len);

/* The limits a client must know, for GET /limits. */
struct views_limits {
    int nick_max, room_max, message_bytes;
    int history_limit, search_limit, search_chars;
    double send_rate, send_burst; /* 0: no limit */
    int recv_timeout;             /* seconds */
};

/* {"nick_max":N,...}: every field of l, by the same names. */
char *views_limits(const struct views_limits *l, size_t *len);

struct views_stats {
    long long uptime_s, pid, parked, messages, sessions, rooms, rss;
    long long connections, requests;
};

/* {"uptime":S,"pid":N,"parked":N,"messages":N,"sessions":N,"rooms":N,
 *  "rss":N,"connections":N,"requests":N} */
char *views_stats(const struct views_stats *s, size_t *len);

#endif
