/* main.c: natter-persister: settings, start-up (migrations, JetStream stream,
 * connections), the event loop, and the graceful drain on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "batch.h"
#include "config.h"
#include "log.h"
#include "migrate.h"
#include "partitions.h"
#include "persister.h"
#include "pg.h"
#include "receipts.h"
#include "queries.h"
#include "txn.h"
#include "unread.h"
#include "pull.h"
#include "wire.h"

#ifndef NATTER_MIGRATIONS_DIR
#define NATTER_MIGRATIONS_DIR "persister/migrations"
#endif

#define DRAIN_TIMEOUT_MS 10000

static ps_ctx g_ctx;
static uv_signal_t g_sigint, g_sigterm;
static uv_timer_t g_drain_timer;
static bool g_stopping;   /* phase two of the drain has begun */

static void read_config(ps_config *c)
{
    c->nats_url = nt_config_str("NATTER_NATS_URL", "nats://127.0.0.1:4222", "NATS server URL");
    c->pg_url = nt_config_str("NATTER_PG_URL", NULL, "PostgreSQL connection string");
    c->metrics_listen = nt_config_str("NATTER_METRICS_LISTEN", "127.0.0.1:9103",
                                      "host:port for /metrics");
    c->migrations_dir = nt_config_str("NATTER_MIGRATIONS_DIR", NATTER_MIGRATIONS_DIR,
                                      "directory of NNN_name.sql migrations");
    c->partitions = (unsigned)nt_config_int("NATTER_PARTITIONS", 4, 1, 1024);
    c->batch_max = (int)nt_config_int("NATTER_BATCH_MAX", 500, 1, 10000);
    c->batch_linger_ms = (int)nt_config_int("NATTER_BATCH_LINGER_MS", 10, 0, 1000);
    c->claim_interval_ms = (int)nt_config_int("NATTER_CLAIM_INTERVAL_MS", 2000, 50, 600000);
    c->write_conns = (unsigned)nt_config_int("NATTER_PG_WRITE_CONNS", 2, 1, 64);
    if (c->write_conns > c->partitions)
        c->write_conns = c->partitions;
    c->js_max_age_s = nt_config_int("NATTER_JS_MAX_AGE_S", 604800, 60, 315360000);
    c->js_duplicate_window_s = nt_config_int("NATTER_JS_DUPLICATE_WINDOW_S", 120, 1, 86400);
    c->history_max = (int)nt_config_int("NATTER_HISTORY_MAX", 100, 1, 10000);
    c->max_message_chars = (int)nt_config_int("NATTER_MAX_MESSAGE_CHARS", 5000, 1, 1000000);
    snprintf(c->member_events_max, sizeof c->member_events_max, "%lld",
             (long long)nt_config_int("NATTER_MEMBER_EVENTS_ROOM_MAX", 1000, 0, 100000000));
    c->rpc_queue_max = (int)nt_config_int("NATTER_RPC_QUEUE_MAX", 10000, 1, 1000000);
    c->unread_flush_ms = (int)nt_config_int("NATTER_UNREAD_FLUSH_MS", 1000, 10, 600000);
    c->unread_max_dirty = (int)nt_config_int("NATTER_UNREAD_MAX_DIRTY", 100000, 1, 100000000);
    c->unread_chunk = (int)nt_config_int("NATTER_UNREAD_CHUNK", 64, 1, 100000000);
    c->receipt_interval_ms = (int)nt_config_int("NATTER_RECEIPT_INTERVAL_MS", 1000, 1, 600000);
    c->receipt_max_pending = (int)nt_config_int("NATTER_RECEIPT_MAX_PENDING", 100000, 1,
                                                100000000);
    c->bus_queue = (size_t)nt_config_int("NATTER_BUS_QUEUE", 65536, 16, 16777216);
    c->read_conns = (unsigned)nt_config_int("NATTER_PG_READ_CONNS", 2, 1, 64);
    if (c->js_duplicate_window_s > c->js_max_age_s)
        nt_config_fatal("NATTER_JS_DUPLICATE_WINDOW_S=%lld is invalid: must not exceed "
                        "NATTER_JS_MAX_AGE_S=%lld", (long long)c->js_duplicate_window_s,
                        (long long)c->js_max_age_s);
}

