/* receipts.c: the read and delivered actions. The persister moves the marks, answers
 * with the ack data, and publishes the receipt (room subject) and unread (user subject)
 * events itself, so a reply only has to reach the connection that asked. */
#include "receipts.h"

#include <string.h>

#include "actions.h"
#include "alloc.h"
#include "envelope.h"
#include "gw.h"
#include "rooms.h"

typedef struct mark_req {
    char conn[17];                /* connection id, looked up on reply */
    json_t *ref;
} mark_req;

nt_status gw_receipts_mark_request(const char *app, const char *room, const char *user,
                                   bool delivered, const gw_mark_req *m, nt_bus_reply_cb cb,
                                   void *arg, uint64_t *id_out)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "room", room);
    nt_envw_cstr(&w, "user", user);
    if (m->seq >= 0)
        nt_envw_int(&w, "seq", m->seq);
    else
        nt_envw_str_array(&w, "ids", m->ids, m->nids);
    const char *data = nt_envw_finish(&w, &len);
    nt_status st = nt_bus_request(gw.bus, delivered ? "natter.rpc.persist.delivered"
                                                    : "natter.rpc.persist.read",
                                  NULL, data, len, (int)gw.cfg.request_timeout_ms, cb, arg, id_out);
    nt_envw_free(&w);
    return st;
}

nt_status gw_receipts_user_request(const char *app, const char *user, bool rooms,
                                   nt_bus_reply_cb cb, void *arg, uint64_t *id_out)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "user", user);
    const char *data = nt_envw_finish(&w, &len);
    nt_status st = nt_bus_request(gw.bus, rooms ? "natter.rpc.persist.rooms"
                                                : "natter.rpc.persist.unread",
                                  NULL, data, len, (int)gw.cfg.request_timeout_ms, cb, arg, id_out);
    nt_envw_free(&w);
    return st;
}

static void on_mark(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    mark_req *q = arg;
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
        gw_conn_send_error(c, q->ref, err.code, err.message);
    nt_envr_free(&r);
    json_decref(q->ref);
    nt_free(q);
}

static void mark(gw_conn *c, const gw_frame *f, bool delivered)
{
    gw_error err;
    gw_mark_req m;
    if (!gw_frame_need_room(f, &err) || !gw_mark_parse(f->data, !delivered, "data.", &m, &err))
        return gw_conn_send_error(c, f->ref, err.code, err.message);
    if (!gw_limit_req_begin(c, f->ref))
        return;
    mark_req *q = nt_calloc(1, sizeof *q);
    memcpy(q->conn, c->id, sizeof q->conn);
    q->ref = f->ref ? json_incref(f->ref) : NULL;
    if (gw_receipts_mark_request(c->user->app, f->channel.id, c->user->id, delivered, &m,
                                 on_mark, q, NULL) != NT_OK) {
        gw_limit_req_end(c);
        json_decref(q->ref);
        nt_free(q);
        gw_conn_send_error(c, f->ref, GW_E_UNAVAILABLE, "message store unavailable, retry");
    }
}

void gw_receipts_read(gw_conn *c, const gw_frame *f)
{
    mark(c, f, false);
}

void gw_receipts_delivered(gw_conn *c, const gw_frame *f)
{
    mark(c, f, true);
}
