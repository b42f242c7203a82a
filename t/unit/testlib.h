/* testlib.h -- helpers shared by the C unit tests and the fuzz target:
 * a decoded parameter as a string, and an independent UTF-8 rule to check
 * valid_utf8() against.
 */
#ifndef PGCHAT_TESTLIB_H
#define PGCHAT_TESTLIB_H

#include <stdio.h>
#include <string.h>

#include "query.h"

/* Borrowed, until the next call: the value of key in the form (input, len),
 * "(refused)" when query_parse() refuses it, NULL when absent. */
static inline const char *
decoded(const char *input, size_t len, const char *key)
{
    static char buf[256];
    struct query q;
    const char *v;

    if (query_parse(&q, input, len) < 0) {
        query_release(&q);
        return "(refused)";
    }
    v = query_get(&q, key);
    if (v)
        snprintf(buf, sizeof(buf), "%s", v);
    query_release(&q);
    return v ? buf : NULL;
}

/* Well-formed UTF-8 by the table of the Unicode standard (3.9, table 3-7),
 * without NUL: written apart from valid.c on purpose. */
static inline int
ref_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n;

        if (c == 0)
            return 0;
        if (c <= 0x7f) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1;
        else if (c == 0xe0)
            n = 2, lo = 0xa0;
        else if (c == 0xed)
            n = 2, hi = 0x9f;
        else if (c >= 0xe1 && c <= 0xef)
            n = 2;
        else if (c == 0xf0)
            n = 3, lo = 0x90;
        else if (c == 0xf4)
            n = 3, hi = 0x8f;
        else if (c >= 0xf1 && c <= 0xf3)
            n = 3;
        else
            return 0;
        if (i + n >= len)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += n + 1;
    }
    return 1;
}

#endif
