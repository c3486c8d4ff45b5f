/* native.c: the native dialect: a client frame ({action, channel, data, ref}) becomes a
 * core command through one table; the core's answers are written by frame.c's encoders. */
#include "native.h"

#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "gw.h"
#include "history.h"
#include "membership.h"
#include "presence.h"
#include "receipts.h"
#include "ratelimit.h"
#include "reply.h"
#include "rooms.h"
#include "rpc_client.h"
#include "sends.h"
#include "session.h"
#include "util.h"

typedef void (*native_fn)(gw_conn *c, const gw_frame *f);

/* One row per action: its handler, whether it needs an authenticated connection, and
 * whether it needs a room channel (checked before the handler runs). */
typedef struct native_action {
    native_fn fn;
    bool needs_auth;
    bool needs_room;
} native_action;

static void act_auth(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    const char *token;
    size_t len;
    if (c->user) {
        gw_reply_error(c, f->ref, GW_E_BAD_REQUEST, "already authenticated");
    } else if (!gw_auth_token(f, &token, &len, &err)) {
        gw_reply_fail(c, f->ref, &err);
        gw_conn_close(c, 4001);
    } else {
        gw_session_authenticate(c, token, len, f->ref);
    }
}

static void act_ping(gw_conn *c, const gw_frame *f)
{
    gw_conn_send(c, "{\"event\":\"pong\"}", 16);
    gw_reply_ack(c, f->ref, "{}", 2);
}