static void register_metrics(ps_metrics *m)
{
    m->committed = nt_metric_counter("natter_persister_messages_committed_total",
                                     "Messages stored in PostgreSQL");
    m->duplicates = nt_metric_counter("natter_persister_duplicates_total",
                                      "Sends answered from an existing row (same client_msg_id)");
    m->refused = nt_metric_counter("natter_persister_refused_total",
                                   "Sends refused (not_found, forbidden, bad_request)");
    m->poison = nt_metric_counter("natter_persister_poison_total",
                                  "Undecodable envelopes acked and skipped");
    m->redelivered = nt_metric_counter("natter_persister_redelivered_total",
                                       "JetStream redeliveries of already committed messages");
    m->batches = nt_metric_counter("natter_persister_batches_total", "Batches committed");
    m->transactions = nt_metric_counter(
        "natter_persister_transactions_total",
        "Write transactions committed (the ready batches of every partition on one connection)");
    m->batch_size = nt_metric_gauge("natter_persister_batch_size_last",
                                    "Messages in the last committed batch");
    m->commit_ms = nt_metric_gauge("natter_persister_commit_latency_ms_last",
                                   "Send-to-commit latency of the last batch, ms");
    m->commit_ms_sum = nt_metric_counter("natter_persister_commit_latency_ms_total",
                                         "Sum of batch commit latencies, ms");
    m->slow_commits = nt_metric_counter("natter_persister_slow_commits_total",
                                        "Batches that took a second or more to commit");
    m->fetch_lag_ms_sum = nt_metric_counter(
        "natter_persister_fetch_lag_ms_total",
        "Sum over stored messages of gateway receipt to fetch by the persister, ms");
    m->publish_lag_ms_sum = nt_metric_counter(
        "natter_persister_publish_lag_ms_total",
        "Sum over stored messages of gateway receipt to ack and room event published, ms");
    m->batch_retries = nt_metric_counter("natter_persister_batch_retries_total",
                                         "Batches sent again after a failed transaction");
    m->owned = nt_metric_gauge("natter_persister_owned_partitions", "Partitions owned now");
    m->pg_reconnects = nt_metric_counter("natter_persister_pg_reconnects_total",
                                         "PostgreSQL connections lost");
    m->rpc_requests = nt_metric_counter("natter_persister_rpc_replies_total",
                                        "RPC requests answered");
    m->rpc_rejected = nt_metric_counter("natter_persister_rpc_rejected_total",
                                        "RPC requests refused as unavailable (queue full or no database)");
    m->pull_requests = nt_metric_counter("natter_persister_pull_requests_total",
                                         "JetStream pull requests sent (one per batch, two a "
                                         "second per idle partition)");
    m->consumer_setups = nt_metric_counter("natter_persister_consumer_setups_total",
                                           "JetStream consumers created: a partition taken, or "
                                           "its consumer lost and set up again");
    m->pull_gaps = nt_metric_counter("natter_persister_pull_gaps_total",
                                     "Pulled messages that never reached the loop (a hole in the "
                                     "consumer's delivery sequence): consumer set up again");
    m->receipts = nt_metric_counter("natter_persister_receipts_total", "Receipt events published");
    m->receipts_coalesced = nt_metric_counter("natter_persister_receipts_coalesced_total",
                                              "Receipts replaced by a later mark within the interval");
    m->receipts_dropped = nt_metric_counter("natter_persister_receipts_dropped_total",
                                            "Receipts dropped: NATTER_RECEIPT_MAX_PENDING reached");
    m->unread_events = nt_metric_counter("natter_persister_unread_events_total",
                                         "Unread events published");
    m->unread_dropped = nt_metric_counter("natter_persister_unread_dropped_total",
                                          "Unread changes dropped: NATTER_UNREAD_MAX_DIRTY reached");
}

