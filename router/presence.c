/* presence.c: connection open/close, gateway heartbeats and the sweep of dead gateways.
 *
 * A connection open on gateway <gw> is the member "<app>|<user>|<conn>" of
 * natter:gw:<gw>:conns; natter:{<app>}:online:<user> field `conns` counts the
 * user's members across gateways. Open/close change both in one script and only
 * when the set changed, so a repeated message counts once, and the sweep undoes
 * exactly what a dead gateway's sets hold. A user's count going 0 -> 1 or to 0
 * (close or sweep) publishes a presence event (user_status.c). */
#include "presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"
#include "log.h"
#include "request.h"
#include "user_status.h"
#include "util.h"
#include "wire.h"

#define KEY_GWS "natter:gws"
#define KEY_MAX 256
#define SWEEP_BATCH "100"         /* dead gateways taken per sweep tick */

/* KEYS[1] natter:gw:<gw>:conns, KEYS[2] natter:{<app>}:online:<user>, KEYS[3] natter:gws;
 * ARGV[1] member, ARGV[2] name, ARGV[3] now ms, ARGV[4] gw, ARGV[5] app, ARGV[6] user.
 * Returns rec() (user_status.h) when the user's count went 0 -> 1 (status is reset to
 * online then), else 0. */
static const char CONN_OPEN_LUA[] =
    RT_USER_STATUS_REC_LUA
    "local n = -1\n"
    "if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then\n"
    "  n = redis.call('HINCRBY', KEYS[2], 'conns', 1)\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'name', ARGV[2], 'last_seen', ARGV[3])\n"
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])\n"
    "if n == 1 then\n"
    "  redis.call('HSET', KEYS[2], 'status', 'online')\n"
    "  return rec(ARGV[5], ARGV[6])\n"
    "end\n"
    "return 0\n";

/* KEYS[1] natter:gw:<gw>:conns, KEYS[2] natter:{<app>}:online:<user>;
 * ARGV[1] member, ARGV[2] now ms, ARGV[3] app, ARGV[4] user. Returns rec() when
 * the user's count went 1 -> 0, else 0. */
static const char CONN_CLOSE_LUA[] =
    RT_USER_STATUS_REC_LUA
    "local n = -1\n"
    "if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then\n"
    "  n = redis.call('HINCRBY', KEYS[2], 'conns', -1)\n"
    "  if n < 0 then redis.call('HSET', KEYS[2], 'conns', 0) end\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'last_seen', ARGV[2])\n"
    "if n == 0 then return rec(ARGV[3], ARGV[4]) end\n"
    "return 0\n";

/* KEYS[1] natter:gws, KEYS[2] natter:gw:<gw>:conns, KEYS[3] natter:gw:<gw>:subs;
 * ARGV[1] gw, ARGV[2] cutoff ms, ARGV[3] now ms. Returns {number of connections
 * cleaned, rec() of each user whose count reached 0 (taken before the live rooms
 * are undone, so the rooms still name who must hear it)…}, or -1 when the
 * gateway is gone or heartbeated since it was listed (another replica swept it,
 * or it came back): nothing is undone twice. The online/live keys are built here from the set members, so this script is
 * for a single Redis, not Redis Cluster. */
static const char SWEEP_LUA[] =
    RT_USER_STATUS_REC_LUA
    "local score = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if not score or tonumber(score) > tonumber(ARGV[2]) then return -1 end\n"
    "local conns = redis.call('SMEMBERS', KEYS[2])\n"
    "local out = {#conns}\n"
    "for _, m in ipairs(conns) do\n"
    "  local app, user = string.match(m, '^([^|]+)|([^|]+)|')\n"
    "  if app then\n"
    "    local k = 'natter:{' .. app .. '}:online:' .. user\n"
    "    local n = redis.call('HINCRBY', k, 'conns', -1)\n"
    "    if n < 0 then redis.call('HSET', k, 'conns', 0) end\n"
    "    redis.call('HSET', k, 'last_seen', ARGV[3])\n"
    "    if n == 0 then out[#out + 1] = rec(app, user) end\n"
    "  end\n"
    "end\n"
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[3])) do\n"
    "  local app, room, user = string.match(m, '^([^|]+)|([^|]+)|([^|]+)|')\n"
    "  if app then\n"
    "    local k = 'natter:{' .. app .. '}:live:' .. room\n"
    "    if redis.call('HINCRBY', k, user, -1) <= 0 then\n"
    "      redis.call('HDEL', k, user)\n"
    "      redis.call('SREM', 'natter:{' .. app .. '}:urooms:' .. user, room)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[2], KEYS[3])\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "return out\n";

