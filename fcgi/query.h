/* query.h -- application/x-www-form-urlencoded strings (query strings and
 * POST bodies), decoded by liburiparser.
 */
#ifndef PGCHAT_QUERY_H
#define PGCHAT_QUERY_H

#include <stddef.h>

struct query {
    struct UriQueryListStructA *list;
};

/* Decodes (s, len) into q, which the caller releases with query_release()
 * whatever this returns. Returns 0, or -1 when the string holds a NUL byte,
 * raw or as %00: C strings could not carry it and PostgreSQL text refuses
 * it, so it is refused here rather than silently cut. */
int query_parse(struct query *q, const char *s, size_t len);

/* Borrowed: the decoded value of the first parameter named key, valid until
 * query_release(). "" for a key with no '=', NULL when absent. */
const char *query_get(const struct query *q, const char *key);

/* Frees what query_parse() made; q may be zeroed or released already. */
void query_release(struct query *q);

#endif
