/* rooms.c: room joins and leaves (decided with the persister) and live room membership in Redis.
 *
 * Live membership of one connection is the member "<app>|<room>|<user>|<conn>"
 * of natter:gw:<gw>:subs; natter:{<app>}:live:<room> counts, per user, that
 * user's members. Both change together in one script and only when the set
 * changed, so a repeated sub or unsub counts once and a gateway sweep
 * (presence.c) can undo exactly what the set holds.
 *
 * A join that carries an access code is first admitted by access_code.c. A refused
 * one goes to the persister without its code, so a member still joins and the code
 * is never checked; the persister's refusal then becomes rate_limited. */
#include "rooms.h"

#include <stdio.h>
#include <string.h>

#include "access_code.h"
#include "alloc.h"
#include "envelope.h"
#include "list.h"
#include "log.h"
#include "request.h"
#include "rpc.h"
#include "user_status.h"
#include "wire.h"


#define KEY_MAX 256

/* KEYS[1] natter:gw:<gw>:subs, KEYS[2] natter:{<app>}:live:<room>,
 * KEYS[3] natter:{<app>}:urooms:<user>; ARGV[1] member, ARGV[2] user, ARGV[3] room,
 * ARGV[4] app. urooms (the rooms a user is live in, for presence events) follows
 * the live count. When the user just became live in the room, returns rec()
 * (user_status.h) naming only this room, with only its live size (rec() lists every
 * live room of the user: sizes must match rooms, or the reply is refused and the room
 * hears nothing), so the room hears the user is here. */
static const char LIVE_ADD_LUA[] =
    RT_USER_STATUS_REC_LUA
    "if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then\n"
    "  local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)\n"
    "  redis.call('SADD', KEYS[3], ARGV[3])\n"
    "  if n == 1 then\n"
    "    local r = rec(ARGV[4], ARGV[2])\n"
    "    r[9] = {ARGV[3]}\n"
    "    r[10] = {redis.call('HLEN', KEYS[2])}\n"
    "    return r\n"
    "  end\n"
    "  return n\n"
    "end\n"
    "return 0\n";

static const char LIVE_DEL_LUA[] =
    "if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then\n"
    "  local n = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)\n"
    "  if n <= 0 then\n"
    "    redis.call('HDEL', KEYS[2], ARGV[2])\n"
    "    redis.call('SREM', KEYS[3], ARGV[3])\n"
    "  end\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

typedef struct rpc_call rpc_call;

typedef enum code_state {
    CODE_NONE,                    /* no access code (or settled): no limit applies */
    CODE_CHECKED,                 /* admitted: settled on the persister's answer */
    CODE_WITHHELD,                /* refused by a limit: the persister is asked without it */
} code_state;

struct rt_rooms {
    rt_router *rt;
    nt_bus_sub *join_sub;
    nt_bus_sub *leave_sub;
    nt_bus_sub *live_sub;
    nt_list calls;                /* rpc_call.node: unanswered join/leave calls */
    size_t ncalls;
};

struct rpc_call {
    rt_rooms *rooms;
    nt_list node;                 /* in rooms->calls */
    bool join;                    /* join, else leave */
    bool at_persister;            /* request `req_id` is still in the bus table */
    uint64_t req_id;
    char *reply;                  /* the gateway's reply subject */
    rt_id app, room, user, gw, conn;
    char *resp;                   /* persister reply kept while Redis records the change */
    size_t resp_len;
    char *name, *code;            /* join: the request's name and access_code, or NULL */
    size_t name_len, code_len;
    code_state code_state;
    rt_access_code_verdict verdict; /* CODE_WITHHELD: the refusal */
};

/* Sends the live add/remove script for one connection's subscription. */
static nt_status live_change(rt_router *rt, bool add, const char *app, const char *room,
                             const char *user, const char *gw, const char *conn,
                             rt_redis_cb cb, void *arg)
{
    char subs[KEY_MAX], live[KEY_MAX], urooms[KEY_MAX], member[KEY_MAX];

    snprintf(subs, sizeof(subs), "natter:gw:%s:subs", gw);
    snprintf(live, sizeof(live), "natter:{%s}:live:%s", app, room);
    snprintf(urooms, sizeof(urooms), "natter:{%s}:urooms:%s", app, user);
    snprintf(member, sizeof(member), "%s|%s|%s|%s", app, room, user, conn);
    const char *args[] = { subs, live, urooms, member, user, room, app, NULL };
    return rt_eval(rt, add ? LIVE_ADD_LUA : LIVE_DEL_LUA, 3, args, cb, arg);
}

