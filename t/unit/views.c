/* views.c -- unit tests for the JSON bodies, byte for byte, and for the
 * text[] literals the store sends. */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "stream.h"
#include "tap.h"
#include "views.h"

static void
check(char *got, const char *want, const char *name)
{
    is_str(got, want, "%s", name);
    free(got);
}

int
main(void)
{
    size_t len;
    char *nicks[] = {"alice", "bob"};
    struct msg items[] = {
        {.ts = 1000, .nick = "alice", .type = "join"},
        {.ts = 1001,
         .nick = "alice",
         .type = "msg",
         .text = "<b>\"hi\"</b> \\ / \n caf\xc3\xa9"},
        {.ts = 1002, .nick = "alice", .type = "part"},
        {.ts = 1003,
         .nick = "bob",
         .type = "msg",
         .text = "again",
         .mid = "m-1_x"},
    };
    struct msg_list with_mid = {items + 3, 1, 0};
    struct msg_list list = {items, 3, 0};
    struct msg_list gap = {items + 1, 1, 1};

    check(views_error("Bad nick.", &len), "{\"error\":\"Bad nick.\"}",
          "an error body");
    check(views_rss(1234, &len), "{\"rss\":1234}", "an rss body");
    check(views_join("00ff", "alice", 5, 1700000000000LL, 0, 0, &len),
          "{\"id\":\"00ff\",\"nick\":\"alice\",\"rss\":5,"
          "\"starttime\":1700000000000}",
          "a join body");
    check(views_join("00ff", "mona", 5, 1700000000000LL, 1, 300, &len),
          "{\"id\":\"00ff\",\"nick\":\"mona\",\"rss\":5,"
          "\"starttime\":1700000000000,\"moderator\":true,"
          "\"delete_window\":300}",
          "a moderator's join body behind a login");
    check(views_who(nicks, 2, 7, &len),
          "{\"nicks\":[\"alice\",\"bob\"],\"rss\":7}", "a who body");
    check(views_who(nicks, 0, 7, &len), "{\"nicks\":[],\"rss\":7}",
          "an empty who body");
    check(views_messages(&list, 9, 0, &len),
          "{\"messages\":["
          "{\"nick\":\"alice\",\"type\":\"join\",\"timestamp\":1000},"
          "{\"nick\":\"alice\",\"type\":\"msg\","
          "\"text\":\"<b>\\\"hi\\\"</b> \\\\ / \\n caf\xc3\xa9\","
          "\"timestamp\":1001},"
          "{\"nick\":\"alice\",\"type\":\"part\",\"timestamp\":1002}"
          "],\"rss\":9}",
          "messages: text only on msg, quotes and controls escaped");
    check(views_messages(&gap, 9, 0, &len),
          "{\"messages\":[{\"nick\":\"alice\",\"type\":\"msg\",\"text\":"
          "\"<b>\\\"hi\\\"</b> \\\\ / \\n caf\xc3\xa9\",\"timestamp\":1001}"
          "],\"rss\":9,\"gap\":true}",
          "a reply after a gap says so");
    check(views_messages(&with_mid, 9, 0, &len),
          "{\"messages\":[{\"nick\":\"bob\",\"type\":\"msg\",\"text\":"
          "\"again\",\"timestamp\":1003,\"mid\":\"m-1_x\"}],\"rss\":9}",
          "a message sent with a mid carries it");
    {
        /* The JSON made once for the window gives the same bytes. */
        char *fresh = views_messages(&list, 9, 0, &len);
        char *events = stream_events(&list, &len);

        views_prepare(&list);
        ok(list.items[1].json &&
               list.items[1].json_len == strlen(list.items[1].json),
           "prepare gives each message its JSON");
        check(views_messages(&list, 9, 0, &len), fresh,
              "a body from prepared messages is the same, byte for byte");
        check(stream_events(&list, &len), events,
              "and so are the events made from them");
        check(views_history(&list, 1, 9, &len),
              "{\"messages\":["
              "{\"nick\":\"alice\",\"type\":\"join\",\"timestamp\":1000},"
              "{\"nick\":\"alice\",\"type\":\"msg\","
              "\"text\":\"<b>\\\"hi\\\"</b> \\\\ / \\n caf\xc3\xa9\","
              "\"timestamp\":1001},"
              "{\"nick\":\"alice\",\"type\":\"part\",\"timestamp\":1002}"
              "],\"more\":true,\"rss\":9}",
              "a history page: messages, more, rss");
        check(stream_events(&gap, &len),
              "event: gap\ndata: {}\n\nid: 1001\ndata: {\"nick\":\"alice\","
              "\"type\":\"msg\",\"text\":\"<b>\\\"hi\\\"</b> \\\\ / \\n "
              "caf\xc3\xa9\",\"timestamp\":1001}\n\n",
              "events: the gap first, then id and data, no raw newline");
        for (size_t i = 0; i < 3; i++) {
            free(list.items[i].json);
            list.items[i].json = NULL;
        }
        free(fresh);
        free(events);
    }
    check(views_sent(4, 1700000000123LL, &len),
          "{\"rss\":4,\"timestamp\":1700000000123}",
          "a send's reply has the stored message's timestamp");
    check(views_messages(NULL, 3, 1, &len),
          "{\"messages\":[],\"rss\":3,\"ping\":true}", "a ping body");
    {
        char *body = views_rss(1, &len);

        is_int(len, strlen(body), "the length is the string's");
        free(body);
    }
    {
        const char *v[] = {"a", "b\"c", "d\\e", NULL, "", "{x,y}"};

        check(store_array_literal(v, 6),
              "{\"a\",\"b\\\"c\",\"d\\\\e\",NULL,\"\",\"{x,y}\"}",
              "text[] literal: quotes, backslashes, NULL, empty, braces");
        check(store_array_literal(v, 0), "{}", "an empty text[] literal");
    }
    {
        /* Notifications, as migrations/0009 makes them. */
        char head_only[] = "lobby 1700000000005";
        char with_batch[] =
            "r-1 1700000000005 1700000000003 [[1700000000004, \"al\", "
            "\"msg\", \"a b\\\"c\", \"m1\"], \n [1700000000005, \"bo\", "
            "\"join\", null, null]]";
        char broken[] = "lobby 12 10 [[11, \"al\", \"msg\"]]";
        char not_ours[] = "lobby";
        char bad_head[] = "lobby x1";
        struct store_notice n;

        is_int(store_notify_parse(head_only, &n), 0, "notice: room and head");
        is_str(n.room, "lobby", "notice: the room");
        is_int(n.head, 1700000000005LL, "notice: the head");
        is_int(n.prev, -1, "notice: no batch, no prev");
        ok(!n.batch, "notice: no batch");
        is_int(store_notify_parse(with_batch, &n), 0, "notice with a batch");
        is_str(n.room, "r-1", "... the room");
        is_int(n.prev, 1700000000003LL, "... the head before the batch");
        ok(n.batch && n.batch->len == 2, "... two messages");
        if (n.batch && n.batch->len == 2) {
            is_int(n.batch->items[0].ts, 1700000000004LL, "... ts");
            is_str(n.batch->items[0].text, "a b\"c", "... text unescaped");
            is_str(n.batch->items[0].mid, "m1", "... mid");
            is_str(n.batch->items[1].type, "join", "... type");
            ok(!n.batch->items[1].text && !n.batch->items[1].mid,
               "... null text and mid");
        }
        msg_list_free(n.batch);
        is_int(store_notify_parse(broken, &n), 0, "a batch that is not 5 wide");
        ok(!n.batch && n.prev == -1, "... is not used: the head alone is");
        is_int(n.head, 12, "... which is still read");
        is_int(store_notify_parse(not_ours, &n), -1, "no head: not ours");
        is_int(store_notify_parse(bad_head, &n), -1,
               "a head that is no number");
    }
    return done_testing();
}
