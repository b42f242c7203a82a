/* rooms.c -- the rooms a worker's readers wait in: a hash table of what the
 * event loop knows of each, and the window of newest messages that answers
 * readers close behind without a query.
 */
#include "rooms.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ROOMS_BUCKETS 1024
#define ROOMS_IDLE_MS 300000 /* a room nobody waits in is forgotten */

static struct room *table[ROOMS_BUCKETS];

static unsigned
hash(const char *s)
{
    unsigned h = 5381;

    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % ROOMS_BUCKETS;
}

struct room *
rooms_find(const char *name)
{
    for (struct room *rm = table[hash(name)]; rm; rm = rm->hnext)
        if (strcmp(rm->name, name) == 0)
            return rm;
    return NULL;
}

struct room *
rooms_get(const char *name)
{
    struct room *rm = rooms_find(name);
    unsigned h;

    if (rm)
        return rm;
    h = hash(name);
    rm = xcalloc(1, sizeof(*rm));
    rm->name = xstrdup(name);
    recent_init(&rm->recent);
    rm->hnext = table[h];
    table[h] = rm;
    return rm;
}

void
rooms_each(void (*fn)(struct room *rm))
{
    for (unsigned h = 0; h < ROOMS_BUCKETS; h++)
        for (struct room *rm = table[h]; rm; rm = rm->hnext)
            fn(rm);
}

static void
room_free(struct room *rm)
{
    recent_release(&rm->recent);
    free(rm->name);
    free(rm);
}

void
rooms_prune(int64_t now)
{
    for (unsigned h = 0; h < ROOMS_BUCKETS; h++) {
        struct room **pp = &table[h];

        while (*pp) {
            struct room *rm = *pp;

            /* used 0: only notifications brought it (recv.c). */
            if (rm->nreaders == 0 && !rm->querying &&
                (rm->used == 0 || now - rm->used > ROOMS_IDLE_MS)) {
                *pp = rm->hnext;
                room_free(rm);
            } else {
                pp = &rm->hnext;
            }
        }
    }
}

void
rooms_learn(struct room *rm, int64_t since, struct msg_list *list, int64_t head,
            int limit)
{
    struct recent *rc = &rm->recent;
    int64_t last = list->len ? list->items[list->len - 1].ts : head;
    /* Whole: every message after since up to the head is in the list. */
    int whole =
        !list->gap && since <= head && ((int)list->len < limit || last == head);

    if (!rm->known || head > rm->head)
        rm->head = head;
    rm->known = 1;
    if (rc->valid && since == rc->head && !list->gap) {
        /* A catch-up: appended, even when only a first part of it. */
        recent_append(rc, list, whole ? head : last);
    } else if (rc->valid && since == rc->head) {
        /* More than the window has come: it starts again later. */
        recent_release(rc);
        msg_list_free(list);
    } else if (whole && (!rc->valid || head > rc->head ||
                         (head == rc->head && since < rc->floor))) {
        recent_set(rc, since, list, head);
    } else {
        msg_list_free(list);
    }
}

void
rooms_free(void)
{
    for (unsigned h = 0; h < ROOMS_BUCKETS; h++)
        while (table[h]) {
            struct room *rm = table[h];

            table[h] = rm->hnext;
            room_free(rm);
        }
}
