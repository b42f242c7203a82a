/* worker.c -- one worker process: the server thread (server.c), the writer
 * thread and the event loop around the listening sockets.
 *
 * The process holds no chat state: everything it knows it can read again
 * from PostgreSQL, which is why a worker may die at any time and be replaced.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "loop.h"
#include "server.h"
#include "util.h"
#include "writer.h"

void
worker_run(int listen_fd, int write_fd, int ready_fd)
{
    sigset_t mask;

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
    signal(SIGPIPE, SIG_IGN);

    if (loop_init() < 0 || writer_start() < 0 ||
        server_start(listen_fd, write_fd) < 0)
        exit(1);
    log_info("worker started%s",
             write_fd >= 0 ? ", writes on their own socket" : "");
    /* Tells the parent this worker accepts now (see main.c, spawn). */
    if (ready_fd >= 0) {
        if (write(ready_fd, "", 1) < 0)
            log_warn("cannot tell the parent we are ready");
        close(ready_fd);
    }

    /* Stopping: nothing new is read, then what was taken is answered, so
     * that new requests go to the other workers. */
    loop_run();
    server_stop();
    loop_finish();
    writer_stop();
    loop_close();
    log_info("worker stopped");
    exit(0);
}
