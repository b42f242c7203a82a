/* worker.c -- one worker process: accept threads, the writer thread and the
 * event loop around one listening socket.
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
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "loop.h"
#include "request.h"
#include "routes.h"
#include "util.h"
#include "writer.h"

/* Cleared when the worker stops: accept threads then leave. */
static _Atomic int accepting = 1;
static _Atomic int accept_threads;

/* Only there to interrupt accept(2): installed without SA_RESTART, and
 * libfcgi gives up accepting on EINTR (FCGI_FAIL_ACCEPT_ON_INTR). */
static void
on_wake(int sig)
{
    (void)sig;
}

static void *
accept_main(void *arg)
{
    int listen_fd = *(int *)arg;

    while (accepting) {
        struct req *r = req_accept(listen_fd);

        if (!r) {
            /* Accept fails on a signal (stopping), or on exhausted
             * descriptors, where a pause keeps it from spinning. */
            struct timespec pause = {0, 10 * 1000 * 1000};

            if (accepting)
                nanosleep(&pause, NULL);
            continue;
        }
        routes_handle(r);
    }
    accept_threads--;
    return NULL;
}

/* Stops accepting: every accept thread finishes the request it holds and
 * leaves, so that what this worker took it also answers, and new
 * connections go to the other workers. */
static void
stop_accepting(pthread_t *threads, int n)
{
    int64_t deadline = mono_ms() + 2000;

    accepting = 0;
    while (accept_threads > 0 && mono_ms() < deadline) {
        struct timespec pause = {0, 2 * 1000 * 1000};

        for (int i = 0; i < n; i++)
            pthread_kill(threads[i], SIGUSR2);
        nanosleep(&pause, NULL);
    }
    if (accept_threads > 0)
        log_warn("%d accept threads did not stop", (int)accept_threads);
}

void
worker_run(int listen_fd, int write_fd, int ready_fd)
{
    static int fds[2];
    struct sigaction wake = {.sa_handler = on_wake};
    pthread_t *threads;
    int nthreads = config.threads + (write_fd >= 0);
    sigset_t mask;

    fds[0] = listen_fd;
    fds[1] = write_fd;
    /* A worker must not outlive its parent, which alone restarts it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        exit(1);
    srand((unsigned)getpid());

    /* Signals are read by the event loop through a signalfd; every thread
     * inherits this mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
    sigaction(SIGUSR2, &wake, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (loop_init() < 0 || writer_start() < 0)
        exit(1);
    threads = xcalloc(nthreads, sizeof(*threads));
    for (int i = 0; i < nthreads; i++) {
        int *fd = i < config.threads ? &fds[0] : &fds[1];

        if (pthread_create(&threads[i], NULL, accept_main, fd) != 0) {
            log_error("cannot start an accept thread: %s", strerror(errno));
            exit(1);
        }
        accept_threads++;
    }
    log_info("worker started with %d accept threads%s", config.threads,
             write_fd >= 0 ? " and one for writes" : "");
    /* Tells the parent this worker accepts now (see main.c, spawn). */
    if (ready_fd >= 0) {
        if (write(ready_fd, "", 1) < 0)
            log_warn("cannot tell the parent we are ready");
        close(ready_fd);
    }

    loop_run();
    stop_accepting(threads, nthreads);
    loop_finish();
    writer_stop();
    loop_close();
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    log_info("worker stopped");
    exit(0);
}
