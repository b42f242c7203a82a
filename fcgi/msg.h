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
};

struct msg_list {
    struct msg *items;
    size_t len;
    int gap; /* the cursor was moved up to the newest window */
};

/* Frees every message and the array; list may be NULL. */
void msg_list_free(struct msg_list *list);

#endif
