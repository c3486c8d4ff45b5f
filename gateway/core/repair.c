/* repair.c: a room's message events in seq order, with the gaps filled from the store
 * (repair.h). A room with a gap has a gw_repair: the live events past the gap, held in
 * seq order, and at most one history request out, which holds an interest reference on
 * the room so that the room outlives it. */
#include "repair.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "gw.h"
#include "list.h"
#include "log.h"
#include "reply.h"
#include "rpc_client.h"
#include "sends.h"
#include "wire.h"

#define GW_REPAIR_PAGE 100              /* messages per history request */
#define GW_REPAIR_RETRY_MS 1000         /* a failed request is asked again after this */

typedef struct held {
    int64_t seq;
    gw_buf *b;
} held;

typedef struct gw_repair {
    gw_room *room;
    nt_list link;                       /* in `active` */
    held *v;                            /* live events past the gap, seq ascending, unique */
    uint32_t n, cap;
    uint32_t fetched;                   /* messages delivered from the store so far */
    bool fetching;                      /* a history request (req_id) is out */
    uint64_t req_id;
    bool until_live;                    /* after a reconnect: no live event bounds the gap */
    int64_t retry_at_ms;                /* when to ask again after a failure; 0: not waiting */
} gw_repair;

/* This module's state (gw->repairs), from gw_repair_create to gw_repair_destroy. */
typedef struct gw_repairs {
    nt_list active;                     /* every gw_repair */
    uint64_t reconnects_seen;           /* nt_bus_reconnects when last looked at */
    nt_metric *repaired, *gaps, *resyncs;
} gw_repairs;

void gw_repair_create(gw_ctx *ctx)
{
    gw_repairs *s = nt_calloc(1, sizeof *s);
    nt_list_init(&s->active);
    s->gaps = nt_metric_counter("natter_gateway_gaps_total",
                                "Gaps in a room's message seqs found, and reconnects checked for one");
    s->repaired = nt_metric_counter("natter_gateway_gap_repaired_total",
                                    "Messages a gap repair fetched from the store and delivered");
    s->resyncs = nt_metric_counter("natter_gateway_resyncs_total",
                                   "Gaps larger than NATTER_GAP_REPAIR_MAX, answered with resync events");
    ctx->repairs = s;
}

static gw_repair *repair_new(gw_room *room, bool until_live)
{
    gw_repair *rp = nt_calloc(1, sizeof *rp);
    rp->room = room;
    rp->until_live = until_live;
    room->repair = rp;
    nt_list_insert_tail(&gw->repairs->active, &rp->link);
    nt_metric_add(gw->repairs->gaps, 1);
    return rp;
}

static void repair_free(gw_repair *rp)
{
    for (uint32_t i = 0; i < rp->n; i++)
        gw_buf_release(rp->v[i].b);
    nt_free(rp->v);
    nt_list_remove(&rp->link);
    rp->room->repair = NULL;
    nt_free(rp);
}

void gw_repair_room_freed(gw_room *room)
{
    if (room->repair)
        repair_free(room->repair);
}

/* Holds b (seq above the room's last), keeping v sorted and each seq once. */
static void hold(gw_repair *rp, gw_buf *b, int64_t seq)
{
    uint32_t at = rp->n;
    while (at > 0 && rp->v[at - 1].seq > seq)
        at--;
    if (at > 0 && rp->v[at - 1].seq == seq)
        return;                                 /* a repeat of one already held */
    if (rp->n == rp->cap) {
        rp->cap = rp->cap ? rp->cap * 2 : 16;
        rp->v = nt_realloc(rp->v, rp->cap * sizeof *rp->v);
    }
    memmove(rp->v + at + 1, rp->v + at, (rp->n - at) * sizeof *rp->v);
    gw_buf_retain(b);
    rp->v[at] = (held){ seq, b };
    rp->n++;
}

/* Delivers the held events that follow the room's last seq without a gap; drops the
 * ones at or below it. */
static void drain(gw_repair *rp)
{
    gw_room *room = rp->room;
    uint32_t i = 0;
    for (; i < rp->n && rp->v[i].seq <= room->last_seq + 1; i++) {
        if (rp->v[i].seq == room->last_seq + 1)
            gw_room_deliver(room, rp->v[i].b, rp->v[i].seq);
        gw_buf_release(rp->v[i].b);
    }
    if (i == 0)
        return;                                 /* v may be NULL: nothing held yet */
    memmove(rp->v, rp->v + i, (rp->n - i) * sizeof *rp->v);
    rp->n -= i;
}

/* The gap is not filled from the store: the members hear which messages they did not
 * get (before_seq 0: none is known after them yet), and the held events go out. */
