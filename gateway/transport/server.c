/* server.c: lws context and the one protocol callback: WebSocket upgrade admission (the
 * path must be one the hooks accept), message reassembly, writes and close; what they
 * mean is the hooks'. */
#include "server.h"

#include <libwebsockets.h>
#include <string.h>
#include <sys/resource.h>

#include "access.h"
#include "alloc.h"
#include "config.h"
#include "conn.h"
#include "gw.h"
#include "log.h"
#include "util.h"

#define GW_RX_BUFFER 512           /* lws per-connection RX buffer: keep idle sockets small */
#define GW_FD_RESERVE 64           /* fds kept free for NATS, metrics, logs */

typedef struct gw_pss {            /* lws per-session data */
    gw_conn *conn;                 /* WebSocket, from ESTABLISHED to CLOSED */
    gw_http *http;                 /* HTTP request in progress */
} gw_pss;

/* This module's state (gw->server), from gw_server_start to gw_server_destroy. */
typedef struct gw_server {
    gw_server_hooks hooks;
    lws_retry_bo_t retry;          /* lws keeps a pointer to it */
    struct lws_context *lws;
    nt_log_limit refusals;         /* upgrades refused, logged once a second */
} gw_server;

static int confirm_upgrade(struct lws *wsi)
{
    char uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
        !gw->server->hooks.accepts(uri)) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return 1;
    }
    if (gw->stopping || gw_conn_count() >= gw->cfg.max_connections) {
        uint64_t n;
        nt_metric_add(gw->m.refused, 1);
        if (nt_log_limit_due(&gw->server->refusals, uv_now(gw->loop), 1000, &n))   /* one line a second */
            nt_warn("refused %llu upgrade(s): %s (%zu connections, limit %u)",
                    (unsigned long long)n, gw->stopping ? "stopping" : "connection limit",
                    gw_conn_count(), gw->cfg.max_connections);
        lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        return 1;
    }
    char origin[256], msg[160];
    if (!gw_access_origin(wsi, origin, sizeof origin)) {
        lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN,
                               "origin not allowed (NATTER_ALLOWED_ORIGINS)");
        return 1;
    }
    uint32_t retry;
    if (!gw_access_connect_admit(wsi, &retry)) {
        snprintf(msg, sizeof msg, "rate limited: too many new connections from this address "
                 "(NATTER_RATE_CONNECTS_PER_IP); retry in %u ms", retry);
        lws_return_http_status(wsi, 429, msg);
        return 1;
    }
    return 0;
}

static void established(struct lws *wsi, gw_pss *pss)
{
    char token[4096], uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        uri[0] = '\0';
    gw_conn *c = pss->conn = gw_conn_create(wsi);
    const char *t = lws_get_urlarg_by_name(wsi, "token=", token, sizeof token);
    gw->server->hooks.opened(c, uri, t && *t ? t : NULL);
}

/* Closes c with code through the send queue (close frame, then a half-close that
 * waits for the peer: gw_conn_close), dropping what it still sends. Hanging up from
 * here would reset a socket still holding the rest of the offending frame, and the
 * peer would see 1006 instead of the code. */
static int close_soon(gw_conn *c, uint16_t code)
{
    nt_free(c->rx);
    c->rx = NULL;
    gw_conn_close(c, code);
    return 0;
}

/* Reassembles a message from lws's RX chunks and hands complete ones on. */
static int receive(struct lws *wsi, gw_conn *c, const char *in, size_t len)
{
    if (!c)
        return -1;
    gw_conn_alive(c, gw_conn_clock_s());
    if (c->close_code)
        return 0;                          /* closing: what still comes is dropped */
    if (lws_frame_is_binary(wsi))
        return close_soon(c, 1003);
    bool final = lws_is_final_fragment(wsi);
    if (!final || c->rx) {
        uint32_t have = c->rx ? c->rx->len : 0;
        if ((uint64_t)have + len > gw->cfg.max_frame)
            return close_soon(c, 1009);
        c->rx = nt_realloc(c->rx, sizeof *c->rx + have + len);
        memcpy(c->rx->data + have, in, len);
        c->rx->len = have + (uint32_t)len;
        if (!final)
            return 0;
        in = c->rx->data;
        len = c->rx->len;
    }
    if (len > gw->cfg.max_frame)
        return close_soon(c, 1009);
    if (!nt_valid_utf8(in, len))
        return close_soon(c, 1007);
    gw->server->hooks.frame(c, in, len);
    nt_free(c->rx);
    c->rx = NULL;
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    gw_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        established(wsi, pss);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return receive(wsi, pss->conn, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->conn)
            gw_conn_alive(pss->conn, gw_conn_clock_s());
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->conn ? gw_conn_writeable(pss->conn) : 0;
    case LWS_CALLBACK_CLOSED:
        if (pss->conn) {
            gw->server->hooks.closed(pss->conn);
            gw_conn_destroy(pss->conn);
            pss->conn = NULL;
        }
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        return pss ? gw->server->hooks.http(wsi, reason, &pss->http, in, len) : 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    /* tx_packet_size: 0 would cap every send() at the RX buffer size (512 + 20
     * bytes) and make lws buffer the rest and wait for WRITEABLE per 532 bytes */
    { "natter", callback, sizeof(gw_pss), GW_RX_BUFFER, 0, NULL, GW_TX_PACKET },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    nt_log(level == LLL_ERR ? NT_LOG_ERROR : NT_LOG_WARN, "lws: %.*s", (int)n, line);
}

