/* user_status.c: user status: the presence action, presence events, and the online and
 * presence queries.
 *
 * natter:{<app>}:online:<user> holds conns/last_seen/name (presence.c) and the
 * fields set here: status, device, status_text. A presence event goes to every
 * room the user is live in (natter:{<app>}:urooms:<user>, kept by rooms.c and the
 * sweep) with skip_user, and once to the user's own subject for their other devices.
 * The room envelopes list those rooms, so that a gateway hands the event once to a
 * connection subscribed to several of them (gateway presence.c). */
#include "user_status.h"

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

#define KEY_MAX 256
#define ONLINE_MAX "1000"         /* users listed by one online query */

/* KEYS[1] natter:{<app>}:online:<user>; ARGV[1] app, ARGV[2] user, ARGV[3] status,
 * ARGV[4] name ("" keeps it), ARGV[5] "1" when device is given, ARGV[6] device,
 * ARGV[7] "1" when status_text is given, ARGV[8] status_text. Returns rec(). */
static const char SET_LUA[] =
    RT_USER_STATUS_REC_LUA
    "redis.call('HSET', KEYS[1], 'status', ARGV[3])\n"
    "if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[4]) end\n"
    "if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'device', ARGV[6]) end\n"
    "if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'status_text', ARGV[8]) end\n"
    "return rec(ARGV[1], ARGV[2])\n";

/* KEYS[1] natter:{<app>}:live:<room>; ARGV[1] app, ARGV[2] most users listed.
 * Returns {{user, conns, last_seen, status, device, status_text, name}, …}. */
static const char ONLINE_LUA[] =
    "local users = redis.call('HKEYS', KEYS[1])\n"
    "local out = {}\n"
    "for i, u in ipairs(users) do\n"
    "  if i > tonumber(ARGV[2]) then break end\n"
    "  local h = redis.call('HMGET', 'natter:{' .. ARGV[1] .. '}:online:' .. u, 'conns',\n"
    "    'last_seen', 'status', 'device', 'status_text', 'name')\n"
    "  out[#out + 1] = {u, h[1], h[2], h[3], h[4], h[5], h[6]}\n"
    "end\n"
    "return out\n";

/* ARGV[1] app, ARGV[2] user. */
static const char QUERY_LUA[] = RT_USER_STATUS_REC_LUA "return rec(ARGV[1], ARGV[2])\n";

struct rt_user_status {
    rt_router *rt;
    nt_bus_sub *set_sub;
    nt_bus_sub *online_sub;
    nt_bus_sub *query_sub;
};

typedef struct query {
    rt_router *rt;
    char reply[];                 /* the requester's reply subject */
} query;

