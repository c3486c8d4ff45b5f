/* membership.c: the rooms a connection joins, leaves and creates. Bus replies find their
 * connection again by id, so a reply that arrives after its connection closed is
 * dropped (and a join it answered is undone). */
#include "membership.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "log.h"
#include "presence.h"
#include "recovery.h"
#include "ratelimit.h"
#include "reply.h"
#include "rooms.h"
#include "rpc_client.h"
#include "util.h"
#include "wire.h"

typedef struct member_req {             /* context of one join, leave or create */
    char conn[17];                      /* connection id, looked up on reply */
    json_t *ref;
    gw_room *room;                      /* join: the interest reference it holds */
    int64_t since_seq;                  /* join: recover after this seq; -1: no recovery */
    char app[65], user[65];             /* join: who joins (to undo it when the connection is gone) */
    char room_id[65];                   /* create: the room's id */
} member_req;

static member_req *req_new(gw_conn *c, const json_t *ref)
{
    member_req *q = nt_calloc(1, sizeof *q);
    memcpy(q->conn, c->id, sizeof q->conn);
    q->ref = ref ? json_incref((json_t *)ref) : NULL;
    return q;
}

static void req_free(member_req *q)
{
    json_decref(q->ref);
    nt_free(q);
}

static gw_rpc_who who_of(const gw_conn *c)
{
    return (gw_rpc_who){ .app = c->user->app, .user = c->user->id, .conn = c->id };
}

/* natter.ctl.live unsub of room for a connection that may be gone already. */
static void publish_unsub(const char *app, const char *user, const char *conn, const char *room)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "unsub");
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "user", user);
    nt_envw_cstr(&w, "gw", gw->cfg.gw_id);
    nt_envw_cstr(&w, "conn", conn);
    nt_envw_cstr(&w, "room", room);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(gw->bus, NT_SUBJ_CTL_LIVE, NULL, data, len) != NT_OK)
        nt_warn("cannot publish natter.ctl.live unsub of %s for connection %s", room, conn);
    nt_envw_free(&w);
}

void gw_membership_publish_ctl(const char *subject, const char *type, const gw_conn *c,
                               const char *room)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", type);
    nt_envw_cstr(&w, "app", c->user->app);
    nt_envw_cstr(&w, "user", c->user->id);
    nt_envw_cstr(&w, "gw", gw->cfg.gw_id);
    nt_envw_cstr(&w, "conn", c->id);
    if (room)
        nt_envw_cstr(&w, "room", room);
    else
        nt_envw_cstr(&w, "name", c->user->name);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(gw->bus, subject, NULL, data, len) != NT_OK)
        nt_warn("cannot publish %s %s for connection %s", subject, type, c->id);
    nt_envw_free(&w);
}

bool gw_membership_stop(gw_conn *c, const char *room)
{
    gw_member *m = gw_member_find(c, room);
    if (!m)
        return false;
    gw_presence_typing_stop(c, room);
    gw_member_remove(c, m);
    c->nrooms--;
    gw_membership_publish_ctl(NT_SUBJ_CTL_LIVE, "unsub", c, room);
    return true;
}

void gw_membership_revoked(gw_user *u, const nt_envr *r)
{
    size_t rlen, jlen;
    const char *room = nt_envr_str(r, "room", &rlen);
    const char *json = nt_envr_str(r, "json", &jlen);
    char id[65];
    if (!room || !json || !nt_valid_id(room, rlen))
        return;
    memcpy(id, room, rlen);
    id[rlen] = '\0';
    for (gw_conn *c = gw_user_conns(u, NULL); c; c = gw_user_conns(u, c))
        if (gw_membership_stop(c, id))
            gw_reply_native(c, json, jlen);
}

void gw_membership_conn_closed(gw_conn *c)
{
    /* The router keeps live membership per connection: end each one. */
    for (gw_member *m = c->rooms; m; m = m->cnext) {
        gw_presence_typing_stop(c, m->room->id);
        gw_membership_publish_ctl(NT_SUBJ_CTL_LIVE, "unsub", c, m->room->id);
    }
}

/* ---- subscribe ---- */

static void stop_after_recovery(gw_conn *c, const char *room)
{
    gw_membership_stop(c, room);
}

