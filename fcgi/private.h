/* private.h -- the rooms the database marks private (private_rooms,
 * migrations/0016), as this worker last read them: served only to a user
 * whose site login names the room.
 */
#ifndef PGCHAT_PRIVATE_H
#define PGCHAT_PRIVATE_H

#include <stddef.h>

/* Whether the set has been read since the worker started. Until then no
 * room can be told public. */
int private_known(void);

/* Whether room is private by the last read of the set. */
int private_is(const char *room);

/* Replaces the set by the n names (borrowed), and calls fn for each of
 * them that was not private before (its readers must be asked again). */
void private_replace(char *const *names, size_t n,
                     void (*fn)(const char *room));

/* Frees the set. */
void private_free(void);

#endif
