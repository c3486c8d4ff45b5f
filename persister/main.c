/* main.c: natter-persister: its settings, the start-up steps before the loop (migrations,
 * the JetStream stream) and the list of its modules, run by common/service.h (the loop,
 * the bus, the metrics listener, signals and the graceful drain). */
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
#include "pull.h"
#include "queries.h"
#include "receipts.h"
#include "service.h"
#include "txn.h"
#include "unread.h"
#include "wire.h"

#ifndef NATTER_MIGRATIONS_DIR
#define NATTER_MIGRATIONS_DIR "persister/migrations"
#endif

#define DRAIN_TIMEOUT_MS 10000   /* longest wait for batches and rpc requests in flight */

/* The process: the context its modules share, and the service that runs them. */
typedef struct app {
    ps_ctx ctx;
    nt_service *svc;
    char nats_shown[512];         /* NATTER_NATS_URL without its password */
} app;

static app g_app;

static void read_config(ps_config *c)
{
    c->nats_url = nt_wire_str(NT_SET_NATS_URL);
    c->pg_url = nt_config_str("NATTER_PG_URL", NULL, "PostgreSQL connection string");
    c->metrics_listen = nt_wire_metrics_listen(NT_WIRE_PERSISTER);
    c->migrations_dir = nt_config_str("NATTER_MIGRATIONS_DIR", NATTER_MIGRATIONS_DIR,
                                      "directory of NNN_name.sql migrations");
    c->partitions = (unsigned)nt_wire_int(NT_SET_PARTITIONS);
    c->batch_max = (int)nt_config_int("NATTER_BATCH_MAX", 500, 1, 10000);
    c->batch_linger_ms = (int)nt_config_int("NATTER_BATCH_LINGER_MS", 10, 0, 1000);
    c->claim_interval_ms = (int)nt_config_int("NATTER_CLAIM_INTERVAL_MS", 2000, 50, 600000);
    c->write_conns = (unsigned)nt_config_int("NATTER_PG_WRITE_CONNS", 2, 1, 64);
    if (c->write_conns > c->partitions)
        c->write_conns = c->partitions;
    c->js_max_age_s = nt_config_int("NATTER_JS_MAX_AGE_S", 604800, 60, 315360000);
    c->js_duplicate_window_s = nt_config_int("NATTER_JS_DUPLICATE_WINDOW_S", 120, 1, 86400);
    c->history_max = (int)nt_config_int("NATTER_HISTORY_MAX", 100, 1, 10000);
    c->max_message_chars = (int)nt_wire_int(NT_SET_MAX_MESSAGE_CHARS);
    snprintf(c->member_events_max, sizeof c->member_events_max, "%lld",
             (long long)nt_config_int("NATTER_MEMBER_EVENTS_ROOM_MAX", 1000, 0, 100000000));
    c->rpc_queue_max = (int)nt_config_int("NATTER_RPC_QUEUE_MAX", 10000, 1, 1000000);
    c->unread_flush_ms = (int)nt_config_int("NATTER_UNREAD_FLUSH_MS", 1000, 10, 600000);
    c->unread_max_dirty = (int)nt_config_int("NATTER_UNREAD_MAX_DIRTY", 100000, 1, 100000000);
    c->unread_chunk = (int)nt_config_int("NATTER_UNREAD_CHUNK", 64, 1, 100000000);
    c->receipt_interval_ms = (int)nt_config_int("NATTER_RECEIPT_INTERVAL_MS", 1000, 1, 600000);
    c->receipt_max_pending = (int)nt_config_int("NATTER_RECEIPT_MAX_PENDING", 100000, 1,
                                                100000000);
    c->bus_queue = (size_t)nt_wire_int(NT_SET_BUS_QUEUE);
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

/* /readyz beyond what the service checks (not stopping, NATS connected): every write
 * connection up. */
static bool ready(void *arg)
{
    ps_ctx *ctx = arg;
    if (ctx->wpg == NULL)
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

/* ctx->settled: a batch or an rpc request is finished, so the drain may be over. */
static void on_settled(ps_ctx *ctx)
{
    nt_service_drain_check(g_app.svc);
}

/* n connections labelled "<kind> <k>" (their application_name), started. */
static ps_pg **pg_conns(ps_ctx *ctx, unsigned n, const char *kind, const ps_pg_stmt *stmts,
                        size_t nstmts, ps_pg_state_cb cb)
{
    ps_pg **pgs = nt_calloc(n, sizeof(*pgs));
    for (unsigned k = 0; k < n; k++) {
        char label[32];
        snprintf(label, sizeof label, "%s %u", kind, k);
        pgs[k] = ps_pg_create(ctx->loop, ctx->cfg.pg_url, label, stmts, nstmts, cb, ctx,
                              ctx->m.pg_reconnects);
        ps_pg_start(pgs[k]);
    }
    return pgs;
}

/* Fails what is pending on the n connections (their callbacks run now) and frees them. */
static void pg_conns_destroy(ps_pg **pgs, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        ps_pg_destroy(pgs[k]);
    nt_free(pgs);
}

/* ---- modules, in start order; stop_intake in this order, destroy in reverse ----
 * Each destroy fails its work back into the modules listed before it, which still
 * exist: the write connections drop the batches in flight (batches), the batches
 * report done to the pull, the read connections answer the rpc requests still waiting
 * (queries) and end an unread flush (unread). */

/* The shared state: the loop and the bus from the service, the JetStream stream. */
static nt_status persister_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ctx->loop = nt_service_loop(svc);
    ctx->bus = nt_service_bus(svc);
    ctx->settled = on_settled;
    ensure_stream(&ctx->cfg);
    nt_metric_gauge_fn("natter_persister_rpc_pending", "RPC requests waiting for PostgreSQL",
                       rpc_pending_gauge, ctx);
    return NT_OK;
}

static void persister_stop_intake(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    nt_info("signal %d: draining", nt_service_signal(svc));
    ctx->draining = true;
}

/* Last destroyed: nothing publishes any more. */
static void persister_destroy(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    ctx->bus = NULL;
}

/* Partition ownership. Claiming starts with the write connections (wpg_start). */
static nt_status parts_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ps_parts_hooks hooks = { .owned = on_part_owned, .lost = on_part_lost, .arg = ctx };
    ctx->parts = ps_parts_create(ctx, &hooks);
    return NT_OK;
}

