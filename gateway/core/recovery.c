/* recovery.c: since_seq recovery (docs/protocol.md "Recovery"). After the join the member is
 * in replaying state (rooms.c buffers its live events); history pages after since_seq
 * are sent to this connection only, in seq order, until has_more is false; then the
 * ack (recovered:true) is sent and the buffered live events with a larger seq than the
 * last replayed one are delivered. Every message not in a page was committed after
 * that page's query, which ran after the member was added, so its live event was
 * buffered: no gap, no repeat. */
#include "recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "reply.h"
#include "rooms.h"
#include "rpc_client.h"

#define GW_REPLAY_PAGE 100              /* messages per history page during a recovery */

typedef struct replay_req {
    char conn[17];
    char room[65];
    uint64_t gen;                       /* the member's gw_replay generation */
    json_t *ref;
    gw_recovery_stop_fn stop;
    int64_t after;                      /* last seq replayed (since_seq at first) */
    int64_t last_seq, last_read, unread; /* from the join */
    uint32_t replayed;                  /* messages sent so far (NATTER_REPLAY_MAX) */
} replay_req;

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
    rq->stop(c, rq->room);
    gw_reply_error(c, rq->ref, code, message);
    replay_free(rq);
}

/* Sends one page's messages; false when the reply is malformed. */
static bool replay_send(gw_conn *c, replay_req *rq, const char *json, size_t len, bool *more)
{
    json_t *o = json_loadb(json, len, 0, NULL);
    json_t *list = json_object_get(o, "messages");
    if (!json_is_array(list)) {
        json_decref(o);
        return false;
    }
    size_t i;
    json_t *msg;
    json_array_foreach(list, i, msg) {
        json_int_t seq = json_integer_value(json_object_get(msg, "seq"));
        if (seq <= rq->after)
            continue;
        char *s = json_dumps(msg, JSON_COMPACT);
        gw_reply_event(c, "message", rq->room, s, strlen(s));
        nt_free(s);
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
    } else if (more && rq->replayed >= gw->cfg.replay_max) {
        /* Paged, not unbounded: past the bound the client catches up with history. */
        char text[200];
        snprintf(text, sizeof text, "more than %u messages missed: %u replayed up to seq %lld; fetch "
                 "the rest with history (after_seq) and subscribe again with a later since_seq "
                 "(NATTER_REPLAY_MAX)", gw->cfg.replay_max, rq->replayed, (long long)rq->after);
        replay_fail(c, rq, GW_E_TOO_LARGE, text);
    } else if (more) {
        replay_page(c, rq);
    } else {
        int64_t last = rq->after > rq->last_seq ? rq->after : rq->last_seq;
        gw_reply_ack_obj(c, rq->ref, json_pack("{s:s,s:I,s:I,s:I,s:b}", "room_id", rq->room,
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
    if (gw_rpc_history(c->user->app, rq->room, c->user->id, &h, on_replay_page, rq, NULL) != NT_OK)
        replay_fail(c, rq, GW_E_UNAVAILABLE, "message store unavailable, retry");
}

void gw_recovery_begin(gw_conn *c, gw_member *m, const json_t *ref, int64_t since_seq,
                       int64_t last_seq, int64_t last_read, int64_t unread,
                       gw_recovery_stop_fn stop)
{
    replay_req *rq = nt_calloc(1, sizeof *rq);
    memcpy(rq->conn, c->id, sizeof rq->conn);
    snprintf(rq->room, sizeof rq->room, "%s", m->room->id);
    rq->ref = ref ? json_incref((json_t *)ref) : NULL;
    rq->stop = stop;
    rq->after = since_seq;
    rq->last_seq = last_seq;
    rq->last_read = last_read;
    rq->unread = unread;
    rq->gen = gw_member_replay_start(m, gw->cfg.recovery_buffer);
    replay_page(c, rq);
}
