/* moderate.h -- the moderators' endpoints, behind a site's login: delete a
 * message (a tombstone stays), ban a user from a room, lift a ban.
 */
#ifndef PGCHAT_MODERATE_H
#define PGCHAT_MODERATE_H

#include "request.h"

/* POST /delete?room=R&ts=T. Takes r. */
void moderate_delete(struct req *r);

/* POST /ban?room=R&user=U[&minutes=M]. Takes r. */
void moderate_ban(struct req *r);

/* POST /unban?room=R&user=U. Takes r. */
void moderate_unban(struct req *r);

#endif