static void parts_stop_intake(nt_service *svc, void *arg)
{
    ps_parts_stop_claiming(((ps_ctx *)arg)->parts);
}

static void parts_destroy(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    ps_parts_destroy(ctx->parts);
    ctx->parts = NULL;
}

/* The modules that are one ps_<kind> object created on the context and destroyed:
 * defines <field>_start and <field>_destroy. */
#define PS_OBJECT_MODULE(field, kind)                                                       \
    static nt_status field##_start(nt_service *svc, void *arg, char *err, size_t errlen)    \
    {                                                                                       \
        ps_ctx *ctx = arg;                                                                  \
        ctx->field = ps_##kind##_create(ctx);                                               \
        return NT_OK;                                                                       \
    }                                                                                       \
    static void field##_destroy(nt_service *svc, void *arg)                                 \
    {                                                                                       \
        ps_ctx *ctx = arg;                                                                  \
        ps_##kind##_destroy(ctx->field);                                                    \
        ctx->field = NULL;                                                                  \
    }

PS_OBJECT_MODULE(receipts, receipts)
PS_OBJECT_MODULE(unread, unread)

/* The rpc subjects: a stop unsubscribes them, and the drain waits for the requests
 * already taken. */
static nt_status queries_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ctx->queries = ps_queries_create(ctx);
    if (ctx->queries != NULL)
        return NT_OK;
    snprintf(err, errlen, "cannot subscribe the persister rpc subjects at %s (NATTER_NATS_URL)",
             g_app.nats_shown);
    return NT_EUNAVAIL;
}

static void queries_stop_intake(nt_service *svc, void *arg)
{
    ps_queries_unsubscribe(((ps_ctx *)arg)->queries);
}

static size_t queries_pending(void *arg)
{
    return ps_queries_pending(((ps_ctx *)arg)->queries);
}

static void queries_destroy(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    ps_queries_destroy(ctx->queries);
    ctx->queries = NULL;
}

/* The read connections (rpc queries, the unread flush, ANALYZE). */
static nt_status rpg_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ctx->nrpg = ctx->cfg.read_conns;
    ctx->rpgs = pg_conns(ctx, ctx->nrpg, "read", ps_queries_stmts, ps_queries_nstmts, NULL);
    ctx->rpg = ctx->rpgs[0];
    return NT_OK;
}

static void rpg_destroy(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    pg_conns_destroy(ctx->rpgs, ctx->nrpg);
    ctx->rpgs = NULL;
    ctx->rpg = NULL;
    ctx->nrpg = 0;
}

/* The JetStream pull consumers. A stop stops fetching; destroy closes their handles and
 * holds the service until they are closed. */