/* ---- join / leave calls ---- */

/* A copy of the string field `key` of r (length in *len), or NULL when absent. */
static char *field_copy(const nt_envr *r, const char *key, size_t *len)
{
    const char *s = nt_envr_str(r, key, len);
    if (!s)
        return NULL;
    char *out = nt_malloc(*len + 1);
    memcpy(out, s, *len);
    out[*len] = '\0';
    return out;
}

static rpc_call *call_create(rt_rooms *rooms, bool join, const char *reply,
                             char *const ids[5], const nt_envr *r)
{
    rpc_call *c = nt_calloc(1, sizeof(*c));
    if (join) {
        c->name = field_copy(r, "name", &c->name_len);
        c->code = field_copy(r, "access_code", &c->code_len);
    }
    c->rooms = rooms;
    c->join = join;
    c->reply = nt_strdup(reply);
    memcpy(c->app, ids[0], sizeof(rt_id));
    memcpy(c->room, ids[1], sizeof(rt_id));
    memcpy(c->user, ids[2], sizeof(rt_id));
    memcpy(c->gw, ids[3], sizeof(rt_id));
    memcpy(c->conn, ids[4], sizeof(rt_id));
    nt_list_insert_head(&rooms->calls, &c->node);
    rooms->ncalls++;
    return c;
}

static void call_finish(rpc_call *c)
{
    rt_rooms *rooms = c->rooms;

    nt_list_remove(&c->node);
    rooms->ncalls--;
    nt_free(c->reply);
    nt_free(c->resp);
    nt_free(c->name);
    nt_free(c->code);
    nt_free(c);
}

/* Ends the access-code attempt of c, once, when one was admitted. */
static void settle_code(rpc_call *c, rt_access_code_outcome outcome)
{
    if (c->code_state != CODE_CHECKED)
        return;
    c->code_state = CODE_NONE;
    rt_access_code_settle(c->rooms->rt, c->app, c->room, c->user, outcome);
}

static const char *call_name(const rpc_call *c)
{
    return c->join ? "join" : "leave";
}

static void on_live_recorded(nt_status st, const redisReply *reply, void *arg)
{
    rpc_call *c = arg;
    rt_router *rt = c->rooms->rt;

    if (st != NT_OK)
        nt_warn("%s of %s/%s by %s (conn %s on %s): live membership not updated: %s",
                call_name(c), c->app, c->room, c->user, c->conn, c->gw, nt_status_text(st));
    else if (reply && reply->type == REDIS_REPLY_ARRAY)
        rt_user_status_publish(rt, reply, false);
    rt_reply_raw(rt, c->reply, c->resp, c->resp_len);
    call_finish(c);
}

/* The persister decided. Its reply goes back unchanged; when it granted the
 * change, Redis records it first. A Redis failure at that point is logged and
 * does not turn the durable decision into an error. */
static void on_persister_reply(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    rpc_call *c = arg;
    rt_router *rt = c->rooms->rt;
    nt_rpc_result res;
    char bad[96];

    c->at_persister = false;
    if (st != NT_OK) {
        nt_warn("%s of %s/%s by %s: persister %s", call_name(c), c->app, c->room, c->user,
                nt_status_text(st));
        settle_code(c, RT_CODE_UNDECIDED);
        rt_reply_error(rt, c->reply, "unavailable", "persister unavailable");
        call_finish(c);
        return;
    }
    st = nt_rpc_parse(&res, msg->data, msg->len, bad, sizeof bad);
    bool ok = st == NT_OK && res.ok;
    bool forbidden = !ok && nt_rpc_code_is(&res, "forbidden");
    bool wrong = forbidden && nt_rpc_message_is(&res, RT_ACCESS_CODE_WRONG);
    nt_rpc_result_free(&res);
    if (st != NT_OK) {
        nt_error("%s of %s/%s by %s: persister reply: %s", call_name(c), c->app, c->room,
                 c->user, bad);
        settle_code(c, RT_CODE_UNDECIDED);
        rt_reply_error(rt, c->reply, "internal", "malformed reply from the persister");
        call_finish(c);
        return;
    }
    if (!ok) {
        if (wrong && c->code_state == CODE_CHECKED)
            nt_metric_add(rt->m.code_failures, 1);
        settle_code(c, wrong ? RT_CODE_WRONG : RT_CODE_UNDECIDED);
        if (forbidden && c->code_state == CODE_WITHHELD) {
            char why[256];
            rt_access_code_message(rt, &c->verdict, c->room, why, sizeof why);
            nt_metric_add(rt->m.code_locked, 1);
            rt_reply_error_retry(rt, c->reply, "rate_limited", why, c->verdict.retry_ms);
        } else {
            rt_reply_raw(rt, c->reply, msg->data, msg->len);
        }
        call_finish(c);
        return;
    }
    settle_code(c, RT_CODE_RIGHT);

    nt_metric_add(c->join ? rt->m.joins : rt->m.leaves, 1);
    c->resp = nt_malloc(msg->len ? msg->len : 1);
    memcpy(c->resp, msg->data, msg->len);
    c->resp_len = msg->len;
    st = live_change(rt, c->join, c->app, c->room, c->user, c->gw, c->conn, on_live_recorded, c);
    if (st != NT_OK)
        on_live_recorded(st, NULL, c);
}