struct rt_presence {
    rt_router *rt;
    nt_bus_sub *conn_sub;
    nt_bus_sub *hb_sub;
    uv_timer_t sweep;
    size_t sweeping;              /* sweep commands in flight; a tick is skipped while > 0 */
};

typedef struct sweep_gw {
    rt_presence *p;
    rt_id gw;
} sweep_gw;

static size_t fmt_ms(char *buf, size_t size, int64_t ms)
{
    int n = snprintf(buf, size, "%" PRId64, ms);
    return n < 0 ? 0 : (size_t)n;
}

/* ---- natter.ctl.conn ---- */

/* A rec() reply means the user came online or went offline: tell their rooms. */
static void on_conn_done(nt_status st, const redisReply *reply, void *arg)
{
    rt_router *rt = arg;

    if (st != NT_OK)
        nt_warn("%s: not recorded: %s", NT_SUBJ_CTL_CONN,
                st == NT_EIO && reply ? reply->str : nt_status_text(st));
    else if (reply->type == REDIS_REPLY_ARRAY)
        rt_user_status_publish(rt, reply, true);
}

static void on_conn(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_USER, NT_KEY_GW, NT_KEY_CONN, NULL };
    rt_presence *p = arg;
    rt_router *rt = p->rt;
    rt_id app, user, gw, conn;
    char *const outs[] = { app, user, gw, conn };
    char why[128], conns[KEY_MAX], online[KEY_MAX], member[KEY_MAX], now[24];
    char *name = NULL;
    nt_envr r;

    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: not an envelope", NT_SUBJ_CTL_CONN);
        return;
    }
    bool open = nt_envr_str_eq(&r, NT_KEY_TYPE, NT_TYPE_OPEN);
    bool known = open || nt_envr_str_eq(&r, NT_KEY_TYPE, NT_TYPE_CLOSE);
    bool valid = known && rt_req_ids(&r, keys, outs, why, sizeof(why));
    if (valid && open)
        name = nt_envr_strdup(&r, NT_KEY_NAME);
    nt_envr_free(&r);
    if (!valid) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: %s", NT_SUBJ_CTL_CONN, known ? why : "type must be open or close");
        return;
    }

    snprintf(conns, sizeof(conns), "natter:gw:%s:conns", gw);
    snprintf(online, sizeof(online), "natter:{%s}:online:%s", app, user);
    snprintf(member, sizeof(member), "%s|%s|%s", app, user, conn);
    fmt_ms(now, sizeof(now), nt_now_ms());
    nt_status st;
    if (open) {
        const char *args[] = { conns, online, KEY_GWS, member, name ? name : "", now, gw,
                               app, user, NULL };
        st = rt_eval(rt, CONN_OPEN_LUA, 3, args, on_conn_done, rt);
    } else {
        const char *args[] = { conns, online, member, now, app, user, NULL };
        st = rt_eval(rt, CONN_CLOSE_LUA, 2, args, on_conn_done, rt);
    }
    nt_free(name);
    if (st != NT_OK) {
        nt_warn("%s: %s of conn %s (%s/%s on %s) dropped: %s", NT_SUBJ_CTL_CONN,
                open ? "open" : "close", conn, app, user, gw, nt_status_text(st));
        return;
    }
    nt_metric_add(open ? rt->m.conn_opens : rt->m.conn_closes, 1);
}

/* ---- natter.ctl.hb ---- */

static void on_hb(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    rt_presence *p = arg;
    rt_router *rt = p->rt;
    rt_id gw;
    char why[128], now[24];
    nt_envr r;

    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: not an envelope", NT_SUBJ_CTL_HB);
        return;
    }
    bool valid = rt_req_id(&r, "gw", gw, why, sizeof(why));
    nt_envr_free(&r);
    if (!valid) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: %s", NT_SUBJ_CTL_HB, why);
        return;
    }
    size_t nowlen = fmt_ms(now, sizeof(now), nt_now_ms());
    const char *argv[] = { "ZADD", KEY_GWS, now, gw };
    size_t argvlen[] = { 4, sizeof(KEY_GWS) - 1, nowlen, strlen(gw) };
    nt_status st = rt_redis_command(rt->redis, NULL, NULL, 4, argv, argvlen);
    if (st != NT_OK)
        nt_warn("%s: heartbeat of %s dropped: %s", NT_SUBJ_CTL_HB, gw, nt_status_text(st));
}

/* ---- sweep ---- */

