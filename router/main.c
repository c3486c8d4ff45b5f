/* main.c: natter-router start-up (settings, dependency checks), the loop, and graceful shutdown. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "alloc.h"
#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "presence.h"
#include "redis_conn.h"
#include "rooms.h"
#include "revoke.h"
#include "stats.h"
#include "router.h"
#include "user_status.h"
#include "typing.h"
#include "wire.h"

#define DRAIN_MS 2000             /* longest wait for in-flight work at shutdown */
#define DRAIN_TICK_MS 20
#define BUS_FLUSH_MS 100          /* loop time for the last replies before the bus closes */
#define REDIS_CHECK_MS 2000       /* start-up reachability check */

typedef struct redis_addr {
    char host[256];               /* IP literal */
    int port;
    char *username;               /* AUTH username password (ACL); NULL: AUTH password */
    char *password;               /* NULL: no AUTH */
    const char *auth_from;        /* the settings holding them, for errors */
    const char *shown;            /* NATTER_REDIS_URL without its password */
} redis_addr;

typedef struct app {
    rt_router rt;
    rt_rooms *rooms;
    rt_presence *presence;
    rt_user_status *status;
    rt_typing *typing;
    rt_stats *stats;
    rt_revoke *revoke;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t drain;
    uint64_t drain_deadline;      /* uv_now based */
    bool drain_started;
} app;

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* s[0..n) with %XX escapes decoded (a password may hold '@', ':' or '/' written so);
 * NULL on a bad escape or an escaped NUL. */
static char *percent_decode(const char *s, size_t n)
{
    char *out = nt_malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[k++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
        int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || hi * 16 + lo == 0) {
            nt_free(out);
            return NULL;
        }
        out[k++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[k] = '\0';
    return out;
}

/* The user info of NATTER_REDIS_URL ("[user]:password", percent-encoded), or
 * NATTER_REDIS_PASSWORD (+ NATTER_REDIS_USERNAME): not both. Exits 2 on a bad one. */
static void parse_redis_auth(const char *ui, size_t n, redis_addr *out)
{
    const char *env_pass = nt_config_str("NATTER_REDIS_PASSWORD", "", NULL);
    const char *env_user = nt_config_str("NATTER_REDIS_USERNAME", "", NULL);

    if (*env_user && !*env_pass)
        nt_config_fatal("NATTER_REDIS_USERNAME is set without NATTER_REDIS_PASSWORD: set both");
    if (ui && *env_pass)
        nt_config_fatal("NATTER_REDIS_URL=%s carries credentials and NATTER_REDIS_PASSWORD is set "
                        "too: use one", out->shown);
    if (!ui) {
        if (*env_pass) {
            out->password = nt_strdup(env_pass);
            out->username = *env_user ? nt_strdup(env_user) : NULL;
            out->auth_from = *env_user ? "NATTER_REDIS_USERNAME/NATTER_REDIS_PASSWORD"
                                       : "NATTER_REDIS_PASSWORD";
        }
        return;
    }
    const char *colon = memchr(ui, ':', n);
    if (!colon)
        nt_config_fatal("NATTER_REDIS_URL=%s is invalid: credentials are redis://:password@host "
                        "or redis://user:password@host", out->shown);
    size_t ulen = (size_t)(colon - ui);
    out->username = ulen ? percent_decode(ui, ulen) : NULL;
    out->password = percent_decode(colon + 1, n - ulen - 1);
    if ((ulen && !out->username) || !out->password)
        nt_config_fatal("NATTER_REDIS_URL=%s is invalid: bad %%XX escape in the credentials",
                        out->shown);
    if (!out->password[0])
        nt_config_fatal("NATTER_REDIS_URL=%s is invalid: empty password", out->shown);
    out->auth_from = "NATTER_REDIS_URL";
}

/* Parses NATTER_REDIS_URL "redis://[[user]:password@]host[:port][/0]" into an IP
 * literal, a port and the credentials (parse_redis_auth). A host name is resolved
 * here, once, at start-up (before the loop runs): hiredis would otherwise resolve
 * it with a blocking getaddrinfo on the loop at every reconnect. Point it at a
 * stable address (a Kubernetes Service). Exits 2 on a bad URL or a name that does
 * not resolve. Messages show out->shown, the URL without its password. */
static void parse_redis_url(const char *url, redis_addr *out)
{
    const char *s = url;
    char host[256];
    size_t hlen;

    if (strncmp(s, "redis://", 8) == 0)
        s += 8;
    const char *end = s + strcspn(s, "/");
    const char *at = NULL;
    for (const char *q = s; q < end; q++)
        if (*q == '@')
            at = q;
    parse_redis_auth(at ? s : NULL, at ? (size_t)(at - s) : 0, out);
    if (at)
        s = at + 1;
    if (*end && strcmp(end, "/") != 0 && strcmp(end, "/0") != 0)
        nt_config_fatal("NATTER_REDIS_URL=%s is invalid: only database 0 is supported", out->shown);

    const char *port_s = NULL;
    if (*s == '[') {
        const char *close = memchr(s, ']', (size_t)(end - s));
        if (!close || (close + 1 != end && close[1] != ':'))
            nt_config_fatal("NATTER_REDIS_URL=%s is invalid: bad IPv6 address", out->shown);
        hlen = (size_t)(close - s - 1);
        if (hlen >= sizeof(host))
            nt_config_fatal("NATTER_REDIS_URL=%s is invalid: host too long", out->shown);
        memcpy(host, s + 1, hlen);
        port_s = close + 1 != end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        hlen = (size_t)((colon ? colon : end) - s);
        if (hlen >= sizeof(host))
            nt_config_fatal("NATTER_REDIS_URL=%s is invalid: host too long", out->shown);
        memcpy(host, s, hlen);
        port_s = colon ? colon + 1 : NULL;
    }
    host[hlen] = '\0';

    out->port = 6379;
    if (port_s) {
        char *pend;
        long p = strtol(port_s, &pend, 10);
        if (pend == port_s || pend != end || p < 1 || p > 65535)
            nt_config_fatal("NATTER_REDIS_URL=%s is invalid: bad port", out->shown);
        out->port = (int)p;
    }

    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        snprintf(out->host, sizeof(out->host), "%s", host);
        return;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res)
        nt_config_fatal("cannot resolve the host of NATTER_REDIS_URL=%s: %s", out->shown,
                        gai_strerror(rc));
    const void *addr = res->ai_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, addr, out->host, sizeof(out->host));
    freeaddrinfo(res);
}

