/* actions.c: the action handlers. Bus replies find their connection again by id,
 * so a reply that arrives after its connection closed is simply dropped. */
#include "actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "jwt.h"
#include "presence.h"
#include "receipts.h"
#include "revoke.h"
#include "server_api.h"
#include "log.h"
#include "rooms.h"
#include "util.h"

#define GW_SEND_CONFIRM_MIN_MS 30000    /* a published message waits this long for its ack */
#define GW_REPLAY_PAGE 100              /* messages per history page during a recovery */

struct gw_pending {                     /* one send_message awaiting its ack */
    gw_pending *next;                   /* in the connection */
    gw_pending *gnext, *gprev;          /* global FIFO by deadline */
    gw_conn *conn;
    json_t *ref;                        /* NULL when the client gave none */
    gw_room *room;                      /* held until answered: the ack rides its event */
    int64_t received_ms;
    int64_t deadline_ms;
    char cmid[];
};

typedef struct gw_req {                 /* context of one bus request */
    char conn[17];                      /* connection id, looked up on reply */
    json_t *ref;
    gw_room *room;                      /* join: the interest reference it holds */
    int64_t since_seq;                  /* join: recover after this seq; -1: no recovery */
    char app[65], user[65];             /* join: who joins (to undo it when the connection is gone) */
    char cmid[];                        /* send: the client_msg_id */
} gw_req;

static gw_pending *fifo_head, *fifo_tail;
static uint32_t inflight;               /* pending sends of all connections */

static gw_req *req_new(gw_conn *c, const json_t *ref, const char *cmid)
{
    size_t n = cmid ? strlen(cmid) + 1 : 1;
    gw_req *q = nt_calloc(1, sizeof *q + n);
    memcpy(q->conn, c->id, sizeof q->conn);
    q->ref = ref ? json_incref((json_t *)ref) : NULL;
    if (cmid)
        memcpy(q->cmid, cmid, n);
    return q;
}

static void req_free(gw_req *q)
{
    json_decref(q->ref);
    nt_free(q);
}

static void send_error(gw_conn *c, const json_t *ref, const gw_error *err)
{
    gw_conn_send_error(c, ref, err->code, err->message);
}

static void send_ack_obj(gw_conn *c, const json_t *ref, json_t *data)
{
    char *s = json_dumps(data, JSON_COMPACT);
    gw_conn_send_ack(c, ref, s, strlen(s));
    free(s);
    json_decref(data);
}

/* Writes the identity fields every request and control message carries. */
static void env_identity(nt_envw *w, const gw_conn *c)
{
    nt_envw_cstr(w, "app", c->user->app);
    nt_envw_cstr(w, "user", c->user->id);
    nt_envw_cstr(w, "gw", gw.cfg.gw_id);
    nt_envw_cstr(w, "conn", c->id);
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
    nt_envw_cstr(&w, "gw", gw.cfg.gw_id);
    nt_envw_cstr(&w, "conn", conn);
    nt_envw_cstr(&w, "room", room);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(gw.bus, "natter.ctl.live", NULL, data, len) != NT_OK)
        nt_warn("cannot publish natter.ctl.live unsub of %s for connection %s", room, conn);
    nt_envw_free(&w);
}

static void publish_ctl(const char *subject, const char *type, const gw_conn *c,
                        const char *room)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", type);
    env_identity(&w, c);
    if (room)
        nt_envw_cstr(&w, "room", room);
    else
        nt_envw_cstr(&w, "name", c->user->name);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(gw.bus, subject, NULL, data, len) != NT_OK)
        nt_warn("cannot publish %s %s for connection %s", subject, type, c->id);
    nt_envw_free(&w);
}

bool gw_rpc_ok(nt_status st, const nt_bus_msg *msg, const char *service, nt_envr *r,
               gw_error *err)
{
    size_t clen = 0, mlen = 0;
    bool ok = false;
    memset(r, 0, sizeof *r);
    if (st == NT_ETIMEDOUT)
        return gw_fail(err, GW_E_UNAVAILABLE, "%s did not answer in time, retry", service);
    if (st != NT_OK)
        return gw_fail(err, GW_E_UNAVAILABLE, "%s unavailable, retry", service);
    if (nt_envr_parse(r, msg->data, msg->len) != NT_OK)
        return gw_fail(err, GW_E_INTERNAL, "malformed reply from %s", service);
    if (nt_envr_bool(r, "ok", &ok) && ok)
        return true;
    const char *code = nt_envr_str(r, "code", &clen);
    const char *message = nt_envr_str(r, "message", &mlen);
    int64_t retry = 0;
    gw_fail(err, gw_errcode_parse(code, clen), "%.*s", (int)mlen,
            message ? message : "request refused");
    if (nt_envr_int(r, "retry_after_ms", &retry) && retry > 0)
        err->retry_after_ms = retry > UINT32_MAX ? UINT32_MAX : (uint32_t)retry;
    return false;
}

static bool stop_delivery(gw_conn *c, const char *room);

/* ---- pending sends ---- */

static gw_pending *pending_find(gw_conn *c, const char *cmid, size_t len)
{
    for (gw_pending *p = c->pending; p; p = p->next)
        if (strlen(p->cmid) == len && memcmp(p->cmid, cmid, len) == 0)
            return p;
    return NULL;
}

/* room: the room whose message event will carry the ack (NULL: the user subject
 * will); the pending send owns one interest reference on it until answered. */