static void on_swept(nt_status st, const redisReply *reply, void *arg)
{
    sweep_gw *s = arg;
    rt_presence *p = s->p;

    p->sweeping--;
    if (st != NT_OK) {
        nt_warn("sweep of gateway %s failed: %s", s->gw, nt_status_text(st));
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
               reply->element[0]->type == REDIS_REPLY_INTEGER) {
        nt_metric_add(p->rt->m.gateways_swept, 1);
        nt_info("gateway %s expired: %lld connections cleaned, %zu users went offline", s->gw,
                reply->element[0]->integer, reply->elements - 1);
        for (size_t i = 1; i < reply->elements; i++)
            rt_user_status_publish(p->rt, reply->element[i], true);
    }
    nt_free(s);
}

static void sweep_one(rt_presence *p, const char *gw, size_t len, int64_t cutoff, int64_t now)
{
    rt_router *rt = p->rt;
    char conns[KEY_MAX], subs[KEY_MAX], cutoff_s[24], now_s[24];

    if (!nt_valid_id(gw, len)) {
        /* Never written by this router (ids are validated); drop it so it is not listed forever. */
        nt_warn("sweep: removing invalid gateway id %.*s from " KEY_GWS, (int)len, gw);
        const char *argv[] = { "ZREM", KEY_GWS, gw };
        size_t argvlen[] = { 4, sizeof(KEY_GWS) - 1, len };
        rt_redis_command(rt->redis, NULL, NULL, 3, argv, argvlen);
        return;
    }
    sweep_gw *s = nt_calloc(1, sizeof(*s));
    s->p = p;
    memcpy(s->gw, gw, len);
    snprintf(conns, sizeof(conns), "natter:gw:%s:conns", s->gw);
    snprintf(subs, sizeof(subs), "natter:gw:%s:subs", s->gw);
    fmt_ms(cutoff_s, sizeof(cutoff_s), cutoff);
    fmt_ms(now_s, sizeof(now_s), now);
    const char *args[] = { KEY_GWS, conns, subs, s->gw, cutoff_s, now_s, NULL };
    if (rt_eval(rt, SWEEP_LUA, 3, args, on_swept, s) != NT_OK) {
        nt_free(s);
        return;
    }
    p->sweeping++;
}

static void on_stale_listed(nt_status st, const redisReply *reply, void *arg)
{
    rt_presence *p = arg;

    p->sweeping--;
    if (st != NT_OK || reply->type != REDIS_REPLY_ARRAY || p->rt->stopping)
        return;
    int64_t now = nt_now_ms();
    int64_t cutoff = now - p->rt->gateway_ttl_ms;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING)
            sweep_one(p, e->str, e->len, cutoff, now);
    }
}

static void on_sweep_timer(uv_timer_t *t)
{
    rt_presence *p = t->data;
    char max[24];

    if (p->sweeping > 0 || !rt_redis_connected(p->rt->redis))
        return;
    size_t maxlen = fmt_ms(max, sizeof(max), nt_now_ms() - p->rt->gateway_ttl_ms);
    const char *argv[] = { "ZRANGEBYSCORE", KEY_GWS, "-inf", max, "LIMIT", "0", SWEEP_BATCH };
    size_t argvlen[] = { 13, sizeof(KEY_GWS) - 1, 4, maxlen, 5, 1, sizeof(SWEEP_BATCH) - 1 };
    if (rt_redis_command(p->rt->redis, on_stale_listed, p, 7, argv, argvlen) == NT_OK)
        p->sweeping++;
}

/* ---- life cycle ---- */

rt_presence *rt_presence_create(rt_router *rt)
{
    rt_presence *p = nt_calloc(1, sizeof(*p));

    p->rt = rt;
    uv_timer_init(rt->loop, &p->sweep);
    p->sweep.data = p;
    p->conn_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_CTL_CONN, NT_QUEUE_ROUTER, on_conn, p);
    p->hb_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_CTL_HB, NT_QUEUE_ROUTER, on_hb, p);
    if (!p->conn_sub || !p->hb_sub) {
        rt_presence_stop(p);
        rt_presence_destroy(p);
        return NULL;
    }
    uv_timer_start(&p->sweep, on_sweep_timer, (uint64_t)rt->sweep_ms, (uint64_t)rt->sweep_ms);
    return p;
}

void rt_presence_stop(rt_presence *p)
{
    nt_bus_unsubscribe(p->conn_sub);
    nt_bus_unsubscribe(p->hb_sub);
    p->conn_sub = p->hb_sub = NULL;
    uv_timer_stop(&p->sweep);
}

static void on_closed(uv_handle_t *h)
{
    nt_free(h->data);
}

void rt_presence_destroy(rt_presence *p)
{
    if (p)
        uv_close((uv_handle_t *)&p->sweep, on_closed);
}