static nt_status pull_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ctx->pull = ps_pull_create(ctx, on_pull_batch, on_pull_over, ctx);
    return NT_OK;
}

static void pull_stop_intake(nt_service *svc, void *arg)
{
    ps_pull_stop_all(((ps_ctx *)arg)->pull);
}

static void on_pull_exit(void *arg)
{
    ps_ctx *ctx = arg;
    ps_pull_destroy(ctx->pull);
    ctx->pull = NULL;
    nt_service_release(g_app.svc);
}

static void pull_destroy(nt_service *svc, void *arg)
{
    nt_service_hold(svc);
    ps_pull_quit(((ps_ctx *)arg)->pull, on_pull_exit, arg);
}

/* The batches being committed: the drain waits for every one in flight to be committed
 * and published (DRAIN_TIMEOUT_MS at most); destroy drops what is left unacked
 * (JetStream redelivers it). */
static nt_status batches_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ctx->batches = ps_batch_create(ctx);
    return NT_OK;
}

static size_t batches_pending(void *arg)
{
    return ps_parts_inflight(((ps_ctx *)arg)->parts);
}

static void batches_destroy(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    for (unsigned p = 0; p < ctx->cfg.partitions; p++)
        ps_batch_release_idle(ps_parts_get(ctx->parts, p));
    ps_batch_destroy(ctx->batches);
    ctx->batches = NULL;
}

/* The write connections, each holding its partitions' locks; claiming starts with them.
 * Destroyed first: that drops any batch still in flight unacked. */
static nt_status wpg_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    ps_ctx *ctx = arg;
    ctx->wpg = pg_conns(ctx, ctx->nwpg, "write", ps_txn_stmts, ps_txn_nstmts, on_wpg_state);
    ps_parts_start(ctx->parts);
    return NT_OK;
}

static void wpg_destroy(nt_service *svc, void *arg)
{
    ps_ctx *ctx = arg;
    unsigned inflight = ps_parts_inflight(ctx->parts);
    if (inflight > 0)
        nt_warn("drain timed out: %u batches dropped unacked", inflight);
    pg_conns_destroy(ctx->wpg, ctx->nwpg);
    ctx->wpg = NULL;
}

static const nt_module modules[] = {
    { "persister", persister_start, persister_stop_intake, NULL, persister_destroy, &g_app.ctx },
    { "partitions", parts_start, parts_stop_intake, NULL, parts_destroy, &g_app.ctx },
    { "receipts", receipts_start, NULL, NULL, receipts_destroy, &g_app.ctx },
    { "unread", unread_start, NULL, NULL, unread_destroy, &g_app.ctx },
    { "queries", queries_start, queries_stop_intake, queries_pending, queries_destroy,
      &g_app.ctx },
    { "read connections", rpg_start, NULL, NULL, rpg_destroy, &g_app.ctx },
    { "pull", pull_start, pull_stop_intake, NULL, pull_destroy, &g_app.ctx },
    { "batches", batches_start, NULL, batches_pending, batches_destroy, &g_app.ctx },
    { "write connections", wpg_start, NULL, NULL, wpg_destroy, &g_app.ctx },
};

int main(void)
{
    ps_ctx *ctx = &g_app.ctx;
    g_app.svc = nt_service_init("persister");
    read_config(&ctx->cfg);
    ctx->nwpg = ctx->cfg.write_conns;
    nt_config_redact_url(ctx->cfg.nats_url, g_app.nats_shown, sizeof g_app.nats_shown);

    ps_migrate(ctx->cfg.pg_url, ctx->cfg.migrations_dir);
    register_metrics(&ctx->m);

    nt_service_opts so = {
        .bus = { .url = ctx->cfg.nats_url, .name = "natter-persister",
                 .queue_capacity = ctx->cfg.bus_queue, .sub_pending_msgs = 65536,
                 .max_requests = 1024 },
        .metrics_prefix = "natter_persister",
        .metrics_listen = ctx->cfg.metrics_listen,
        .ready = ready,
        .ready_arg = ctx,
        .drain_ms = DRAIN_TIMEOUT_MS,
    };
    nt_service_start(g_app.svc, &so, modules, sizeof modules / sizeof modules[0]);
    nt_info("started: %u partitions on %u write connections, batch max %d, metrics on %s",
            ctx->cfg.partitions, ctx->nwpg, ctx->cfg.batch_max, ctx->cfg.metrics_listen);
    int code = nt_service_run(g_app.svc);
    nt_info("stopped");
    return code;
}