static void act_subscribe(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    const char *access_code;
    int64_t since_seq;
    bool recover;
    if (!gw_data_str(f->data, "access_code", 128, &access_code, &err) ||
        !gw_since_seq_parse(f->data, &since_seq, &recover, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_membership_subscribe(c, f->ref, f->channel.id, access_code, recover ? since_seq : -1);
}

static void act_unsubscribe(gw_conn *c, const gw_frame *f)
{
    gw_membership_unsubscribe(c, f->ref, f->channel.id);
}

static void act_leave(gw_conn *c, const gw_frame *f)
{
    gw_membership_leave(c, f->ref, f->channel.id);
}

/* need_sub: the connection must be subscribed (not for a dm send). */
static void send_message(gw_conn *c, const gw_frame *f, bool need_sub)
{
    gw_error err;
    gw_send_req s;
    if (!gw_send_parse(f->data, gw->cfg.max_message_chars, &s, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_sends_send(c, f->ref, f->channel.id, &s, need_sub);
}

static void act_send(gw_conn *c, const gw_frame *f)
{
    send_message(c, f, true);
}

static void act_history(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    gw_history_req h;
    if (!gw_history_parse(f->data, &h, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_history_fetch(c, f->ref, f->channel.id, &h);
}

static void act_typing(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    bool on;
    if (!gw_typing_parse(f->data, &on, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_presence_typing(c, f->ref, f->channel.id, on);
}

static void act_presence(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    gw_presence_req p;
    if (!gw_presence_parse(f->data, &p, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_presence_set(c, f->ref, &p);
}

static void act_online_users(gw_conn *c, const gw_frame *f)
{
    gw_presence_online_users(c, f->ref, f->channel.id);
}

static void mark(gw_conn *c, const gw_frame *f, bool delivered)
{
    gw_error err;
    gw_mark_req m;
    if (!gw_mark_parse(f->data, !delivered, "data.", &m, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_receipts_mark(c, f->ref, f->channel.id, delivered, &m);
}

static void act_read(gw_conn *c, const gw_frame *f)
{
    mark(c, f, false);
}

static void act_delivered(gw_conn *c, const gw_frame *f)
{
    mark(c, f, true);
}

static void act_create_room(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    gw_create_req *cr = nt_malloc(sizeof *cr);
    if (gw_create_parse(f->data, cr, &err))
        gw_membership_create(c, f->ref, cr);
    else
        gw_reply_fail(c, f->ref, &err);
    nt_free(cr);
}

static void act_refresh(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    const char *token;
    size_t len;
    if (!gw_auth_token(f, &token, &len, &err))
        return gw_reply_fail(c, f->ref, &err);
    gw_session_refresh(c, f->ref, token, len);
}

static const native_action actions[GW_A_COUNT] = {
    [GW_A_AUTH] = { act_auth, false, false },
    [GW_A_PING] = { act_ping, false, false },
    [GW_A_SUBSCRIBE] = { act_subscribe, true, true },
    [GW_A_UNSUBSCRIBE] = { act_unsubscribe, true, true },
    [GW_A_LEAVE] = { act_leave, true, true },
    [GW_A_SEND_MESSAGE] = { act_send, true, true },
    [GW_A_HISTORY] = { act_history, true, true },
    [GW_A_TYPING] = { act_typing, true, true },
    [GW_A_PRESENCE] = { act_presence, true, false },
    [GW_A_ONLINE_USERS] = { act_online_users, true, true },
    [GW_A_READ] = { act_read, true, true },
    [GW_A_DELIVERED] = { act_delivered, true, true },
    [GW_A_CREATE_ROOM] = { act_create_room, true, false },
    [GW_A_REFRESH] = { act_refresh, true, false },
};

static void dispatch(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    const native_action *a = &actions[f->action];
    if (a->needs_room && !gw_frame_need_room(f, &err))
        return gw_reply_fail(c, f->ref, &err);
    a->fn(c, f);
}

/* ---- direct messages ----
 * dm.<user> is the room gw_dm_room_id(app, me, user). subscribe and send_message
 * on it first ask the persister to find or create that room with both users as
 * members (natter.rpc.persist.dm), then go on as for any room; a dm send needs
 * no subscribe. Other actions use the room directly. */

typedef struct dm_req {
    char conn[17];
    gw_frame f;                         /* its channel already the dm room; holds a root reference */
} dm_req;

static void on_dm(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    dm_req *d = arg;
    gw_conn *c = gw_conn_find(d->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    gw_limit_req_end(c);
    if (c && !ok)
        gw_reply_fail(c, d->f.ref, &err);
    else if (c && d->f.action == GW_A_SUBSCRIBE)
        act_subscribe(c, &d->f);
    else if (c)
        send_message(c, &d->f, false);
    nt_envr_free(&r);
    gw_frame_free(&d->f);
    nt_free(d);
}

/* Turns a dm.<user> channel of f into its room. True when f was answered or
 * handed on here (nothing more to do), false when the action proceeds as usual. */
static bool dm_route(gw_conn *c, gw_frame *f)
{
    gw_error err;
    gw_send_req s;
    char peer[65];
    memcpy(peer, f->channel.id, sizeof peer);
    if (strcmp(peer, c->user->id) == 0) {
        gw_fail(&err, GW_E_BAD_REQUEST, "channel dm.%s: cannot open a direct message with yourself",
                peer);
        gw_reply_fail(c, f->ref, &err);
        return true;
    }
    gw_dm_room_id(c->user->app, c->user->id, peer, f->channel.id);
    f->channel.kind = GW_CH_ROOM;
    if ((f->action != GW_A_SUBSCRIBE && f->action != GW_A_SEND_MESSAGE) ||
        gw_member_find(c, f->channel.id))
        return false;
    if (f->action == GW_A_SEND_MESSAGE && !gw_send_parse(f->data, gw->cfg.max_message_chars, &s, &err)) {
        gw_reply_fail(c, f->ref, &err);
        return true;
    }
    if (!gw_limit_admit_user(c, f->ref, GW_L_USER_DMS) || !gw_limit_req_begin(c, f->ref))
        return true;
    dm_req *d = nt_calloc(1, sizeof *d);
    memcpy(d->conn, c->id, sizeof d->conn);
    d->f = *f;
    json_incref(f->root);
    if (gw_rpc_dm(c->user->app, f->channel.id, c->user->id, peer, on_dm, d) != NT_OK) {
        gw_limit_req_end(c);
        gw_frame_free(&d->f);
        nt_free(d);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry");
        gw_reply_fail(c, f->ref, &err);
    }
    return true;
}

/* ---- the dialect ---- */

static void native_frame(gw_conn *c, const char *buf, size_t len)
{
    gw_frame f;
    gw_error err;
    nt_metric_add(gw->m.frames_in, 1);
    if (!gw_frame_parse(buf, len, &f, &err) || !gw_frame_legacy(&f, &err)) {
        gw_reply_fail(c, f.ref, &err);
        gw_frame_free(&f);
        return;
    }
    if (!c->user && actions[f.action].needs_auth) {
        gw_reply_error(c, f.ref, GW_E_UNAUTHORIZED,
                       "authenticate first: {\"action\":\"auth\",\"data\":{\"token\":\"<JWT>\"}}");
        gw_conn_close(c, 4001);
    } else if (!(f.channel.kind == GW_CH_DM && c->user && dm_route(c, &f))) {
        dispatch(c, &f);
    }
    gw_frame_free(&f);
}

static void native_opened(gw_conn *c, const char *token)
{
    if (token)
        gw_session_authenticate(c, token, strlen(token), NULL);
    else
        gw_conn_auth_track(c, nt_now_ms() + gw->cfg.auth_timeout_ms);
}

static char *native_error(const json_t *ref, gw_errcode code, const char *message,
                          int64_t retry_after_ms, size_t *len)
{
    return retry_after_ms < 0 ? gw_encode_error(ref, code, message, len)
                              : gw_encode_error_retry(ref, code, message,
                                                      (uint32_t)retry_after_ms, len);
}

static char *native_event(const char *event, const char *room, const char *data_json,
                          size_t data_len, size_t *len)
{
    return room ? gw_encode_room_event(event, room, data_json, data_len, len)
                : gw_encode_event(event, data_json, len);
}

const gw_dialect gw_native_dialect = {
    .name = "native",
    .path = "/ws",
    .opened = native_opened,
    .frame = native_frame,
    .encode_ack = gw_encode_ack,
    .encode_error = native_error,
    .encode_event = native_event,
    .encode_fanout = NULL,             /* the producers encode native frames already */
};
