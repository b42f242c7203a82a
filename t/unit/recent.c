/* recent.c -- unit tests for a room's window of newest messages. */
#include <stdio.h>
#include <stdlib.h>

#include "recent.h"
#include "tap.h"
#include "util.h"

/* A list of the messages with timestamps from..to, as a query returns. */
static struct msg_list *
run_of(int64_t from, int64_t to)
{
    struct msg_list *list = xcalloc(1, sizeof(*list));
    char text[32];

    list->items = xcalloc(to >= from ? to - from + 1 : 1, sizeof(struct msg));
    for (int64_t ts = from; ts <= to; ts++) {
        struct msg *m = &list->items[list->len++];

        snprintf(text, sizeof(text), "m%lld", (long long)ts);
        m->ts = ts;
        m->nick = xstrdup("n");
        m->type = xstrdup("msg");
        m->text = xstrdup(text);
    }
    return list;
}

int
main(void)
{
    struct recent rc;
    struct msg_list view;

    recent_init(&rc);
    ok(recent_slice(&rc, 0, 200, &view) < 0, "an empty window cannot tell");

    recent_set(&rc, 100, run_of(101, 110), 110);
    ok(recent_slice(&rc, 99, 200, &view) < 0,
       "a cursor before the floor is not answered from the window");
    ok(recent_slice(&rc, 100, 200, &view) == 0 && view.len == 10 &&
           view.items[0].ts == 101,
       "a cursor at the floor gets the whole window");
    ok(recent_slice(&rc, 105, 200, &view) == 0 && view.len == 5 &&
           view.items[0].ts == 106 && !view.gap,
       "a cursor inside gets what follows it");
    ok(recent_slice(&rc, 110, 200, &view) == 0 && view.len == 0,
       "a cursor at the head gets nothing");
    ok(recent_slice(&rc, 100, 3, &view) == 0 && view.len == 3,
       "the limit is kept");

    recent_append(&rc, run_of(111, 115), 115);
    ok(recent_slice(&rc, 110, 200, &view) == 0 && view.len == 5 &&
           view.items[4].ts == 115,
       "appended messages follow");
    is_int(rc.head, 115, "the head follows");

    recent_append(&rc, run_of(116, 1200), 1200);
    is_int(rc.len, RECENT_MAX, "the window keeps at most RECENT_MAX");
    is_int(rc.floor, 200, "its floor is the newest message dropped");
    ok(recent_slice(&rc, 199, 200, &view) < 0,
       "dropped messages are no longer answered");
    ok(recent_slice(&rc, 200, 200, &view) == 0 && view.items[0].ts == 201,
       "the first kept message is after the floor");

    recent_append(&rc, run_of(1201, 1210), 1500);
    is_int(rc.head, 1500, "a head beyond the last message is kept");

    recent_set(&rc, 5, run_of(6, 5), 5);
    ok(recent_slice(&rc, 5, 200, &view) == 0 && view.len == 0,
       "an empty run still makes a valid window");
    recent_release(&rc);
    ok(!rc.valid && rc.len == 0, "release empties and invalidates");
    return done_testing();
}