static void pending_add(gw_conn *c, const char *cmid, const json_t *ref, gw_room *room)
{
    size_t n = strlen(cmid) + 1;
    gw_pending *p = nt_calloc(1, sizeof *p + n);
    memcpy(p->cmid, cmid, n);
    p->conn = c;
    p->ref = ref ? json_incref((json_t *)ref) : NULL;
    p->room = room;
    int64_t wait = 6 * (int64_t)gw.cfg.request_timeout_ms;
    p->received_ms = nt_now_ms();
    p->deadline_ms = p->received_ms + (wait > GW_SEND_CONFIRM_MIN_MS ? wait : GW_SEND_CONFIRM_MIN_MS);
    p->next = c->pending;
    c->pending = p;
    c->npending++;
    nt_metric_set(gw.m.sends_inflight, ++inflight);
    p->gprev = fifo_tail;
    if (fifo_tail)
        fifo_tail->gnext = p;
    else
        fifo_head = p;
    fifo_tail = p;
}

static void pending_remove(gw_pending *p)
{
    gw_conn *c = p->conn;
    for (gw_pending **pp = &c->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    c->npending--;
    nt_metric_set(gw.m.sends_inflight, --inflight);
    if (p->gprev)
        p->gprev->gnext = p->gnext;
    else
        fifo_head = p->gnext;
    if (p->gnext)
        p->gnext->gprev = p->gprev;
    else
        fifo_tail = p->gprev;
    json_decref(p->ref);
    if (p->room)
        gw_room_release(p->room);
    nt_free(p);
}

static void pending_ack(gw_pending *p, const char *json, size_t len)
{
    gw_conn_send_ack(p->conn, p->ref, json, len);
    nt_metric_add(gw.m.acks, 1);
    nt_metric_add(gw.m.ack_ms_sum, nt_now_ms() - p->received_ms);
    pending_remove(p);
}

static void pending_error(gw_pending *p, gw_errcode code, const char *message)
{
    gw_conn_send_error(p->conn, p->ref, code, message);
    pending_remove(p);
}

/* Every ref waiting on cmid in c (a resend while in flight adds one) is
 * answered: with the ack when json is not NULL, else with the error. */
static void pending_answer_all(gw_conn *c, const char *cmid, size_t clen, const char *json,
                               size_t jlen, gw_errcode code, const char *message)
{
    gw_pending *p;
    while ((p = pending_find(c, cmid, clen)) != NULL) {
        if (json)
            pending_ack(p, json, jlen);
        else
            pending_error(p, code, message);
    }
}

void gw_actions_sweep(int64_t now_ms)
{
    while (fifo_head && fifo_head->deadline_ms <= now_ms)
        pending_error(fifo_head, GW_E_UNAVAILABLE,
                      "message not confirmed in time, retry with the same client_msg_id");
}

/* A member removed from a room: each of u's connections there stops receiving it at
 * once and gets the member_left frame (its own user_id) as the last word from it. */
static void revoke_room(gw_user *u, const nt_envr *r)
{
    size_t rlen, jlen;
    const char *room = nt_envr_str(r, "room", &rlen);
    const char *json = nt_envr_str(r, "json", &jlen);
    char id[65];
    if (!room || !json || !nt_valid_id(room, rlen))
        return;
    memcpy(id, room, rlen);
    id[rlen] = '\0';
    for (gw_conn *c = u->conns; c; c = c->next)
        if (stop_delivery(c, id))
            gw_conn_send(c, json, jlen);
}

void gw_actions_user_envelope(gw_user *u, const nt_envr *r)
{
    if (nt_envr_str_eq(r, "type", "disconnect"))
        return gw_server_api_disconnect(u, r);
    if (nt_envr_str_eq(r, "type", "revoke"))
        return revoke_room(u, r);
    size_t clen, jlen = 0, mlen = 0, codelen = 0;
    const char *cmid = nt_envr_str(r, "cmid", &clen);
    bool ack = nt_envr_str_eq(r, "type", "ack");
    if (!cmid || (!ack && !nt_envr_str_eq(r, "type", "send_error")))
        return;
    const char *json = nt_envr_str(r, "json", &jlen);
    const char *code = nt_envr_str(r, "code", &codelen);
    const char *message = nt_envr_str(r, "message", &mlen);
    char text[200];
    snprintf(text, sizeof text, "%.*s", (int)mlen, message ? message : "message refused");
    if (ack && !json)
        return;
    for (gw_conn *c = u->conns; c; c = c->next)
        pending_answer_all(c, cmid, clen, ack ? json : NULL, jlen,
                           gw_errcode_parse(code, codelen), text);
}

void gw_actions_ack(gw_user *u, const char *cmid, size_t clen, const char *json, size_t jlen)
{
    for (gw_conn *c = u->conns; c; c = c->next)
        pending_answer_all(c, cmid, clen, json, jlen, GW_E_INTERNAL, NULL);
}

/* ---- send_message ---- */

static gw_pending *reply_pending(gw_req *q)
{
    gw_conn *c = gw_conn_find(q->conn);
    return c ? pending_find(c, q->cmid, strlen(q->cmid)) : NULL;
}

static void on_lookup(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_req *q = arg;
    gw_pending *p = reply_pending(q);
    nt_envr r;
    gw_error err;
    bool found = false;
    size_t len;
    if (gw_rpc_ok(st, msg, "message store", &r, &err) && p &&
        nt_envr_bool(&r, "found", &found) && found) {
        const char *json = nt_envr_str(&r, "json", &len);
        if (json)
            pending_answer_all(p->conn, q->cmid, strlen(q->cmid), json, len, GW_E_INTERNAL, NULL);
    }
    nt_envr_free(&r);
    req_free(q);
}

static void lookup_duplicate(gw_conn *c, gw_req *q)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", c->user->app);
    nt_envw_cstr(&w, "sender", c->user->id);
    nt_envw_cstr(&w, "cmid", q->cmid);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_request(gw.bus, "natter.rpc.persist.lookup", NULL, data, len,
                       (int)gw.cfg.request_timeout_ms, on_lookup, q, NULL) != NT_OK)
        req_free(q);                   /* the ack event or the sweep answers */
    nt_envw_free(&w);
}

