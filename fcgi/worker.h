/* worker.h -- one worker process: accept threads, the writer thread and the
 * event loop around one listening socket. */
#ifndef PGCHAT_WORKER_H
#define PGCHAT_WORKER_H

/* Runs a worker on listen_fd until SIGTERM; never returns. */
void worker_run(int listen_fd) __attribute__((noreturn));

#endif
