/* views.c -- unit tests for the JSON bodies, byte for byte, and for the
 * text[] literals the store sends. */
#include <stdlib.h>
#include <string.h>

#include "store.h"
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
        {1000, "alice", "join", NULL, NULL},
        {1001, "alice", "msg", "<b>\"hi\"</b> \\ / \n caf\xc3\xa9", NULL},
        {1002, "alice", "part", NULL, NULL},
        {1003, "bob", "msg", "again", "m-1_x"},
    };
    struct msg_list with_mid = {items + 3, 1, 0};
    struct msg_list list = {items, 3, 0};
    struct msg_list gap = {items + 1, 1, 1};

    check(views_error("Bad nick.", &len), "{\"error\":\"Bad nick.\"}",
          "an error body");
    check(views_rss(1234, &len), "{\"rss\":1234}", "an rss body");
    check(views_join("00ff", "alice", 5, 1700000000000LL, &len),
          "{\"id\":\"00ff\",\"nick\":\"alice\",\"rss\":5,"
          "\"starttime\":1700000000000}",
          "a join body");
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
    return done_testing();
}
