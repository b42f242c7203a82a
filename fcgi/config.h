/* config.h -- settings from the environment, read once at start. */
#ifndef PGCHAT_CONFIG_H
#define PGCHAT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct config {
    const char *database_url;         /* DATABASE_URL */
    const char *listen_database_url;  /* LISTEN_DATABASE_URL, else the same */
    const char *archive_database_url; /* ARCHIVE_DATABASE_URL, else the same */
    const char *socket_path;          /* PGCHAT_SOCKET; NULL: inherited fd 0 */
    const char *write_socket_path;    /* PGCHAT_WRITE_SOCKET; NULL: none */
    const char *web_server_addrs;     /* FCGI_WEB_SERVER_ADDRS; NULL: unset,
                                       * never empty */
    int workers;                      /* WEB_CONCURRENCY, default: CPUs */
    int recv_timeout_ms;              /* PGCHAT_RECV_TIMEOUT (s): ping after */
    int batch_ms;                     /* PGCHAT_BATCH_MS: the pause after a */
    int batch_readers;                /* fan-out to PGCHAT_BATCH_READERS */
    int session_timeout_s;            /* PGCHAT_SESSION_TIMEOUT (s) */
    int sweep_interval_ms;            /* PGCHAT_SWEEP_INTERVAL (s) */
    size_t max_message;               /* PGCHAT_MAX_MESSAGE (bytes) */
    int rate_limit;                   /* RATE_LIMIT: 0 turns every limit off */
    double send_rate;                 /* PGCHAT_SEND_RATE: msgs/s a session */
    double send_burst;                /* PGCHAT_SEND_BURST */
    int addr_reads;                   /* PGCHAT_ADDR_READS: /history and
                                       * /search one address may have queued
                                       * or running in a worker; 0: no cap */
    int addr_rooms;                   /* PGCHAT_ADDR_ROOMS: rooms a minute one
                                       * address may make a worker hold; 0:
                                       * no cap */
    int room_sessions;                /* PGCHAT_ROOM_SESSIONS: cap a room */
    int addr_sessions;   /* PGCHAT_ADDR_SESSIONS: per address and room */
    int db_timeout_ms;   /* PGCHAT_DB_TIMEOUT (s): bound on a database call */
    int retention_days;  /* MESSAGE_RETENTION: 0 keeps all */
    int auth;            /* PGCHAT_AUTH=request: nginx names the user */
    int delete_window_s; /* PGCHAT_DELETE_WINDOW: an author's delete (s) */
    int64_t starttime;   /* ms since the epoch, set by main */
};

/* Read-only once config_load() has returned. */
extern struct config config;

/* Fills config from the environment. Returns 0, or -1 with a message on
 * stderr when a setting is malformed or DATABASE_URL is missing. */
int config_load(void);

#endif
