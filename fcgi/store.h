/* store.h -- messages and sessions in PostgreSQL.
 *
 * A struct store is one libpq connection and is used by one thread only.
 * It reconnects by itself: a call made while the database is away fails
 * with -1 (or NULL), and the next call tries again.
 */
#ifndef PGCHAT_STORE_H
#define PGCHAT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct store;

/* Returns a store for conninfo (a libpq URI or key=value string), connected
 * if the database answers; free it with store_free(). listen: also LISTEN
 * for new messages, on every (re)connection. Never NULL. */
struct store *store_new(const char *conninfo, int listen);
void store_free(struct store *st);

/* Makes sure the connection is up, reconnecting if needed. Returns 1 when
 * this call had to (re)connect, 0 when it was up, -1 when it is down. */
int store_connect(struct store *st);

/* The connection's socket for poll/epoll, or -1 while disconnected. */
int store_socket(struct store *st);

enum store_join {
    STORE_JOINED,
    STORE_TAKEN, /* the nick has a session in that room */
    STORE_FULL,  /* the room has room_cap sessions */
    STORE_ERROR,
};

/* Starts a session for (token, room, nick); a session idle for longer than
 * idle_seconds holding the nick is ended first. room_cap 0: no cap. */
enum store_join store_join(struct store *st, const char *token,
                           const char *room, const char *nick, int idle_seconds,
                           int room_cap);

/* Ends the session, if there is one. Returns 0, or -1 on a database error. */
int store_part(struct store *st, const char *token, const char *room);

/* Returns the nicks of a room, sorted, as a NULL-terminated array that the
 * caller frees with store_strv_free(); *n gets the count. NULL on error. */
char **store_who(struct store *st, const char *room, size_t *n);
void store_strv_free(char **v);

/* Stores n sends in one transaction. accepted[i] is set to 1 for every send
 * whose token named a session of its room, else 0. Returns 0, or -1 when
 * nothing was stored. */
int store_send(struct store *st, const char *const *tokens,
               const char *const *rooms, const char *const *texts, size_t n,
               unsigned char *accepted);

/* Returns the messages of room after since (at most limit), which the caller
 * frees with msg_list_free(); *head gets the room's newest timestamp (0 for
 * an empty room). NULL on a database error. */
struct msg_list *store_recv(struct store *st, const char *room, int64_t since,
                            int limit, int64_t *head);

/* Marks sessions as active now. Returns 0, or -1 on error. */
int store_touch(struct store *st, const char *const *tokens, size_t n);

/* Ends sessions idle for longer than idle_seconds. Returns how many, or -1. */
int store_sweep(struct store *st, int idle_seconds);

struct store_stats {
    long long messages; /* ever stored, in every room */
    long long sessions; /* open now */
    long long rooms;
};

/* Fills st_out with figures for /stats. Returns 0, or -1 on error. */
int store_stats(struct store *st, struct store_stats *out);

/* Returns 0 when the database answers a trivial query, else -1. */
int store_ping(struct store *st);

/* Deletes messages older than days (at most a bounded number per call, so
 * that one call stays short). Returns how many, or -1. */
long long store_expire(struct store *st, int days);

/* Reads what the server sent and calls fn(room, head, arg) for each
 * notification. Returns 0, or -1 when the connection was lost. */
int store_notifies(struct store *st,
                   void (*fn)(const char *room, int64_t head, void *arg),
                   void *arg);

/* Returns a text[] literal for PostgreSQL ("{"a","b\"c"}"), NULL entries
 * becoming NULL. The caller frees it. */
char *store_array_literal(const char *const *v, size_t n);

#endif
