/* query.c -- application/x-www-form-urlencoded strings, via liburiparser.
 *
 * '+' decodes to a space, as browsers encode forms. Malformed escapes such as
 * "%zz" are kept literally, which is what liburiparser and browsers do.
 */
#include "query.h"

#include <string.h>
#include <uriparser/Uri.h>

static int
has_nul(const char *s, size_t len)
{
    if (memchr(s, '\0', len))
        return 1;
    for (size_t i = 0; i + 2 < len; i++)
        if (s[i] == '%' && s[i + 1] == '0' && s[i + 2] == '0')
            return 1;
    return 0;
}

int
query_parse(struct query *q, const char *s, size_t len)
{
    UriQueryListA *list = NULL;
    int count = 0;

    q->list = NULL;
    if (len == 0)
        return 0;
    if (has_nul(s, len))
        return -1;
    if (uriDissectQueryMallocExA(&list, &count, s, s + len, URI_TRUE,
                                 URI_BR_DONT_TOUCH) != URI_SUCCESS)
        return -1;
    q->list = list;
    return 0;
}

const char *
query_get(const struct query *q, const char *key)
{
    for (const UriQueryListA *p = q->list; p; p = p->next)
        if (p->key && strcmp(p->key, key) == 0)
            return p->value ? p->value : "";
    return NULL;
}

void
query_release(struct query *q)
{
    if (q->list)
        uriFreeQueryListA(q->list);
    q->list = NULL;
}
