/* typing.c: typing indicators: natter.ctl.typing, their expiry without renewal,
 * and the typing query.
 *
 * natter:{<app>}:typing:<room> is a sorted set user -> expiry (ms) of the users
 * typing in a room; natter:typing:deadlines holds the same expiries for every
 * room as "<app>|<room>|<user>" so one timer finds what expired. Both change in
 * one script. An expired member is taken out by exactly one script run, so with
 * several router replicas each expiry is announced once. */
#include "typing.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "envelope.h"
#include "log.h"
#include "request.h"
#include "util.h"
#include "wire.h"

#define KEY_DEADLINES "natter:typing:deadlines"
#define KEY_MAX 256
#define EXPIRE_BATCH "500"        /* expired indicators taken per tick */
#define QUERY_MAX "1000"          /* users listed by one typing query */

/* KEYS[1] natter:{<app>}:typing:<room>, KEYS[2] natter:typing:deadlines;
 * ARGV[1] user, ARGV[2] expiry ms, ARGV[3] "<app>|<room>|<user>", ARGV[4] key ttl ms. */
static const char ON_LUA[] =
    "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])\n"
    "return 1\n";

/* Same keys; ARGV[1] user, ARGV[2] member. Returns 1 when the user was typing. */
static const char OFF_LUA[] =
    "local n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "return n\n";

/* KEYS[1] natter:typing:deadlines; ARGV[1] now ms, ARGV[2] batch. Removes the
 * expired and returns {{app, room, user, name}, …}. */
static const char EXPIRE_LUA[] =
    "local out = {}\n"
    "local now = tonumber(ARGV[1])\n"
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0,"
    " tonumber(ARGV[2]))) do\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "  local app, room, user = string.match(m, '^([^|]+)|([^|]+)|([^|]+)$')\n"
    "  if app then\n"
    "    local k = 'natter:{' .. app .. '}:typing:' .. room\n"
    "    local s = redis.call('ZSCORE', k, user)\n"
    "    if s and tonumber(s) <= now then redis.call('ZREM', k, user) end\n"
    "    local name = redis.call('HGET', 'natter:{' .. app .. '}:online:' .. user, 'name')\n"
    "    out[#out + 1] = {app, room, user, name}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS[1] natter:{<app>}:typing:<room>; ARGV[1] app, ARGV[2] now ms, ARGV[3] most
 * users. Returns {{user, name}, …} of the users whose indicator has not expired. */
static const char QUERY_LUA[] =
    "local out = {}\n"
    "for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'LIMIT',"
    " 0, tonumber(ARGV[3]))) do\n"
    "  local name = redis.call('HGET', 'natter:{' .. ARGV[1] .. '}:online:' .. u, 'name')\n"
    "  out[#out + 1] = {u, name}\n"
    "end\n"
    "return out\n";

struct rt_typing {
    rt_router *rt;
    nt_bus_sub *typing_sub;
    nt_bus_sub *query_sub;
    uv_timer_t timer;
    bool expiring;                /* an expiry script is in flight; a tick is skipped */
};

typedef struct change {           /* one natter.ctl.typing while Redis records it */
    rt_router *rt;
    bool on;
    rt_id app, room, user;
    char name[129];
} change;

typedef struct query {
    rt_router *rt;
    char reply[];
} query;

static json_t *jstr_or_null(const char *s)
{
    json_t *v = s && *s ? json_string(s) : NULL;
    return v ? v : json_null();
}

/* Publishes the typing event to the room's other subscribers. */
static void publish_typing(rt_router *rt, const char *app, const char *room, const char *user,
                           const char *name, bool on)
{
    char channel[80], subject[NT_SUBJ_CAP];

    if (nt_subj_room(subject, sizeof subject, app, room) < 0) {
        nt_warn("typing event of %s in %s/%s dropped: not a room subject", user, app, room);
        return;
    }
    snprintf(channel, sizeof(channel), "room.%s", room);
    json_t *ev = json_pack("{s:s,s:s,s:{s:s,s:s,s:o,s:b}}", "event", "typing", "channel",
                           channel, "data", "room_id", room, "user_id", user, "name",
                           jstr_or_null(name), "is_typing", on);
    char *json = json_dumps(ev, JSON_COMPACT);
    rt_publish_event(rt, subject, json, strlen(json), user);
    nt_metric_add(rt->m.typing_events, 1);
    nt_free(json);
    json_decref(ev);
}

