/* rpc_client.c: the request envelopes the gateway sends to the router and persister,
 * and the reading of their replies. */
#include "rpc_client.h"

#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "log.h"
#include "rpc.h"
#include "util.h"
#include "wire.h"

/* Sends the finished envelope w to subject and frees it. */
static nt_status send_env(const char *subject, nt_envw *w, nt_bus_reply_cb cb, void *arg,
                          uint64_t *id_out)
{
    size_t len;
    const char *data = nt_envw_finish(w, &len);
    nt_status st = nt_bus_request(gw->bus, subject, NULL, data, len,
                                  (int)gw->cfg.request_timeout_ms, cb, arg, id_out);
    nt_envw_free(w);
    return st;
}

/* Starts w with {app, room, user}: the envelope of a request about user in room. */
static void env_room_user(nt_envw *w, const char *app, const char *room, const char *user)
{
    nt_envw_init(w);
    nt_envw_cstr(w, "app", app);
    nt_envw_cstr(w, "room", room);
    nt_envw_cstr(w, "user", user);
}

static void env_who(nt_envw *w, const gw_rpc_who *who)
{
    nt_envw_cstr(w, "app", who->app);
    nt_envw_cstr(w, "user", who->user);
    nt_envw_cstr(w, "gw", gw->cfg.gw_id);
    nt_envw_cstr(w, "conn", who->conn);
}

bool gw_rpc_ok(nt_status st, const nt_bus_msg *msg, const char *service, nt_envr *r,
               gw_error *err)
{
    nt_rpc_result res;
    char why[96];
    memset(r, 0, sizeof *r);
    if (st == NT_ETIMEDOUT)
        return gw_fail(err, GW_E_UNAVAILABLE, "%s did not answer in time, retry", service);
    if (st != NT_OK)
        return gw_fail(err, GW_E_UNAVAILABLE, "%s unavailable, retry", service);
    if (nt_rpc_parse(&res, msg->data, msg->len, why, sizeof why) != NT_OK) {
        nt_rpc_result_free(&res);
        nt_warn("%s on %s: %s", service, msg->subject, why);
        return gw_fail(err, GW_E_INTERNAL, "malformed reply from %s", service);
    }
    *r = res.env;                       /* the caller reads the subject's own fields, then frees */
    if (res.ok)
        return true;
    gw_fail(err, gw_errcode_parse(res.code, res.code_len), "%.*s", (int)res.message_len,
            res.message ? res.message : "request refused");
    if (res.retry_after_ms > 0)
        err->retry_after_ms = res.retry_after_ms > UINT32_MAX ? UINT32_MAX
                                                              : (uint32_t)res.retry_after_ms;
    return false;
}

nt_status gw_rpc_history(const char *app, const char *room, const char *user,
                         const gw_history_req *h, nt_bus_reply_cb cb, void *arg,
                         uint64_t *id_out)
{
    nt_envw w;
    env_room_user(&w, app, room, user);
    if (h->before_seq >= 0)
        nt_envw_int(&w, "before_seq", h->before_seq);
    if (h->after_seq >= 0)
        nt_envw_int(&w, "after_seq", h->after_seq);
    nt_envw_int(&w, "limit", h->limit);
    return send_env(NT_SUBJ_RPC_PERSIST_HISTORY, &w, cb, arg, id_out);
}

void gw_rpc_room_id(const gw_create_req *cr, char room[65])
{
    if (cr->room_id)
        snprintf(room, 65, "%s", cr->room_id);
    else
        nt_uuid(room);
}

nt_status gw_rpc_create(const char *app, const char *owner, const char *room,
                        const gw_create_req *cr, nt_bus_reply_cb cb, void *arg,
                        uint64_t *id_out)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "room", room);
    if (cr->name)
        nt_envw_cstr(&w, "name", cr->name);
    nt_envw_cstr(&w, "visibility", cr->is_private ? "private" : "public");
    nt_envw_cstr(&w, "owner", owner);
    nt_envw_str_array(&w, "members", cr->members, cr->nmembers);
    if (cr->access_code)
        nt_envw_cstr(&w, "access_code", cr->access_code);
    return send_env(NT_SUBJ_RPC_PERSIST_CREATE, &w, cb, arg, id_out);
}

