/* main.c: natter-gateway: its settings and its modules, run by common/service.h (the loop,
 * the bus, the metrics listener, signals and the graceful stop). */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "access.h"
#include "bus.h"
#include "config.h"
#include "dialect.h"
#include "conn.h"
#include "envelope.h"
#include "frame.h"
#include "http.h"
#include "gw.h"
#include "log.h"
#include "native.h"
#include "metrics.h"
#include "presence.h"
#include "ratelimit.h"
#include "reply.h"
#include "revoke.h"
#include "rooms.h"
#include "server.h"
#include "sends.h"
#include "repair.h"
#include "routes.h"
#include "server_api.h"
#include "service.h"
#include "session.h"
#include "util.h"
#include "wire.h"

#define GW_TICK_MS 250
#define GW_DRAIN_MS 3000            /* how long a graceful stop waits for clients to go */

/* The process: its context and the timers of the connections module (every module's
 * arg). */
typedef struct app {
    gw_ctx *ctx;
    uv_timer_t tick_timer, hb_timer;
    size_t heap_high;              /* trim_heap: bytes in use at the last trim or peak */
    unsigned trim_ticks;
} app;

static app g_app;

/* The gateway's id is NATTER_GATEWAY_ID (default gw-<host>) plus a random
 * suffix per start, so a process restarted under the same name (a container
 * restart in the same pod) is a new incarnation: the router expires the old
 * one's connections instead of mistaking the new heartbeats for them. */
static void read_gateway_id(gw_config *c)
{
    const char *id = nt_config_str("NATTER_GATEWAY_ID", "", "gateway id");
    char base[56] = "gw-host";
    char uuid[37];
    if (*id) {
        if (strlen(id) > 55 || !nt_valid_id(id, strlen(id)))
            nt_config_fatal("NATTER_GATEWAY_ID=%s is invalid: expected 1-55 characters of [A-Za-z0-9_-]", id);
        snprintf(base, sizeof base, "%s", id);
    } else {
        char host[48] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        for (char *p = host; *p; p++)
            if (!nt_valid_id(p, 1))
                *p = '-';
        snprintf(base, sizeof base, "gw-%.48s", host);
    }
    nt_uuid(uuid);
    snprintf(c->gw_id, sizeof c->gw_id, "%s-%.8s", base, uuid);
}

/* Every WebSocket costs one file descriptor. libwebsockets stops accepting when
 * its fd table (sized from RLIMIT_NOFILE) is nearly full, and then new clients
 * wait in the listen backlog unanswered and uncounted. Admission therefore stops
 * below that point, where an upgrade can still be refused with 503 and counted;
 * GW_FD_RESERVE leaves room for lws's own margin, HTTP requests in flight, NATS
 * and the metrics listener. */
#define GW_FD_RESERVE 256

static void cap_connections_by_fd_limit(gw_config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    uint64_t cap = rl.rlim_cur > 2 * GW_FD_RESERVE ? rl.rlim_cur - GW_FD_RESERVE : rl.rlim_cur / 2;
    if (c->max_connections > cap) {
        nt_warn("NATTER_MAX_CONNECTIONS=%u lowered to %llu: the open-files limit is %llu",
                c->max_connections, (unsigned long long)cap, (unsigned long long)rl.rlim_cur);
        c->max_connections = (uint32_t)cap;
    }
}

/* The secret of a listed app's tokens (nt_jwt_secret_fn): its jwt_secret, or NULL
 * for NATTER_JWT_SECRET. A disabled app's tokens, and a kid that names another listed
 * app than the token's app claim, are refused. */
static const char *app_jwt_secret(const char *app, const char *kid, void *arg, const char **deny)
{
    const nt_apps *apps = arg;
    const nt_app *a = nt_apps_find(apps, app);
    if (kid && strcmp(kid, app) != 0 && nt_apps_find(apps, kid)) {
        *deny = "kid names another app";
        return NULL;
    }
    if (a && !a->enabled) {
        *deny = "app disabled";
        return NULL;
    }
    return a ? a->jwt_secret : NULL;
}