static const char *rstr(const redisReply *r, size_t i)
{
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

static json_t *jstr_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

static json_t *last_seen_json(const char *ms)
{
    char buf[32];
    if (!ms)
        return json_null();
    nt_rfc3339_ms(strtoll(ms, NULL, 10), buf);
    return json_string(buf);
}

/* The status a client sees: the stored one while online (default online), else offline. */
static const char *shown_status(const char *conns, const char *status)
{
    bool online = conns && strtoll(conns, NULL, 10) > 0;
    if (!online)
        return "offline";
    return status ? status : "online";
}

/* The presence event data of rec() fields [2..7]. */
static json_t *presence_data(const char *user, const char *conns, const char *last_seen,
                             const char *status, const char *device, const char *text)
{
    json_t *d = json_object();
    json_object_set_new(d, "user_id", json_string(user));
    json_object_set_new(d, "status", json_string(shown_status(conns, status)));
    json_object_set_new(d, "device", jstr_or_null(device));
    json_object_set_new(d, "status_text", jstr_or_null(text));
    json_object_set_new(d, "last_seen_at", last_seen_json(last_seen));
    json_object_set_new(d, "online", json_boolean(conns && strtoll(conns, NULL, 10) > 0));
    return d;
}

static bool rec_valid(const redisReply *rec)
{
    return rec && rec->type == REDIS_REPLY_ARRAY && rec->elements == 10 && rstr(rec, 0) &&
           rstr(rec, 1) && rec->element[8]->type == REDIS_REPLY_ARRAY &&
           rec->element[9]->type == REDIS_REPLY_ARRAY &&
           rec->element[9]->elements == rec->element[8]->elements;
}

/* The room envelope of one presence event, the same bytes for every room:
 * {type:"event", json, skip_user, lazy, rooms?} (lazy: it may wait for the next frame
 * to each connection, NATTER_LAZY_FLUSH_MS at most). `rooms` (valid ids, in publishing order)
 * is written when there are two or more, at most RT_PRESENCE_ROOMS_LISTED. */
static const char *room_envelope(nt_envw *w, const char *json, size_t len, const char *user,
                                 const char *const *rooms, size_t nrooms, size_t *n)
{
    nt_envw_init(w);
    nt_envw_cstr(w, NT_KEY_TYPE, NT_TYPE_EVENT);
    nt_envw_str(w, NT_KEY_JSON, json, len);
    nt_envw_cstr(w, NT_KEY_SKIP_USER, user);
    nt_envw_bool(w, NT_KEY_LAZY, true);
    if (nrooms > 1)
        nt_envw_str_array(w, NT_KEY_ROOMS, rooms,
                          nrooms < RT_PRESENCE_ROOMS_LISTED ? nrooms : RT_PRESENCE_ROOMS_LISTED);
    return nt_envw_finish(w, n);
}

void rt_user_status_publish(rt_router *rt, const redisReply *rec, bool to_user)
{
    char subject[NT_SUBJ_CAP];

    if (!rec_valid(rec)) {
        nt_warn("presence: unexpected reply from the presence script (type %d)",
                rec ? rec->type : -1);
        return;
    }
    const char *app = rstr(rec, 0), *user = rstr(rec, 1);
    json_t *ev = json_pack("{s:s,s:o}", "event", "presence", "data",
                           presence_data(user, rstr(rec, 2), rstr(rec, 3), rstr(rec, 4),
                                         rstr(rec, 5), rstr(rec, 6)));
    char *json = json_dumps(ev, JSON_COMPACT);
    size_t len = strlen(json);
    const redisReply *all = rec->element[8], *sizes = rec->element[9];
    const char **rooms = nt_malloc((all->elements ? all->elements : 1) * sizeof(*rooms));
    size_t nrooms = 0;
    for (size_t i = 0; i < all->elements; i++) {
        const redisReply *room = all->element[i], *size = sizes->element[i];
        /* a room larger than the limit hears no presence: its members ask online_users */
        if (size->type == REDIS_REPLY_INTEGER && size->integer > rt->presence_room_max)
            continue;
        if (room->type == REDIS_REPLY_STRING && nt_valid_id(room->str, room->len))
            rooms[nrooms++] = room->str;
    }
    if (nrooms > 0) {
        nt_envw w;
        size_t n;
        const char *data = room_envelope(&w, json, len, user, rooms, nrooms, &n);
        for (size_t i = 0; i < nrooms; i++) {
            if (nt_subj_room(subject, sizeof subject, app, rooms[i]) < 0) {
                nt_warn("presence event to %s/%s dropped: not a room subject", app, rooms[i]);
                continue;
            }
            nt_status st = nt_bus_publish(rt->bus, subject, NULL, data, n);
            if (st != NT_OK)
                nt_warn("presence event to %s dropped: %s", subject, nt_status_text(st));
        }
        nt_envw_free(&w);
    }
    if (to_user) {
        if (nt_subj_user(subject, sizeof subject, app, user) >= 0)
            rt_publish_event(rt, subject, json, len, NULL);
        else
            nt_warn("presence event to user %s/%s dropped: not a user subject", app, user);
    }
    nt_metric_add(rt->m.presence_events, 1);
    nt_free(rooms);
    nt_free(json);
    json_decref(ev);
}

/* ---- natter.ctl.presence ---- */

static void on_set_done(nt_status st, const redisReply *reply, void *arg)
{
    rt_router *rt = arg;

    if (st != NT_OK) {
        nt_warn("%s: not stored: %s", NT_SUBJ_CTL_PRESENCE, st == NT_EIO && reply ? reply->str
                                                                        : nt_status_text(st));
        return;
    }
    nt_metric_add(rt->m.presence_sets, 1);
    rt_user_status_publish(rt, reply, true);
}

static bool valid_status(const char *s, size_t len)
{
    static const char *const all[] = { "online", "away", "busy", "offline" };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strlen(all[i]) == len && memcmp(all[i], s, len) == 0)
            return true;
    return false;
}