static void resync(gw_repair *rp, int64_t before_seq)
{
    gw_room *room = rp->room;
    char data[160];
    int n = before_seq > 0
        ? snprintf(data, sizeof data, "{\"room_id\":\"%s\",\"after_seq\":%lld,\"before_seq\":%lld}",
                   room->id, (long long)room->last_seq, (long long)before_seq)
        : snprintf(data, sizeof data, "{\"room_id\":\"%s\",\"after_seq\":%lld,\"before_seq\":null}",
                   room->id, (long long)room->last_seq);
    nt_warn("room %s: %s messages after seq %lld missed, more than NATTER_GAP_REPAIR_MAX (%u): "
            "resync", room->subject, before_seq > 0 ? "the" : "unknown", (long long)room->last_seq,
            gw->cfg.gap_repair_max);
    nt_metric_add(gw->repairs->resyncs, 1);
    nt_list *l;
    nt_list_foreach(l, &room->members) {
        gw_member *m = nt_list_entry(l, gw_member, rlink);
        if (!m->replay)                          /* a replay reads the store itself */
            gw_reply_event(m->conn, "resync", room->id, data, (size_t)n);
    }
    /* The stream goes on from the held events; with none, from the next live one. */
    if (rp->n > 0)
        room->last_seq = rp->v[0].seq - 1;
    else
        room->last_seq = 0;
    drain(rp);
}

/* A member's user may read the room (a private room: members only). */
static const gw_user *reader(const gw_room *room)
{
    nt_list *l;
    nt_list_foreach(l, &room->members) {
        const gw_member *m = nt_list_entry(l, gw_member, rlink);
        if (m->conn->user)
            return m->conn->user;
    }
    return NULL;
}

static void fetch(gw_repair *rp);

/* The message event that was lost carried its send's ack: a sender of this gateway
 * still waiting for it gets the same ack, built from the stored row. */
static void repaired_ack(const gw_room *room, const json_t *msg)
{
    const char *sender = json_string_value(json_object_get(msg, "sender_id"));
    json_t *cmid = json_object_get(msg, "client_msg_id");
    nt_subj_parts parts;
    char app[65];
    if (!sender || !json_is_string(cmid) ||
        !nt_subj_parse_room(room->subject, strlen(room->subject), &parts) ||
        parts.app_len >= sizeof app)
        return;
    memcpy(app, parts.app, parts.app_len);
    app[parts.app_len] = '\0';
    gw_user *u = gw_user_find(app, sender);
    if (!u)
        return;
    json_t *ack = json_pack("{s:O?,s:O?,s:O?,s:O?,s:O}", "id", json_object_get(msg, "id"),
                            "room_id", json_object_get(msg, "room_id"), "seq",
                            json_object_get(msg, "seq"), "created_at",
                            json_object_get(msg, "created_at"), "client_msg_id", cmid);
    char *s = ack ? json_dumps(ack, JSON_COMPACT) : NULL;
    json_decref(ack);
    if (s)
        gw_sends_ack(u, json_string_value(cmid), json_string_length(cmid), s, strlen(s));
    nt_free(s);
}

/* Delivers a page's messages past the room's last seq; false when malformed. */
static bool deliver_page(gw_repair *rp, const char *json, size_t len, bool *more)
{
    gw_room *room = rp->room;
    json_t *o = json_loadb(json, len, 0, NULL);
    json_t *list = json_object_get(o, "messages");
    if (!json_is_array(list)) {
        json_decref(o);
        return false;
    }
    char channel[80];
    snprintf(channel, sizeof channel, "room.%s", room->id);
    size_t i;
    json_t *msg;
    json_array_foreach(list, i, msg) {
        json_int_t seq = json_integer_value(json_object_get(msg, "seq"));
        if (seq <= room->last_seq)
            continue;
        /* the frame the persister publishes for a message, rebuilt from its row */
        json_t *ev = json_pack("{s:s,s:s,s:O}", "event", "message", "channel", channel, "data", msg);
        char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        json_decref(ev);
        if (!s)
            continue;
        gw_buf *b = gw_buf_create(s, strlen(s));
        nt_free(s);
        gw_room_deliver(room, b, seq);
        gw_buf_release(b);
        repaired_ack(room, msg);
        rp->fetched++;
        nt_metric_add(gw->repairs->repaired, 1);
    }
    *more = json_is_true(json_object_get(o, "has_more")) && json_array_size(list) > 0;
    json_decref(o);
    return true;
}

/* After a page (answered) or a new held event: deliver what follows, then fetch more,
 * resync or end. */
static void advance(gw_repair *rp, bool answered, bool more)
{
    gw_room *room = rp->room;
    drain(rp);
    if (rp->n == 0 && (!rp->until_live || (answered && !more))) {
        repair_free(rp);                        /* no gap left */
        return;
    }
    int64_t gap = rp->n > 0 ? rp->v[0].seq - room->last_seq - 1 : 0;
    if (rp->fetched + (uint64_t)gap > gw->cfg.gap_repair_max || rp->n > gw->cfg.gap_repair_max ||
        (rp->n == 0 && rp->fetched >= gw->cfg.gap_repair_max)) {
        resync(rp, rp->n > 0 ? rp->v[0].seq : 0);
        if (rp->n == 0) {
            repair_free(rp);
            return;
        }
    } else if (answered && !more) {
        /* the store has nothing before the held events: never for committed seqs, but
         * do not wait forever */
        nt_warn("room %s: the store has no messages between seq %lld and %lld", room->subject,
                (long long)room->last_seq, (long long)rp->v[0].seq);
        room->last_seq = rp->v[0].seq - 1;
        drain(rp);
        if (rp->n == 0) {
            repair_free(rp);
            return;
        }
    }
    fetch(rp);
}

