/* ev.h -- the worker's one epoll instance, and how other threads hand work
 * to the thread that runs it.
 *
 * Everything that waits on a descriptor (nginx's connections, the listening
 * sockets, the LISTEN connection, signals) registers a struct ev_watch and
 * is called back on the loop thread. Nothing here knows what they are.
 */
#ifndef PGCHAT_EV_H
#define PGCHAT_EV_H

#include <stdint.h>

#define EV_IN 0x001u     /* EPOLLIN */
#define EV_OUT 0x004u    /* EPOLLOUT */
#define EV_ERR 0x008u    /* EPOLLERR */
#define EV_HUP 0x010u    /* EPOLLHUP */
#define EV_RDHUP 0x2000u /* EPOLLRDHUP */

struct ev_watch {
    int fd;
    void (*fn)(struct ev_watch *w, uint32_t events);
};

/* Sets up the epoll instance on the calling thread, which becomes the loop
 * thread. Returns 0 or -1. */
int ev_init(void);

/* Watches w->fd for events (EV_*, level-triggered). Returns 0 or -1. */
int ev_add(struct ev_watch *w, uint32_t events);
int ev_mod(struct ev_watch *w, uint32_t events);

/* Watches w->fd with EPOLLEXCLUSIVE: of all the processes waiting on one
 * listening socket, one is woken per connection. */
int ev_add_exclusive(struct ev_watch *w);

/* Stops watching w (before its descriptor is closed, or without closing). */
void ev_del(struct ev_watch *w);

/* Waits up to timeout_ms (-1: no limit) and calls the watchers of what
 * happened, then every function ev_post() queued. */
void ev_wait(int timeout_ms);

/* Safe from any thread: fn(arg) runs on the loop thread soon after. */
void ev_post(void (*fn)(void *arg), void *arg);

/* Whether the caller is the loop thread. */
int ev_on_loop(void);

/* Runs everything ev_post() queued, now (the loop thread only). */
void ev_run_posted(void);

#endif
