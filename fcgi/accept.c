/* accept.c -- the listening sockets: taking the web server's connections.
 *
 * Every worker waits on the same sockets; EPOLLEXCLUSIVE wakes one of them
 * per connection. FastCGI has no authentication, so over TCP only the
 * addresses in FCGI_WEB_SERVER_ADDRS are taken (as libfcgi does), and a
 * peer that cannot be named is refused.
 */
#define _GNU_SOURCE
#include "accept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ev.h"
#include "util.h"

#define ACCEPT_PAUSE_MS 100 /* accept again after running out */

static struct {
    struct ev_watch listen[2];
    int n;
    int stopping;
    int64_t resume;      /* 0, or when to watch the sockets again */
    const char *allowed; /* FCGI_WEB_SERVER_ADDRS, or NULL */
    void (*adopt)(int fd);
} acceptor;

/* Whether a is one of FCGI_WEB_SERVER_ADDRS (comma-separated). */
static int
listed(const char *a)
{
    size_t n = strlen(a);

    for (const char *p = acceptor.allowed; *p; p += strcspn(p, ",")) {
        p += strspn(p, ", ");
        if (strncmp(p, a, n) == 0 &&
            (p[n] == ',' || p[n] == ' ' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

/* libfcgi's FCGI_WEB_SERVER_ADDRS: with it set, TCP connections are taken
 * only from the listed addresses; an IPv4 peer on an IPv6 socket
 * (::ffff:a.b.c.d) matches a.b.c.d. A peer that cannot be named is
 * refused. */
static int
allowed(int fd, int *tcp)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char addr[INET6_ADDRSTRLEN];

    *tcp = 0;
    if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0) {
        log_warn("refused a FastCGI connection: cannot read its address: %s",
                 strerror(errno));
        return 0;
    }
    if (sa.ss_family == AF_UNIX)
        return 1; /* the socket file's permissions decide */
    *tcp = 1;
    if (sa.ss_family == AF_INET6) {
        struct in6_addr *a6 = &((struct sockaddr_in6 *)&sa)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], addr, sizeof(addr));
        else
            inet_ntop(AF_INET6, a6, addr, sizeof(addr));
    } else if (sa.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr,
                  sizeof(addr));
    } else {
        return 0;
    }
    if (!acceptor.allowed || listed(addr))
        return 1;
    log_warn("refused a FastCGI connection from %s (FCGI_WEB_SERVER_ADDRS)",
             addr);
    return 0;
}

/* Out of descriptors or memory: the socket stays readable, so it is not
 * watched for a moment rather than spun on; the warning comes once a
 * second at the most. */
static void
pause_accept(void)
{
    static int64_t last_warning = INT64_MIN / 2;

    if (mono_ms() - last_warning >= 1000) {
        log_warn("cannot accept: %s", strerror(errno));
        last_warning = mono_ms();
    }
    for (int i = 0; i < acceptor.n; i++)
        ev_del(&acceptor.listen[i]);
    acceptor.resume = mono_ms() + ACCEPT_PAUSE_MS;
}

static void
on_listen(struct ev_watch *w, uint32_t events)
{
    (void)events;
    while (!acceptor.stopping && !acceptor.resume) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        int tcp, one = 1;

        if (fd < 0) {
            /* EAGAIN: another worker took it, or the backlog is empty. */
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                pause_accept();
            return;
        }
        if (!allowed(fd, &tcp)) {
            close(fd);
            continue;
        }
        /* Replies are whole records written at once: nothing to gain from
         * Nagle's delay, only latency. */
        if (tcp)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        acceptor.adopt(fd);
    }
}

int
accept_init(int listen_fd, int write_fd, void (*adopt)(int fd))
{
    int fds[2] = {listen_fd, write_fd};

    acceptor.adopt = adopt;
    acceptor.allowed = config.web_server_addrs;
    for (int i = 0; i < 2; i++) {
        struct ev_watch *w = &acceptor.listen[acceptor.n];

        if (fds[i] < 0)
            continue;
        w->fd = fds[i];
        w->fn = on_listen;
        /* Every worker waits on the same sockets: EPOLLEXCLUSIVE wakes one
         * of them per connection. The socket is non-blocking for all. */
        if (fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK) < 0 ||
            ev_add_exclusive(w) < 0) {
            log_error("cannot watch the listening socket: %s", strerror(errno));
            return -1;
        }
        acceptor.n++;
    }
    return 0;
}

void
accept_stop(void)
{
    acceptor.stopping = 1;
    for (int i = 0; i < acceptor.n; i++)
        ev_del(&acceptor.listen[i]);
}

int64_t
accept_due(void)
{
    return acceptor.resume ? acceptor.resume : INT64_MAX;
}

void
accept_tick(int64_t now)
{
    if (!acceptor.resume || now < acceptor.resume)
        return;
    acceptor.resume = 0;
    for (int i = 0; i < acceptor.n && !acceptor.stopping; i++)
        if (ev_add_exclusive(&acceptor.listen[i]) < 0)
            log_error("cannot watch the listening socket again: %s",
                      strerror(errno));
}