static void on_puback(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_req *q = arg;
    gw_pending *p = reply_pending(q);
    if (!p) {
        req_free(q);
        return;
    }
    if (st != NT_OK) {
        pending_answer_all(p->conn, q->cmid, strlen(q->cmid), NULL, 0, GW_E_UNAVAILABLE,
                           "message store unavailable, retry with the same client_msg_id");
        req_free(q);
        return;
    }
    json_t *ack = json_loadb(msg->data, msg->len, 0, NULL);
    json_t *jerr = ack ? json_object_get(ack, "error") : NULL;
    if (!ack || jerr) {
        json_t *desc = jerr ? json_object_get(jerr, "description") : NULL;
        nt_warn("JetStream refused a message: %s", json_is_string(desc) ? json_string_value(desc) : "bad PubAck");
        pending_answer_all(p->conn, q->cmid, strlen(q->cmid), NULL, 0, GW_E_UNAVAILABLE,
                           "message store unavailable, retry with the same client_msg_id");
        req_free(q);
    } else if (json_is_true(json_object_get(ack, "duplicate"))) {
        lookup_duplicate(p->conn, q);
    } else {
        req_free(q);                   /* stored: the persister's ack event answers */
    }
    json_decref(ack);
}

/* need_sub: the connection must be subscribed to the room (not for a dm send,
 * whose membership natter_post checks). */
static void act_send_room(gw_conn *c, const gw_frame *f, bool need_sub)
{
    gw_error err;
    gw_send_req s;
    char cmid[65], subject[160], msgid[200];
    if (!gw_frame_need_room(f, &err) || !gw_send_parse(f, gw.cfg.max_message_chars, &s, &err))
        return send_error(c, f->ref, &err);
    const char *room = f->channel.id;
    gw_member *m = gw_member_find(c, room);
    if (need_sub && !m) {
        gw_fail(&err, GW_E_FORBIDDEN, "subscribe to room %s first", room);
        return send_error(c, f->ref, &err);
    }
    if (!gw_limit_admit(c, f->ref, GW_L_CONN_SENDS, GW_L_USER_SENDS))
        return;
    if (s.client_msg_id)
        snprintf(cmid, sizeof cmid, "%s", s.client_msg_id);
    else
        nt_uuid(cmid);
    if (c->npending >= gw.cfg.max_pending_sends) {
        gw_fail(&err, GW_E_RATE_LIMITED,
                "%u messages are awaiting acknowledgement; wait for their acks", c->npending);
        return send_error(c, f->ref, &err);
    }
    if (pending_find(c, cmid, strlen(cmid))) {
        /* A resend while the first is in flight: its ref is answered with the
         * first one's ack; nothing is published twice. */
        pending_add(c, cmid, f->ref, NULL);
        return;
    }
    if (inflight >= gw.cfg.max_inflight_sends) {
        /* The store is behind (down, or slower than the senders): refused before
         * publishing, so what one gateway holds for it stays bounded. */
        nt_metric_add(gw.m.sends_shed, 1);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store overloaded: %u sends on this gateway are "
                "awaiting storage; retry shortly with the same client_msg_id", inflight);
        return send_error(c, f->ref, &err);
    }

    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "send");
    nt_envw_cstr(&w, "app", c->user->app);
    nt_envw_cstr(&w, "room", room);
    nt_envw_cstr(&w, "sender", c->user->id);
    nt_envw_cstr(&w, "name", c->user->name);
    nt_envw_cstr(&w, "cmid", cmid);
    nt_envw_cstr(&w, "mtype", s.message_type);
    nt_envw_str(&w, "body", s.message, s.message_len);
    if (s.reply_to)
        nt_envw_cstr(&w, "reply_to", s.reply_to);
    nt_envw_cstr(&w, "gw", gw.cfg.gw_id);
    nt_envw_cstr(&w, "conn", c->id);
    nt_envw_int(&w, "ts", nt_now_ms());
    /* The pending send holds the room's subject (a dm send without a subscription
     * subscribes it, before the publish on the same connection): the message event
     * reaches this gateway, so it carries the ack and the persister publishes none
     * on the user subject. */
    gw_room *pin = m ? m->room : gw_room_acquire(c->user->app, room);
    if (m)
        gw_room_hold(pin);
    if (pin)
        nt_envw_bool(&w, "rack", true);
    const char *data = nt_envw_finish(&w, &len);
    snprintf(subject, sizeof subject, "natter.in.%s.%u", c->user->app,
             nt_partition(c->user->app, room, gw.cfg.partitions));
    snprintf(msgid, sizeof msgid, "%s:%s:%s", c->user->app, c->user->id, cmid);
    gw_req *q = req_new(c, NULL, cmid);
    nt_status st = nt_bus_request(gw.bus, subject, msgid, data, len,
                                  (int)gw.cfg.request_timeout_ms, on_puback, q, NULL);
    nt_envw_free(&w);
    if (st != NT_OK) {
        req_free(q);
        if (pin)
            gw_room_release(pin);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry with the same client_msg_id");
        return send_error(c, f->ref, &err);
    }
    pending_add(c, cmid, f->ref, pin);
    nt_metric_add(gw.m.messages_sent, 1);
    gw_presence_typing_stop(c, room);
}

