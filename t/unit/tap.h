/* tap.h -- a tiny TAP producer for the C unit tests, run by prove.
 *
 * ok(cond, name...) prints "ok N - name" or "not ok N - name"; is_str and
 * is_int also print what was expected and what came. done_testing() prints
 * the plan and returns the exit status.
 */
#ifndef PGCHAT_TAP_H
#define PGCHAT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run, tap_failed;

__attribute__((format(printf, 2, 3))) static int
ok(int cond, const char *fmt, ...)
{
    va_list ap;

    tap_run++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return cond;
}

#define is_str(got, want, ...)                                                 \
    do {                                                                       \
        const char *g_ = (got), *w_ = (want);                                  \
        if (!ok(g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_, __VA_ARGS__))       \
            printf("#   got:      %s\n#   expected: %s\n", g_ ? g_ : "(null)", \
                   w_ ? w_ : "(null)");                                        \
    } while (0)

#define is_int(got, want, ...)                                                 \
    do {                                                                       \
        long long g_ = (got), w_ = (want);                                     \
        if (!ok(g_ == w_, __VA_ARGS__))                                        \
            printf("#   got:      %lld\n#   expected: %lld\n", g_, w_);        \
    } while (0)

static int
done_testing(void)
{
    printf("1..%d\n", tap_run);
    return tap_failed ? 1 : 0;
}

#endif
