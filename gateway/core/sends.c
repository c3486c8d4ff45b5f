/* sends.c: the send path (gateway -> JetStream -> persister) and the sends awaiting
 * their ack. Bus replies find their connection again by id, so a reply that arrives
 * after its connection closed is dropped. */
#include "sends.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "list.h"
#include "log.h"
#include "presence.h"
#include "ratelimit.h"
#include "reply.h"
#include "rooms.h"
#include "rpc_client.h"
#include "util.h"
#include "wire.h"

#define GW_SEND_CONFIRM_MIN_MS 30000    /* a published message waits this long for its ack */

struct gw_pending {                     /* one send_message awaiting its ack */
    gw_pending *next;                   /* in the connection */
    nt_list fifo;                       /* in the global FIFO by deadline */
    gw_conn *conn;
    json_t *ref;                        /* NULL when the client gave none */
    gw_room *room;                      /* held until answered: the ack rides its event */
    int64_t received_ms;
    int64_t deadline_ms;
    int64_t digest;                     /* nt_msg_digest of its room and text */
    char cmid[];
};

typedef struct send_req {               /* context of the publish (and of a lookup) */
    char conn[17];                      /* connection id, looked up on reply */
    int64_t digest;                     /* the send's nt_msg_digest */
    char cmid[];                        /* the client_msg_id */
} send_req;

/* This module's state (gw->sends). */
typedef struct gw_sends {
    nt_list fifo;                       /* of gw_pending, deadline ascending */
    uint32_t inflight;                  /* pending sends of all connections */
} gw_sends;

void gw_sends_create(gw_ctx *ctx)
{
    gw_sends *s = nt_calloc(1, sizeof *s);
    nt_list_init(&s->fifo);
    ctx->sends = s;
}

void gw_sends_destroy(gw_ctx *ctx)
{
    nt_free(ctx->sends);
    ctx->sends = NULL;
}

static send_req *req_new(gw_conn *c, const char *cmid, int64_t digest)
{
    size_t n = strlen(cmid) + 1;
    send_req *q = nt_calloc(1, sizeof *q + n);
    memcpy(q->conn, c->id, sizeof q->conn);
    q->digest = digest;
    memcpy(q->cmid, cmid, n);
    return q;
}

static gw_pending *pending_find(gw_conn *c, const char *cmid, size_t len)
{
    for (gw_pending *p = c->pending; p; p = p->next)
        if (strlen(p->cmid) == len && memcmp(p->cmid, cmid, len) == 0)
            return p;
    return NULL;
}

/* room: the room whose message event will carry the ack (NULL: the user subject
 * will); the pending send owns one interest reference on it until answered. */
static void pending_add(gw_conn *c, const char *cmid, const json_t *ref, gw_room *room,
                        int64_t digest)
{
    size_t n = strlen(cmid) + 1;
    gw_pending *p = nt_calloc(1, sizeof *p + n);
    memcpy(p->cmid, cmid, n);
    p->digest = digest;
    p->conn = c;
    p->ref = ref ? json_incref((json_t *)ref) : NULL;
    p->room = room;
    int64_t wait = 6 * (int64_t)gw->cfg.request_timeout_ms;
    p->received_ms = nt_now_ms();
    p->deadline_ms = p->received_ms + (wait > GW_SEND_CONFIRM_MIN_MS ? wait : GW_SEND_CONFIRM_MIN_MS);
    p->next = c->pending;
    c->pending = p;
    c->npending++;
    gw_sends *s = gw->sends;
    nt_metric_set(gw->m.sends_inflight, ++s->inflight);
    nt_list_insert_tail(&s->fifo, &p->fifo);
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
    nt_metric_set(gw->m.sends_inflight, --gw->sends->inflight);
    nt_list_remove(&p->fifo);
    json_decref(p->ref);
    if (p->room)
        gw_room_release(p->room);
    nt_free(p);
}

