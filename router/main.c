/* main.c: natter-router: its settings, the start-up check of Redis, and the list of its
 * modules for the process cycle (common/service.h). */
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
#include "service.h"
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
    rt_redis_opts redis_opts;     /* for the redis module's start */
    int64_t max_token_lifetime_s; /* NATTER_MAX_TOKEN_LIFETIME_S, for revoke */
    char nats_shown[512];         /* NATTER_NATS_URL without its password */
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

/* /readyz beyond what the service checks (not stopping, NATS connected). */
static bool redis_ready(void *arg)
{
    rt_router *rt = arg;
    return rt_redis_connected(rt->redis);
}

static int64_t redis_inflight_gauge(void *arg)
{
    rt_router *rt = arg;
    return rt->redis != NULL ? (int64_t)rt_redis_inflight(rt->redis) : 0;   /* 0 once closed */
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

/* ---- modules, in start order (stop_intake in this order, destroy in reverse) ---- */

static nt_status subscribe_failed(const app *a, char *err, size_t errlen)
{
    snprintf(err, errlen, "cannot subscribe on NATS at %s (NATTER_NATS_URL)", a->nats_shown);
    return NT_EUNAVAIL;
}

/* The shared state: the loop and the bus from the service, the metrics. */
static nt_status router_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    app *a = arg;
    a->rt.loop = nt_service_loop(svc);
    a->rt.bus = nt_service_bus(svc);
    register_metrics(&a->rt);
    return NT_OK;
}

static void router_stop_intake(nt_service *svc, void *arg)
{
    app *a = arg;
    a->rt.stopping = true;
    nt_info("stopping: no new requests; draining work in flight");
}

static nt_status rooms_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    app *a = arg;
    a->rooms = rt_rooms_create(&a->rt);
    return a->rooms ? NT_OK : subscribe_failed(a, err, errlen);
}

static void rooms_stop_intake(nt_service *svc, void *arg)
{
    rt_rooms_unsubscribe(((app *)arg)->rooms);
}

static size_t rooms_pending(void *arg)
{
    return rt_rooms_pending(((app *)arg)->rooms);
}

static void rooms_destroy(nt_service *svc, void *arg)
{
    app *a = arg;
    rt_rooms_destroy(a->rooms);
    a->rooms = NULL;
}

/* The modules that are one rt_<kind> object each: created on the router (extra create
 * arguments after the kind), stopped, destroyed. Defines <field>_start, _stop_intake and
 * _destroy. */
#define RT_SIMPLE_MODULE(field, kind, ...)                                                  \
    static nt_status field##_start(nt_service *svc, void *arg, char *err, size_t errlen)    \
    {                                                                                       \
        app *a = arg;                                                                       \
        a->field = rt_##kind##_create(&a->rt __VA_ARGS__);                                  \
        return a->field ? NT_OK : subscribe_failed(a, err, errlen);                         \
    }                                                                                       \
    static void field##_stop_intake(nt_service *svc, void *arg)                             \
    {                                                                                       \
        rt_##kind##_stop(((app *)arg)->field);                                              \
    }                                                                                       \
    static void field##_destroy(nt_service *svc, void *arg)                                 \
    {                                                                                       \
        app *a = arg;                                                                       \
        rt_##kind##_destroy(a->field);                                                      \
        a->field = NULL;                                                                    \
    }

RT_SIMPLE_MODULE(presence, presence)
RT_SIMPLE_MODULE(status, user_status)
RT_SIMPLE_MODULE(typing, typing)
RT_SIMPLE_MODULE(stats, stats)
RT_SIMPLE_MODULE(revoke, revoke, , a->max_token_lifetime_s)

/* Redis comes last, so that it is closed first: closing fails the commands still in
 * flight back into the modules above, which must still exist. The modules' creates do
 * not send commands, so they may run before it. */
static nt_status redis_start(nt_service *svc, void *arg, char *err, size_t errlen)
{
    app *a = arg;
    a->redis_opts.errors = a->rt.m.redis_errors;
    a->redis_opts.rejected = a->rt.m.redis_rejected;
    a->rt.redis = rt_redis_create(a->rt.loop, &a->redis_opts);   /* keeps its own copies */
    return NT_OK;
}

