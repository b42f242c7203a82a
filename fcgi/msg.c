/* msg.c -- a chat message as it travels from the store to the views. */
#include "msg.h"

#include <stdlib.h>

void
msg_list_free(struct msg_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->len; i++) {
        free(list->items[i].nick);
        free(list->items[i].type);
        free(list->items[i].text);
        free(list->items[i].mid);
    }
    free(list->items);
    free(list);
}