/* Forwards the call to the persister (natter.rpc.persist.join or .leave); the
 * access code only when no limit withheld it. */
static nt_status ask_persister(rt_router *rt, rpc_call *c)
{
    nt_envw w;
    size_t len;

    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_APP, c->app);
    nt_envw_cstr(&w, NT_KEY_ROOM, c->room);
    nt_envw_cstr(&w, NT_KEY_USER, c->user);
    if (c->name)
        nt_envw_str(&w, NT_KEY_NAME, c->name, c->name_len);
    if (c->code && c->code_state != CODE_WITHHELD)
        nt_envw_str(&w, NT_KEY_ACCESS_CODE, c->code, c->code_len);
    const char *data = nt_envw_finish(&w, &len);
    nt_status st = nt_bus_request(rt->bus,
                                  c->join ? NT_SUBJ_RPC_PERSIST_JOIN : NT_SUBJ_RPC_PERSIST_LEAVE,
                                  NULL, data, len, rt->request_timeout_ms, on_persister_reply,
                                  c, &c->req_id);
    nt_envw_free(&w);
    c->at_persister = st == NT_OK;
    return st;
}

/* Asks the persister; when that fails, answers unavailable and forgets c. */
static void forward(rpc_call *c)
{
    rt_router *rt = c->rooms->rt;
    nt_status st = ask_persister(rt, c);

    if (st != NT_OK) {
        nt_warn("%s of %s/%s by %s: cannot ask the persister: %s", call_name(c), c->app,
                c->room, c->user, nt_status_text(st));
        settle_code(c, RT_CODE_UNDECIDED);
        rt_reply_error(rt, c->reply, "unavailable", "persister unavailable");
        call_finish(c);
    }
}

static void on_code_verdict(nt_status st, const rt_access_code_verdict *v, void *arg)
{
    rpc_call *c = arg;
    rt_router *rt = c->rooms->rt;

    if (st != NT_OK) {
        nt_warn("join of %s/%s by %s: access-code limits not checked: %s", c->app, c->room,
                c->user, nt_status_text(st));
        rt_reply_error(rt, c->reply, "unavailable", "presence store unavailable");
        call_finish(c);
        return;
    }
    if (v->limit == RT_CODE_ADMITTED) {
        c->code_state = CODE_CHECKED;
    } else {
        c->code_state = CODE_WITHHELD;
        c->verdict = *v;
    }
    forward(c);
}

/* Common front half of join and leave: validate, check Redis, ask the persister
 * (a join with an access code after its limits: on_code_verdict). */
static void handle_call(rt_rooms *rooms, const nt_bus_msg *msg, bool join)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_ROOM, NT_KEY_USER, NT_KEY_GW,
                                        NT_KEY_CONN, NULL };
    rt_router *rt = rooms->rt;
    const char *name = join ? NT_SUBJ_RPC_ROUTER_JOIN : NT_SUBJ_RPC_ROUTER_LEAVE;
    rt_id app, room, user, gw, conn;
    char *const ids[] = { app, room, user, gw, conn };
    char why[128];
    nt_envr r;

    if (!msg->reply) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s without a reply subject dropped", name);
        return;
    }
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        rt_reply_error(rt, msg->reply, "bad_request", "request is not an envelope");
        return;
    }
    if (!rt_req_ids(&r, keys, ids, why, sizeof(why))) {
        nt_envr_free(&r);
        nt_metric_add(rt->m.bad_requests, 1);
        rt_reply_error(rt, msg->reply, "bad_request", why);
        return;
    }
    if (!rt_redis_available(rt->redis)) {
        nt_envr_free(&r);
        nt_metric_add(rt->m.redis_rejected, 1);
        rt_reply_error(rt, msg->reply, "unavailable", "presence store unavailable");
        return;
    }

    rpc_call *c = call_create(rooms, join, msg->reply, ids, &r);
    nt_envr_free(&r);
    if (!c->code)
        return forward(c);
    nt_status st = rt_access_code_admit(rt, app, room, user, on_code_verdict, c);
    if (st != NT_OK) {
        nt_warn("%s of %s/%s by %s: access-code limits not checked: %s", name, app, room, user,
                nt_status_text(st));
        rt_reply_error(rt, c->reply, "unavailable", "presence store unavailable");
        call_finish(c);
    }
}