static void on_join(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    member_req *q = arg;
    gw_conn *c = gw_conn_find(q->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "router", &r, &err);
    gw_limit_req_end(c);
    /* The router records the live membership before it answers: a join whose
     * connection closed meanwhile, or whose answer never came, is undone, or the
     * room would list a ghost. (A close removes only memberships it knows of.) */
    if (!c || st == NT_ETIMEDOUT)
        publish_unsub(q->app, q->user, q->conn, q->room->id);
    if (!c) {
        gw_room_release(q->room);
    } else if (!ok) {
        c->nrooms--;
        gw_room_release(q->room);
        if (err.retry_after_ms)           /* rate_limited by the router (access codes) */
            gw_reply_error_retry(c, q->ref, err.code, err.message, err.retry_after_ms);
        else
            gw_reply_fail(c, q->ref, &err);
    } else {
        int64_t last_seq = 0, last_read = 0, unread = 0;
        nt_envr_int(&r, "last_seq", &last_seq);
        nt_envr_int(&r, "last_read_seq", &last_read);
        nt_envr_int(&r, "unread", &unread);
        if (gw_member_find(c, q->room->id)) {   /* subscribed meanwhile: idempotent */
            c->nrooms--;
            gw_room_release(q->room);
        } else {
            gw_member_add(c, q->room);
            if (q->since_seq >= 0) {
                gw_recovery_begin(c, gw_member_find(c, q->room->id), q->ref, q->since_seq,
                                  last_seq, last_read, unread, stop_after_recovery);
                nt_envr_free(&r);
                req_free(q);
                return;
            }
        }
        gw_reply_ack_obj(c, q->ref, json_pack("{s:s,s:I,s:I,s:I,s:b}", "room_id", q->room->id,
                                              "last_seq", (json_int_t)last_seq, "last_read_seq",
                                              (json_int_t)last_read, "unread", (json_int_t)unread,
                                              "recovered", 0));
    }
    nt_envr_free(&r);
    req_free(q);
}

void gw_membership_subscribe(gw_conn *c, const json_t *ref, const char *room,
                             const char *access_code, int64_t since_seq)
{
    gw_error err;
    if (!gw_limit_admit(c, ref, GW_L_CONN_SUBSCRIBES, GW_L_USER_SUBSCRIBES))
        return;
    if (!gw_member_find(c, room) && c->nrooms >= gw->cfg.max_rooms_per_conn) {
        gw_fail(&err, GW_E_RATE_LIMITED, "this connection is in %u rooms; the limit is %u",
                c->nrooms, gw->cfg.max_rooms_per_conn);
        return gw_reply_fail(c, ref, &err);
    }
    if (!gw_limit_req_begin(c, ref))
        return;
    /* local interest first, so no event published after the join is missed */
    gw_room *r = gw_room_acquire(c->user->app, room);
    if (!r) {
        gw_limit_req_end(c);
        gw_fail(&err, GW_E_UNAVAILABLE, "cannot subscribe to room %s now, retry", room);
        return gw_reply_fail(c, ref, &err);
    }
    member_req *q = req_new(c, ref);
    q->room = r;
    q->since_seq = since_seq;
    snprintf(q->app, sizeof q->app, "%s", c->user->app);
    snprintf(q->user, sizeof q->user, "%s", c->user->id);
    gw_rpc_who who = who_of(c);
    if (gw_rpc_join(&who, c->user->name, room, access_code, on_join, q) != NT_OK) {
        req_free(q);
        gw_room_release(r);
        gw_limit_req_end(c);
        gw_fail(&err, GW_E_UNAVAILABLE, "router unavailable, retry");
        return gw_reply_fail(c, ref, &err);
    }
    c->nrooms++;
}

/* ---- unsubscribe / leave ---- */

void gw_membership_unsubscribe(gw_conn *c, const json_t *ref, const char *room)
{
    gw_membership_stop(c, room);
    gw_reply_ack(c, ref, "{}", 2);
}

static void on_leave(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    member_req *q = arg;
    gw_conn *c = gw_conn_find(q->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "router", &r, &err);
    if (c && ok)
        gw_reply_ack(c, q->ref, "{}", 2);
    else if (c)
        gw_reply_fail(c, q->ref, &err);
    nt_envr_free(&r);
    req_free(q);
}

void gw_membership_leave(gw_conn *c, const json_t *ref, const char *room)
{
    gw_error err;
    gw_membership_stop(c, room);
    member_req *q = req_new(c, ref);
    gw_rpc_who who = who_of(c);
    if (gw_rpc_leave(&who, room, on_leave, q) != NT_OK) {
        req_free(q);
        gw_fail(&err, GW_E_UNAVAILABLE, "router unavailable, retry");
        gw_reply_fail(c, ref, &err);
    }
}

/* ---- create_room ---- */

static void on_create(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    member_req *q = arg;
    gw_conn *c = gw_conn_find(q->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    gw_limit_req_end(c);
    if (c && ok)
        gw_reply_ack_obj(c, q->ref, json_pack("{s:s}", "room_id", q->room_id));
    else if (c)
        gw_reply_fail(c, q->ref, &err);
    nt_envr_free(&r);
    req_free(q);
}

void gw_membership_create(gw_conn *c, const json_t *ref, const gw_create_req *cr)
{
    gw_error err;
    if (!gw_limit_admit_user(c, ref, GW_L_USER_CREATE_ROOMS) || !gw_limit_req_begin(c, ref))
        return;
    member_req *q = req_new(c, ref);
    gw_rpc_room_id(cr, q->room_id);
    if (gw_rpc_create(c->user->app, c->user->id, q->room_id, cr, on_create, q, NULL) != NT_OK) {
        gw_limit_req_end(c);
        req_free(q);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry");
        gw_reply_fail(c, ref, &err);
    }
}