static void on_page(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_repair *rp = ((gw_room *)arg)->repair;
    gw_room *room = arg;
    nt_envr r;
    gw_error err;
    size_t len;
    bool more = false;
    (void)bus;
    bool ok = gw_rpc_ok(st, msg, "message store", &r, &err);
    const char *json = ok ? nt_envr_str(&r, "json", &len) : NULL;
    if (rp) {
        rp->fetching = false;
        if (json && deliver_page(rp, json, len, &more)) {
            advance(rp, true, more);
        } else {
            nt_warn("room %s: gap repair after seq %lld: %s; retrying", room->subject,
                    (long long)room->last_seq, ok ? "malformed reply" : err.message);
            rp->retry_at_ms = nt_now_ms() + GW_REPAIR_RETRY_MS;
        }
    }
    nt_envr_free(&r);
    gw_room_release(room);                      /* the request's reference; may free room */
}

/* Asks the store for the page after the room's last seq, unless one is out. */
static void fetch(gw_repair *rp)
{
    gw_room *room = rp->room;
    const gw_user *u = reader(room);
    if (rp->fetching)
        return;
    rp->retry_at_ms = 0;
    if (!u) {                                   /* nobody here to deliver to */
        if (rp->n > 0)
            room->last_seq = rp->v[rp->n - 1].seq;
        repair_free(rp);
        return;
    }
    /* at most the gap, a page, and what NATTER_GAP_REPAIR_MAX leaves (advance resyncs
     * before that reaches 0) */
    int64_t limit = rp->n > 0 ? rp->v[0].seq - room->last_seq - 1 : GW_REPAIR_PAGE;
    int64_t left = (int64_t)gw->cfg.gap_repair_max - rp->fetched;
    if (limit > GW_REPAIR_PAGE)
        limit = GW_REPAIR_PAGE;
    if (limit > left)
        limit = left;
    gw_history_req h = { .before_seq = -1, .after_seq = room->last_seq, .limit = limit };
    gw_room_hold(room);
    if (gw_rpc_history(u->app, room->id, u->id, &h, on_page, room, &rp->req_id) != NT_OK) {
        gw_room_release(room);
        rp->retry_at_ms = nt_now_ms() + GW_REPAIR_RETRY_MS;
        return;
    }
    rp->fetching = true;
}

void gw_repair_message(gw_room *room, gw_buf *b, int64_t seq)
{
    gw_repair *rp = room->repair;
    if (seq <= room->last_seq)
        return;                                 /* a repeat */
    if (rp) {
        hold(rp, b, seq);
        if (rp->n > gw->cfg.gap_repair_max || (!rp->fetching && rp->retry_at_ms == 0))
            advance(rp, false, false);
        return;
    }
    if (room->last_seq == 0 || seq == room->last_seq + 1) {
        gw_room_deliver(room, b, seq);          /* in order (or the first one seen) */
        return;
    }
    rp = repair_new(room, false);
    hold(rp, b, seq);
    advance(rp, false, false);
}

static void check_room(gw_room *room, void *arg)
{
    (void)arg;
    if (room->last_seq > 0 && !room->repair)
        fetch(repair_new(room, true));
}

void gw_repair_tick(int64_t now_ms)
{
    gw_repairs *s = gw->repairs;
    uint64_t rc = nt_bus_reconnects(gw->bus);
    if (rc != s->reconnects_seen) {
        /* What was published while the gateway was away is not sent again. */
        s->reconnects_seen = rc;
        gw_rooms_foreach(check_room, NULL);
    }
    nt_list *l, *next;
    for (l = s->active.next; l != &s->active; l = next) {
        next = l->next;
        gw_repair *rp = nt_list_entry(l, gw_repair, link);
        if (rp->retry_at_ms && rp->retry_at_ms <= now_ms)
            fetch(rp);
    }
}

void gw_repair_destroy(gw_ctx *ctx)
{
    gw_repairs *s = ctx->repairs;
    nt_list *l;
    if (!s)
        return;
    while ((l = nt_list_first(&s->active)) != NULL) {
        gw_repair *rp = nt_list_entry(l, gw_repair, link);
        gw_room *room = rp->room;
        bool fetching = rp->fetching;
        if (fetching)
            nt_bus_request_cancel(ctx->bus, rp->req_id);
        repair_free(rp);
        if (fetching)
            gw_room_release(room);              /* the request's reference */
    }
    nt_free(s);
    ctx->repairs = NULL;
}