/* ---- natter.ctl.typing ---- */

static void on_change_done(nt_status st, const redisReply *reply, void *arg)
{
    change *c = arg;

    if (st != NT_OK)
        nt_warn("%s: is_typing %s of %s in %s/%s not recorded: %s", NT_SUBJ_CTL_TYPING,
                c->on ? "true" : "false", c->user, c->app, c->room,
                st == NT_EIO && reply ? reply->str : nt_status_text(st));
    else if (c->on || (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1))
        publish_typing(c->rt, c->app, c->room, c->user, c->name, c->on);
    nt_free(c);
}

static void on_typing(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_ROOM, NT_KEY_USER, NULL };
    rt_typing *t = arg;
    rt_router *rt = t->rt;
    char why[128], key[KEY_MAX], member[KEY_MAX], expiry[24], ttl[24];
    change *c = nt_calloc(1, sizeof(*c));
    char *const outs[] = { c->app, c->room, c->user };
    nt_envr r;
    size_t nlen = 0;

    c->rt = rt;
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: not an envelope", NT_SUBJ_CTL_TYPING);
        nt_free(c);
        return;
    }
    bool valid = rt_req_ids(&r, keys, outs, why, sizeof(why));
    if (valid && !nt_envr_bool(&r, NT_KEY_IS_TYPING, &c->on)) {
        snprintf(why, sizeof(why), "is_typing must be a boolean");
        valid = false;
    }
    const char *name = nt_envr_str(&r, NT_KEY_NAME, &nlen);
    if (name && nlen < sizeof(c->name) && nt_valid_utf8(name, nlen) && !memchr(name, 0, nlen))
        memcpy(c->name, name, nlen);
    nt_envr_free(&r);
    if (!valid) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: %s", NT_SUBJ_CTL_TYPING, why);
        nt_free(c);
        return;
    }

    snprintf(key, sizeof(key), "natter:{%s}:typing:%s", c->app, c->room);
    snprintf(member, sizeof(member), "%s|%s|%s", c->app, c->room, c->user);
    nt_status st;
    if (c->on) {
        snprintf(expiry, sizeof(expiry), "%" PRId64, nt_now_ms() + rt->typing_ttl_ms);
        snprintf(ttl, sizeof(ttl), "%" PRId64, 2 * rt->typing_ttl_ms);
        const char *args[] = { key, KEY_DEADLINES, c->user, expiry, member, ttl, NULL };
        st = rt_eval(rt, ON_LUA, 2, args, on_change_done, c);
    } else {
        const char *args[] = { key, KEY_DEADLINES, c->user, member, NULL };
        st = rt_eval(rt, OFF_LUA, 2, args, on_change_done, c);
    }
    if (st != NT_OK) {
        nt_warn("%s: is_typing of %s in %s/%s dropped: %s", NT_SUBJ_CTL_TYPING, c->user, c->app,
                c->room, nt_status_text(st));
        nt_free(c);
    }
}

/* ---- expiry ---- */

static void on_expired(nt_status st, const redisReply *reply, void *arg)
{
    rt_typing *t = arg;

    t->expiring = false;
    if (st != NT_OK) {
        nt_warn("typing expiry failed: %s", st == NT_EIO && reply ? reply->str
                                                                : nt_status_text(st));
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
            continue;
        const redisReply *app = e->element[0], *room = e->element[1], *user = e->element[2];
        const redisReply *name = e->elements > 3 ? e->element[3] : NULL;
        if (app->type != REDIS_REPLY_STRING || room->type != REDIS_REPLY_STRING ||
            user->type != REDIS_REPLY_STRING || !nt_valid_id(app->str, app->len) ||
            !nt_valid_id(room->str, room->len) || !nt_valid_id(user->str, user->len))
            continue;
        nt_metric_add(t->rt->m.typing_expired, 1);
        publish_typing(t->rt, app->str, room->str, user->str,
                       name && name->type == REDIS_REPLY_STRING ? name->str : NULL, false);
    }
}

