/* msg.h -- a chat message as it travels from the store to the views. */
#ifndef PGCHAT_MSG_H
#define PGCHAT_MSG_H

#include <stddef.h>
#include <stdint.h>

struct msg {
    int64_t ts; /* milliseconds since the epoch, and the cursor */
    char *nick; /* owned */
    char *type; /* owned: "msg", "join" or "part" */
    char *text; /* owned; NULL unless type is "msg" */
    char *mid;  /* owned; NULL unless the send carried one */
    char *json; /* owned: the message as JSON, made once by views_prepare()
                   for every reply that carries it; NULL until then */
    size_t json_len;
};

struct msg_list {
    struct msg *items;
    size_t len;
    int gap; /* the cursor was moved up to the newest window */
};

/* Frees what m owns; m itself is the caller's. */
void msg_release(struct msg *m);

/* Frees every message and the array; list may be NULL. */
void msg_list_free(struct msg_list *list);

#endif