static void pending_ack(gw_pending *p, const char *json, size_t len)
{
    gw_reply_ack(p->conn, p->ref, json, len);
    nt_metric_add(gw->m.acks, 1);
    nt_metric_add(gw->m.ack_ms_sum, nt_now_ms() - p->received_ms);
    pending_remove(p);
}

static void pending_error(gw_pending *p, gw_errcode code, const char *message)
{
    gw_reply_error(p->conn, p->ref, code, message);
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

void gw_sends_sweep(int64_t now_ms)
{
    nt_list *n;
    while ((n = nt_list_first(&gw->sends->fifo)) != NULL) {
        gw_pending *p = nt_list_entry(n, gw_pending, fifo);
        if (p->deadline_ms > now_ms)
            break;
        pending_error(p, GW_E_UNAVAILABLE,
                      "message not confirmed in time, retry with the same client_msg_id");
    }
}

void gw_sends_conn_closed(gw_conn *c)
{
    while (c->pending)
        pending_remove(c->pending);
}

bool gw_sends_envelope(gw_user *u, const nt_envr *r)
{
    size_t clen, jlen = 0, mlen = 0, codelen = 0;
    const char *cmid = nt_envr_str(r, "cmid", &clen);
    bool ack = nt_envr_str_eq(r, "type", "ack");
    if (!ack && !nt_envr_str_eq(r, "type", "send_error"))
        return false;
    if (!cmid)
        return true;
    const char *json = nt_envr_str(r, "json", &jlen);
    const char *code = nt_envr_str(r, "code", &codelen);
    const char *message = nt_envr_str(r, "message", &mlen);
    char text[200];
    snprintf(text, sizeof text, "%.*s", (int)mlen, message ? message : "message refused");
    if (ack && !json)
        return true;
    for (gw_conn *c = gw_user_conns(u, NULL); c; c = gw_user_conns(u, c))
        pending_answer_all(c, cmid, clen, ack ? json : NULL, jlen,
                           gw_errcode_parse(code, codelen), text);
    return true;
}

void gw_sends_ack(gw_user *u, const char *cmid, size_t clen, const char *json, size_t jlen)
{
    for (gw_conn *c = gw_user_conns(u, NULL); c; c = gw_user_conns(u, c))
        pending_answer_all(c, cmid, clen, json, jlen, GW_E_INTERNAL, NULL);
}

static gw_pending *reply_pending(send_req *q)
{
    gw_conn *c = gw_conn_find(q->conn);
    return c ? pending_find(c, q->cmid, strlen(q->cmid)) : NULL;
}

static void on_lookup(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    send_req *q = arg;
    gw_pending *p = reply_pending(q);
    nt_envr r;
    gw_error err;
    bool found = false;
    size_t len;
    if (gw_rpc_ok(st, msg, "message store", &r, &err)) {
        const char *json = nt_envr_str(&r, "json", &len);
        if (p && nt_envr_bool(&r, "found", &found) && found && json)
            pending_answer_all(p->conn, q->cmid, strlen(q->cmid), json, len, GW_E_INTERNAL, NULL);
    } else if (p && err.code == GW_E_CONFLICT) {
        /* the client_msg_id names another message: this send is not stored */
        pending_answer_all(p->conn, q->cmid, strlen(q->cmid), NULL, 0, err.code, err.message);
    }
    nt_envr_free(&r);
    nt_free(q);
}

static void on_puback(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    send_req *q = arg;
    gw_pending *p = reply_pending(q);
    if (!p) {
        nt_free(q);
        return;
    }
    if (st != NT_OK) {
        pending_answer_all(p->conn, q->cmid, strlen(q->cmid), NULL, 0, GW_E_UNAVAILABLE,
                           "message store unavailable, retry with the same client_msg_id");
        nt_free(q);
        return;
    }
    json_t *ack = json_loadb(msg->data, msg->len, 0, NULL);
    json_t *jerr = ack ? json_object_get(ack, "error") : NULL;
    if (!ack || jerr) {
        json_t *desc = jerr ? json_object_get(jerr, "description") : NULL;
        nt_warn("JetStream refused a message: %s", json_is_string(desc) ? json_string_value(desc) : "bad PubAck");
        pending_answer_all(p->conn, q->cmid, strlen(q->cmid), NULL, 0, GW_E_UNAVAILABLE,
                           "message store unavailable, retry with the same client_msg_id");
        nt_free(q);
    } else if (json_is_true(json_object_get(ack, "duplicate"))) {
        gw_conn *c = p->conn;
        if (gw_rpc_lookup(c->user->app, c->user->id, q->cmid, q->digest, on_lookup, q) != NT_OK)
            nt_free(q);                /* the ack event or the sweep answers */
    } else {
        nt_free(q);                    /* stored: the persister's ack event answers */
    }
    json_decref(ack);
}

void gw_sends_send(gw_conn *c, const json_t *ref, const char *room, const gw_send_req *s,
                   bool need_sub)
{
    gw_error err;
    char cmid[65], subject[NT_SUBJ_CAP], msgid[200];
    gw_member *m = gw_member_find(c, room);
    if (need_sub && !m) {
        gw_fail(&err, GW_E_FORBIDDEN, "subscribe to room %s first", room);
        return gw_reply_fail(c, ref, &err);
    }
    if (!gw_limit_admit(c, ref, GW_L_CONN_SENDS, GW_L_USER_SENDS))
        return;
    if (s->client_msg_id)
        snprintf(cmid, sizeof cmid, "%s", s->client_msg_id);
    else
        nt_uuid(cmid);
    if (c->npending >= gw->cfg.max_pending_sends) {
        gw_fail(&err, GW_E_RATE_LIMITED,
                "%u messages are awaiting acknowledgement; wait for their acks", c->npending);
        return gw_reply_fail(c, ref, &err);
    }
    int64_t digest = nt_msg_digest(room, s->message, s->message_len);
    gw_pending *first = pending_find(c, cmid, strlen(cmid));
    if (first && first->digest != digest) {
        gw_fail(&err, GW_E_CONFLICT, "client_msg_id %s is awaiting the ack of another message "
                "(another room or text); a resend must have the same room and text: use a new "
                "client_msg_id", cmid);
        return gw_reply_fail(c, ref, &err);
    }
    if (first) {
        /* A resend while the first is in flight: its ref is answered with the
         * first one's ack; nothing is published twice. */
        pending_add(c, cmid, ref, NULL, digest);
        return;
    }
    uint32_t inflight = gw->sends->inflight;
    if (inflight >= gw->cfg.max_inflight_sends) {
        /* The store is behind (down, or slower than the senders): refused before
         * publishing, so what one gateway holds for it stays bounded. */
        nt_metric_add(gw->m.sends_shed, 1);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store overloaded: %u sends on this gateway are "
                "awaiting storage; retry shortly with the same client_msg_id", inflight);
        return gw_reply_fail(c, ref, &err);
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
    nt_envw_cstr(&w, "mtype", s->message_type);
    nt_envw_str(&w, "body", s->message, s->message_len);
    if (s->reply_to)
        nt_envw_cstr(&w, "reply_to", s->reply_to);
    nt_envw_cstr(&w, "gw", gw->cfg.gw_id);
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
    nt_subj_in(subject, sizeof subject, c->user->app,
               nt_partition(c->user->app, room, gw->cfg.partitions));
    snprintf(msgid, sizeof msgid, "%s:%s:%s", c->user->app, c->user->id, cmid);
    send_req *q = req_new(c, cmid, digest);
    nt_status st = nt_bus_request(gw->bus, subject, msgid, data, len,
                                  (int)gw->cfg.request_timeout_ms, on_puback, q, NULL);
    nt_envw_free(&w);
    if (st != NT_OK) {
        nt_free(q);
        if (pin)
            gw_room_release(pin);
        gw_fail(&err, GW_E_UNAVAILABLE, "message store unavailable, retry with the same client_msg_id");
        return gw_reply_fail(c, ref, &err);
    }
    pending_add(c, cmid, ref, pin, digest);
    nt_metric_add(gw->m.messages_sent, 1);
    gw_presence_typing_stop(c, room);
}
