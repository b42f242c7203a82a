/* worker.h -- one worker process: the event loop, the writer and archive
 * threads, around the listening sockets. */
#ifndef PGCHAT_WORKER_H
#define PGCHAT_WORKER_H

/* Runs a worker on listen_fd until SIGTERM; never returns. write_fd, when
 * not -1, is a second socket that nginx sends /join, /part and /send to, so
 * that writes never queue behind thousands of polls (main.c gives it to one
 * worker). Once it accepts the worker writes a byte to ready_fd and closes
 * it (-1: nobody to tell). On SIGTERM it stops reading requests first, then
 * answers everything it took. */
void worker_run(int listen_fd, int write_fd, int ready_fd)
    __attribute__((noreturn));

#endif
