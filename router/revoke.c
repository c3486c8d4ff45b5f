/* revoke.c: revoked tokens in Redis (see revoke.h). */
#include "revoke.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "log.h"
#include "request.h"
#include "util.h"
#include "wire.h"

#define KEY_REVOKED "natter:revoked"
#define LIST_MAX "100000"         /* entries answered at most (the newest win) */

/* KEYS[1] natter:revoked; ARGV[1] member, ARGV[2] before, ARGV[3] cutoff. A later
 * revocation of the same user moves its mark forward, never back. */
static const char ADD_LUA[] =
    "local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')\n"
    "if tonumber(ARGV[2]) > old then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])\n"
    "return 1\n";

struct rt_revoke {
    rt_router *rt;
    int64_t max_lifetime_s;
    nt_bus_sub *ctl, *list;
};

static void on_revoke(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_USER, NULL };
    rt_revoke *v = arg;
    rt_id app, user;
    char *const outs[] = { app, user };
    char why[128], member[160], before_s[24], cutoff_s[24];
    nt_envr r;
    int64_t before;
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(v->rt->m.bad_requests, 1);
        nt_warn("%s: not an envelope", NT_SUBJ_CTL_REVOKE);
        return;
    }
    bool ok = rt_req_ids(&r, keys, outs, why, sizeof why) &&
              nt_envr_int(&r, NT_KEY_BEFORE, &before);
    nt_envr_free(&r);
    if (!ok || before <= 0) {
        nt_metric_add(v->rt->m.bad_requests, 1);
        nt_warn("%s: %s", NT_SUBJ_CTL_REVOKE,
                ok ? "field 'before' must be a positive integer" : why);
        return;
    }
    snprintf(member, sizeof member, "%s|%s", app, user);
    snprintf(before_s, sizeof before_s, "%" PRId64, before);
    snprintf(cutoff_s, sizeof cutoff_s, "%" PRId64, nt_now_ms() / 1000 - v->max_lifetime_s);
    const char *args[] = { KEY_REVOKED, member, before_s, cutoff_s, NULL };
    if (rt_eval(v->rt, ADD_LUA, 1, args, NULL, NULL) != NT_OK)
        nt_error("%s: cannot record the revocation of %s/%s: Redis unavailable",
                 NT_SUBJ_CTL_REVOKE, app, user);
    else
        nt_info("tokens of %s/%s issued up to %" PRId64 " are revoked", app, user, before);
}

typedef struct list_req {
    rt_router *rt;
    char *reply;
} list_req;

static void on_listed(nt_status st, const redisReply *reply, void *arg)
{
    list_req *q = arg;
    if (st != NT_OK || reply->type != REDIS_REPLY_ARRAY) {
        rt_reply_error(q->rt, q->reply, "unavailable", "Redis unavailable");
    } else {
        json_t *list = json_array();
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *m = reply->element[i], *s = reply->element[i + 1];
            if (m->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING)
                continue;
            const char *bar = memchr(m->str, '|', m->len);
            if (!bar)
                continue;
            json_array_append_new(list, json_pack("[s#,s#,I]", m->str, (int)(bar - m->str), bar + 1,
                                                  (int)(m->len - (size_t)(bar - m->str) - 1),
                                                  (json_int_t)strtoll(s->str, NULL, 10)));
        }
        char *js = json_dumps(list, JSON_COMPACT);
        if (js)
            rt_reply_json(q->rt, q->reply, js, strlen(js));
        else
            rt_reply_error(q->rt, q->reply, "internal", "cannot encode the revocations");
        nt_free(js);
        json_decref(list);
    }
    nt_free(q->reply);
    nt_free(q);
}

static void on_list(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    rt_revoke *v = arg;
    if (!msg->reply)
        return;
    char cutoff[24];
    snprintf(cutoff, sizeof cutoff, "%" PRId64, nt_now_ms() / 1000 - v->max_lifetime_s);
    const char *argv[] = { "ZREVRANGEBYSCORE", KEY_REVOKED, "+inf", cutoff, "WITHSCORES", "LIMIT", "0",
                           LIST_MAX };
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    list_req *q = nt_calloc(1, sizeof *q);
    q->rt = v->rt;
    q->reply = nt_strdup(msg->reply);
    if (rt_redis_command(v->rt->redis, on_listed, q, 8, argv, lens) != NT_OK) {
        rt_reply_error(v->rt, msg->reply, "unavailable", "Redis unavailable");
        nt_free(q->reply);
        nt_free(q);
    }
}

rt_revoke *rt_revoke_create(rt_router *rt, int64_t max_lifetime_s)
{
    rt_revoke *v = nt_calloc(1, sizeof *v);
    v->rt = rt;
    v->max_lifetime_s = max_lifetime_s;
    v->ctl = nt_bus_subscribe(rt->bus, NT_SUBJ_CTL_REVOKE, NT_QUEUE_ROUTER, on_revoke, v);
    v->list = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_REVOCATIONS, NT_QUEUE_ROUTER, on_list,
                               v);
    if (!v->ctl || !v->list) {
        rt_revoke_stop(v);
        nt_free(v);
        return NULL;
    }
    return v;
}

void rt_revoke_stop(rt_revoke *v)
{
    if (!v)
        return;
    nt_bus_unsubscribe(v->ctl);
    nt_bus_unsubscribe(v->list);
    v->ctl = v->list = NULL;
}

void rt_revoke_destroy(rt_revoke *v)
{
    rt_revoke_stop(v);
    nt_free(v);
}