/* Creates or updates stream NATTER_IN. The bus connection reads its socket on the
 * loop, which is not running yet, so this uses a short-lived plain connection. */
static void ensure_stream(const ps_config *c)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    char err[256], shown[512];
    nt_config_redact_url(c->nats_url, shown, sizeof shown);
    if (nt_bus_connect_plain(c->nats_url, "natter-persister", &nc, err, sizeof err) != NT_OK)
        nt_config_fatal("cannot reach NATS at %s (NATTER_NATS_URL): %s", shown, err);
    natsStatus s = natsConnection_JetStream(&js, nc, NULL);
    const char *subjects[] = { NT_SUBJ_IN_ALL };
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = PS_STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.MaxAge = c->js_max_age_s * 1000000000LL;
    sc.Duplicates = c->js_duplicate_window_s * 1000000000LL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    /* Replicas starting together race: while another one's create is in flight the
     * server answers "subjects overlap" (10065) rather than "name exists" (10058),
     * and an update can then still find no stream. Both mean: try again shortly.
     * (Before the loop runs, so the short sleeps block nothing.) */
    for (int attempt = 0; s == NATS_OK; attempt++) {
        jerr = 0;
        s = js_AddStream(&si, js, &sc, NULL, &jerr);
        if (s != NATS_OK && (jerr == JSStreamNameExistErr || jerr == JSStreamSubjectOverlapErr)) {
            jerr = 0;
            s = js_UpdateStream(&si, js, &sc, NULL, &jerr);
        }
        if (s == NATS_OK || attempt >= 20 ||
            (jerr != JSStreamSubjectOverlapErr && jerr != JSStreamNotFoundErr))
            break;
        s = NATS_OK;
        nats_Sleep(100);
    }
    if (s != NATS_OK)
        nt_config_fatal("cannot create JetStream stream %s at %s (NATTER_NATS_URL; is JetStream "
                        "enabled?): %s (jetstream error %d)", PS_STREAM, shown,
                        natsStatus_GetText(s), (int)jerr);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static bool ready(void *arg)
{
    ps_ctx *ctx = arg;
    if (ctx->draining || !nt_bus_connected(ctx->bus))
        return false;
    for (unsigned k = 0; k < ctx->nwpg; k++)
        if (!ps_pg_up(ctx->wpg[k]))
            return false;
    return true;
}

static int64_t rpc_pending_gauge(void *arg)
{
    ps_ctx *ctx = arg;
    return ctx->queries != NULL ? (int64_t)ps_queries_pending(ctx->queries) : 0;
}

static void on_wpg_state(ps_pg *pg, bool up, void *arg)
{
    ps_ctx *ctx = arg;
    for (unsigned k = 0; k < ctx->nwpg; k++)
        if (ctx->wpg[k] == pg)
            ps_parts_on_pg(ctx->parts, k, up);
}

/* ps_parts_hooks: a partition claimed is pulled; one lost is pulled no more, and its
 * idle batch is dropped. */
static void on_part_owned(void *arg, unsigned p, uint64_t gen)
{
    ps_ctx *ctx = arg;
    ps_pull_start_part(ctx->pull, p, gen);
}

static void on_part_lost(void *arg, ps_part *part, bool was_owned)
{
    ps_ctx *ctx = arg;
    if (was_owned)
        ps_pull_stop_part(ctx->pull, part->p);
    ps_batch_release_idle(part);
}

/* ps_pull_create's callbacks: a batch fetched goes to batch.c, and so does the end of
 * a request that brought nothing. */
