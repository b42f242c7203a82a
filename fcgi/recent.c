/* recent.c -- the newest messages of a room, as read from the database.
 *
 * Timestamps grow in commit order, so a contiguous run read from the
 * database stays true: it only ever grows at the head and is trimmed at
 * the floor. Messages are immutable once committed but for one change: a
 * moderator's delete makes a msg a tombstone, and the 'delete' notice that
 * says so comes at the head like any message (migrations/0012), so the
 * window makes the same change when the notice arrives.
 */
#include "recent.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void
recent_init(struct recent *rc)
{
    memset(rc, 0, sizeof(*rc));
}

static void
free_items(struct msg *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        msg_release(&items[i]);
}

void
recent_release(struct recent *rc)
{
    free_items(rc->items, rc->len);
    free(rc->items);
    recent_init(rc);
}

void
recent_trim(struct recent *rc, size_t max)
{
    size_t drop;

    if (rc->len <= max)
        return;
    drop = rc->len - max;
    rc->floor = rc->items[drop - 1].ts;
    free_items(rc->items, drop);
    memmove(rc->items, rc->items + drop, max * sizeof(*rc->items));
    rc->len = max;
}

/* Moves the messages of list to the end of the window; frees list. */
static void
take(struct recent *rc, struct msg_list *list)
{
    if (rc->len + list->len > rc->cap) {
        rc->cap = rc->len + list->len + 64;
        rc->items = xrealloc(rc->items, rc->cap * sizeof(*rc->items));
    }
    if (list->len)
        memcpy(rc->items + rc->len, list->items,
               list->len * sizeof(*list->items));
    rc->len += list->len;
    list->len = 0; /* the strings now belong to the window */
    msg_list_free(list);
}

void
recent_set(struct recent *rc, int64_t since, struct msg_list *list,
           int64_t head)
{
    recent_release(rc);
    rc->floor = since;
    rc->head = head;
    rc->valid = 1;
    take(rc, list);
    recent_trim(rc, RECENT_MAX);
}

/* The msg that a 'delete' notice names (its text is the timestamp)
 * becomes the tombstone the database holds: type "deleted", no text. */
static void
bury(struct recent *rc, const struct msg *notice)
{
    size_t lo = 0, hi = rc->len;
    struct msg *m;
    int64_t ts;

    if (strcmp(notice->type, "delete") != 0 || !notice->text)
        return;
    ts = strtoll(notice->text, NULL, 10);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rc->items[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == rc->len || rc->items[lo].ts != ts ||
        strcmp(rc->items[lo].type, "msg") != 0)
        return;
    m = &rc->items[lo];
    free(m->type);
    m->type = xstrdup("deleted");
    free(m->text);
    m->text = NULL;
    free(m->json); /* made again, without the text, when next asked */
    m->json = NULL;
    m->json_len = 0;
}

void
recent_append(struct recent *rc, struct msg_list *list, int64_t head)
{
    size_t old = rc->len;

    take(rc, list);
    for (size_t i = old; i < rc->len; i++)
        bury(rc, &rc->items[i]);
    if (head > rc->head)
        rc->head = head;
    recent_trim(rc, RECENT_MAX);
}

int
recent_slice(const struct recent *rc, int64_t since, size_t limit,
             struct msg_list *out)
{
    size_t lo = 0, hi;

    if (!rc->valid || since < rc->floor)
        return -1;
    /* The first message after since, by bisection. */
    hi = rc->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rc->items[mid].ts <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    out->items = rc->items + lo;
    out->len = rc->len - lo < limit ? rc->len - lo : limit;
    out->gap = 0;
    return 0;
}