/* Start-up only: a blocking connect, AUTH when configured, and PING before the loop
 * runs. Exits 2 when unreachable or when Redis refuses the credentials (or wants
 * some and has none). */
static void check_redis(const redis_addr *a)
{
    struct timeval tv = { REDIS_CHECK_MS / 1000, (REDIS_CHECK_MS % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    char why[256];

    if (!c || c->err) {
        snprintf(why, sizeof(why), "%s", c ? c->errstr : "cannot allocate a context");
        redisFree(c);
        nt_config_fatal("cannot reach Redis at %s (NATTER_REDIS_URL): %s", a->shown, why);
    }
    redisSetTimeout(c, tv);
    redisReply *reply;
    if (a->password) {
        reply = a->username ? redisCommand(c, "AUTH %s %s", a->username, a->password)
                            : redisCommand(c, "AUTH %s", a->password);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof(why), "%s", reply ? reply->str : c->errstr);
            freeReplyObject(reply);
            redisFree(c);
            nt_config_fatal("Redis at %s refused the credentials in %s: %s", a->shown,
                            a->auth_from, why);
        }
        freeReplyObject(reply);
    }
    reply = redisCommand(c, "PING");
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s", reply ? reply->str : c->errstr);
        freeReplyObject(reply);
        redisFree(c);
        if (strncmp(why, "NOAUTH", 6) == 0)
            nt_config_fatal("Redis at %s wants a password (%s): set NATTER_REDIS_PASSWORD or put "
                            "it in NATTER_REDIS_URL (redis://:password@host:port)", a->shown, why);
        nt_config_fatal("cannot reach Redis at %s (NATTER_REDIS_URL): PING failed: %s", a->shown,
                        why);
    }
    freeReplyObject(reply);
    redisFree(c);
}

static bool is_ready(void *arg)
{
    rt_router *rt = arg;
    return !rt->stopping && nt_bus_connected(rt->bus) && rt_redis_connected(rt->redis);
}

static int64_t redis_inflight_gauge(void *arg)
{
    rt_router *rt = arg;
    return (int64_t)rt_redis_inflight(rt->redis);
}