static void on_pull_batch(void *arg, unsigned p, uint64_t gen, ps_jsmsg **msgs, int n)
{
    ps_ctx *ctx = arg;
    ps_batch_start(ctx->batches, p, gen, msgs, n);
}

static void on_pull_over(void *arg)
{
    ps_ctx *ctx = arg;
    ps_batch_gather_over(ctx->batches);
}

static void on_closed_noop(uv_handle_t *h)
{
}

static void on_pull_exit(void *arg)
{
    ps_ctx *ctx = arg;
    ps_pull_destroy(ctx->pull);
    ctx->pull = NULL;
    for (unsigned k = 0; k < ctx->nrpg; k++)
        ps_pg_destroy(ctx->rpgs[k]);
    nt_free(ctx->rpgs);
    ctx->rpgs = NULL;
    ctx->rpg = NULL;
    ctx->nrpg = 0;
    ps_queries_destroy(ctx->queries);
    ctx->queries = NULL;
    ps_unread_destroy(ctx->unread);
    ctx->unread = NULL;
    ps_receipts_destroy(ctx->receipts);
    ctx->receipts = NULL;
    ps_parts_destroy(ctx->parts);
    nt_metrics_close();
    uv_close((uv_handle_t *)&g_sigint, on_closed_noop);
    uv_close((uv_handle_t *)&g_sigterm, on_closed_noop);
    uv_close((uv_handle_t *)&g_drain_timer, on_closed_noop);
    nt_bus_destroy(ctx->bus);
    nt_info("stopped");
}

/* Phase two: no batch in flight (or the wait ran out). Close the write connection,
 * which drops any batch still in flight unacked, then stop pulling. */
static void drain_finish(uv_timer_t *t)
{
    ps_ctx *ctx = t->data;
    if (g_stopping)
        return;
    g_stopping = true;
    if (ps_parts_inflight(ctx->parts) > 0)
        nt_warn("drain timed out: %u batches dropped unacked", ps_parts_inflight(ctx->parts));
    for (unsigned k = 0; k < ctx->nwpg; k++)
        ps_pg_destroy(ctx->wpg[k]);
    for (unsigned p = 0; p < ctx->cfg.partitions; p++)
        ps_batch_release_idle(ps_parts_get(ctx->parts, p));
    ps_batch_destroy(ctx->batches);
    ctx->batches = NULL;
    nt_free(ctx->wpg);
    ctx->wpg = NULL;
    ctx->nwpg = 0;
    ps_pull_quit(ctx->pull, on_pull_exit, ctx);
}

