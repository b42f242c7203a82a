/* moderate.c -- the moderators' endpoints: /delete, /ban and /unban
 * (PGCHAT_AUTH=request). What can be decided from the request alone is
 * decided here; who may is the writer's to ask the database.
 */
#include "moderate.h"

#include <stdint.h>
#include <string.h>

#include "auth.h"
#include "job.h"
#include "valid.h"
#include "writer.h"

/* POST /delete?room=R&ts=T: a moderator (the site's X-Pgchat-Role, or
 * the database's moderators), or the author within PGCHAT_DELETE_WINDOW,
 * deletes the message at T; it stays as a tombstone. The writer decides
 * who may. */
void
moderate_delete(struct req *r)
{
    const char *ts = req_param(r, "ts"), *room;
    int64_t v_ts;
    struct job *j;
    int mod;

    if (auth_take_room(r, &room) < 0 || (mod = auth_moderator(r)) < 0)
        return;
    if (!auth_required(r)) { /* nobody is anybody without a login */
        req_error(r, 403, "Moderators only");
        return;
    }
    if (!ts || valid_number(ts, 1, INT64_MAX, &v_ts) < 0) {
        req_error(r, 400, "Bad ts");
        return;
    }
    j = job_new(r, WRITER_DELETE, room);
    j->nick = req_env(r, "PGCHAT_USER"); /* checked in handle() */
    j->before = v_ts;
    j->moderator = mod;
    writer_submit(j);
}

#define BAN_MINUTES_MAX (366 * 24 * 60)

/* POST /ban?room=R&user=U&minutes=M and /unban: a moderator (the site's
 * word or the database's; the writer decides) bans the site's user U from
 * the room for M minutes (none: until lifted), its sessions there ending
 * and its joins and sends refused, or lifts the ban. */
static void
handle_ban(struct req *r, int kind)
{
    const char *user = req_param(r, "user"), *room;
    const char *minutes = req_param(r, "minutes");
    int64_t v_minutes = 0;
    struct job *j;
    int mod;

    if (auth_take_room(r, &room) < 0 || (mod = auth_moderator(r)) < 0)
        return;
    if (!auth_required(r)) {
        req_error(r, 403, "Moderators only");
        return;
    }
    if (!user || !valid_nick(user, strlen(user))) {
        req_error(r, 400, "Bad user");
        return;
    }
    if (kind == WRITER_BAN && minutes &&
        valid_number(minutes, 1, BAN_MINUTES_MAX, &v_minutes) < 0) {
        req_error(r, 400, "Bad minutes");
        return;
    }
    j = job_new(r, kind, room);
    j->login = user;
    j->nick = req_env(r, "PGCHAT_USER"); /* checked in handle() */
    j->moderator = mod;
    j->limit = (int)v_minutes;
    writer_submit(j);
}

void
moderate_ban(struct req *r)
{
    handle_ban(r, WRITER_BAN);
}

void
moderate_unban(struct req *r)
{
    handle_ban(r, WRITER_UNBAN);
}