static void register_metrics(rt_router *rt)
{
    rt->m.joins = nt_metric_counter("natter_router_joins_total", "Room joins granted");
    rt->m.leaves = nt_metric_counter("natter_router_leaves_total", "Room leaves confirmed");
    rt->m.conn_opens = nt_metric_counter("natter_router_conn_opens_total",
                                         "Connection opens recorded");
    rt->m.conn_closes = nt_metric_counter("natter_router_conn_closes_total",
                                          "Connection closes recorded");
    rt->m.gateways_swept = nt_metric_counter("natter_router_gateways_swept_total",
                                             "Dead gateways whose connections were cleaned");
    rt->m.redis_errors = nt_metric_counter("natter_router_redis_errors_total",
                                           "Redis error replies and commands lost to a disconnect");
    rt->m.redis_rejected = nt_metric_counter(
        "natter_router_redis_rejected_total",
        "Redis commands refused: disconnected or too many in flight");
    rt->m.bad_requests = nt_metric_counter("natter_router_bad_requests_total",
                                           "Malformed or invalid envelopes received");
    rt->m.presence_events = nt_metric_counter("natter_router_presence_events_total",
                                              "Presence events published (one per user change)");
    rt->m.presence_sets = nt_metric_counter("natter_router_presence_sets_total",
                                            "Presence actions (status, device, text) stored");
    rt->m.typing_events = nt_metric_counter("natter_router_typing_events_total",
                                            "Typing events published (is_typing true and false)");
    rt->m.typing_expired = nt_metric_counter("natter_router_typing_expired_total",
                                             "Typing indicators ended without renewal");
    rt->m.queries = nt_metric_counter("natter_router_queries_total",
                                      "Online, typing and presence queries answered");
    rt->m.code_failures = nt_metric_counter("natter_router_access_code_failures_total",
                                            "Wrong access codes answered by the persister");
    rt->m.code_locked = nt_metric_counter(
        "natter_router_access_code_locked_total",
        "Joins with an access code refused by NATTER_ACCESS_CODE_ATTEMPTS or _ROOM_ATTEMPTS");
    nt_metric_gauge_fn("natter_router_redis_inflight", "Redis commands awaiting a reply",
                       redis_inflight_gauge, rt);
}

/* ---- shutdown ---- */

static void on_handle_closed(uv_handle_t *h)
{
}

/* Last step: the bus goes once the loop had BUS_FLUSH_MS to write the final
 * replies (nt_bus_destroy does not wait for publishes still buffered). */
static void on_bus_flushed(uv_timer_t *t)
{
    app *a = t->data;

    nt_bus_destroy(a->rt.bus);
    a->rt.bus = NULL;
    nt_metrics_close();
    uv_close((uv_handle_t *)&a->drain, on_handle_closed);
    uv_close((uv_handle_t *)&a->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&a->sigterm, on_handle_closed);
}

static void finish(app *a)
{
    rt_router *rt = &a->rt;

    nt_info("shutting down: %zu calls and %zu Redis commands left", rt_rooms_pending(a->rooms),
            rt_redis_inflight(rt->redis));
    rt_rooms_abort(a->rooms);
    rt_redis_destroy(rt->redis);
    rt->redis = NULL;
    rt_presence_destroy(a->presence);
    a->presence = NULL;
    rt_typing_destroy(a->typing);
    a->typing = NULL;
    rt_stats_destroy(a->stats);
    a->stats = NULL;
    rt_revoke_destroy(a->revoke);
    a->revoke = NULL;
    rt_user_status_destroy(a->status);
    a->status = NULL;
    rt_rooms_destroy(a->rooms);
    a->rooms = NULL;
    uv_timer_start(&a->drain, on_bus_flushed, BUS_FLUSH_MS, 0);
}

/* Runs on the loop after a signal: stop intake once, then wait (bounded) for
 * calls and Redis commands in flight, then close everything. */
static void on_drain(uv_timer_t *t)
{
    app *a = t->data;
    rt_router *rt = &a->rt;

    if (!a->drain_started) {
        a->drain_started = true;
        a->drain_deadline = uv_now(rt->loop) + DRAIN_MS;
        nt_info("stopping: no new requests; draining work in flight");
        rt_rooms_unsubscribe(a->rooms);
        rt_presence_stop(a->presence);
        rt_user_status_stop(a->status);
        rt_typing_stop(a->typing);
        rt_stats_stop(a->stats);
        rt_revoke_stop(a->revoke);
    }
    bool idle = rt_rooms_pending(a->rooms) == 0 && rt_redis_inflight(rt->redis) == 0;
    if (idle || uv_now(rt->loop) >= a->drain_deadline)
        finish(a);
}

static void on_signal(uv_signal_t *s, int signum)
{
    app *a = s->data;

    if (a->rt.stopping)
        return;
    a->rt.stopping = true;
    uv_timer_start(&a->drain, on_drain, 0, DRAIN_TICK_MS);
}

/* ---- start-up ---- */

