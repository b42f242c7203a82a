/* worker.c -- one worker process: the event loop, which owns every socket
 * and parked request, and beside it the writer thread (joins, parts,
 * sends) and the archive thread (/history, /search).
 *
 * The process holds no chat state: everything it knows it can read again
 * from PostgreSQL, which is why a worker may die at any time and be replaced.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "accept.h"
#include "archive.h"
#include "ev.h"
#include "recv.h"
#include "routes.h"
#include "server.h"
#include "util.h"
#include "writer.h"

#define WORKER_STOP_MS 5000 /* to finish what was taken, when stopping */

static int stopping;

static void
on_signal(struct ev_watch *w, uint32_t events)
{
    struct signalfd_siginfo si;

    (void)events;
    if (read(w->fd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
        stopping = 1;
}

/* One round: wait for events until the next timer, then run the timers. */
static void
round_trip(int64_t max_wait)
{
    int64_t now = mono_ms(), due = recv_due();

    if (server_due() < due)
        due = server_due();
    if (accept_due() < due)
        due = accept_due();
    if (routes_due() < due)
        due = routes_due();
    if (due > now + max_wait)
        due = now + max_wait;
    ev_wait(due <= now ? 0 : (int)(due - now));
    now = mono_ms();
    recv_tick(now);
    server_tick(now);
    accept_tick(now);
    routes_tick(now);
}

/* Stopping: nothing new is accepted, parked readers get their ping, the
 * writer finishes its queue, and the replies go out; so that new requests
 * go to the other workers. */
static void
finish(void)
{
    int64_t deadline = mono_ms() + WORKER_STOP_MS;

    accept_stop();
    server_stop();
    recv_stop();
    writer_stop();
    archive_stop();
    while ((!writer_done() || !archive_done() || server_busy()) &&
           mono_ms() < deadline)
        round_trip(50);
    writer_join();
    archive_join();
    ev_run_posted();
    recv_close();
}

void
worker_run(int listen_fd, int write_fd, int ready_fd)
{
    static const struct server_callbacks cb = {routes_request, routes_abort};
    static struct ev_watch sig = {.fn = on_signal};
    sigset_t mask;

    /* A worker must not outlive its parent, which alone restarts it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        exit(1);
    srand((unsigned)getpid());

    /* Signals are read by the event loop through a signalfd; the writer
     * thread inherits this mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigdelset(&mask, SIGHUP);
    sigdelset(&mask, SIGCHLD);
    sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    if (sig.fd < 0 || ev_init() < 0 || ev_add(&sig, EV_IN) < 0 ||
        writer_start() < 0 || archive_start() < 0 ||
        recv_init(writer_touch) < 0 || server_init(&cb) < 0 ||
        accept_init(listen_fd, write_fd, server_adopt) < 0) {
        log_error("cannot start the worker: %s", strerror(errno));
        exit(1);
    }
    log_info("worker started%s",
             write_fd >= 0 ? ", writes on their own socket" : "");
    /* Tells the parent this worker accepts now (see main.c, spawn). */
    if (ready_fd >= 0) {
        if (write(ready_fd, "", 1) < 0)
            log_warn("cannot tell the parent we are ready");
        close(ready_fd);
    }
    while (!stopping)
        round_trip(60000);
    finish();
    log_info("worker stopped");
    exit(0);
}
