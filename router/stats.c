/* stats.c: natter.rpc.router.stats, the numbers behind GET /api/server/stats.
 *
 * connections and gateways come from natter:gws (live gateways, score = last
 * heartbeat ms) and SCARD natter:gw:<gw>:conns, in one script. users and rooms
 * are counted by walking the keyspace with SCAN in batches of STATS_SCAN_COUNT,
 * one short script per batch (so Redis is never blocked for long), over
 * natter:{*}:online:* (hashes with conns > 0) and natter:{*}:live:* (rooms with
 * at least one subscriber). This is O(keys) and meant for dashboards, not hot
 * paths; past STATS_MAX_BATCHES batches the walk stops and the reply says
 * "partial":true. Requests are never blocking: each step is one async command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "log.h"
#include "request.h"
#include "stats.h"
#include "util.h"
#include "wire.h"

#define STATS_SCAN_COUNT "1000"
#define STATS_MAX_BATCHES 2000      /* about 2 million keys looked at per pattern */

/* ARGV[1] app ("" for all) -> {gw1, last_hb_ms1, conns1, gw2, ...}; with an app only
 * its connections ("<app>|<user>|<conn>" members) are counted, by walking the set. */
static const char GWS_LUA[] =
    "local g = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "local out = {}\n"
    "local prefix = ARGV[1] .. '|'\n"
    "for i = 1, #g, 2 do\n"
    "  out[#out + 1] = g[i]\n"
    "  out[#out + 1] = g[i + 1]\n"
    "  local key = 'natter:gw:' .. g[i] .. ':conns'\n"
    "  if ARGV[1] == '' then\n"
    "    out[#out + 1] = redis.call('SCARD', key)\n"
    "  else\n"
    "    local n = 0\n"
    "    for _, m in ipairs(redis.call('SMEMBERS', key)) do\n"
    "      if string.sub(m, 1, #prefix) == prefix then n = n + 1 end\n"
    "    end\n"
    "    out[#out + 1] = n\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV[1] cursor, ARGV[2] pattern, ARGV[3] count, ARGV[4] "online" counts hashes
 * with conns > 0, else every key -> {next cursor, n} */
static const char SCAN_LUA[] =
    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])\n"
    "local n = 0\n"
    "for _, k in ipairs(r[2]) do\n"
    "  if ARGV[4] == 'online' then\n"
    "    if tonumber(redis.call('HGET', k, 'conns') or '0') > 0 then n = n + 1 end\n"
    "  else n = n + 1 end\n"
    "end\n"
    "return {r[1], n}\n";

struct rt_stats {
    rt_router *rt;
    nt_bus_sub *sub;
};

enum { PHASE_GWS, PHASE_USERS, PHASE_ROOMS };

typedef struct stats_job {
    rt_router *rt;
    char *reply;
    int phase;
    char cursor[32];
    unsigned batches;
    bool partial;
    int64_t connections, users, rooms;
    json_t *gateways;
    char app[RT_ID_MAX + 1];      /* "" for all apps, else only this one's */
    char users_pattern[96], rooms_pattern[96];
} stats_job;

static void job_free(stats_job *j)
{
    json_decref(j->gateways);
    nt_free(j->reply);
    nt_free(j);
}

static void job_fail(stats_job *j, const char *message)
{
    rt_reply_error(j->rt, j->reply, "unavailable", message);
    job_free(j);
}

static void job_step(stats_job *j);

static void job_done(stats_job *j)
{
    json_t *o = json_pack("{s:I,s:I,s:I,s:O}", "connections", (json_int_t)j->connections,
                          "users", (json_int_t)j->users, "rooms", (json_int_t)j->rooms,
                          "gateways", j->gateways);
    if (j->partial)
        json_object_set_new(o, "partial", json_true());
    char *s = json_dumps(o, JSON_COMPACT);
    rt_reply_json(j->rt, j->reply, s, strlen(s));
    nt_free(s);
    json_decref(o);
    nt_metric_add(j->rt->m.queries, 1);
    job_free(j);
}

static const char *elem_str(const redisReply *r, size_t i, char *buf, size_t n)
{
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        return e->str;
    if (e->type == REDIS_REPLY_INTEGER) {
        snprintf(buf, n, "%lld", (long long)e->integer);
        return buf;
    }
    return NULL;
}