static void read_config(gw_ctx *ctx)
{
    gw_config *c = &ctx->cfg;
    c->listen = nt_config_str("NATTER_LISTEN", "0.0.0.0:8080", "gateway listen address");
    c->metrics_listen = nt_wire_metrics_listen(NT_WIRE_GATEWAY);
    c->nats_url = nt_wire_str(NT_SET_NATS_URL);
    c->jwt_secret = nt_config_str("NATTER_JWT_SECRET", NULL, "HS256 secret for client tokens");
    c->api_key = nt_config_str("NATTER_API_KEY", "", "bearer key of the server API");
    read_gateway_id(c);
    c->dev_tokens = nt_config_bool("NATTER_DEV_TOKENS", 0);
    c->max_frame = (uint32_t)nt_config_int("NATTER_MAX_FRAME", 65536, 1024, 16 << 20);
    c->max_message_chars = (uint32_t)nt_wire_int(NT_SET_MAX_MESSAGE_CHARS);
    c->send_queue_bytes = (uint32_t)nt_config_int("NATTER_SEND_QUEUE_BYTES", 1 << 20, 4096, 1 << 30);
    c->send_queue_hard_bytes = (uint32_t)nt_config_int("NATTER_SEND_QUEUE_HARD_BYTES",
                                                       4 * (int64_t)c->send_queue_bytes,
                                                       c->send_queue_bytes, (int64_t)1 << 31);
    c->slow_grace_ms = (uint32_t)nt_config_int("NATTER_SLOW_GRACE_MS", 1000, 0, 60000);
    c->lazy_flush_ms = (uint32_t)nt_config_int("NATTER_LAZY_FLUSH_MS", 250, 0, 10000);
    c->max_pending_sends = (uint32_t)nt_config_int("NATTER_MAX_PENDING_SENDS", 256, 1, 65535);
    c->max_inflight_sends = (uint32_t)nt_config_int("NATTER_MAX_INFLIGHT_SENDS", 16384, 1, 1000000);
    c->max_rooms_per_conn = (uint32_t)nt_config_int("NATTER_MAX_ROOMS_PER_CONN", 256, 1, 65535);
    c->max_connections = (uint32_t)nt_config_int("NATTER_MAX_CONNECTIONS", 18000, 1, 10000000);
    c->auth_timeout_ms = (uint32_t)nt_config_int("NATTER_AUTH_TIMEOUT_MS", 10000, 100, 3600000);
    c->request_timeout_ms = (uint32_t)nt_wire_int(NT_SET_REQUEST_TIMEOUT_MS);
    c->partitions = (uint32_t)nt_wire_int(NT_SET_PARTITIONS);
    c->heartbeat_ms = (uint32_t)nt_config_int("NATTER_HEARTBEAT_MS", 5000, 100, 600000);
    c->ping_interval_s = (uint32_t)nt_config_int("NATTER_PING_INTERVAL_S", 25, 1, 3600);
    /* kept under 2^15 s: connections keep their last-frame second in 16 bits */
    c->ping_timeout_s = (uint32_t)nt_config_int("NATTER_PING_TIMEOUT_S", 2 * (int64_t)c->ping_interval_s + 10,
                                                c->ping_interval_s + 1, 32767);
    c->recovery_buffer = (uint32_t)nt_config_int("NATTER_RECOVERY_BUFFER", 10000, 1, 10000000);
    c->max_requests_per_conn = (uint32_t)nt_config_int("NATTER_MAX_REQUESTS_PER_CONN", 16, 1, 255);
    c->typing_interval_ms = (uint32_t)nt_config_int("NATTER_TYPING_INTERVAL_MS", 1000, 1, 60000);
    c->presence_interval_ms = (uint32_t)nt_config_int("NATTER_PRESENCE_INTERVAL_MS", 1000, 1, 60000);
    gw_limits_configure();
    nt_apps_load(&c->apps);
    c->jwt.secret = c->jwt_secret;
    c->jwt.secret_for = app_jwt_secret;
    c->jwt.arg = &c->apps;
    c->jwt.leeway_s = nt_config_int("NATTER_JWT_LEEWAY_S", 30, 0, 3600);
    c->jwt.max_lifetime_s = nt_wire_int(NT_SET_MAX_TOKEN_LIFETIME_S);
    c->jwt.issuer = nt_config_str("NATTER_JWT_ISSUER", "", "required iss of client tokens");
    c->jwt.audience = nt_config_str("NATTER_JWT_AUDIENCE", "", "required aud of client tokens");
    if (!c->jwt.issuer[0])
        c->jwt.issuer = NULL;
    if (!c->jwt.audience[0])
        c->jwt.audience = NULL;
    c->expiring_lead_s = (uint32_t)nt_config_int("NATTER_TOKEN_EXPIRING_LEAD_S", 60, 1, 3600);
    c->handshake_timeout_s = (uint32_t)nt_config_int("NATTER_HANDSHAKE_TIMEOUT_S", 10, 1, 600);
    c->replay_max = (uint32_t)nt_config_int("NATTER_REPLAY_MAX", 10000, 100, 10000000);
    c->gap_repair_max = (uint32_t)nt_config_int("NATTER_GAP_REPAIR_MAX", 10000, 1, 10000000);
    gw_access_configure(ctx);
    cap_connections_by_fd_limit(c);
}

