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

static void *
accept_main(void *arg)
{
    int listen_fd = *(int *)arg;

    for (;;) {
        struct req *r = req_accept(listen_fd);

        if (!r) {
            /* Accept fails only on signals or exhausted descriptors;
             * pausing keeps the latter from becoming a busy loop. */
            struct timespec pause = {0, 10 * 1000 * 1000};

            nanosleep(&pause, NULL);
            continue;
        }
        routes_handle(r);
    }
    return NULL;
}

void
worker_run(int listen_fd)
{
    static int fd;
    sigset_t mask;

    fd = listen_fd;
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
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (loop_init() < 0 || writer_start() < 0)
        exit(1);
    for (int i = 0; i < config.threads; i++) {
        pthread_t t;

        if (pthread_create(&t, NULL, accept_main, &fd) != 0) {
            log_error("cannot start an accept thread: %s", strerror(errno));
            exit(1);
        }
        pthread_detach(t);
    }
    log_info("worker started with %d accept threads", config.threads);
    loop_run();
    writer_stop();
    loop_close();
    log_info("worker stopped");
    exit(0);
}