int main(void)
{
    static app a;
    rt_router *rt = &a.rt;
    uv_loop_t loop;
    char err[256];
    redis_addr raddr = { 0 };
    char nats_shown[512], redis_shown[512];  /* the URLs without their passwords */

    if (nt_log_init("natter-router") != 0)
        nt_config_fatal("NATTER_LOG_LEVEL=%s is invalid: expected debug, info, warn or error",
                        getenv("NATTER_LOG_LEVEL"));
    const char *nats_url = nt_wire_str(NT_SET_NATS_URL);
    const char *redis_url = nt_config_str("NATTER_REDIS_URL", "redis://127.0.0.1:6379", NULL);
    const char *metrics_listen = nt_wire_metrics_listen(NT_WIRE_ROUTER);
    rt->gateway_ttl_ms = nt_config_int("NATTER_GATEWAY_TTL_MS", 15000, 1000, 86400000);
    rt->sweep_ms = nt_config_int("NATTER_SWEEP_MS", 5000, 100, 3600000);
    rt->presence_room_max = nt_config_int("NATTER_PRESENCE_ROOM_MAX", 1000, 0, 100000000);
    rt->typing_ttl_ms = nt_config_int("NATTER_TYPING_TTL_MS", 30000, 100, 3600000);
    rt->access_code_attempts = nt_config_int("NATTER_ACCESS_CODE_ATTEMPTS", 5, 1, 1000000);
    rt->access_code_room_attempts = nt_config_int("NATTER_ACCESS_CODE_ROOM_ATTEMPTS", 50, 1,
                                                  100000000);
    rt->access_code_window_s = nt_config_int("NATTER_ACCESS_CODE_WINDOW_S", 900, 1, 30 * 86400);
    rt->access_code_backoff_s = nt_config_int("NATTER_ACCESS_CODE_BACKOFF_S", 30, 1, 30 * 86400);
    int64_t max_token_lifetime_s = nt_wire_int(NT_SET_MAX_TOKEN_LIFETIME_S);
    rt->request_timeout_ms = (int)nt_wire_int(NT_SET_REQUEST_TIMEOUT_MS);
    size_t max_inflight = (size_t)nt_config_int("NATTER_REDIS_MAX_INFLIGHT", 10000, 1, 1000000);
    size_t bus_queue = (size_t)nt_wire_int(NT_SET_BUS_QUEUE);
    nt_config_redact_url(nats_url, nats_shown, sizeof nats_shown);
    raddr.shown = nt_config_redact_url(redis_url, redis_shown, sizeof redis_shown);
    parse_redis_url(redis_url, &raddr);

    check_redis(&raddr);

    uv_loop_init(&loop);
    rt->loop = &loop;
    nt_bus_opts bopts = { .url = nats_url, .name = "natter-router", .queue_capacity = bus_queue };
    if (nt_bus_create(&loop, &bopts, &rt->bus, err, sizeof(err)) != NT_OK)
        nt_config_fatal("cannot reach NATS at %s (NATTER_NATS_URL): %s", nats_shown, err);
    nt_bus_register_metrics(rt->bus, "natter_router");

    register_metrics(rt);
    nt_status st = nt_metrics_listen(&loop, metrics_listen, is_ready, rt);
    if (st != NT_OK)
        nt_config_fatal("cannot listen on NATTER_METRICS_LISTEN=%s: %s", metrics_listen,
                        nt_status_text(st));

    rt_redis_opts ropts = {
        .host = raddr.host,
        .port = raddr.port,
        .username = raddr.username,
        .password = raddr.password,
        .max_inflight = max_inflight,
        .errors = rt->m.redis_errors,
        .rejected = rt->m.redis_rejected,
    };
    rt->redis = rt_redis_create(&loop, &ropts);       /* keeps its own copies */
    bool redis_auth = raddr.password != NULL;
    if (raddr.password)
        explicit_bzero(raddr.password, strlen(raddr.password));
    nt_free(raddr.password);
    nt_free(raddr.username);

    a.rooms = rt_rooms_create(rt);
    a.presence = rt_presence_create(rt);
    a.status = rt_user_status_create(rt);
    a.typing = rt_typing_create(rt);
    a.stats = rt_stats_create(rt);
    a.revoke = rt_revoke_create(rt, max_token_lifetime_s);
    if (!a.rooms || !a.presence || !a.status || !a.typing || !a.stats || !a.revoke)
        nt_config_fatal("cannot subscribe on NATS at %s (NATTER_NATS_URL)", nats_shown);

    uv_timer_init(&loop, &a.drain);
    a.drain.data = &a;
    uv_signal_init(&loop, &a.sigint);
    uv_signal_init(&loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);

    nt_info("natter-router started: nats %s, redis %s:%d%s, metrics %s, gateway ttl %lld ms, "
            "sweep %lld ms, typing ttl %lld ms", nats_shown, raddr.host, raddr.port,
            redis_auth ? " (AUTH)" : "", metrics_listen,
            (long long)rt->gateway_ttl_ms, (long long)rt->sweep_ms, (long long)rt->typing_ttl_ms);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        nt_warn("loop closed with handles still open");
    nt_info("natter-router stopped");
    return 0;
}