static void act_send(gw_conn *c, const gw_frame *f)
{
    act_send_room(c, f, true);
}

/* ---- subscribe / unsubscribe / leave ---- */

/* ---- since_seq recovery (DESIGN.md invariant 5) ----
 * After the join the member is in replaying state (rooms.c buffers its live events);
 * history pages after since_seq are sent to this connection only, in seq order, until
 * has_more is false; then the ack (recovered:true) is sent and the buffered live
 * events with a larger seq than the last replayed one are delivered. Every message
 * not in a page was committed after that page's query, which ran after the member
 * was added, so its live event was buffered: no gap, no repeat. */

typedef struct replay_req {
    char conn[17];
    char room[65];
    uint64_t gen;                       /* the member's gw_replay generation */
    json_t *ref;
    int64_t after;                      /* last seq replayed (since_seq at first) */
    int64_t last_seq, last_read, unread; /* from the join */
    uint32_t replayed;                  /* messages sent so far (NATTER_REPLAY_MAX) */
} replay_req;

static bool stop_delivery(gw_conn *c, const char *room);
static void replay_page(gw_conn *c, replay_req *rq);

static void replay_free(replay_req *rq)
{
    json_decref(rq->ref);
    nt_free(rq);
}

/* The member of rq still replaying, or NULL (connection gone, unsubscribed, resubscribed). */
static gw_member *replay_member(gw_conn *c, const replay_req *rq)
{
    gw_member *m = c ? gw_member_find(c, rq->room) : NULL;
    return m && m->replay && m->replay->gen == rq->gen ? m : NULL;
}

static void replay_fail(gw_conn *c, replay_req *rq, gw_errcode code, const char *message)
{
    stop_delivery(c, rq->room);
    gw_conn_send_error(c, rq->ref, code, message);
    replay_free(rq);
}

/* Sends one page's messages; false when the reply is malformed. */
static bool replay_send(gw_conn *c, replay_req *rq, const char *json, size_t len, bool *more)
{
    json_t *o = json_loadb(json, len, 0, NULL);
    json_t *list = json_object_get(o, "messages");
    char channel[80];
    if (!json_is_array(list)) {
        json_decref(o);
        return false;
    }
    snprintf(channel, sizeof channel, "room.%s", rq->room);
    size_t i;
    json_t *msg;
    json_array_foreach(list, i, msg) {
        json_int_t seq = json_integer_value(json_object_get(msg, "seq"));
        if (seq <= rq->after)
            continue;
        json_t *frame = json_pack("{s:s,s:s,s:O}", "event", "message", "channel", channel,
                                  "data", msg);
        char *s = json_dumps(frame, JSON_COMPACT);
        gw_conn_send(c, s, strlen(s));
        free(s);
        json_decref(frame);
        rq->after = seq;
        rq->replayed++;
    }
    *more = json_is_true(json_object_get(o, "has_more")) && json_array_size(list) > 0;
    json_decref(o);
    return true;
}

static void on_replay_page(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    replay_req *rq = arg;
    gw_conn *c = gw_conn_find(rq->conn);
    gw_member *m = replay_member(c, rq);
    nt_envr r;
    gw_error err;
    size_t len;
    bool more = false;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    const char *json = ok ? nt_envr_str(&r, "json", &len) : NULL;
    if (!m) {
        replay_free(rq);
    } else if (!ok) {
        replay_fail(c, rq, err.code, err.message);
    } else if (!json || !replay_send(c, rq, json, len, &more)) {
        replay_fail(c, rq, GW_E_INTERNAL, "malformed reply from message store");
    } else if (m->replay->overflow) {
        replay_fail(c, rq, GW_E_UNAVAILABLE, "too many messages to recover; retry");
    } else if (more && rq->replayed >= gw.cfg.replay_max) {
        /* Paged, not unbounded: past the bound the client catches up with history. */
        char msg[200];
        snprintf(msg, sizeof msg, "more than %u messages missed: %u replayed up to seq %lld; fetch "
                 "the rest with history (after_seq) and subscribe again with a later since_seq "
                 "(NATTER_REPLAY_MAX)", gw.cfg.replay_max, rq->replayed, (long long)rq->after);
        replay_fail(c, rq, GW_E_TOO_LARGE, msg);
    } else if (more) {
        replay_page(c, rq);
    } else {
        int64_t last = rq->after > rq->last_seq ? rq->after : rq->last_seq;
        send_ack_obj(c, rq->ref, json_pack("{s:s,s:I,s:I,s:I,s:b}", "room_id", rq->room,
                                           "last_seq", (json_int_t)last, "last_read_seq",
                                           (json_int_t)rq->last_read, "unread",
                                           (json_int_t)rq->unread, "recovered", 1));
        gw_member_replay_finish(m, rq->after);
        replay_free(rq);
    }
    nt_envr_free(&r);
}