/* A burst (a connection storm, a room fan-out to slow readers) leaves the heap
 * full of freed blocks between long-lived per-connection ones; glibc returns
 * only the top of the heap on its own, so the process would keep the burst's
 * peak as RSS for good. When the bytes in use have fallen well below their
 * high-water mark since the last trim, give the free pages back
 * (malloc_trim madvises every whole free page of every arena). Checked once a
 * second; mallinfo2 and the trim each cost about a millisecond per 100 MB. */
#define GW_TRIM_EVERY_TICKS 4
#define GW_TRIM_MIN_DROP ((size_t)4 << 20)

static void trim_heap(app *a)
{
    if (++a->trim_ticks < GW_TRIM_EVERY_TICKS)
        return;
    a->trim_ticks = 0;
    struct mallinfo2 mi = mallinfo2();
    size_t used = mi.uordblks;
    if (used > a->heap_high)
        a->heap_high = used;
    if (a->heap_high - used >= GW_TRIM_MIN_DROP && a->heap_high - used >= a->heap_high / 8) {
        malloc_trim(0);
        a->heap_high = used;
    }
}

static void on_tick(uv_timer_t *t)
{
    int64_t now = nt_now_ms();
    trim_heap(t->data);
    gw_conn_auth_sweep(now);
    gw_conn_keepalive_sweep(1000 / GW_TICK_MS);
    gw_sends_sweep(now);
    gw_presence_sweep();
    gw_revoke_tick(now);
    gw_repair_tick(now);
}

static void on_heartbeat(uv_timer_t *t)
{
    gw_ctx *ctx = ((app *)t->data)->ctx;
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "gw", ctx->cfg.gw_id);
    nt_envw_int(&w, "conns", (int64_t)gw_conn_count());
    const char *data = nt_envw_finish(&w, &len);
    nt_bus_publish(ctx->bus, NT_SUBJ_CTL_HB, NULL, data, len);
    nt_envw_free(&w);
}

/* ---- modules, in start order; destroyed in reverse (service.h) ---- */

/* The shared state: the loop and the bus from the service, the metrics, and the core
 * modules the others call into (dialects, replies, sends, presence, limits). */
static nt_status gateway_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    gw_ctx *ctx = ((app *)arg)->ctx;
    ctx->loop = nt_service_loop(svc);
    ctx->bus = nt_service_bus(svc);
    gw_presence_create(ctx);
    gw_limits_create(ctx);
    gw_server_api_metrics_init(ctx);
    gw_http_set_routes(ctx, gw_routes, gw_nroutes);
    gw_metrics_register(ctx);
    gw_reply_create(ctx);
    gw_dialects_create(ctx);
    gw_sends_create(ctx);
    return NT_OK;
}

/* Last destroyed: what arrives on the bus until it closes finds no gateway state (the
 * context itself is freed once the service has ended). */
static void gateway_destroy(nt_service *svc, void *arg)
{
    gw_ctx *ctx = ((app *)arg)->ctx;
    gw_sends_destroy(ctx);
    gw_dialects_destroy(ctx);
    gw_reply_destroy(ctx);
    gw_presence_destroy(ctx);
    gw_limits_destroy(ctx);
    ctx->bus = NULL;
}

/* The unread batches, user subjects' envelopes and revocations. */
static nt_status rooms_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    static const gw_rooms_hooks rooms_hooks = { .ack = gw_sends_ack,
                                                .user_envelope = gw_session_user_envelope,
                                                .message = gw_repair_message,
                                                .room_freed = gw_repair_room_freed };
    gw_ctx *ctx = ((app *)arg)->ctx;
    gw_repair_create(ctx);
    if (gw_rooms_start(ctx, &rooms_hooks) == NT_OK && gw_revoke_start(ctx) == NT_OK)
        return NT_OK;
    char shown[512];
    nt_config_redact_url(ctx->cfg.nats_url, shown, sizeof shown);
    snprintf(err, errlen, "cannot subscribe %s at %s (NATTER_NATS_URL)", NT_SUBJ_UNREAD, shown);
    return NT_EUNAVAIL;
}

