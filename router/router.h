/* router.h: the router's shared state (settings, bus, Redis, metrics) handed to every module. */
#ifndef RT_ROUTER_H
#define RT_ROUTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "metrics.h"
#include "redis_conn.h"

typedef struct rt_metrics {
    nt_metric *joins;              /* joins granted by the persister */
    nt_metric *leaves;             /* leaves confirmed by the persister */
    nt_metric *conn_opens;         /* natter.ctl.conn open applied */
    nt_metric *conn_closes;        /* natter.ctl.conn close applied */
    nt_metric *gateways_swept;     /* dead gateways cleaned by this replica */
    nt_metric *redis_errors;       /* error replies and commands lost to a disconnect */
    nt_metric *redis_rejected;     /* commands refused: disconnected or over the in-flight bound */
    nt_metric *bad_requests;       /* malformed or invalid envelopes */
    nt_metric *presence_events;    /* presence events published (one per user change) */
    nt_metric *presence_sets;      /* natter.ctl.presence applied */
    nt_metric *typing_events;      /* typing events published (true and false) */
    nt_metric *typing_expired;     /* typing indicators ended by the expiry timer */
    nt_metric *queries;            /* online/typing/presence queries answered */
    nt_metric *code_failures;      /* wrong access codes answered by the persister */
    nt_metric *code_locked;        /* joins with an access code refused by its attempt limits */
} rt_metrics;

typedef struct rt_router {
    uv_loop_t *loop;
    nt_bus *bus;
    rt_redis *redis;
    int64_t gateway_ttl_ms;        /* NATTER_GATEWAY_TTL_MS */
    int64_t sweep_ms;              /* NATTER_SWEEP_MS */
    int request_timeout_ms;        /* NATTER_REQUEST_TIMEOUT_MS */
    int64_t presence_room_max;     /* NATTER_PRESENCE_ROOM_MAX: larger rooms get no presence events */
    int64_t typing_ttl_ms;         /* NATTER_TYPING_TTL_MS: typing ends without renewal */
    int64_t access_code_attempts;  /* NATTER_ACCESS_CODE_ATTEMPTS: wrong codes per user and room */
    int64_t access_code_room_attempts; /* NATTER_ACCESS_CODE_ROOM_ATTEMPTS: per room, all users */
    int64_t access_code_window_s;  /* NATTER_ACCESS_CODE_WINDOW_S: failures count; longest lock */
    int64_t access_code_backoff_s; /* NATTER_ACCESS_CODE_BACKOFF_S: first lock, doubled per failure */
    bool stopping;                 /* set by SIGINT/SIGTERM; no new work is started */
    rt_metrics m;
} rt_router;

#endif