static void on_timer(uv_timer_t *timer)
{
    rt_typing *t = timer->data;
    rt_router *rt = t->rt;
    char now[24];

    if (t->expiring || rt->stopping || !rt_redis_available(rt->redis))
        return;
    snprintf(now, sizeof(now), "%" PRId64, nt_now_ms());
    const char *args[] = { KEY_DEADLINES, now, EXPIRE_BATCH, NULL };
    if (rt_eval(rt, EXPIRE_LUA, 1, args, on_expired, t) == NT_OK)
        t->expiring = true;
}

/* ---- natter.rpc.router.typing ---- */

static void on_query_done(nt_status st, const redisReply *reply, void *arg)
{
    query *q = arg;

    if (st != NT_OK || reply->type != REDIS_REPLY_ARRAY) {
        nt_warn("typing query failed: %s", st == NT_EIO && reply ? reply->str
                                                               : nt_status_text(st));
        rt_reply_error(q->rt, q->reply, st == NT_EIO ? "internal" : "unavailable",
                       "presence store unavailable");
        nt_free(q);
        return;
    }
    json_t *users = json_array();
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *name = e->elements > 1 ? e->element[1] : NULL;
        json_array_append_new(users, json_pack("{s:s,s:o}", "user_id", e->element[0]->str,
                                               "name",
                                               jstr_or_null(name && name->type ==
                                                                    REDIS_REPLY_STRING
                                                                ? name->str
                                                                : NULL)));
    }
    json_t *obj = json_pack("{s:o}", "users", users);
    char *json = json_dumps(obj, JSON_COMPACT);
    rt_reply_json(q->rt, q->reply, json, strlen(json));
    nt_metric_add(q->rt->m.queries, 1);
    nt_free(json);
    json_decref(obj);
    nt_free(q);
}

static void on_query_checked(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_ROOM, NULL };
    rt_typing *t = arg;
    rt_router *rt = t->rt;
    rt_id app, room;
    char *const outs[] = { app, room };
    char key[KEY_MAX], now[24];

    if (!rt_query_begin(rt, msg, NT_SUBJ_RPC_ROUTER_TYPING, keys, outs))
        return;
    size_t n = strlen(msg->reply) + 1;
    query *q = nt_malloc(sizeof(*q) + n);
    q->rt = rt;
    memcpy(q->reply, msg->reply, n);
    snprintf(key, sizeof(key), "natter:{%s}:typing:%s", app, room);
    snprintf(now, sizeof(now), "%" PRId64, nt_now_ms());
    const char *args[] = { key, app, now, QUERY_MAX, NULL };
    if (rt_eval(rt, QUERY_LUA, 1, args, on_query_done, q) != NT_OK) {
        nt_metric_add(rt->m.redis_rejected, 1);
        rt_reply_error(rt, msg->reply, "unavailable", "presence store unavailable");
        nt_free(q);
    }
}

static void on_query(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    rt_typing *t = arg;
    rt_with_room_access(t->rt, msg, on_query_checked, arg);
}

/* ---- life cycle ---- */

rt_typing *rt_typing_create(rt_router *rt)
{
    rt_typing *t = nt_calloc(1, sizeof(*t));
    int64_t every = rt->typing_ttl_ms / 4;

    if (every > 250)
        every = 250;
    if (every < 50)
        every = 50;
    t->rt = rt;
    uv_timer_init(rt->loop, &t->timer);
    t->timer.data = t;
    t->typing_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_CTL_TYPING, NT_QUEUE_ROUTER, on_typing, t);
    t->query_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_TYPING, NT_QUEUE_ROUTER, on_query,
                                    t);
    if (!t->typing_sub || !t->query_sub) {
        rt_typing_stop(t);
        rt_typing_destroy(t);
        return NULL;
    }
    uv_timer_start(&t->timer, on_timer, (uint64_t)every, (uint64_t)every);
    return t;
}

void rt_typing_stop(rt_typing *t)
{
    nt_bus_unsubscribe(t->typing_sub);
    nt_bus_unsubscribe(t->query_sub);
    t->typing_sub = t->query_sub = NULL;
    uv_timer_stop(&t->timer);
}

static void on_closed(uv_handle_t *h)
{
    nt_free(h->data);
}

void rt_typing_destroy(rt_typing *t)
{
    if (t)
        uv_close((uv_handle_t *)&t->timer, on_closed);
}