static void replay_page(gw_conn *c, replay_req *rq)
{
    gw_history_req h = { .before_seq = -1, .after_seq = rq->after, .limit = GW_REPLAY_PAGE };
    if (gw_history_request(c->user->app, rq->room, c->user->id, &h, on_replay_page, rq,
                           NULL) != NT_OK)
        replay_fail(c, rq, GW_E_UNAVAILABLE, "message store unavailable, retry");
}

/* Starts the recovery of a member just added by on_join. */
static void replay_begin(gw_conn *c, gw_member *m, const gw_req *q, int64_t last_seq,
                         int64_t last_read, int64_t unread)
{
    replay_req *rq = nt_calloc(1, sizeof *rq);
    memcpy(rq->conn, c->id, sizeof rq->conn);
    snprintf(rq->room, sizeof rq->room, "%s", m->room->id);
    rq->ref = q->ref ? json_incref(q->ref) : NULL;
    rq->after = q->since_seq;
    rq->last_seq = last_seq;
    rq->last_read = last_read;
    rq->unread = unread;
    rq->gen = gw_member_replay_start(m, gw.cfg.recovery_buffer);
    replay_page(c, rq);
}

static void on_join(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_req *q = arg;
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
            gw_conn_send_error_retry(c, q->ref, err.code, err.message, err.retry_after_ms);
        else
            send_error(c, q->ref, &err);
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
                replay_begin(c, gw_member_find(c, q->room->id), q, last_seq, last_read, unread);
                nt_envr_free(&r);
                req_free(q);
                return;
            }
        }
        send_ack_obj(c, q->ref, json_pack("{s:s,s:I,s:I,s:I,s:b}", "room_id", q->room->id,
                                          "last_seq", (json_int_t)last_seq, "last_read_seq",
                                          (json_int_t)last_read, "unread", (json_int_t)unread,
                                          "recovered", 0));
    }
    nt_envr_free(&r);
    req_free(q);
}

static void act_subscribe(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    const char *access_code;
    int64_t since_seq;
    bool recover;
    if (!gw_frame_need_room(f, &err) || !gw_data_str(f, "access_code", 128, &access_code, &err) ||
        !gw_since_seq_parse(f, &since_seq, &recover, &err))
        return send_error(c, f->ref, &err);
    const char *room = f->channel.id;
    if (!gw_limit_admit(c, f->ref, GW_L_CONN_SUBSCRIBES, GW_L_USER_SUBSCRIBES))
        return;
    if (!gw_member_find(c, room) && c->nrooms >= gw.cfg.max_rooms_per_conn) {
        gw_fail(&err, GW_E_RATE_LIMITED, "this connection is in %u rooms; the limit is %u",
                c->nrooms, gw.cfg.max_rooms_per_conn);
        return send_error(c, f->ref, &err);
    }
    if (!gw_limit_req_begin(c, f->ref))
        return;
    /* local interest first, so no event published after the join is missed */
    gw_room *r = gw_room_acquire(c->user->app, room);
    if (!r) {
        gw_limit_req_end(c);
        gw_fail(&err, GW_E_UNAVAILABLE, "cannot subscribe to room %s now, retry", room);
        return send_error(c, f->ref, &err);
    }
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    env_identity(&w, c);
    nt_envw_cstr(&w, "room", room);
    nt_envw_cstr(&w, "name", c->user->name);
    if (access_code)
        nt_envw_cstr(&w, "access_code", access_code);
    const char *data = nt_envw_finish(&w, &len);
    gw_req *q = req_new(c, f->ref, NULL);
    q->room = r;
    q->since_seq = recover ? since_seq : -1;
    snprintf(q->app, sizeof q->app, "%s", c->user->app);
    snprintf(q->user, sizeof q->user, "%s", c->user->id);
    nt_status st = nt_bus_request(gw.bus, "natter.rpc.router.join", NULL, data, len,
                                  (int)gw.cfg.request_timeout_ms, on_join, q, NULL);
    nt_envw_free(&w);
    if (st != NT_OK) {
        req_free(q);
        gw_room_release(r);
        gw_limit_req_end(c);
        gw_fail(&err, GW_E_UNAVAILABLE, "router unavailable, retry");
        return send_error(c, f->ref, &err);
    }
    c->nrooms++;
}

/* Stops live delivery of room to c; true when it was subscribed. */
static bool stop_delivery(gw_conn *c, const char *room)
{
    gw_member *m = gw_member_find(c, room);
    if (!m)
        return false;
    gw_presence_typing_stop(c, room);
    gw_member_remove(c, m);
    c->nrooms--;
    publish_ctl("natter.ctl.live", "unsub", c, room);
    return true;
}

static void act_unsubscribe(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    if (!gw_frame_need_room(f, &err))
        return send_error(c, f->ref, &err);
    stop_delivery(c, f->channel.id);
    gw_conn_send_ack(c, f->ref, "{}", 2);
}

static void on_leave(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_req *q = arg;
    gw_conn *c = gw_conn_find(q->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "router", &r, &err);
    if (c && ok)
        gw_conn_send_ack(c, q->ref, "{}", 2);
    else if (c)
        send_error(c, q->ref, &err);
    nt_envr_free(&r);
    req_free(q);
}