static void on_reply(nt_status st, const redisReply *reply, void *arg)
{
    stats_job *j = arg;
    char b1[32], b2[32], b3[32];
    if (st != NT_OK || !reply || reply->type != REDIS_REPLY_ARRAY) {
        if (st == NT_EIO && reply && reply->str)
            nt_warn("%s: %s", NT_SUBJ_RPC_ROUTER_STATS, reply->str);
        return job_fail(j, "presence store unavailable");
    }
    if (j->phase == PHASE_GWS) {
        for (size_t i = 0; i + 2 < reply->elements; i += 3) {
            const char *id = elem_str(reply, i, b1, sizeof b1);
            const char *hb = elem_str(reply, i + 1, b2, sizeof b2);
            const char *n = elem_str(reply, i + 2, b3, sizeof b3);
            char ts[40];
            if (!id || !hb || !n)
                continue;
            int64_t conns = strtoll(n, NULL, 10);
            nt_rfc3339_ms((int64_t)strtod(hb, NULL), ts);
            json_array_append_new(j->gateways, json_pack("{s:s,s:I,s:s}", "id", id, "connections",
                                                         (json_int_t)conns, "last_heartbeat_at", ts));
            j->connections += conns;
        }
        j->phase = PHASE_USERS;
        strcpy(j->cursor, "0");
        j->batches = 0;
        return job_step(j);
    }
    const char *cur = reply->elements == 2 ? elem_str(reply, 0, b1, sizeof b1) : NULL;
    const char *n = reply->elements == 2 ? elem_str(reply, 1, b2, sizeof b2) : NULL;
    if (!cur || !n)
        return job_fail(j, "malformed reply from the presence store");
    *(j->phase == PHASE_USERS ? &j->users : &j->rooms) += strtoll(n, NULL, 10);
    snprintf(j->cursor, sizeof j->cursor, "%s", cur);
    bool end = strcmp(j->cursor, "0") == 0;
    if (!end && ++j->batches >= STATS_MAX_BATCHES) {
        j->partial = true;
        end = true;
    }
    if (end) {
        if (j->phase == PHASE_ROOMS)
            return job_done(j);
        j->phase = PHASE_ROOMS;
        strcpy(j->cursor, "0");
        j->batches = 0;
    }
    job_step(j);
}

static void job_step(stats_job *j)
{
    nt_status st;
    if (j->phase == PHASE_GWS) {
        const char *args[] = { "natter:gws", j->app, NULL };
        st = rt_eval(j->rt, GWS_LUA, 1, args, on_reply, j);
    } else {
        const char *args[] = { j->cursor,
                               j->phase == PHASE_USERS ? j->users_pattern : j->rooms_pattern,
                               STATS_SCAN_COUNT, j->phase == PHASE_USERS ? "online" : "live", NULL };
        st = rt_eval(j->rt, SCAN_LUA, 0, args, on_reply, j);
    }
    if (st != NT_OK) {
        nt_metric_add(j->rt->m.redis_rejected, 1);
        job_fail(j, "presence store unavailable");
    }
}

static void on_stats(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    rt_stats *s = arg;
    if (!msg->reply) {
        nt_metric_add(s->rt->m.bad_requests, 1);
        nt_warn("%s without a reply subject dropped", NT_SUBJ_RPC_ROUTER_STATS);
        return;
    }
    stats_job *j = nt_calloc(1, sizeof *j);
    j->rt = s->rt;
    nt_envr r;
    size_t alen = 0;
    const char *app = nt_envr_parse(&r, msg->data, msg->len) == NT_OK
                          ? nt_envr_str(&r, NT_KEY_APP, &alen) : NULL;
    if (app && nt_valid_id(app, alen))          /* an app's own API key: only its numbers */
        memcpy(j->app, app, alen);
    nt_envr_free(&r);
    snprintf(j->users_pattern, sizeof j->users_pattern, "natter:{%s}:online:*", j->app[0] ? j->app : "*");
    snprintf(j->rooms_pattern, sizeof j->rooms_pattern, "natter:{%s}:live:*", j->app[0] ? j->app : "*");
    j->reply = nt_strdup(msg->reply);
    j->gateways = json_array();
    j->phase = PHASE_GWS;
    job_step(j);
}

rt_stats *rt_stats_create(rt_router *rt)
{
    rt_stats *s = nt_calloc(1, sizeof *s);
    s->rt = rt;
    s->sub = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_STATS, NT_QUEUE_ROUTER, on_stats, s);
    if (!s->sub) {
        nt_free(s);
        return NULL;
    }
    return s;
}

void rt_stats_stop(rt_stats *s)
{
    if (!s)
        return;
    nt_bus_unsubscribe(s->sub);
    s->sub = NULL;
}

void rt_stats_destroy(rt_stats *s)
{
    nt_free(s);
}