static void on_join(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    handle_call(arg, msg, true);
}

static void on_leave(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    handle_call(arg, msg, false);
}

/* ---- natter.ctl.live ---- */

static void on_live_done(nt_status st, const redisReply *reply, void *arg)
{
    if (st == NT_OK && reply->type == REDIS_REPLY_ARRAY)
        rt_user_status_publish(arg, reply, false);
}

static void on_live(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    static const char *const keys[] = { NT_KEY_APP, NT_KEY_ROOM, NT_KEY_USER, NT_KEY_GW,
                                        NT_KEY_CONN, NULL };
    rt_rooms *rooms = arg;
    rt_router *rt = rooms->rt;
    rt_id app, room, user, gw, conn;
    char *const outs[] = { app, room, user, gw, conn };
    char why[128];
    nt_envr r;
    bool add;

    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: not an envelope", NT_SUBJ_CTL_LIVE);
        return;
    }
    add = nt_envr_str_eq(&r, NT_KEY_TYPE, NT_TYPE_SUB);
    bool known = add || nt_envr_str_eq(&r, NT_KEY_TYPE, NT_TYPE_UNSUB);
    bool valid = known && rt_req_ids(&r, keys, outs, why, sizeof(why));
    nt_envr_free(&r);
    if (!valid) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s: %s", NT_SUBJ_CTL_LIVE, known ? why : "type must be sub or unsub");
        return;
    }
    nt_status st = live_change(rt, add, app, room, user, gw, conn, on_live_done, rt);
    if (st != NT_OK)
        nt_warn("%s: %s of %s/%s by %s dropped: %s", NT_SUBJ_CTL_LIVE, add ? "sub" : "unsub",
                app, room, user, nt_status_text(st));
}

/* ---- life cycle ---- */

rt_rooms *rt_rooms_create(rt_router *rt)
{
    rt_rooms *rooms = nt_calloc(1, sizeof(*rooms));

    nt_list_init(&rooms->calls);
    rooms->rt = rt;
    rooms->join_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_JOIN, NT_QUEUE_ROUTER,
                                       on_join, rooms);
    rooms->leave_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_RPC_ROUTER_LEAVE, NT_QUEUE_ROUTER,
                                        on_leave, rooms);
    rooms->live_sub = nt_bus_subscribe(rt->bus, NT_SUBJ_CTL_LIVE, NT_QUEUE_ROUTER, on_live, rooms);
    if (!rooms->join_sub || !rooms->leave_sub || !rooms->live_sub) {
        rt_rooms_unsubscribe(rooms);
        nt_free(rooms);
        return NULL;
    }
    return rooms;
}

void rt_rooms_unsubscribe(rt_rooms *rooms)
{
    nt_bus_unsubscribe(rooms->join_sub);
    nt_bus_unsubscribe(rooms->leave_sub);
    nt_bus_unsubscribe(rooms->live_sub);
    rooms->join_sub = rooms->leave_sub = rooms->live_sub = NULL;
}

size_t rt_rooms_pending(const rt_rooms *rooms)
{
    return rooms->ncalls;
}

void rt_rooms_abort(rt_rooms *rooms)
{
    nt_list *n, *tmp;

    nt_list_foreach_safe(n, tmp, &rooms->calls) {
        rpc_call *c = nt_list_entry(n, rpc_call, node);
        if (c->at_persister) {
            nt_bus_request_cancel(rooms->rt->bus, c->req_id);
            rt_reply_error(rooms->rt, c->reply, "unavailable", "router shutting down");
            call_finish(c);
        }
    }
}

void rt_rooms_destroy(rt_rooms *rooms)
{
    if (!rooms)
        return;
    nt_list *n;
    while ((n = nt_list_first(&rooms->calls)) != NULL)
        call_finish(nt_list_entry(n, rpc_call, node));
    nt_free(rooms);
}