static void rooms_destroy(nt_service *svc, void *arg)
{
    gw_revoke_stop(((app *)arg)->ctx);
    gw_repair_destroy(((app *)arg)->ctx);
    gw_rooms_stop(((app *)arg)->ctx);
}

/* Connections, their sessions and the gateway's timers (sweeps, heartbeat). */
static nt_status conns_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    app *a = arg;
    gw_session_create(a->ctx);
    gw_conn_init(a->ctx, &gw_session_conn_hooks);
    uv_timer_init(a->ctx->loop, &a->tick_timer);
    a->tick_timer.data = a;
    uv_timer_start(&a->tick_timer, on_tick, GW_TICK_MS, GW_TICK_MS);
    uv_timer_init(a->ctx->loop, &a->hb_timer);
    a->hb_timer.data = a;
    uv_timer_start(&a->hb_timer, on_heartbeat, 0, a->ctx->cfg.heartbeat_ms);
    return NT_OK;
}

static void conns_destroy(nt_service *svc, void *arg)
{
    app *a = arg;
    gw_session_destroy(a->ctx);
    gw_conn_stop(a->ctx);
    uv_close((uv_handle_t *)&a->tick_timer, NULL);
    uv_close((uv_handle_t *)&a->hb_timer, NULL);
}

/* The listener and its dialects. A stop refuses new clients and asks the connected
 * ones to go (gw_server_drain); the drain waits for them, GW_DRAIN_MS at most. */
static nt_status server_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    static const gw_server_hooks server_hooks = { .accepts = gw_dialect_accepts,
                                                  .opened = gw_dialect_open,
                                                  .frame = gw_dialect_frame,
                                                  .closed = gw_session_closed,
                                                  .http = gw_http_callback };
    gw_ctx *ctx = ((app *)arg)->ctx;
    gw_dialect_register(GW_DIALECT_NATIVE, &gw_native_dialect);
    if (gw_server_start(ctx, &server_hooks) != NT_OK) {
        snprintf(err, errlen, "cannot listen on %s (NATTER_LISTEN)", ctx->cfg.listen);
        return NT_EUNAVAIL;
    }
    nt_info("gateway %s listening on %s (metrics %s)", ctx->cfg.gw_id, ctx->cfg.listen,
            ctx->cfg.metrics_listen);
    return NT_OK;
}

static void server_stop_intake(nt_service *svc, void *arg)
{
    nt_info("signal %d: draining %zu connections", nt_service_signal(svc), gw_conn_count());
    gw_server_drain(((app *)arg)->ctx);
}

static size_t server_pending(void *arg)
{
    return gw_conn_count();
}

/* lws closes the listener and what is left (CLOSED publishes each conn close, while
 * the bus is still up). */
static void server_destroy(nt_service *svc, void *arg)
{
    gw_server_destroy(((app *)arg)->ctx);
}

static const nt_module modules[] = {
    { "gateway", gateway_start, NULL, NULL, gateway_destroy, &g_app },
    { "rooms", rooms_start, NULL, NULL, rooms_destroy, &g_app },
    { "connections", conns_start, NULL, NULL, conns_destroy, &g_app },
    { "server", server_start, server_stop_intake, server_pending, server_destroy, &g_app },
};

int main(void)
{
    nt_service *svc = nt_service_init("natter-gateway");
    gw_ctx *ctx = g_app.ctx = gw_ctx_create();
    read_config(ctx);
    nt_service_opts so = {
        .bus = { .url = ctx->cfg.nats_url, .name = ctx->cfg.gw_id,
                 .loop_delivery = true },   /* rooms, users and requests: one subscription each */
        .metrics_prefix = "natter_gateway",
        .metrics_listen = ctx->cfg.metrics_listen,
        .drain_ms = GW_DRAIN_MS,
    };
    nt_service_start(svc, &so, modules, sizeof modules / sizeof modules[0]);
    int code = nt_service_run(svc);
    nt_info("gateway %s stopped", ctx->cfg.gw_id);
    gw_access_destroy(ctx);
    gw_ctx_destroy(ctx);
    return code;
}
