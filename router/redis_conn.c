/* redis_conn.c: the router's one async Redis connection: reconnects with a 1 s
 * backoff, authenticates first on every connection, fails commands fast while down
 * and bounds commands in flight.
 *
 * hiredis 0.14 lifetimes: after a failed connect only the connect callback
 * fires; after a disconnect the context is freed once the disconnect callback
 * returns. Either way the context is gone, so both callbacks forget it and arm
 * the reconnect timer, which starts a fresh context. A connect that hangs is
 * abandoned after CONNECT_TIMEOUT_MS.
 *
 * With a password the connect callback sends AUTH before anything else, and the
 * connection is usable (r->connected) only after its reply: rt_redis_command
 * refuses until then, so no command can go ahead of AUTH. The connect timeout
 * covers the AUTH reply too. A refused AUTH ends the connection (the disconnect
 * callback then re-arms the timer) with a backoff doubling up to AUTH_BACKOFF_MAX_MS. */
#include "redis_conn.h"

#include <hiredis/async.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "redis_uv.h"

#define RECONNECT_MS 1000
#define CONNECT_TIMEOUT_MS 3000   /* hiredis 0.14 has no connect timeout of its own */
#define AUTH_BACKOFF_MAX_MS 30000

struct rt_redis {
    uv_loop_t *loop;
    char *host;
    int port;
    char *username;               /* NULL: AUTH <password> */
    char *password;               /* NULL: no AUTH */
    size_t max_inflight;
    nt_metric *errors;
    nt_metric *rejected;
    redisAsyncContext *ac;        /* NULL while waiting to reconnect */
    bool connected;               /* ac completed its connect (and its AUTH) */
    bool down_logged;             /* an outage was logged; quiet retries until it ends */
    bool closing;                 /* rt_redis_destroy was called */
    unsigned auth_refusals;       /* AUTH refused in a row: the backoff grows */
    size_t inflight;              /* commands sent, reply not yet delivered */
    uv_timer_t timer;             /* reconnect backoff, or connect timeout while connecting */
};

typedef struct pending_cmd {
    rt_redis *r;
    rt_redis_cb cb;
    void *arg;
} pending_cmd;

static void start_connect(rt_redis *r);

static void count(nt_metric *m)
{
    if (m)
        nt_metric_add(m, 1);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    start_connect(t->data);
}

