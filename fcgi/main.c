/* main.c -- pgchat's FastCGI responder: configuration, the listening
 * socket, and the worker processes.
 *
 * The parent binds the socket (or takes the one a process manager such as
 * spawn-fcgi hands over as fd 0), forks WEB_CONCURRENCY workers that all
 * accept on it, and replaces any worker that dies. It holds no database
 * connection and no request itself. SIGTERM or SIGINT stop everything;
 * SIGHUP replaces the workers one by one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

#define MAIN_BACKLOG 4096
#define MAIN_STOP_MS 5000  /* workers still alive then are killed */
#define MAIN_READY_MS 5000 /* a new worker should accept by then */

static pid_t *pids;
static int write_fd = -1; /* the writes' own socket, or -1 */

/* Whether a is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x). */
static int
loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >>
                24) == 127;
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)a)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a6) ||
               (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return 0;
}

/* Listens on "host:port" (":port": every address). FastCGI has no
 * authentication: anyone who reaches the socket speaks for the web server,
 * so an address others can reach needs FCGI_WEB_SERVER_ADDRS. Returns the
 * socket or -1. */
static int
listen_tcp(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    char host[256];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai;
    int fd = -1, one = 1, rc;

    if ((size_t)(colon - spec) >= sizeof(host)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(host, spec, colon - spec);
    host[colon - spec] = '\0';
    if (host[0] == '[' && colon > spec + 1 && colon[-1] == ']') {
        /* "[::1]:9000": an IPv6 address in brackets, as in a URL. */
        memmove(host, host + 1, (size_t)(colon - spec) - 2);
        host[colon - spec - 2] = '\0';
    }
    rc = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        log_error("cannot resolve '%s': %s", spec, gai_strerror(rc));
        return -1;
    }
    if (!loopback(ai->ai_addr) && !config.web_server_addrs) {
        log_error("refusing to listen on '%s', which is not a loopback "
                  "address, without FCGI_WEB_SERVER_ADDRS: FastCGI has no "
                  "authentication",
                  spec);
        freeaddrinfo(ai);
        errno = EACCES;
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 &&
        (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
         bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
         listen(fd, MAIN_BACKLOG) < 0)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Listens on the unix socket at path, replacing a leftover from a crash.
 * Returns the socket or -1. */
static int
listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                    listen(fd, MAIN_BACKLOG) < 0)) {
        close(fd);
        return -1;
    }
    if (fd >= 0)
        chmod(path, 0660);
    return fd;
}

/* Binds path: "host:port" is TCP (as for libfcgi and spawn-fcgi), anything
 * else a unix socket. Returns the socket, or -1. */
static int
bind_socket(const char *path)
{
    int fd = strchr(path, ':') ? listen_tcp(path) : listen_unix(path);

    if (fd < 0)
        log_error("cannot listen on '%s': %s", path, strerror(errno));
    return fd;
}

static void
unlink_socket(const char *path)
{
    if (path && !strchr(path, ':'))
        unlink(path);
}

/* Returns the listening socket, or -1. */
static int
open_socket(void)
{
    int listening = 0;
    socklen_t len = sizeof(listening);

    if (config.socket_path)
        return bind_socket(config.socket_path);
    /* Inherited from a process manager, as for any FastCGI app. */
    if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening) {
        log_error("PGCHAT_SOCKET is not set and fd 0 is not a listening "
                  "socket");
        return -1;
    }
    return 0;
}

/* Forks the worker for slot and waits until it accepts (or 5 s), so that
 * a rolling restart never leaves the socket without a worker.
 *
 * Only slot 0 takes the writes' socket: a room's messages are ordered under
 * its row lock, held until commit, so two writers posting to one room take
 * turns, each with a smaller batch and a flush of its own. One writer puts
 * every send that arrives during a flush into the next transaction (the
 * README's Performance section has the measurements). */