/* Copies an optional string field of at most maxchars code points into *out
 * (nt_malloc'd; NULL when absent). False with `why` when present but invalid. */
static bool opt_text(const nt_envr *r, const char *key, size_t maxchars, char **out,
                     char *why, size_t whylen)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    *out = NULL;
    if (!s)
        return true;
    if (!nt_valid_utf8(s, len) || memchr(s, '\0', len) || nt_utf8_len(s, len) > maxchars) {
        snprintf(why, whylen, "%s must be UTF-8 text of at most %zu characters", key, maxchars);
        return false;
    }
    *out = nt_malloc(len + 1);
    memcpy(*out, s, len);
    (*out)[len] = '\0';
    return true;
}

static void on_set(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_USER, NULL };
    rt_user_status *s = arg;
    rt_router *rt = s->rt;
    rt_id app, user;
    char *const outs[] = { app, user };
    char why[128], online[KEY_MAX], status[16] = "";
    char *name = NULL, *device = NULL, *text = NULL;
    nt_envr r;
    size_t len = 0;

    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: not an envelope", NT_SUBJ_CTL_PRESENCE);
        return;
    }
    const char *st_s = nt_envr_str(&r, NT_KEY_STATUS, &len);
    bool valid = rt_req_ids(&r, keys, outs, why, sizeof(why));
    if (valid && !(st_s && valid_status(st_s, len))) {
        snprintf(why, sizeof(why), "status must be online, away, busy or offline");
        valid = false;
    }
    if (valid) {
        memcpy(status, st_s, len);
        status[len] = '\0';
        valid = opt_text(&r, "name", 128, &name, why, sizeof(why)) &&
                opt_text(&r, "device", 64, &device, why, sizeof(why)) &&
                opt_text(&r, "status_text", 140, &text, why, sizeof(why));
    }
    nt_envr_free(&r);
    if (!valid) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: %s", NT_SUBJ_CTL_PRESENCE, why);
        goto out;
    }
    snprintf(online, sizeof(online), "natter:{%s}:online:%s", app, user);
    const char *args[] = { online, app, user, status, name ? name : "", device ? "1" : "0",
                           device ? device : "", text ? "1" : "0", text ? text : "", NULL };
    nt_status st = rt_eval(rt, SET_LUA, 1, args, on_set_done, rt);
    if (st != NT_OK)
        nt_warn("%s: status of %s/%s dropped: %s", NT_SUBJ_CTL_PRESENCE, app, user,
                nt_status_text(st));
out:
    nt_free(name);
    nt_free(device);
    nt_free(text);
}

/* ---- queries ---- */

static query *query_new(rt_router *rt, const char *reply)
{
    size_t n = strlen(reply) + 1;
    query *q = nt_malloc(sizeof(*q) + n);
    q->rt = rt;
    memcpy(q->reply, reply, n);
    return q;
}

static void reply_obj(rt_router *rt, const char *reply, json_t *obj)
{
    char *json = json_dumps(obj, JSON_COMPACT);
    rt_reply_json(rt, reply, json, strlen(json));
    nt_free(json);
    json_decref(obj);
    nt_metric_add(rt->m.queries, 1);
}

/* A failed query command: the requester learns the presence store is the cause. */
static bool query_failed(query *q, nt_status st, const redisReply *reply, const char *what)
{
    if (st == NT_OK && reply->type == REDIS_REPLY_ARRAY)
        return false;
    nt_warn("%s query failed: %s", what, st == NT_EIO && reply ? reply->str : nt_status_text(st));
    rt_reply_error(q->rt, q->reply, st == NT_EIO ? "internal" : "unavailable",
                   "presence store unavailable");
    return true;
}

