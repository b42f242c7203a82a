/* ev.c -- the worker's one epoll instance, and how other threads hand work
 * to the thread that runs it.
 *
 * Posting costs a lock and, only when the queue was empty, one write(2) to
 * an eventfd: the loop takes the whole queue at once, so a burst of replies
 * from the writer thread wakes it once.
 */
#include "ev.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

#define EV_EVENTS 512

_Static_assert(EV_IN == EPOLLIN && EV_OUT == EPOLLOUT && EV_ERR == EPOLLERR &&
                   EV_HUP == EPOLLHUP && EV_RDHUP == EPOLLRDHUP,
               "EV_* are epoll's bits");

struct posted {
    void (*fn)(void *arg);
    void *arg;
    struct posted *next;
};

static struct {
    int epfd;
    pthread_t thread;
    struct ev_watch wake; /* the eventfd other threads write to */
    pthread_mutex_t mu;   /* guards head, tail */
    struct posted *head, *tail;
} loop = {.epfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void
on_wake(struct ev_watch *w, uint32_t events)
{
    uint64_t count;

    (void)events;
    if (read(w->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("cannot read the loop's eventfd: %s", strerror(errno));
}

int
ev_init(void)
{
    loop.thread = pthread_self();
    loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    loop.wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop.wake.fn = on_wake;
    if (loop.epfd < 0 || loop.wake.fd < 0 || ev_add(&loop.wake, EV_IN) < 0) {
        log_error("cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int
ctl(int op, struct ev_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};

    return epoll_ctl(loop.epfd, op, w->fd, &ev);
}

int
ev_add(struct ev_watch *w, uint32_t events)
{
    return ctl(EPOLL_CTL_ADD, w, events);
}

int
ev_mod(struct ev_watch *w, uint32_t events)
{
    return ctl(EPOLL_CTL_MOD, w, events);
}

int
ev_add_exclusive(struct ev_watch *w)
{
    return ctl(EPOLL_CTL_ADD, w, EPOLLIN | EPOLLEXCLUSIVE);
}

void
ev_del(struct ev_watch *w)
{
    epoll_ctl(loop.epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

int
ev_on_loop(void)
{
    return pthread_equal(pthread_self(), loop.thread);
}

void
ev_post(void (*fn)(void *arg), void *arg)
{
    struct posted *p = xmalloc(sizeof(*p));
    int wake;

    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&loop.mu);
    wake = loop.head == NULL;
    if (loop.tail)
        loop.tail->next = p;
    else
        loop.head = p;
    loop.tail = p;
    pthread_mutex_unlock(&loop.mu);
    if (wake) {
        uint64_t one = 1;

        if (write(loop.wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_error("cannot wake the event loop: %s", strerror(errno));
    }
}

void
ev_run_posted(void)
{
    struct posted *p;

    pthread_mutex_lock(&loop.mu);
    p = loop.head;
    loop.head = loop.tail = NULL;
    pthread_mutex_unlock(&loop.mu);
    while (p) {
        struct posted *next = p->next;

        p->fn(p->arg);
        free(p);
        p = next;
    }
}

void
ev_wait(int timeout_ms)
{
    struct epoll_event events[EV_EVENTS];
    int n = epoll_wait(loop.epfd, events, EV_EVENTS, timeout_ms);

    if (n < 0 && errno != EINTR)
        log_error("epoll_wait failed: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        struct ev_watch *w = events[i].data.ptr;

        w->fn(w, events[i].events);
    }
    ev_run_posted();
}
