/* views.c -- the JSON bodies of every reply; the only file that uses json-c.
 *
 * Output is compact and keeps key order, and '/' is not escaped, so bodies
 * are byte-for-byte what the protocol table shows.
 */
#include "views.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Takes root: serialises it, frees it, returns the caller's copy. */
static char *
finish(json_object *root, size_t *len)
{
    size_t n;
    const char *s = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    char *out = xstrndup(s, n);

    json_object_put(root);
    *len = n;
    return out;
}

char *
views_error(const char *message, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "error", json_object_new_string(message));
    return finish(root, len);
}

char *
views_rss(long long rss, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "rss", json_object_new_int64(rss));
    return finish(root, len);
}

char *
views_sent(long long rss, int64_t ts, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "rss", json_object_new_int64(rss));
    json_object_object_add(root, "timestamp", json_object_new_int64(ts));
    return finish(root, len);
}

char *
views_join(const char *id, const char *nick, long long rss, int64_t starttime,
           int moderator, int delete_window_s, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "id", json_object_new_string(id));
    json_object_object_add(root, "nick", json_object_new_string(nick));
    json_object_object_add(root, "rss", json_object_new_int64(rss));
    json_object_object_add(root, "starttime", json_object_new_int64(starttime));
    if (moderator)
        json_object_object_add(root, "moderator", json_object_new_boolean(1));
    if (delete_window_s > 0)
        json_object_object_add(root, "delete_window",
                               json_object_new_int(delete_window_s));
    return finish(root, len);
}

char *
views_who(char *const *nicks, size_t n, long long rss, size_t *len)
{
    json_object *root = json_object_new_object();
    json_object *list = json_object_new_array_ext((int)n);

    for (size_t i = 0; i < n; i++)
        json_object_array_add(list, json_object_new_string(nicks[i]));
    json_object_object_add(root, "nicks", list); /* root takes list */
    json_object_object_add(root, "rss", json_object_new_int64(rss));
    return finish(root, len);
}

static json_object *
message_object(const struct msg *m)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "nick", json_object_new_string(m->nick));
    json_object_object_add(o, "type", json_object_new_string(m->type));
    if (m->text)
        json_object_object_add(o, "text", json_object_new_string(m->text));
    json_object_object_add(o, "timestamp", json_object_new_int64(m->ts));
    if (m->mid)
        json_object_object_add(o, "mid", json_object_new_string(m->mid));
    return o;
}

/* Appends n bytes to *buf (length *len, capacity *cap). */
static void
grow(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap)
            *cap = *cap ? 2 * *cap : 256;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

char *
views_message(const struct msg *m, size_t *len)
{
    return finish(message_object(m), len);
}

void
views_prepare(struct msg_list *list)
{
    for (size_t i = 0; i < list->len; i++)
        if (!list->items[i].json)
            list->items[i].json =
                views_message(&list->items[i], &list->items[i].json_len);
}

/* A copy of v's string; NULL when v is JSON null (and null_ok). Sets *bad
 * when v is neither. */
static char *
take_string(json_object *v, int null_ok, int *bad)
{
    if (!v && null_ok)
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *bad = 1;
        return NULL;
    }
    return xstrndup(json_object_get_string(v),
                    (size_t)json_object_get_string_len(v));
}

struct msg_list *
views_parse_batch(const char *json)
{
    json_object *root = json_tokener_parse(json);
    struct msg_list *list;
    size_t n;
    int bad = 0;

    if (!root || !json_object_is_type(root, json_type_array)) {
        json_object_put(root);
        return NULL;
    }
    n = json_object_array_length(root);
    list = xcalloc(1, sizeof(*list));
    list->items = xcalloc(n ? n : 1, sizeof(*list->items));
    for (size_t i = 0; i < n && !bad; i++) {
        json_object *row = json_object_array_get_idx(root, i);
        struct msg *m = &list->items[list->len++];

        if (!json_object_is_type(row, json_type_array) ||
            json_object_array_length(row) != 5 ||
            !json_object_is_type(json_object_array_get_idx(row, 0),
                                 json_type_int)) {
            bad = 1;
            break;
        }
        m->ts = json_object_get_int64(json_object_array_get_idx(row, 0));
        m->nick = take_string(json_object_array_get_idx(row, 1), 0, &bad);
        m->type = take_string(json_object_array_get_idx(row, 2), 0, &bad);
        m->text = take_string(json_object_array_get_idx(row, 3), 1, &bad);
        m->mid = take_string(json_object_array_get_idx(row, 4), 1, &bad);
    }
    json_object_put(root);
    if (bad) {
        msg_list_free(list);
        return NULL;
    }
    return list;
}