nt_status gw_server_start(gw_ctx *ctx, const gw_server_hooks *h)
{
    struct lws_context_creation_info info;
    struct rlimit rl;
    char host[256];
    int port;
    void *loops[] = { ctx->loop };

    if (nt_config_split_hostport(ctx->cfg.listen, host, sizeof host, &port) != 0)
        nt_config_fatal("NATTER_LISTEN=%s is invalid: expected host:port", ctx->cfg.listen);
    gw_server *s = nt_calloc(1, sizeof *s);
    s->hooks = *h;
    ctx->server = s;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    memset(&info, 0, sizeof info);
    info.port = port;
    if (host[0] && strcmp(host, "*") != 0 && strcmp(host, "0.0.0.0") != 0)
        info.iface = host;
    if (!strchr(host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.options |= LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
    info.foreign_loops = loops;
    info.protocols = protocols;
    info.vhost_name = "natter";
    info.max_http_header_pool = 64;
    info.max_http_header_data = 8192;
    /* A client that sends its request (or upgrade) slowly holds a header table, and
     * lws waits timeout_secs_ah_idle for it: NATTER_HANDSHAKE_TIMEOUT_S for all three. */
    info.keepalive_timeout = (int)ctx->cfg.handshake_timeout_s;
    info.timeout_secs_ah_idle = ctx->cfg.handshake_timeout_s;
    info.timeout_secs = ctx->cfg.handshake_timeout_s;   /* a slow handshake holds nothing for long */
    /* lws stops accepting when its fd table is full; keep that below the process
     * limit so accept(2) never fails with EMFILE (which lws would retry hot).
     * Not with info.fd_limit_per_thread: below RLIMIT_NOFILE it switches lws 4.1
     * to a table it scans linearly (wsi_from_fd on every socket event, insert_wsi
     * on every accept: O(fds)). lws sizes its directly indexed table from the
     * soft limit instead, lowered while the context is created; a socket numbered
     * above it (only when nearly full) is refused by lws itself. */
    bool lowered = false;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur > 2 * GW_FD_RESERVE) {
        struct rlimit low = rl;
        low.rlim_cur -= GW_FD_RESERVE;
        lowered = setrlimit(RLIMIT_NOFILE, &low) == 0;
        if (!lowered)
            info.fd_limit_per_thread = (unsigned)(rl.rlim_cur - GW_FD_RESERVE);
    }
    /* lws's validity timers are off: natter pings itself (conn.c, keepalive).
     * lws keeps every timer of a thread in ONE sorted list and inserts by walking
     * it from the head; with a validity timer per connection, each ping, pong and
     * handshake timeout costs O(connections) (80 % of the CPU at 16k idle
     * connections). A policy with secs_since_valid_hangup == 0 makes 4.1's
     * _lws_validity_confirmed_role() return without arming one; a NULL policy
     * would NOT do: lws then applies its context default (ping 300 s, hang up 310 s). */
    info.retry_and_idle_policy = &s->retry;   /* zeroed by nt_calloc */

    s->lws = lws_create_context(&info);
    if (lowered && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        nt_warn("cannot restore the open-files limit to %llu", (unsigned long long)rl.rlim_cur);
    if (!s->lws) {
        nt_free(s);
        ctx->server = NULL;
        return NT_EIO;
    }
    ctx->lws = s->lws;
    return NT_OK;
}

static void close_going_away(gw_conn *c, void *arg)
{
    gw_conn_close(c, 1001);
}

void gw_server_drain(gw_ctx *ctx)
{
    ctx->stopping = true;
    gw_conn_foreach(close_going_away, NULL);
}

void gw_server_destroy(gw_ctx *ctx)
{
    gw_server *s = ctx->server;
    if (!s)
        return;
    lws_context_destroy(s->lws);   /* CLOSED for every connection: the hooks still run */
    ctx->lws = NULL;
    ctx->server = NULL;
    nt_free(s);
}