nt_status gw_rpc_mark(const char *app, const char *room, const char *user, bool delivered,
                      const gw_mark_req *m, nt_bus_reply_cb cb, void *arg, uint64_t *id_out)
{
    nt_envw w;
    env_room_user(&w, app, room, user);
    if (m->seq >= 0)
        nt_envw_int(&w, "seq", m->seq);
    else
        nt_envw_str_array(&w, "ids", m->ids, m->nids);
    return send_env(delivered ? NT_SUBJ_RPC_PERSIST_DELIVERED : NT_SUBJ_RPC_PERSIST_READ, &w,
                    cb, arg, id_out);
}

nt_status gw_rpc_user_query(const char *app, const char *user, bool rooms, nt_bus_reply_cb cb,
                            void *arg, uint64_t *id_out)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "user", user);
    return send_env(rooms ? NT_SUBJ_RPC_PERSIST_ROOMS : NT_SUBJ_RPC_PERSIST_UNREAD, &w, cb,
                    arg, id_out);
}

nt_status gw_rpc_router_query(const char *subject, const char *app, const char *key,
                              const char *id, const char *asker, nt_bus_reply_cb cb, void *arg,
                              uint64_t *id_out)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, key, id);
    if (asker)
        nt_envw_cstr(&w, "user", asker);
    return send_env(subject, &w, cb, arg, id_out);
}

nt_status gw_rpc_join(const gw_rpc_who *who, const char *name, const char *room,
                      const char *access_code, nt_bus_reply_cb cb, void *arg)
{
    nt_envw w;
    nt_envw_init(&w);
    env_who(&w, who);
    nt_envw_cstr(&w, "room", room);
    nt_envw_cstr(&w, "name", name);
    if (access_code)
        nt_envw_cstr(&w, "access_code", access_code);
    return send_env(NT_SUBJ_RPC_ROUTER_JOIN, &w, cb, arg, NULL);
}

nt_status gw_rpc_leave(const gw_rpc_who *who, const char *room, nt_bus_reply_cb cb, void *arg)
{
    nt_envw w;
    nt_envw_init(&w);
    env_who(&w, who);
    nt_envw_cstr(&w, "room", room);
    return send_env(NT_SUBJ_RPC_ROUTER_LEAVE, &w, cb, arg, NULL);
}

nt_status gw_rpc_lookup(const char *app, const char *sender, const char *cmid, int64_t digest,
                        nt_bus_reply_cb cb, void *arg)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "sender", sender);
    nt_envw_cstr(&w, "cmid", cmid);
    nt_envw_int(&w, NT_KEY_DIGEST, digest);
    return send_env(NT_SUBJ_RPC_PERSIST_LOOKUP, &w, cb, arg, NULL);
}

nt_status gw_rpc_dm(const char *app, const char *room, const char *user, const char *peer,
                    nt_bus_reply_cb cb, void *arg)
{
    nt_envw w;
    env_room_user(&w, app, room, user);
    nt_envw_cstr(&w, "peer", peer);
    return send_env(NT_SUBJ_RPC_PERSIST_DM, &w, cb, arg, NULL);
}

nt_status gw_rpc_member(const char *app, const char *room, const char *user, const char *actor,
                        bool admin, bool remove, nt_bus_reply_cb cb, void *arg,
                        uint64_t *id_out)
{
    nt_envw w;
    env_room_user(&w, app, room, user);
    nt_envw_cstr(&w, "actor", actor);
    nt_envw_bool(&w, "admin", admin);
    return send_env(remove ? NT_SUBJ_RPC_PERSIST_MEMBER_REMOVE : NT_SUBJ_RPC_PERSIST_MEMBER_ADD,
                    &w, cb, arg, id_out);
}

nt_status gw_rpc_stats(const char *app, nt_bus_reply_cb cb, void *arg, uint64_t *id_out)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "what", "stats");
    if (app && app[0])
        nt_envw_cstr(&w, "app", app);
    return send_env(NT_SUBJ_RPC_ROUTER_STATS, &w, cb, arg, id_out);
}
