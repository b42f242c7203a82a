/* private.c -- the rooms the database marks private, as this worker last
 * read them.
 *
 * A sorted array: the set is small (an operator writes each row by hand)
 * and read on every request, written only when the table changes.
 */
#include "private.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static struct {
    char **names; /* owned, sorted */
    size_t n;
    int known;
} set;

static int
cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
private_known(void)
{
    return set.known;
}

int
private_is(const char *room)
{
    return set.n && bsearch(&room, set.names, set.n, sizeof(*set.names), cmp);
}

void
private_replace(char *const *names, size_t n, void (*fn)(const char *room))
{
    char **fresh = xcalloc(n ? n : 1, sizeof(*fresh));
    unsigned char *was = xcalloc(n ? n : 1, 1);
    int had = set.known;

    for (size_t i = 0; i < n; i++)
        fresh[i] = xstrdup(names[i]);
    qsort(fresh, n, sizeof(*fresh), cmp);
    for (size_t i = 0; i < n; i++)
        was[i] = (unsigned char)private_is(fresh[i]);
    private_free();
    set.names = fresh;
    set.n = n;
    set.known = 1;
    /* fn sees the new set: it decides by it. */
    for (size_t i = 0; had && i < n; i++)
        if (!was[i])
            fn(fresh[i]);
    free(was);
}

void
private_free(void)
{
    for (size_t i = 0; i < set.n; i++)
        free(set.names[i]);
    free(set.names);
    set.names = NULL;
    set.n = 0;
}
