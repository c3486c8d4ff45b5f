/* gw.h: the gateway context: configuration, shared handles, metrics and each module's state. */
#ifndef GW_H
#define GW_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "apps.h"
#include "bus.h"
#include "jwt.h"
#include "rate.h"
#include "metrics.h"

struct lws_context;

typedef struct gw_config {
    const char *listen;             /* NATTER_LISTEN host:port */
    const char *metrics_listen;     /* NATTER_METRICS_LISTEN */
    const char *nats_url;           /* NATTER_NATS_URL */
    const char *jwt_secret;         /* NATTER_JWT_SECRET */
    const char *api_key;            /* NATTER_API_KEY for the server API; "" = disabled */
    char gw_id[65];                 /* NATTER_GATEWAY_ID, [A-Za-z0-9_-] */
    bool dev_tokens;                /* NATTER_DEV_TOKENS: POST /api/dev/token enabled */
    uint32_t max_frame;             /* NATTER_MAX_FRAME bytes per client frame */
    uint32_t max_message_chars;     /* NATTER_MAX_MESSAGE_CHARS code points */
    uint32_t send_queue_bytes;      /* NATTER_SEND_QUEUE_BYTES per connection (soft) */
    uint32_t send_queue_hard_bytes; /* NATTER_SEND_QUEUE_HARD_BYTES: closed at once above */
    uint32_t slow_grace_ms;         /* NATTER_SLOW_GRACE_MS over the soft limit before closing */
    uint32_t lazy_flush_ms;         /* NATTER_LAZY_FLUSH_MS: the longest a frame that may wait waits */
    uint32_t max_pending_sends;     /* NATTER_MAX_PENDING_SENDS per connection */
    uint32_t max_inflight_sends;    /* NATTER_MAX_INFLIGHT_SENDS: awaiting the store, all connections */
    uint32_t max_rooms_per_conn;    /* NATTER_MAX_ROOMS_PER_CONN */
    uint32_t max_connections;       /* NATTER_MAX_CONNECTIONS (WebSocket) */
    uint32_t recovery_buffer;       /* NATTER_RECOVERY_BUFFER: live events held per member during a replay */
    uint32_t auth_timeout_ms;       /* NATTER_AUTH_TIMEOUT_MS */
    uint32_t request_timeout_ms;    /* NATTER_REQUEST_TIMEOUT_MS for bus requests */
    uint32_t partitions;            /* NATTER_PARTITIONS, equal to the persister's */
    uint32_t heartbeat_ms;          /* NATTER_HEARTBEAT_MS */
    uint32_t ping_interval_s;       /* NATTER_PING_INTERVAL_S: an idle connection is pinged */
    uint32_t ping_timeout_s;        /* NATTER_PING_TIMEOUT_S: a silent connection is closed */
    uint32_t max_requests_per_conn; /* NATTER_MAX_REQUESTS_PER_CONN awaiting their answer */
    uint32_t typing_interval_ms;    /* NATTER_TYPING_INTERVAL_MS: one typing change per user, room */
    uint32_t presence_interval_ms;  /* NATTER_PRESENCE_INTERVAL_MS: one presence change per user */
    gw_rate rates[GW_L_COUNT];      /* NATTER_RATE_* (ratelimit.h) */
    nt_jwt_rules jwt;               /* NATTER_JWT_SECRET, _LEEWAY_S, _ISSUER, _AUDIENCE,
                                       NATTER_MAX_TOKEN_LIFETIME_S */
    uint32_t expiring_lead_s;       /* NATTER_TOKEN_EXPIRING_LEAD_S */
    uint32_t handshake_timeout_s;   /* NATTER_HANDSHAKE_TIMEOUT_S: HTTP request and upgrade */
    nt_apps apps;                   /* NATTER_APPS: tenants with their own secrets */
    uint32_t replay_max;            /* NATTER_REPLAY_MAX: messages one since_seq recovery replays */
    uint32_t gap_repair_max;        /* NATTER_GAP_REPAIR_MAX: messages one gap repair fetches */
} gw_config;

typedef struct gw_metrics {
    nt_metric *connections;         /* gauge: open WebSocket connections */
    nt_metric *frames_in;
    nt_metric *frames_out;
    nt_metric *writes;
    nt_metric *messages_sent;       /* send_message published to the store */
    nt_metric *acks;                /* send_message acks delivered */
    nt_metric *sends_inflight;      /* gauge: sends awaiting their ack, all connections */
    nt_metric *sends_shed;          /* sends refused over NATTER_MAX_INFLIGHT_SENDS */
    nt_metric *ack_ms_sum;          /* sum of receipt-to-ack times, ms */
    nt_metric *slow_closed;         /* connections closed as slow consumers */
    nt_metric *ping_closed;         /* connections closed for answering no ping */
    nt_metric *refused;             /* upgrades refused over NATTER_MAX_CONNECTIONS */
    nt_metric *room_subjects;       /* gauge: room subjects subscribed */
    nt_metric *user_subjects;       /* gauge: user subjects subscribed */
    nt_metric *bytes_queued;        /* gauge: bytes in all send queues */
    nt_metric *http_requests;
    nt_metric *server_api_calls[4]; /* by call: publish, notify, disconnect, stats */
} gw_metrics;

/* Each module's own state: opaque, created by the module's start (_create, _init,
 * _start) and freed by its _destroy or _stop, NULL outside them. */
struct gw_conns;                    /* transport/conn.c */
struct gw_server;                   /* transport/server.c */
struct gw_access;                   /* transport/access.c */
struct gw_dialects;                 /* core/dialect.c */
struct gw_replies;                  /* core/reply.c */
struct gw_rooms;                    /* core/rooms.c */
struct gw_sends;                    /* core/sends.c */
struct gw_sessions;                 /* core/session.c */
struct gw_presence;                 /* core/presence.c */
struct gw_revoke;                   /* core/revoke.c */
struct gw_limits;                   /* core/ratelimit.c */
struct gw_repairs;                  /* core/repair.c */
struct gw_route;                    /* http/route.h */

typedef struct gw_ctx {
    gw_config cfg;
    gw_metrics m;
    uv_loop_t *loop;
    nt_bus *bus;                    /* NULL once the gateway module is destroyed */
    struct lws_context *lws;
    bool stopping;                  /* graceful stop in progress */
    struct gw_conns *conns;
    struct gw_server *server;
    struct gw_access *access;
    struct gw_dialects *dialects;
    struct gw_replies *replies;
    struct gw_rooms *rooms;
    struct gw_sends *sends;
    struct gw_sessions *sessions;
    struct gw_presence *presence;
    struct gw_revoke *revoke;
    struct gw_limits *limits;
    struct gw_repairs *repairs;
    const struct gw_route *routes;  /* the REST routes (http/routes.c), nroutes of them */
    size_t nroutes;
} gw_ctx;

/* The process's context, from gw_ctx_create to gw_ctx_destroy (NULL outside). A
 * module's start and stop take the context as a parameter, its libuv handles carry its
 * state; every other call (a frame queued, a fan-out, a reply) reaches it here instead
 * of through every signature (docs/architecture.md, "The core's modules"). Loop thread
 * only. */
extern gw_ctx *gw;

/* A zeroed context (the caller fills cfg, loop and bus), made the process's `gw`.
 * One at a time. */
gw_ctx *gw_ctx_create(void);
/* Frees ctx with what its configuration holds (cfg.apps; its modules destroyed first)
 * and clears `gw`. */
void gw_ctx_destroy(gw_ctx *ctx);

/* Registers the gateway-wide metrics of ctx->m (at start-up). */
void gw_metrics_register(gw_ctx *ctx);


#endif
