/* token.c -- session tokens from getrandom(2).
 *
 * Tokens are never logged and never stored: the database keeps a SHA-256 of
 * each (see migrations/0001_chat.sql).
 */
#include "token.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"

char *
token_new(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[TOKEN_BYTES];
    size_t got = 0;
    char *out;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error("cannot read random bytes: %s", strerror(errno));
            return NULL;
        }
        got += n;
    }
    out = xmalloc(TOKEN_LEN + 1);
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[TOKEN_LEN] = '\0';
    return out;
}