static void act_leave(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    if (!gw_frame_need_room(f, &err))
        return send_error(c, f->ref, &err);
    const char *room = f->channel.id;
    stop_delivery(c, room);
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    env_identity(&w, c);
    nt_envw_cstr(&w, "room", room);
    const char *data = nt_envw_finish(&w, &len);
    gw_req *q = req_new(c, f->ref, NULL);
    nt_status st = nt_bus_request(gw.bus, "natter.rpc.router.leave", NULL, data, len,
                                  (int)gw.cfg.request_timeout_ms, on_leave, q, NULL);
    nt_envw_free(&w);
    if (st != NT_OK) {
        req_free(q);
        gw_fail(&err, GW_E_UNAVAILABLE, "router unavailable, retry");
        send_error(c, f->ref, &err);
    }
}

/* ---- history ---- */

nt_status gw_history_request(const char *app, const char *room, const char *user,
                             const gw_history_req *h, nt_bus_reply_cb cb, void *arg,
                             uint64_t *id_out)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "room", room);
    nt_envw_cstr(&w, "user", user);
    if (h->before_seq >= 0)
        nt_envw_int(&w, "before_seq", h->before_seq);
    if (h->after_seq >= 0)
        nt_envw_int(&w, "after_seq", h->after_seq);
    nt_envw_int(&w, "limit", h->limit);
    const char *data = nt_envw_finish(&w, &len);
    nt_status st = nt_bus_request(gw.bus, "natter.rpc.persist.history", NULL, data, len,
                                  (int)gw.cfg.request_timeout_ms, cb, arg, id_out);
    nt_envw_free(&w);
    return st;
}

static void on_history(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_req *q = arg;
    gw_conn *c = gw_conn_find(q->conn);
    nt_envr r;
    gw_error err;
    size_t len;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    const char *json = ok ? nt_envr_str(&r, "json", &len) : NULL;
    gw_limit_req_end(c);
    if (ok && !json)
        gw_fail(&err, GW_E_INTERNAL, "malformed reply from message store");
    if (c && json)
        gw_conn_send_ack(c, q->ref, json, len);
    else if (c)
        send_error(c, q->ref, &err);
    nt_envr_free(&r);
    req_free(q);
}

static void act_history(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    gw_history_req h;
    if (!gw_frame_need_room(f, &err) || !gw_history_parse(f, &h, &err))
        return send_error(c, f->ref, &err);
    if (!gw_limit_req_begin(c, f->ref))
        return;
    gw_req *q = req_new(c, f->ref, NULL);
    if (gw_history_request(c->user->app, f->channel.id, c->user->id, &h, on_history, q,
                           NULL) != NT_OK) {
        gw_limit_req_end(c);
        req_free(q);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry");
        send_error(c, f->ref, &err);
    }
}

/* ---- create_room ---- */

