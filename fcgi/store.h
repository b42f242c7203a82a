/* store.h -- the statements pgchat runs on PostgreSQL, their parameters and
 * their answers.
 *
 * The writer thread calls the synchronous ones, each bounded by its
 * connection's timeout (pg.h). The event loop sends the asynchronous ones
 * (store_*_send) and decodes their answers when they come.
 */
#ifndef PGCHAT_STORE_H
#define PGCHAT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "pg.h"

/* --- the writer's, synchronous ------------------------------------------ */

enum store_join {
    STORE_JOINED,
    STORE_TAKEN,     /* the nick (in any case) has a session in that room,
                      * of another login or none */
    STORE_FULL,      /* the room has room_cap sessions */
    STORE_ADDR_FULL, /* the address has addr_cap sessions in that room */
    STORE_WAIT,      /* the address made rooms_per_minute rooms a minute */
    STORE_BANNED,    /* a moderator has banned the login from the room */
    STORE_ERROR,
};

struct store_join_args {
    const char *token, *room, *nick;
    const char *addr;     /* the client's address; NULL: unknown */
    const char *login;    /* the site's user (PGCHAT_AUTH); NULL: none */
    int idle_seconds;     /* a stale session holding the nick is ended first */
    int room_cap;         /* 0: no cap */
    int addr_cap;         /* sessions per address and room; 0: no cap */
    int rooms_per_minute; /* rooms the address may make exist; 0: no cap */
    int wait_seconds;     /* out: with STORE_WAIT, until it may make one */
};

enum store_join store_join(struct pg *p, struct store_join_args *a);

/* Ends the session, if there is one. Returns 0, or -1 on a database error. */
int store_part(struct pg *p, const char *token, const char *room);

/* by asks to delete the msg at ts in room: allowed to a moderator (the
 * site's word, moderator, or the database's moderators table) and to the
 * message's author within window_s seconds of it: its row becomes a
 * tombstone and a 'delete' notice is stored. Returns the notice's
 * timestamp, 0 when there is no such msg, -2 when by may not, -1 on a
 * database error. */
int64_t store_delete_as(struct pg *p, const char *room, int64_t ts,
                        const char *by, int moderator, int window_s);

/* by asks to ban login from room for minutes (0: until lifted), or with
 * unban to lift the ban: allowed to a moderator (moderator, or the
 * database's word). Returns the sessions ended (ban), 1 or 0 whether a ban
 * in force was lifted (unban), -2 when by may not, -1 on a database
 * error. */
int store_ban_as(struct pg *p, const char *room, const char *login,
                 const char *by, int moderator, int minutes, int unban);

/* Returns 1 when the database names login a moderator of room, 0 when
 * not, -1 on a database error. */
int store_moderates(struct pg *p, const char *login, const char *room);

/* Returns 1 when login is banned from room now, 0 when not, -1 on a
 * database error. */
int store_banned(struct pg *p, const char *room, const char *login);

/* Returns the nicks of a room, sorted, as a NULL-terminated array that the
 * caller frees with store_strv_free(); *n gets the count. NULL on error. */
char **store_who(struct pg *p, const char *room, size_t *n);
void store_strv_free(char **v);

/* Stores n sends in one transaction; mids[i] may be NULL (no mid). ts[i] is
 * set to the timestamp of every send whose token named a session of its
 * room (a repeat of a (room, nick, mid) of the last 24 hours stores nothing
 * and gets the original's), else 0. Returns 0, or -1 when nothing was
 * stored. */
int store_send(struct pg *p, const char *const *tokens,
               const char *const *rooms, const char *const *texts,
               const char *const *mids, size_t n, int64_t *ts);

/* Behind a site's login: sets foreign[i] to 1 where tokens[i] names a
 * session of another login than logins[i] (or of none), else 0. An id
 * that names no session is 0. Returns 0, or -1 on a database error. */
int store_foreign(struct pg *p, const char *const *tokens,
                  const char *const *logins, size_t n, int *foreign);

/* Marks sessions as active now. Returns 0, or -1 on error. */
int store_touch(struct pg *p, const char *const *tokens, size_t n);

/* The maintenance passes. Each runs on one runner at a time across every
 * worker and responder on the database (an advisory lock); runner names
 * this one in the maintenance_runs table. Return how many sessions ended
 * or messages were deleted, -2 when another runner has the task now, or -1
 * on error. */
long long store_sweep(struct pg *p, int idle_seconds, const char *runner);
long long store_expire(struct pg *p, int days, const char *runner);

struct store_stats {
    long long messages; /* ever stored, in every room */
    long long sessions; /* open now */
    long long rooms;
};

/* Fills out with figures for /stats. Returns 0, or -1 on error. */
int store_stats(struct pg *p, struct store_stats *out);

/* Starts a read-only transaction whose statements PostgreSQL itself gives
 * up after timeout_ms, so that a read the responder gives up does not go
 * on running on the server. Returns 0, or -1 on error. store_read_end()
 * commits it (ok) or rolls it back. */
int store_read_begin(struct pg *p, int timeout_ms);
void store_read_end(struct pg *p, int ok);

/* Returns at most limit messages of room with a timestamp before before,
 * oldest first, for the caller to free with msg_list_free(); *more says
 * whether older ones exist. NULL on error. */
struct msg_list *store_history(struct pg *p, const char *room, int64_t before,
                               int limit, int *more);

/* Returns the newest limit messages of room matching query (a web-style
 * search: words, "phrases", -word), newest first, for the caller to free
 * with msg_list_free(). NULL on error. */
struct msg_list *store_search(struct pg *p, const char *room, const char *query,
                              int limit);

/* --- the event loop's, asynchronous ------------------------------------- */

/* Sends what a new LISTEN connection runs first: the statements it uses,
 * and LISTEN. Returns 0 or -1 (pg_send). */
int store_listen_send(struct pg *p);

/* Sends the query for at most limit messages of room after since. Returns
 * 0 or -1 (pg_send). */
int store_recv_send(struct pg *p, const char *room, int64_t since, int limit);

/* Takes res, the answer to store_recv_send() (NULL: it failed): returns its
 * messages, which the caller frees with msg_list_free(), or NULL; *head
 * gets the room's newest timestamp (0 for a room never written to). */
struct msg_list *store_recv_decode(struct pg_res *res, int64_t *head);

/* Sends a trivial statement, to learn that the connection still answers. */
int store_check_send(struct pg *p);

/* Sends the query for the rooms marked private. Returns 0 or -1
 * (pg_send). */
int store_private_send(struct pg *p);

/* Takes res, the answer to store_private_send() (NULL: it failed): returns
 * the rooms as a NULL-terminated array for store_strv_free(), *n the
 * count, or NULL. */
char **store_private_decode(struct pg_res *res, size_t *n);

/* What a notification says (migrations/0009): the room's new head and,
 * where the batch fitted the payload, the head before it and the batch. */
struct store_notice {
    int private_rooms; /* the private rooms changed: nothing else is set */
    const char *room;  /* in the payload */
    int64_t head;
    int64_t prev;           /* -1: the batch is not in the payload */
    struct msg_list *batch; /* owned by the caller; NULL with prev -1 */
};

/* Splits a notification's payload ("ROOM HEAD" or "ROOM HEAD PREV JSON",
 * or "*private", which no room name can be: migrations/0016) in place. Returns
 * 0, or -1 when it is not one of ours. */
int store_notify_parse(char *payload, struct store_notice *n);

/* Returns a text[] literal for PostgreSQL ("{"a","b\"c"}"), NULL entries
 * becoming NULL. The caller frees it. */
char *store_array_literal(const char *const *v, size_t n);

#endif
