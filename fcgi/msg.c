/* msg.c -- a chat message as it travels from the store to the views. */
#include "msg.h"

#include <stdlib.h>

void
msg_release(struct msg *m)
{
    free(m->nick);
    free(m->type);
    free(m->text);
    free(m->mid);
    free(m->json);
}

void
msg_list_free(struct msg_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->len; i++)
        msg_release(&list->items[i]);
    free(list->items);
    free(list);
}