static void on_create(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_req *q = arg;                   /* cmid: the room id */
    gw_conn *c = gw_conn_find(q->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    gw_limit_req_end(c);
    if (c && ok)
        send_ack_obj(c, q->ref, json_pack("{s:s}", "room_id", q->cmid));
    else if (c)
        send_error(c, q->ref, &err);
    nt_envr_free(&r);
    req_free(q);
}

void gw_create_room_id(const gw_create_req *cr, char room[65])
{
    if (cr->room_id)
        snprintf(room, 65, "%s", cr->room_id);
    else
        nt_uuid(room);
}

nt_status gw_create_request(const char *app, const char *owner, const char *room,
                            const gw_create_req *cr, nt_bus_reply_cb cb, void *arg,
                            uint64_t *id_out)
{
    nt_envw w;
    size_t len;
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
    const char *data = nt_envw_finish(&w, &len);
    nt_status st = nt_bus_request(gw.bus, "natter.rpc.persist.create", NULL, data, len,
                                  (int)gw.cfg.request_timeout_ms, cb, arg, id_out);
    nt_envw_free(&w);
    return st;
}

/* The creator becomes the owner but is not subscribed: a subscribe follows. */
static void act_create_room(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    char room[65];
    gw_create_req *cr = nt_malloc(sizeof *cr);
    if (!gw_create_parse(f, cr, &err)) {
        nt_free(cr);
        return send_error(c, f->ref, &err);
    }
    if (!gw_limit_admit_user(c, f->ref, GW_L_USER_CREATE_ROOMS) || !gw_limit_req_begin(c, f->ref)) {
        nt_free(cr);
        return;
    }
    gw_create_room_id(cr, room);
    gw_req *q = req_new(c, f->ref, room);
    nt_status st = gw_create_request(c->user->app, c->user->id, room, cr, on_create, q, NULL);
    nt_free(cr);
    if (st != NT_OK) {
        gw_limit_req_end(c);
        req_free(q);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry");
        send_error(c, f->ref, &err);
    }
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

static void act_subscribe(gw_conn *c, const gw_frame *f);

static void on_dm(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    dm_req *d = arg;
    gw_conn *c = gw_conn_find(d->conn);
    nt_envr r;
    gw_error err;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    gw_limit_req_end(c);
    if (c && !ok)
        send_error(c, d->f.ref, &err);
    else if (c && d->f.action == GW_A_SUBSCRIBE)
        act_subscribe(c, &d->f);
    else if (c)
        act_send_room(c, &d->f, false);
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
        send_error(c, f->ref, &err);
        return true;
    }
    gw_dm_room_id(c->user->app, c->user->id, peer, f->channel.id);
    f->channel.kind = GW_CH_ROOM;
    if ((f->action != GW_A_SUBSCRIBE && f->action != GW_A_SEND_MESSAGE) ||
        gw_member_find(c, f->channel.id))
        return false;
    if (f->action == GW_A_SEND_MESSAGE && !gw_send_parse(f, gw.cfg.max_message_chars, &s, &err)) {
        send_error(c, f->ref, &err);
        return true;
    }
    if (!gw_limit_admit_user(c, f->ref, GW_L_USER_DMS) || !gw_limit_req_begin(c, f->ref))
        return true;
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", c->user->app);
    nt_envw_cstr(&w, "room", f->channel.id);
    nt_envw_cstr(&w, "user", c->user->id);
    nt_envw_cstr(&w, "peer", peer);
    const char *data = nt_envw_finish(&w, &len);
    dm_req *d = nt_calloc(1, sizeof *d);
    memcpy(d->conn, c->id, sizeof d->conn);
    d->f = *f;
    json_incref(f->root);
    nt_status st = nt_bus_request(gw.bus, "natter.rpc.persist.dm", NULL, data, len,
                                  (int)gw.cfg.request_timeout_ms, on_dm, d, NULL);
    nt_envw_free(&w);
    if (st != NT_OK) {
        gw_limit_req_end(c);
        gw_frame_free(&d->f);
        nt_free(d);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry");
        send_error(c, f->ref, &err);
    }
    return true;
}

/* ---- connection lifecycle ---- */

/* "connected" promises that a notify or disconnect sent from now on reaches the
 * connection, on whichever gateway the server API call lands: so it waits until the
 * server has the user subject's SUB. One bus barrier at a time covers every user
 * subscribed before it went out; users subscribed meanwhile wait for the next. */
typedef struct gw_hello {
    struct gw_hello *next;
    json_t *ref;
    uint32_t barrier;
    char conn[17];
} gw_hello;

static gw_hello *hello_head, *hello_tail;    /* FIFO, barrier ascending */
static uint32_t barrier_sent, barrier_done;  /* sequence numbers (wrap-safe compare);
                                              * unequal while one is in flight */

static bool barrier_passed(uint32_t b) { return (int32_t)(b - barrier_done) <= 0; }

/* `connected`, then the authenticate ack; ahead of anything held for c meanwhile. */
static void send_connected(gw_conn *c, const json_t *ref)
{
    json_t *data = json_pack("{s:s,s:s,s:s,s:i}", "connection_id", c->id, "user_id",
                             c->user->id, "app", c->user->app, "ping_interval",
                             (int)gw.cfg.ping_interval_s);
    char *d = json_dumps(data, JSON_COMPACT);
    const char *out[2];
    size_t lens[2], n = 0;
    char *ev = gw_encode_event("connected", d, &lens[n]);
    out[n++] = ev;
    char *ack = ref ? gw_encode_ack(ref, d, strlen(d), &lens[n]) : NULL;
    if (ack)
        out[n++] = ack;
    gw_conn_release(c, out, lens, n, false);
    nt_free(ev);
    nt_free(ack);
    free(d);
    json_decref(data);
}

static void barrier_send(void);

static void on_barrier(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    barrier_done = (uint32_t)(uintptr_t)arg;
    while (hello_head && barrier_passed(hello_head->barrier)) {
        gw_hello *h = hello_head;
        if (!(hello_head = h->next))
            hello_tail = NULL;
        gw_conn *c = gw_conn_find(h->conn);
        if (c && c->user && !c->close_code) {
            if (st == NT_OK) {
                send_connected(c, h->ref);
            } else {
                gw_conn_release(c, NULL, NULL, 0, true);   /* nothing before the error */
                gw_conn_send_error(c, h->ref, GW_E_UNAVAILABLE,
                                   "NATS did not confirm the subscription to your events, reconnect");
                gw_conn_close(c, 1011);
            }
        }
        json_decref(h->ref);
        nt_free(h);
    }
    if (hello_head)
        barrier_send();
}

static void barrier_send(void)
{
    uint32_t b = ++barrier_sent;
    if (nt_bus_barrier(gw.bus, (int)gw.cfg.request_timeout_ms, on_barrier, (void *)(uintptr_t)b,
                       NULL) != NT_OK)   /* the request table is full: answer them now */
        on_barrier(gw.bus, NT_EFULL, NULL, (void *)(uintptr_t)b);
}

/* Sends "connected" now, or once the barrier covering c's user subject is back. */
static void hello(gw_conn *c, const json_t *ref)
{
    gw_user *u = c->user;
    if (u->nconns == 1)                 /* just subscribed: the next barrier covers it */
        u->barrier = barrier_sent + 1;
    if (barrier_passed(u->barrier)) {
        send_connected(c, ref);
        return;
    }
    gw_hello *h = nt_malloc(sizeof *h);
    h->next = NULL;
    h->ref = ref ? json_incref((json_t *)ref) : NULL;
    h->barrier = u->barrier;
    memcpy(h->conn, c->id, sizeof h->conn);
    gw_conn_hold(c);                    /* events for c wait for `connected` */
    if (hello_tail)
        hello_tail->next = h;
    else
        hello_head = h;
    hello_tail = h;
    if (barrier_sent == barrier_done)    /* none in flight */
        barrier_send();
}

void gw_actions_stop(void)
{
    while (hello_head) {
        gw_hello *h = hello_head;
        hello_head = h->next;
        json_decref(h->ref);
        nt_free(h);
    }
    hello_tail = NULL;
}

void gw_actions_authenticate(gw_conn *c, const char *token, size_t len, const json_t *ref)
{
    nt_claims cl;
    char why[128] = "invalid token";
    int64_t now = nt_now_ms() / 1000;
    if (nt_jwt_verify_rules(token, len, &gw.cfg.jwt, now, &cl, why, sizeof why) != NT_OK ||
        (gw_revoke_refused(&cl) && snprintf(why, sizeof why, "token revoked") > 0)) {
        gw_conn_send_error(c, ref, GW_E_UNAUTHORIZED, why);
        gw_conn_close(c, 4001);
        return;
    }
    gw_conn_auth_untrack(c);
    gw_conn_token_set(c, cl.exp, now);
    if (gw_user_attach(c, &cl) != NT_OK) {
        gw_conn_send_error(c, ref, GW_E_UNAVAILABLE, "cannot subscribe to your events now, reconnect");
        gw_conn_close(c, 1011);
        return;
    }
    publish_ctl("natter.ctl.conn", "open", c, NULL);
    hello(c, ref);
}

/* refresh: a new token for the same user and app moves the connection's expiry. */
static void act_refresh(gw_conn *c, const gw_frame *f)
{
    gw_error err;
    const char *token;
    size_t len;
    nt_claims cl;
    char why[128] = "invalid token", ack[64];
    int64_t now = nt_now_ms() / 1000;
    if (!gw_auth_token(f, &token, &len, &err))
        return send_error(c, f->ref, &err);
    if (nt_jwt_verify_rules(token, len, &gw.cfg.jwt, now, &cl, why, sizeof why) != NT_OK)
        return gw_conn_send_error(c, f->ref, GW_E_UNAUTHORIZED, why);
    if (gw_revoke_refused(&cl))
        return gw_conn_send_error(c, f->ref, GW_E_UNAUTHORIZED, "token revoked");
    if (strcmp(cl.sub, c->user->id) != 0 || strcmp(cl.app, c->user->app) != 0)
        return gw_conn_send_error(c, f->ref, GW_E_UNAUTHORIZED,
                                  "a refreshed token must be for the same user and app");
    gw_conn_token_set(c, cl.exp, now);
    int n = snprintf(ack, sizeof ack, "{\"expires_at\":%lld}", (long long)cl.exp);
    gw_conn_send_ack(c, f->ref, ack, (size_t)n);
}

void gw_actions_conn_closed(gw_conn *c)
{
    while (c->pending)
        pending_remove(c->pending);
    if (!c->user)
        return;
    publish_ctl("natter.ctl.conn", "close", c, NULL);
    /* The router keeps live membership per connection: end each one. */
    for (gw_member *m = c->rooms; m; m = m->cnext) {
        gw_presence_typing_stop(c, m->room->id);
        publish_ctl("natter.ctl.live", "unsub", c, m->room->id);
    }
    gw_rooms_conn_closed(c);
    gw_user_detach(c);
}

void gw_actions_frame(gw_conn *c, const char *buf, size_t len)
{
    gw_frame f;
    gw_error err;
    const char *token;
    size_t toklen;
    nt_metric_add(gw.m.frames_in, 1);
    if (!gw_frame_parse(buf, len, &f, &err) || !gw_frame_legacy(&f, &err)) {
        send_error(c, f.ref, &err);
        gw_frame_free(&f);
        return;
    }
    if (!c->user && f.action != GW_A_AUTH && f.action != GW_A_PING) {
        gw_conn_send_error(c, f.ref, GW_E_UNAUTHORIZED,
                           "authenticate first: {\"action\":\"auth\",\"data\":{\"token\":\"<JWT>\"}}");
        gw_conn_close(c, 4001);
        gw_frame_free(&f);
        return;
    }
    if (f.channel.kind == GW_CH_DM && c->user && dm_route(c, &f)) {
        gw_frame_free(&f);
        return;
    }
    switch (f.action) {
    case GW_A_AUTH:
        if (c->user)
            gw_conn_send_error(c, f.ref, GW_E_BAD_REQUEST, "already authenticated");
        else if (!gw_auth_token(&f, &token, &toklen, &err)) {
            send_error(c, f.ref, &err);
            gw_conn_close(c, 4001);
        } else
            gw_actions_authenticate(c, token, toklen, f.ref);
        break;
    case GW_A_PING:
        gw_conn_send(c, "{\"event\":\"pong\"}", 16);
        gw_conn_send_ack(c, f.ref, "{}", 2);
        break;
    case GW_A_SUBSCRIBE: act_subscribe(c, &f); break;
    case GW_A_UNSUBSCRIBE: act_unsubscribe(c, &f); break;
    case GW_A_LEAVE: act_leave(c, &f); break;
    case GW_A_SEND_MESSAGE: act_send(c, &f); break;
    case GW_A_HISTORY: act_history(c, &f); break;
    case GW_A_TYPING: gw_presence_typing(c, &f); break;
    case GW_A_PRESENCE: gw_presence_set(c, &f); break;
    case GW_A_ONLINE_USERS: gw_presence_online_users(c, &f); break;
    case GW_A_READ: gw_receipts_read(c, &f); break;
    case GW_A_DELIVERED: gw_receipts_delivered(c, &f); break;
    case GW_A_CREATE_ROOM: act_create_room(c, &f); break;
    case GW_A_REFRESH: act_refresh(c, &f); break;
    default: break;
    }
    gw_frame_free(&f);
}