/* Appends m's JSON: the one views_prepare() made, or one made now. */
static void
grow_message(char **buf, size_t *len, size_t *cap, const struct msg *m)
{
    size_t n;
    char *json;

    if (m->json) {
        grow(buf, len, cap, m->json, m->json_len);
        return;
    }
    json = views_message(m, &n);
    grow(buf, len, cap, json, n);
    free(json);
}

/* Starts {"messages":[...] for the caller to close; list may be NULL. A
 * reply to thousands of readers is made of the messages' own JSON, each
 * made once when it reached the room's window, not of new json-c objects
 * for every reply (json-c's serialisation of the same message is what is
 * copied, so the bytes are the same). */
static char *
messages_begin(const struct msg_list *list, size_t *len, size_t *cap)
{
    static const char head[] = "{\"messages\":[";
    size_t n = list ? list->len : 0;
    char *out = NULL;

    *len = 0;
    *cap = 0;
    grow(&out, len, cap, head, sizeof(head) - 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            grow(&out, len, cap, ",", 1);
        grow_message(&out, len, cap, &list->items[i]);
    }
    grow(&out, len, cap, "]", 1);
    return out;
}

char *
views_messages(const struct msg_list *list, long long rss, int ping,
               size_t *len)
{
    size_t cap;
    char *out = messages_begin(list, len, &cap);
    char tail[64];
    int k = snprintf(tail, sizeof(tail), ",\"rss\":%lld%s%s}", rss,
                     list && list->gap ? ",\"gap\":true" : "",
                     ping ? ",\"ping\":true" : "");

    grow(&out, len, &cap, tail, (size_t)k);
    return out;
}

char *
views_history(const struct msg_list *list, int more, long long rss, size_t *len)
{
    size_t cap;
    char *out = messages_begin(list, len, &cap);
    char tail[64];
    int k = snprintf(tail, sizeof(tail), ",\"more\":%s,\"rss\":%lld}",
                     more ? "true" : "false", rss);

    grow(&out, len, &cap, tail, (size_t)k);
    return out;
}

char *
views_health(long long rss, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "status", json_object_new_string("ok"));
    json_object_object_add(root, "rss", json_object_new_int64(rss));
    return finish(root, len);
}

char *
views_limits(const struct views_limits *l, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "nick_max", json_object_new_int(l->nick_max));
    json_object_object_add(root, "room_max", json_object_new_int(l->room_max));
    json_object_object_add(root, "message_bytes",
                           json_object_new_int(l->message_bytes));
    json_object_object_add(root, "history_limit",
                           json_object_new_int(l->history_limit));
    json_object_object_add(root, "search_limit",
                           json_object_new_int(l->search_limit));
    json_object_object_add(root, "search_chars",
                           json_object_new_int(l->search_chars));
    json_object_object_add(root, "send_rate",
                           json_object_new_double(l->send_rate));
    json_object_object_add(root, "send_burst",
                           json_object_new_double(l->send_burst));
    json_object_object_add(root, "recv_timeout",
                           json_object_new_int(l->recv_timeout));
    return finish(root, len);
}

char *
views_stats(const struct views_stats *s, size_t *len)
{
    json_object *root = json_object_new_object();

    json_object_object_add(root, "uptime", json_object_new_int64(s->uptime_s));
    json_object_object_add(root, "pid", json_object_new_int64(s->pid));
    json_object_object_add(root, "parked", json_object_new_int64(s->parked));
    json_object_object_add(root, "messages",
                           json_object_new_int64(s->messages));
    json_object_object_add(root, "sessions",
                           json_object_new_int64(s->sessions));
    json_object_object_add(root, "rooms", json_object_new_int64(s->rooms));
    json_object_object_add(root, "rss", json_object_new_int64(s->rss));
    json_object_object_add(root, "connections",
                           json_object_new_int64(s->connections));
    json_object_object_add(root, "requests",
                           json_object_new_int64(s->requests));
    return finish(root, len);
}