/* ctx->settled: the drain's phase two once nothing is in flight. */
static void main_settled(ps_ctx *ctx)
{
    if (ctx->draining && !g_stopping && ps_parts_inflight(ctx->parts) == 0 &&
        ps_queries_pending(ctx->queries) == 0)
        uv_timer_start(&g_drain_timer, drain_finish, 0, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    ps_ctx *ctx = s->data;
    if (ctx->draining)
        return;
    nt_info("signal %d: draining", signum);
    ctx->draining = true;
    ps_parts_stop_claiming(ctx->parts);
    ps_pull_stop_all(ctx->pull);
    ps_queries_unsubscribe(ctx->queries);
    uv_timer_start(&g_drain_timer, drain_finish, DRAIN_TIMEOUT_MS, 0);
    main_settled(ctx);
}

/* n connections labelled "<kind> <k>" (their application_name), not started. */
static ps_pg **pg_conns(ps_ctx *ctx, unsigned n, const char *kind, const ps_pg_stmt *stmts,
                        size_t nstmts, ps_pg_state_cb cb)
{
    ps_pg **pgs = nt_calloc(n, sizeof(*pgs));
    for (unsigned k = 0; k < n; k++) {
        char label[32];
        snprintf(label, sizeof label, "%s %u", kind, k);
        pgs[k] = ps_pg_create(ctx->loop, ctx->cfg.pg_url, label, stmts, nstmts, cb, ctx,
                              ctx->m.pg_reconnects);
    }
    return pgs;
}

int main(void)
{
    ps_ctx *ctx = &g_ctx;
    signal(SIGPIPE, SIG_IGN);
    if (nt_log_init("persister") != 0)
        nt_config_fatal("NATTER_LOG_LEVEL is invalid: expected debug, info, warn or error");
    read_config(&ctx->cfg);
    ctx->settled = main_settled;
    ctx->loop = uv_default_loop();

    ps_migrate(ctx->cfg.pg_url, ctx->cfg.migrations_dir);
    register_metrics(&ctx->m);

    char err[256] = "", nats_shown[512];
    nt_config_redact_url(ctx->cfg.nats_url, nats_shown, sizeof nats_shown);
    nt_bus_opts bo = {
        .url = ctx->cfg.nats_url,
        .name = "natter-persister",
        .queue_capacity = ctx->cfg.bus_queue,
        .sub_pending_msgs = 65536,
        .max_requests = 1024,
    };
    if (nt_bus_create(ctx->loop, &bo, &ctx->bus, err, sizeof(err)) != NT_OK)
        nt_config_fatal("cannot reach NATS at %s (NATTER_NATS_URL): %s", nats_shown, err);
    nt_bus_register_metrics(ctx->bus, "natter_persister");
    ensure_stream(&ctx->cfg);

    ctx->nwpg = ctx->cfg.write_conns;
    ctx->wpg = pg_conns(ctx, ctx->nwpg, "write", ps_txn_stmts, ps_txn_nstmts, on_wpg_state);
    ctx->nrpg = ctx->cfg.read_conns;
    ctx->rpgs = pg_conns(ctx, ctx->nrpg, "read", ps_queries_stmts, ps_queries_nstmts, NULL);
    ctx->rpg = ctx->rpgs[0];
    ctx->batches = ps_batch_create(ctx);
    ps_parts_hooks hooks = { .owned = on_part_owned, .lost = on_part_lost, .arg = ctx };
    ctx->parts = ps_parts_create(ctx, &hooks);
    ctx->pull = ps_pull_create(ctx, on_pull_batch, on_pull_over, ctx);
    ctx->receipts = ps_receipts_create(ctx);
    ctx->unread = ps_unread_create(ctx);
    ctx->queries = ps_queries_create(ctx);
    if (ctx->queries == NULL)
        nt_config_fatal("cannot subscribe the persister rpc subjects at %s (NATTER_NATS_URL)",
                        nats_shown);
    nt_metric_gauge_fn("natter_persister_rpc_pending", "RPC requests waiting for PostgreSQL",
                       rpc_pending_gauge, ctx);
    nt_status st = nt_metrics_listen(ctx->loop, ctx->cfg.metrics_listen, ready, ctx);
    if (st != NT_OK)
        nt_config_fatal("cannot listen on %s (NATTER_METRICS_LISTEN): %s",
                        ctx->cfg.metrics_listen, nt_status_text(st));

    uv_timer_init(ctx->loop, &g_drain_timer);
    g_drain_timer.data = ctx;
    uv_signal_init(ctx->loop, &g_sigint);
    uv_signal_init(ctx->loop, &g_sigterm);
    g_sigint.data = g_sigterm.data = ctx;
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);

    for (unsigned k = 0; k < ctx->nwpg; k++)
        ps_pg_start(ctx->wpg[k]);
    for (unsigned k = 0; k < ctx->nrpg; k++)
        ps_pg_start(ctx->rpgs[k]);
    ps_parts_start(ctx->parts);
    nt_info("started: %u partitions on %u write connections, batch max %d, metrics on %s",
            ctx->cfg.partitions, ctx->nwpg, ctx->cfg.batch_max, ctx->cfg.metrics_listen);

    uv_run(ctx->loop, UV_RUN_DEFAULT);
    uv_loop_close(ctx->loop);
    return 0;
}
