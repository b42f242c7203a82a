/* ceiling.c -- the nginx -> FastCGI ceiling for pgchat's benchmark.
 *
 *   ceiling SOCKET [THREADS [PROCESSES]]
 *
 * A FastCGI responder that does nothing: every request gets the same small
 * JSON body, the size of pgchat's /who reply, with no database behind it.
 * Put behind the same nginx configuration as pgchat, it tells how many
 * requests a second the nginx -> FastCGI path itself allows on this
 * machine, so that pgchat's figures can be given as a fraction of it.
 *
 * Shaped like pgchat's responder: PROCESSES (default 1) processes accept
 * on one socket, each with THREADS (default 8) threads in FCGX_Accept_r.
 * SIGTERM ends it.
 */
#define _GNU_SOURCE
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const char reply[] = "Status: 200 OK\r\n"
                            "Content-Type: application/json; charset=utf-8\r\n"
                            "Content-Length: 25\r\n"
                            "Cache-Control: no-store\r\n"
                            "\r\n"
                            "{\"nicks\":[],\"rss\":123456}";

static int listen_fd;

static void *
serve(void *arg)
{
    FCGX_Request req;

    (void)arg;
    if (FCGX_InitRequest(&req, listen_fd, 0) != 0)
        return NULL;
    while (FCGX_Accept_r(&req) >= 0) {
        FCGX_PutStr(reply, (int)sizeof(reply) - 1, req.out);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

/* One process: its threads, forever. */
static int
run(int threads)
{
    pthread_t *t = calloc((size_t)threads, sizeof(*t));

    if (!t)
        return -1;
    for (int i = 1; i < threads; i++)
        if (pthread_create(&t[i], NULL, serve, NULL) != 0)
            return -1;
    serve(NULL);
    return -1; /* accept failed */
}

int
main(int argc, char **argv)
{
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    int procs = argc > 3 ? atoi(argv[3]) : 1;

    if (argc < 2 || threads < 1 || procs < 1) {
        fprintf(stderr, "usage: ceiling SOCKET [THREADS [PROCESSES]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0)
        return 1;
    unlink(argv[1]); /* a leftover from an earlier run */
    listen_fd = FCGX_OpenSocket(argv[1], 4096);
    if (listen_fd < 0) {
        fprintf(stderr, "ceiling: cannot listen on %s\n", argv[1]);
        return 1;
    }
    if (procs == 1)
        return run(threads) < 0 ? 1 : 0;
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();

        if (pid == 0) {
            /* a child must not outlive the parent bench/run stops */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            _exit(run(threads) < 0 ? 1 : 0);
        }
        if (pid < 0)
            return 1;
    }
    /* The parent only waits; SIGTERM to it ends the children too. */
    while (wait(NULL) > 0)
        ;
    return 0;
}
