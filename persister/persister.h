/* persister.h: the persister's settings, metrics and the context every module shares. */
#ifndef PS_PERSISTER_H
#define PS_PERSISTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "metrics.h"

#define PS_STREAM "NATTER_IN"
#define PS_LOCK_KEY 7233908 /* 0x6e6174: first half of the partition advisory lock */

typedef struct ps_pg ps_pg;
typedef struct ps_batches ps_batches;
typedef struct ps_parts ps_parts;
typedef struct ps_pull ps_pull;
typedef struct ps_queries ps_queries;
typedef struct ps_receipts ps_receipts;
typedef struct ps_unread ps_unread;

typedef struct ps_config {
    const char *nats_url;          /* NATTER_NATS_URL */
    const char *pg_url;            /* NATTER_PG_URL (libpq conninfo or URI) */
    const char *metrics_listen;    /* NATTER_METRICS_LISTEN */
    const char *migrations_dir;    /* NATTER_MIGRATIONS_DIR, default: the source tree */
    unsigned partitions;           /* NATTER_PARTITIONS */
    int batch_max;                 /* NATTER_BATCH_MAX: messages per fetch and transaction */
    int batch_linger_ms;           /* NATTER_BATCH_LINGER_MS: a partition's batches start at
                                    * most this often (a full batch goes at once) */
    int claim_interval_ms;         /* NATTER_CLAIM_INTERVAL_MS */
    unsigned write_conns;          /* NATTER_PG_WRITE_CONNS, at most `partitions` */
    int64_t js_max_age_s;          /* NATTER_JS_MAX_AGE_S */
    int64_t js_duplicate_window_s; /* NATTER_JS_DUPLICATE_WINDOW_S */
    int history_max;               /* NATTER_HISTORY_MAX: largest history limit */
    int max_message_chars;         /* NATTER_MAX_MESSAGE_CHARS */
    int rpc_queue_max;             /* bound of pending read queries */
    char member_events_max[16];    /* NATTER_MEMBER_EVENTS_ROOM_MAX, as a query parameter */
    int unread_flush_ms;           /* NATTER_UNREAD_FLUSH_MS: unread events at most this often */
    int unread_max_dirty;          /* NATTER_UNREAD_MAX_DIRTY: bound of each dirty set */
    int unread_chunk;              /* NATTER_UNREAD_CHUNK: dirty entries of each set per query */
    int receipt_interval_ms;       /* NATTER_RECEIPT_INTERVAL_MS: one receipt per user/room/type */
    int receipt_max_pending;       /* NATTER_RECEIPT_MAX_PENDING: bound of the coalescing table */
    size_t bus_queue;              /* NATTER_BUS_QUEUE: NATS -> loop queue bound */
    unsigned read_conns;           /* NATTER_PG_READ_CONNS: connections for rpc queries */
} ps_config;

typedef struct ps_metrics {
    nt_metric *committed;     /* messages stored */
    nt_metric *duplicates;    /* sends answered from an existing row */
    nt_metric *refused;       /* sends refused (not_found, forbidden, bad_request) */
    nt_metric *poison;        /* envelopes that could not be decoded */
    nt_metric *redelivered;   /* messages at or below the committed stream sequence */
    nt_metric *batches;       /* partition batches committed */
    nt_metric *transactions;  /* write transactions committed (one or more batches each) */
    nt_metric *batch_size;    /* messages in the last committed batch */
    nt_metric *commit_ms;     /* latency of the last commit, ms */
    nt_metric *commit_ms_sum; /* sum of commit latencies, ms */
    nt_metric *slow_commits;       /* batches that took BATCH_SLOW_MS or more to commit */
    nt_metric *fetch_lag_ms_sum;   /* per stored message: gateway receipt to fetched, ms */
    nt_metric *publish_lag_ms_sum; /* per stored message: gateway receipt to published, ms */
    nt_metric *batch_retries; /* batches re-sent after a failed transaction */
    nt_metric *owned;         /* partitions owned now */
    nt_metric *pull_requests; /* JetStream pull requests sent */
    nt_metric *consumer_setups;    /* JetStream consumers (re)created */
    nt_metric *pull_gaps;          /* pulled messages lost before the loop: consumer set up again */
    nt_metric *pg_reconnects; /* PostgreSQL connections lost */
    nt_metric *rpc_requests;  /* rpc requests answered */
    nt_metric *rpc_rejected;  /* rpc requests refused as unavailable */
    nt_metric *receipts;      /* receipt events published */
    nt_metric *receipts_coalesced; /* receipts replaced by a later one within the interval */
    nt_metric *receipts_dropped;   /* receipts dropped: coalescing table full */
    nt_metric *unread_events; /* unread events published */
    nt_metric *unread_dropped;     /* dirty marks dropped: dirty set full */
} ps_metrics;

typedef struct ps_ctx {
    uv_loop_t *loop;
    ps_config cfg;
    ps_metrics m;
    nt_bus *bus;
    ps_pg **wpg;         /* write connections: partition p is claimed and committed on
                            wpg[p % nwpg] (ps_wpg), so batches of different partitions
                            commit in parallel and share WAL flushes */
    unsigned nwpg;
    ps_pg **rpgs;        /* read connections: rpc queries, each user's on rpgs[hash of
                            (app, user) % nrpg] (ps_queries_pg), so one user's requests stay
                            in order while different users' joins commit in parallel */
    unsigned nrpg;
    ps_pg *rpg;          /* rpgs[0]: also the unread flush and ANALYZE */
    ps_batches *batches;
    ps_parts *parts;
    ps_pull *pull;
    ps_queries *queries;
    ps_receipts *receipts;
    ps_unread *unread;
    bool draining;       /* SIGINT/SIGTERM received: no new batch, no new claim */
    void (*settled)(struct ps_ctx *ctx); /* a batch or an rpc request is finished (main:
                                          * the drain may be over); NULL: nobody listens */
} ps_ctx;

/* The write connection of partition p. */
static inline ps_pg *ps_wpg(const ps_ctx *ctx, unsigned p)
{
    return ctx->wpg[p % ctx->nwpg];
}

/* Reports a finished batch or rpc request to ctx->settled. Loop thread. */
static inline void ps_settled(ps_ctx *ctx)
{
    if (ctx->settled != NULL)
        ctx->settled(ctx);
}

#endif