static pid_t
spawn(int listen_fd, int slot)
{
    int ready[2];
    pid_t pid;

    if (pipe2(ready, O_CLOEXEC) < 0) {
        log_error("cannot make a pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        close(ready[0]);
        worker_run(listen_fd, slot == 0 ? write_fd : -1, ready[1]);
    }
    close(ready[1]);
    if (pid < 0) {
        log_error("cannot fork a worker: %s", strerror(errno));
    } else {
        struct pollfd p = {.fd = ready[0], .events = POLLIN};

        if (poll(&p, 1, MAIN_READY_MS) <= 0)
            log_warn("worker %d is slow to start", (int)pid);
    }
    close(ready[0]);
    return pid;
}

static int
slot_of(pid_t pid)
{
    for (int i = 0; i < config.workers; i++)
        if (pids[i] == pid)
            return i;
    return -1;
}

static void
stop_workers(void)
{
    int64_t deadline = mono_ms() + MAIN_STOP_MS;
    int alive = 0;

    for (int i = 0; i < config.workers; i++)
        if (pids[i] > 0 && kill(pids[i], SIGTERM) == 0)
            alive++;
    while (alive > 0) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);

        if (pid > 0) {
            int slot = slot_of(pid);

            if (slot >= 0) {
                pids[slot] = 0;
                alive--;
            }
            continue;
        }
        if (pid < 0 || mono_ms() > deadline)
            break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < config.workers; i++)
        if (pids[i] > 0) {
            log_warn("worker %d did not stop in time, killing it",
                     (int)pids[i]);
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
}

/* Replaces every worker by a fresh one: the new one starts first, then the
 * old one is told to stop, which answers its parked requests with a ping
 * (their clients simply poll again) and finishes what it accepted. Nothing
 * stored is touched. */
static void
rolling_restart(int listen_fd)
{
    log_info("restarting %d workers one by one", config.workers);
    for (int i = 0; i < config.workers; i++) {
        pid_t old = pids[i];

        pids[i] = spawn(listen_fd, i);
        if (old > 0)
            kill(old, SIGTERM);
    }
}

/* Waits for signals; replaces dead workers until told to stop. SIGHUP
 * replaces all of them. */
static int
supervise(int listen_fd)
{
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    for (;;) {
        int sig;
        pid_t pid;
        int status;

        if (sigwait(&mask, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            /* New connections now fail at once, and nginx reports the
             * responder as unavailable; accepted ones are answered. */
            unlink_socket(config.socket_path);
            unlink_socket(config.write_socket_path);
            log_info("stopping %d workers", config.workers);
            stop_workers();
            return 0;
        }
        if (sig == SIGHUP) {
            rolling_restart(listen_fd);
            continue;
        }
        if (sig != SIGCHLD)
            continue;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            int slot = slot_of(pid);

            if (slot < 0)
                continue;
            if (WIFSIGNALED(status))
                log_error("worker %d killed by signal %d, replacing it",
                          (int)pid, WTERMSIG(status));
            else
                log_error("worker %d exited with %d, replacing it", (int)pid,
                          WEXITSTATUS(status));
            /* A worker that dies at once must not make us fork in a loop. */
            struct timespec pause = {0, 200 * 1000 * 1000};
            nanosleep(&pause, NULL);
            pids[slot] = spawn(listen_fd, slot);
        }
    }
}

int
main(void)
{
    const char *level = getenv("PGCHAT_LOG_LEVEL");
    sigset_t mask;
    int listen_fd, rc;

    if (level && strcmp(level, "debug") == 0)
        log_set_level(LOG_DEBUG);
    if (config_load() < 0)
        return 2;
    config.starttime = now_ms();

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    listen_fd = open_socket();
    if (listen_fd < 0)
        return 1;
    if (config.write_socket_path) {
        write_fd = bind_socket(config.write_socket_path);
        if (write_fd < 0)
            return 1;
    }

    if (stats_map() < 0)
        return 1;
    pids = xcalloc(config.workers, sizeof(*pids));
    for (int i = 0; i < config.workers; i++)
        pids[i] = spawn(listen_fd, i);
    log_info("listening on %s%s%s with %d workers",
             config.socket_path ? config.socket_path : "fd 0",
             write_fd >= 0 ? ", writes on " : "",
             write_fd >= 0 ? config.write_socket_path : "", config.workers);
    rc = supervise(listen_fd);
    free(pids);
    log_info("stopped");
    return rc;
}