static uint64_t reconnect_delay(const rt_redis *r)
{
    uint64_t ms = RECONNECT_MS;
    for (unsigned i = 1; i < r->auth_refusals && ms < AUTH_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < AUTH_BACKOFF_MAX_MS ? ms : AUTH_BACKOFF_MAX_MS;
}

static void schedule_reconnect(rt_redis *r)
{
    if (!r->closing)
        uv_timer_start(&r->timer, on_reconnect_timer, reconnect_delay(r), 0);
}

static void log_down(rt_redis *r, const char *what, const char *why)
{
    if (!r->down_logged)
        nt_warn("redis %s:%d: %s: %s; retrying every %d ms", r->host, r->port, what, why,
                RECONNECT_MS);
    else
        nt_debug("redis %s:%d: %s: %s", r->host, r->port, what, why);
    r->down_logged = true;
}

/* The connect neither succeeded nor failed in time (e.g. packets dropped):
 * free the half-open context (no callback fires for it) and retry. */
static void on_connect_timeout(uv_timer_t *t)
{
    rt_redis *r = t->data;
    redisAsyncContext *ac = r->ac;

    log_down(r, "connect failed", "timed out");
    r->ac = NULL;
    redisAsyncFree(ac);
    schedule_reconnect(r);
}

static void set_connected(rt_redis *r)
{
    r->connected = true;
    r->down_logged = false;
    r->auth_refusals = 0;
    nt_info("redis %s:%d: connected%s", r->host, r->port, r->password ? " (AUTH accepted)" : "");
}

/* The reply to AUTH. NULL when the connection went first (the disconnect
 * callback, or the connect timeout, deals with that). */
static void on_auth(redisAsyncContext *ac, void *reply_, void *privdata)
{
    rt_redis *r = privdata;
    redisReply *reply = reply_;

    if (!reply || r->closing || ac != r->ac)
        return;
    uv_timer_stop(&r->timer);
    if (reply->type != REDIS_REPLY_ERROR) {
        set_connected(r);
        return;
    }
    r->auth_refusals++;
    count(r->errors);
    /* Every refusal is logged (the backoff bounds them): it needs an operator. */
    nt_error("redis %s:%d: AUTH refused: \"%.*s\"; check NATTER_REDIS_PASSWORD / "
             "NATTER_REDIS_USERNAME or the credentials in NATTER_REDIS_URL; retrying in %llu ms",
             r->host, r->port, (int)reply->len, reply->str,
             (unsigned long long)reconnect_delay(r));
    r->down_logged = true;
    redisAsyncDisconnect(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rt_redis *r = ac->data;

    if (status != REDIS_OK) {
        uv_timer_stop(&r->timer);
        log_down(r, "connect failed", ac->errstr ? ac->errstr : "unknown error");
        r->ac = NULL;
        schedule_reconnect(r);
        return;
    }
    if (!r->password) {
        uv_timer_stop(&r->timer);
        set_connected(r);
        return;
    }
    const char *argv[3] = { "AUTH" };
    size_t argvlen[3] = { 4 };
    int argc = 1;
    if (r->username) {
        argv[argc] = r->username;
        argvlen[argc++] = strlen(r->username);
    }
    argv[argc] = r->password;
    argvlen[argc++] = strlen(r->password);
    /* On failure the connect timeout frees the context: not from inside hiredis's
     * connect handling, which still uses it after this callback returns. */
    if (redisAsyncCommandArgv(r->ac, on_auth, r, argc, argv, argvlen) != REDIS_OK)
        log_down(r, "connect failed", "cannot send AUTH");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rt_redis *r = ac->data;

    r->ac = NULL;
    r->connected = false;
    if (r->closing)
        return;
    const char *why = ac->errstr ? ac->errstr : "error";
    log_down(r, "connection lost", status == REDIS_OK ? "closed" : why);
    schedule_reconnect(r);
}

static void start_connect(rt_redis *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

    if (!ac) {
        log_down(r, "connect failed", "cannot allocate a context");
        schedule_reconnect(r);
        return;
    }
    if (ac->err) {
        log_down(r, "connect failed", ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    if (rt_redis_uv_attach(ac, r->loop) != REDIS_OK) {
        log_down(r, "connect failed", "cannot attach to the event loop");
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

rt_redis *rt_redis_create(uv_loop_t *loop, const rt_redis_opts *opts)
{
    rt_redis *r = nt_calloc(1, sizeof(*r));

    r->loop = loop;
    r->host = nt_strdup(opts->host);
    r->port = opts->port;
    r->username = opts->username ? nt_strdup(opts->username) : NULL;
    r->password = opts->password ? nt_strdup(opts->password) : NULL;
    r->max_inflight = opts->max_inflight ? opts->max_inflight : 10000;
    r->errors = opts->errors;
    r->rejected = opts->rejected;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    start_connect(r);
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    rt_redis *r = h->data;
    nt_free(r->host);
    nt_free(r->username);
    if (r->password)
        explicit_bzero(r->password, strlen(r->password));
    nt_free(r->password);
    nt_free(r);
}

void rt_redis_destroy(rt_redis *r)
{
    if (!r)
        return;
    r->closing = true;
    uv_timer_stop(&r->timer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    r->connected = false;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    pending_cmd *pc = privdata;
    rt_redis *r = pc->r;
    redisReply *reply = reply_;
    nt_status st = NT_OK;

    r->inflight--;
    if (!reply) {
        st = NT_ECLOSED;
        count(r->errors);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        st = NT_EIO;
        count(r->errors);
        nt_warn("redis: error reply: %.*s", (int)reply->len, reply->str);
    }
    if (pc->cb)
        pc->cb(st, reply, pc->arg);
    nt_free(pc);
}

nt_status rt_redis_command(rt_redis *r, rt_redis_cb cb, void *arg, int argc,
                           const char **argv, const size_t *argvlen)
{
    if (r->closing || !r->connected || !r->ac) {
        count(r->rejected);
        return NT_EUNAVAIL;
    }
    if (r->inflight >= r->max_inflight) {
        count(r->rejected);
        return NT_EFULL;
    }
    pending_cmd *pc = nt_malloc(sizeof(*pc));
    pc->r = r;
    pc->cb = cb;
    pc->arg = arg;
    if (redisAsyncCommandArgv(r->ac, on_reply, pc, argc, argv, argvlen) != REDIS_OK) {
        nt_free(pc);
        count(r->rejected);
        return NT_EUNAVAIL;
    }
    r->inflight++;
    return NT_OK;
}

bool rt_redis_connected(const rt_redis *r)
{
    return r && r->connected;
}

bool rt_redis_available(const rt_redis *r)
{
    return r && r->connected && !r->closing && r->inflight < r->max_inflight;
}

size_t rt_redis_inflight(const rt_redis *r)
{
    return r ? r->inflight : 0;
}
