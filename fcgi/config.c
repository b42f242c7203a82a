/* config.c -- settings from the environment, read once at start.
 *
 * Durations are given in seconds, with a fraction if wanted
 * (PGCHAT_RECV_TIMEOUT=2.5), so tests can shorten them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct config config;

/* Reads a number of seconds into milliseconds. Returns 0 or -1. */
static int
seconds_ms(const char *name, double def, double min, double max, int *out)
{
    const char *s = getenv(name);
    char *end;
    double v = def;

    if (s && *s) {
        v = strtod(s, &end);
        if (*end || v < min || v > max) {
            fprintf(stderr,
                    "pgchat: %s must be a number of seconds from "
                    "%g to %g, not '%s'\n",
                    name, min, max, s);
            return -1;
        }
    }
    *out = (int)(v * 1000);
    return 0;
}

static int
integer(const char *name, long def, long min, long max, long *out)
{
    const char *s = getenv(name);
    char *end;
    long v = def;

    if (s && *s) {
        v = strtol(s, &end, 10);
        if (*end || v < min || v > max) {
            fprintf(stderr,
                    "pgchat: %s must be a whole number from %ld to "
                    "%ld, not '%s'\n",
                    name, min, max, s);
            return -1;
        }
    }
    *out = v;
    return 0;
}

int
config_load(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long workers, batch_ms, batch_readers, max_message, rate_limit,
        room_sessions;
    long send_rate, send_burst, retention, delete_window, addr_sessions,
        addr_rooms, addr_reads;
    int session_ms;
    const char *mode;

    config.database_url = getenv("DATABASE_URL");
    if (!config.database_url || !*config.database_url) {
        fprintf(stderr, "pgchat: DATABASE_URL is not set\n");
        return -1;
    }
    config.listen_database_url = getenv("LISTEN_DATABASE_URL");
    if (!config.listen_database_url || !*config.listen_database_url)
        config.listen_database_url = config.database_url;
    /* /history and /search may read a standby (prefer-standby): they are
     * pages of the past, and /recv, the exact path, never reads here. */
    config.archive_database_url = getenv("ARCHIVE_DATABASE_URL");
    if (!config.archive_database_url || !*config.archive_database_url)
        config.archive_database_url = config.database_url;
    config.socket_path = getenv("PGCHAT_SOCKET");
    if (config.socket_path && !*config.socket_path)
        config.socket_path = NULL;
    /* Set but naming nobody would read as no list, and so as anyone: a
     * setting that could widen access is refused, never guessed at. */
    config.web_server_addrs = getenv("FCGI_WEB_SERVER_ADDRS");
    if (config.web_server_addrs &&
        !config.web_server_addrs[strspn(config.web_server_addrs, ", \t")]) {
        fprintf(stderr, "pgchat: FCGI_WEB_SERVER_ADDRS is set but names no "
                        "address: unset it, or list the web servers' "
                        "addresses\n");
        return -1;
    }
    /* Anything but off or request is refused: a typo must not leave the
     * chat open to everyone when the operator meant it behind a login. */
    mode = getenv("PGCHAT_AUTH");
    if (mode && *mode && strcmp(mode, "off") != 0) {
        if (strcmp(mode, "request") != 0) {
            fprintf(stderr, "pgchat: PGCHAT_AUTH is \"%s\": off or request\n",
                    mode);
            return -1;
        }
        config.auth = 1;
    }
    config.write_socket_path = getenv("PGCHAT_WRITE_SOCKET");
    if (config.write_socket_path && !*config.write_socket_path)
        config.write_socket_path = NULL;
    if (integer("WEB_CONCURRENCY", cpus > 0 ? cpus : 1, 1, 256, &workers) < 0 ||
        integer("PGCHAT_MAX_MESSAGE", 4096, 1, 60000, &max_message) < 0 ||
        integer("PGCHAT_BATCH_MS", 100, 0, 10000, &batch_ms) < 0 ||
        integer("PGCHAT_BATCH_READERS", 1000, 1, 10000000, &batch_readers) <
            0 ||
        seconds_ms("PGCHAT_RECV_TIMEOUT", 20, 0.1, 3600,
                   &config.recv_timeout_ms) < 0 ||
        seconds_ms("PGCHAT_SESSION_TIMEOUT", 60, 1, 86400, &session_ms) < 0 ||
        seconds_ms("PGCHAT_SWEEP_INTERVAL", 5, 0.1, 3600,
                   &config.sweep_interval_ms) < 0 ||
        integer("RATE_LIMIT", 1, 0, 1, &rate_limit) < 0 ||
        integer("PGCHAT_SEND_RATE", 5, 1, 100000, &send_rate) < 0 ||
        integer("PGCHAT_SEND_BURST", 20, 1, 100000, &send_burst) < 0 ||
        integer("PGCHAT_ROOM_SESSIONS", 1000, 1, 10000000, &room_sessions) <
            0 ||
        integer("PGCHAT_ADDR_SESSIONS", 20, 0, 10000000, &addr_sessions) < 0 ||
        integer("PGCHAT_ADDR_ROOMS", 20, 0, 10000000, &addr_rooms) < 0 ||
        integer("PGCHAT_ADDR_READS", 4, 0, 10000000, &addr_reads) < 0 ||
        seconds_ms("PGCHAT_DB_TIMEOUT", 5, 0.1, 600, &config.db_timeout_ms) <
            0 ||
        integer("MESSAGE_RETENTION", 0, 0, 100000, &retention) < 0 ||
        integer("PGCHAT_DELETE_WINDOW", 300, 0, 86400, &delete_window) < 0)
        return -1;
    config.addr_sessions = rate_limit ? (int)addr_sessions : 0;
    config.addr_rooms = rate_limit ? (int)addr_rooms : 0;
    config.addr_reads = rate_limit ? (int)addr_reads : 0;
    config.retention_days = (int)retention;
    config.delete_window_s = (int)delete_window;
    config.rate_limit = (int)rate_limit;
    config.send_rate = (double)send_rate;
    config.send_burst = (double)send_burst;
    /* 0 tells the database there is no cap. */
    config.room_sessions = rate_limit ? (int)room_sessions : 0;
    config.workers = (int)workers;
    config.batch_ms = (int)batch_ms;
    config.batch_readers = (int)batch_readers;
    config.max_message = (size_t)max_message;
    config.session_timeout_s = session_ms / 1000 ? session_ms / 1000 : 1;
    return 0;
}