static void on_online_done(nt_status st, const redisReply *reply, void *arg)
{
    query *q = arg;

    if (!query_failed(q, st, reply, "online")) {
        json_t *users = json_array();
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *u = reply->element[i];
            if (u->type != REDIS_REPLY_ARRAY || u->elements != 7 || !rstr(u, 0))
                continue;
            json_t *o = json_object();
            json_object_set_new(o, "user_id", json_string(rstr(u, 0)));
            json_object_set_new(o, "name", jstr_or_null(rstr(u, 6)));
            json_object_set_new(o, "status", json_string(shown_status(rstr(u, 1), rstr(u, 3))));
            json_object_set_new(o, "device", jstr_or_null(rstr(u, 4)));
            json_object_set_new(o, "status_text", jstr_or_null(rstr(u, 5)));
            json_object_set_new(o, "last_seen_at", last_seen_json(rstr(u, 2)));
            json_array_append_new(users, o);
        }
        reply_obj(q->rt, q->reply, json_pack("{s:o}", "users", users));
    }
    nt_free(q);
}

static void on_query_done(nt_status st, const redisReply *reply, void *arg)
{
    query *q = arg;

    if (!query_failed(q, st, reply, "presence")) {
        if (!rec_valid(reply))
            rt_reply_error(q->rt, q->reply, "internal", "unexpected reply from the presence store");
        else
            reply_obj(q->rt, q->reply,
                      presence_data(rstr(reply, 1), rstr(reply, 2), rstr(reply, 3),
                                    rstr(reply, 4), rstr(reply, 5), rstr(reply, 6)));
    }
    nt_free(q);
}

static void run_query(rt_router *rt, const nt_bus_msg *msg, const char *script, int nkeys,
                      const char *const *args, rt_redis_cb cb)
{
    query *q = query_new(rt, msg->reply);
    nt_status st = rt_eval(rt, script, nkeys, args, cb, q);
    if (st != NT_OK) {
        nt_metric_add(rt->m.redis_rejected, 1);
        rt_reply_error(rt, msg->reply, "unavailable", "presence store unavailable");
        nt_free(q);
    }
}

static void on_online_checked(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_ROOM, NULL };
    rt_user_status *s = arg;
    rt_id app, room;
    char *const outs[] = { app, room };
    char live[KEY_MAX];

    if (!rt_query_begin(s->rt, msg, NT_SUBJ_RPC_ROUTER_ONLINE, keys, outs))
        return;
    snprintf(live, sizeof(live), "natter:{%s}:live:%s", app, room);
    const char *args[] = { live, app, ONLINE_MAX, NULL };
    run_query(s->rt, msg, ONLINE_LUA, 1, args, on_online_done);
}

static void on_online(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    rt_user_status *s = arg;
    rt_with_room_access(s->rt, msg, on_online_checked, arg);
}

static void on_query(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_USER, NULL };
    rt_user_status *s = arg;
    rt_id app, user;
    char *const outs[] = { app, user };

    if (!rt_query_begin(s->rt, msg, NT_SUBJ_RPC_ROUTER_PRESENCE, keys, outs))
        return;
    const char *args[] = { app, user, NULL };
    run_query(s->rt, msg, QUERY_LUA, 0, args, on_query_done);
}

/* ---- life cycle ---- */

rt_user_status *rt_user_status_create(rt_router *rt)
{
    rt_user_status *s = nt_calloc(1, sizeof(*s));

    s->rt = rt;
    s->set_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_CTL_PRESENCE, NT_QUEUE_ROUTER, on_set, s);
    s->online_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_ONLINE, NT_QUEUE_ROUTER,
                                     on_online, s);
    s->query_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_PRESENCE, NT_QUEUE_ROUTER,
                                    on_query, s);
    if (!s->set_sub || !s->online_sub || !s->query_sub) {
        rt_user_status_stop(s);
        rt_user_status_destroy(s);
        return NULL;
    }
    return s;
}

void rt_user_status_stop(rt_user_status *s)
{
    nt_bus_unsubscribe(s->set_sub);
    nt_bus_unsubscribe(s->online_sub);
    nt_bus_unsubscribe(s->query_sub);
    s->set_sub = s->online_sub = s->query_sub = NULL;
}

void rt_user_status_destroy(rt_user_status *s)
{
    nt_free(s);
}