static size_t redis_pending(void *arg)
{
    return rt_redis_inflight(((app *)arg)->rt.redis);
}

/* Calls still waiting for the persister are answered `unavailable`; those waiting for
 * Redis finish when rt_redis_destroy fails their commands. */
static void redis_destroy(nt_service *svc, void *arg)
{
    app *a = arg;
    nt_info("shutting down: %zu calls and %zu Redis commands left", rt_rooms_pending(a->rooms),
            rt_redis_inflight(a->rt.redis));
    rt_rooms_abort(a->rooms);
    rt_redis_destroy(a->rt.redis);
    a->rt.redis = NULL;
}

static app g_app;

static const nt_module modules[] = {
    { "router", router_start, router_stop_intake, NULL, NULL, &g_app },
    { "rooms", rooms_start, rooms_stop_intake, rooms_pending, rooms_destroy, &g_app },
    { "presence", presence_start, presence_stop_intake, NULL, presence_destroy, &g_app },
    { "user_status", status_start, status_stop_intake, NULL, status_destroy, &g_app },
    { "typing", typing_start, typing_stop_intake, NULL, typing_destroy, &g_app },
    { "stats", stats_start, stats_stop_intake, NULL, stats_destroy, &g_app },
    { "revoke", revoke_start, revoke_stop_intake, NULL, revoke_destroy, &g_app },
    { "redis", redis_start, NULL, redis_pending, redis_destroy, &g_app },
};

/* ---- start-up ---- */

int main(void)
{
    app *a = &g_app;
    rt_router *rt = &a->rt;
    redis_addr raddr = { 0 };
    char redis_shown[512];        /* the URL without its password */

    nt_service *svc = nt_service_init("natter-router");
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
    a->max_token_lifetime_s = nt_wire_int(NT_SET_MAX_TOKEN_LIFETIME_S);
    rt->request_timeout_ms = (int)nt_wire_int(NT_SET_REQUEST_TIMEOUT_MS);
    size_t max_inflight = (size_t)nt_config_int("NATTER_REDIS_MAX_INFLIGHT", 10000, 1, 1000000);
    size_t bus_queue = (size_t)nt_wire_int(NT_SET_BUS_QUEUE);
    nt_config_redact_url(nats_url, a->nats_shown, sizeof a->nats_shown);
    raddr.shown = nt_config_redact_url(redis_url, redis_shown, sizeof redis_shown);
    parse_redis_url(redis_url, &raddr);

    check_redis(&raddr);

    a->redis_opts = (rt_redis_opts){
        .host = raddr.host,
        .port = raddr.port,
        .username = raddr.username,
        .password = raddr.password,
        .max_inflight = max_inflight,
    };
    nt_service_opts sopts = {
        .bus = { .url = nats_url, .name = "natter-router", .queue_capacity = bus_queue },
        .metrics_prefix = "natter_router",
        .metrics_listen = metrics_listen,
        .ready = redis_ready,
        .ready_arg = rt,
        .drain_ms = DRAIN_MS,
        .drain_tick_ms = DRAIN_TICK_MS,
        .flush_ms = BUS_FLUSH_MS,
    };
    nt_service_start(svc, &sopts, modules, sizeof modules / sizeof modules[0]);
    bool redis_auth = raddr.password != NULL;
    if (raddr.password)
        explicit_bzero(raddr.password, strlen(raddr.password));
    nt_free(raddr.password);
    nt_free(raddr.username);
    a->redis_opts.username = a->redis_opts.password = NULL;

    nt_info("natter-router started: nats %s, redis %s:%d%s, metrics %s, gateway ttl %lld ms, "
            "sweep %lld ms, typing ttl %lld ms", a->nats_shown, raddr.host, raddr.port,
            redis_auth ? " (AUTH)" : "", metrics_listen,
            (long long)rt->gateway_ttl_ms, (long long)rt->sweep_ms, (long long)rt->typing_ttl_ms);
    int rc = nt_service_run(svc);
    nt_info("natter-router stopped");
    return rc;
}
