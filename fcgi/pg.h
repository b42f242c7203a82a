/* pg.h -- one PostgreSQL connection, and every wait on it bounded.
 *
 * The only interface to libpq. A struct pg is used by one thread. It can be
 * driven two ways:
 * - by an event loop, without ever waiting: pg_start() and pg_step() to
 *   connect, pg_send() to start a statement, pg_step() again whenever the
 *   socket is ready, pg_take() for the result;
 * - by a thread that may wait, with pg_exec(): it connects if needed and
 *   waits at most the connection's timeout for the answer.
 * Either way a call that does not answer within the timeout is given up:
 * the connection is closed, and the next use opens a new one.
 */
#ifndef PGCHAT_PG_H
#define PGCHAT_PG_H

#include <stddef.h>
#include <stdint.h>

struct pg;
struct pg_res;

/* Returns a closed connection for conninfo (a URI or key=value string),
 * named app_name in pg_stat_activity; timeout_ms bounds every call. Free it
 * with pg_free(). Never NULL. */
struct pg *pg_new(const char *conninfo, const char *app_name, int timeout_ms);
void pg_free(struct pg *p);

/* Closes the connection (a later call opens a new one). */
void pg_close(struct pg *p);

/* Closes a connection whose backend stopped answering, remembering the
 * backend's pid: pg_exec() then ends that backend from the next connection,
 * so that a statement it has not read yet never runs when it wakes. */
void pg_abandon(struct pg *p);

/* The pid pg_abandon() remembered (0: none), forgotten by this call. */
int pg_take_abandoned(struct pg *p);

/* Whether the connection is open and idle or busy with a statement. */
int pg_is_open(const struct pg *p);

/* The socket, or -1 while closed. It changes with every connection. */
int pg_fd(const struct pg *p);

/* The last error, for the log; borrowed until the next call. */
const char *pg_error(const struct pg *p);

/* --- driven by an event loop -------------------------------------------- */

enum pg_wait {
    PG_WAIT_NONE = 0, /* nothing to wait for: the step is complete */
    PG_WAIT_READ = 1,
    PG_WAIT_WRITE = 2,
};

/* Starts connecting without waiting; *wait says what to wait for before
 * the first pg_step(). Returns 0, or -1 (then closed): the database
 * refused at once, or the last attempt failed less than a back-off ago
 * (see pg_retry_at()). */
int pg_start(struct pg *p, enum pg_wait *wait);

/* mono_ms() before which pg_start() does not try again after a failure:
 * 250 ms after the first, doubling up to 5 s. */
int64_t pg_retry_at(const struct pg *p);

/* Sends sql with n text parameters without waiting; sql names a statement
 * made with PREPARE when it has no space in it. Returns 0, or -1 when the
 * connection broke (then closed). */
int pg_send(struct pg *p, const char *sql, int n, const char *const *params);

/* Does what the socket allows: connects, writes, reads. Returns 1 once the
 * connection is up (after pg_start) or the statement's whole answer is in
 * (after pg_send), 0 while *wait says what to wait for, -1 when the
 * connection failed (then closed). Notifications read on the way queue up
 * for pg_notify(). */
int pg_step(struct pg *p, enum pg_wait *wait);

/* Returns the answer pg_step() completed, which the caller frees with
 * pg_res_free(): the last result of the statement(s), or NULL when one of
 * them failed (logged). */
struct pg_res *pg_take(struct pg *p);

/* Reads what the server sent while idle. Returns 0, or -1 when the
 * connection broke (then closed). */
int pg_read_idle(struct pg *p);

/* Returns the payload of the next queued notification (the caller frees
 * it with free()), or NULL. */
char *pg_notify(struct pg *p);

/* --- driven by a thread that may wait ----------------------------------- */

/* Runs sql (as pg_send) and returns its answer for the caller to free with
 * pg_res_free(); NULL when the database failed it, could not be reached,
 * or did not answer within the timeout (*timed_out is then set to 1; it may
 * be NULL). A connection that timed out or broke is closed. */
struct pg_res *pg_exec(struct pg *p, const char *sql, int n,
                       const char *const *params, int *timed_out);

/* --- results ------------------------------------------------------------ */

int pg_rows(const struct pg_res *r);
/* Borrowed until pg_res_free(). */
const char *pg_value(const struct pg_res *r, int row, int col);
int pg_is_null(const struct pg_res *r, int row, int col);
void pg_res_free(struct pg_res *r);

#endif
