/* receipts.c: coalesced receipt events. Each (app, room, user, type) has an entry
 * while a receipt went out within the interval; a mark that moves meanwhile becomes
 * the entry's pending receipt, published by the timer once the interval is over. */
#include "receipts.h"

#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "envelope.h"
#include "log.h"
#include "map.h"
#include "wire.h"

typedef struct rc_entry {
    char key[4 * 66];            /* app|room|user|r or d; the map key */
    char app[65], room[65], user[65];
    bool delivered;
    bool pending;                /* a receipt waits for the interval to end */
    uint64_t sent_ms;            /* loop time of the last receipt published */
    int64_t seq;
    char at[40];
} rc_entry;

struct ps_receipts {
    ps_ctx *ctx;
    nt_map map;
    uv_timer_t *timer;           /* heap, freed in its close callback */
    bool warned;                 /* a full-table warning was logged since it last had room */
};

static void publish(ps_receipts *rc, const rc_entry *e)
{
    char subject[NT_SUBJ_CAP], channel[80];
    if (nt_subj_room(subject, sizeof subject, e->app, e->room) < 0) {
        nt_warn("receipt of room %s of app %s: no subject", e->room, e->app);
        return;
    }
    snprintf(channel, sizeof channel, "room.%s", e->room);
    json_t *frame = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:I,s:s}}", "event", "receipt",
                              "channel", channel, "data", "room_id", e->room, "user_id", e->user,
                              "type", e->delivered ? "delivered" : "read", "seq",
                              (json_int_t)e->seq, "at", e->at);
    char *js = json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_TYPE, NT_TYPE_EVENT);
    nt_envw_cstr(&w, NT_KEY_ROOM, e->room);
    nt_envw_cstr(&w, NT_KEY_JSON, js);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(rc->ctx->bus, subject, NULL, data, len) != NT_OK)
        nt_warn("publish to %s failed", subject);
    else
        nt_metric_add(rc->ctx->m.receipts, 1);
    nt_envw_free(&w);
    nt_free(js);
}

static void on_tick(uv_timer_t *t)
{
    ps_receipts *rc = t->data;
    uint64_t now = uv_now(rc->ctx->loop), iv = (uint64_t)rc->ctx->cfg.receipt_interval_ms;
    rc_entry **expired = NULL;
    size_t n = 0, i = 0;
    nt_map_entry *me;
    while ((me = nt_map_next(&rc->map, &i)) != NULL) {
        rc_entry *e = me->val;
        if (now - e->sent_ms < iv)
            continue;
        if (e->pending) {
            publish(rc, e);
            e->pending = false;
            e->sent_ms = now;
        } else {
            expired = nt_realloc(expired, (n + 1) * sizeof *expired);
            expired[n++] = e;
        }
    }
    for (size_t k = 0; k < n; k++) {
        nt_map_del(&rc->map, expired[k]->key);
        nt_free(expired[k]);
    }
    nt_free(expired);
    if (rc->map.count == 0)
        uv_timer_stop(rc->timer);
}

ps_receipts *ps_receipts_create(ps_ctx *ctx)
{
    ps_receipts *rc = nt_calloc(1, sizeof *rc);
    rc->ctx = ctx;
    rc->timer = nt_malloc(sizeof *rc->timer);
    uv_timer_init(ctx->loop, rc->timer);
    rc->timer->data = rc;
    return rc;
}

static void on_timer_closed(uv_handle_t *h)
{
    nt_free(h);
}

void ps_receipts_destroy(ps_receipts *rc)
{
    if (rc == NULL)
        return;
    size_t i = 0;
    nt_map_entry *me;
    while ((me = nt_map_next(&rc->map, &i)) != NULL)
        nt_free(me->val);
    nt_map_free(&rc->map);
    uv_close((uv_handle_t *)rc->timer, on_timer_closed);
    nt_free(rc);
}

void ps_receipts_note(ps_receipts *rc, const char *app, const char *room, const char *user,
                      bool delivered, int64_t seq, const char *at)
{
    char key[sizeof(((rc_entry *)0)->key)];
    snprintf(key, sizeof key, "%s|%s|%s|%c", app, room, user, delivered ? 'd' : 'r');
    uint64_t now = uv_now(rc->ctx->loop);
    rc_entry *e = nt_map_get(&rc->map, key);
    if (e == NULL) {
        if (rc->map.count >= (size_t)rc->ctx->cfg.receipt_max_pending) {
            nt_metric_add(rc->ctx->m.receipts_dropped, 1);
            if (!rc->warned)
                nt_warn("receipt table full (NATTER_RECEIPT_MAX_PENDING=%d): dropping receipts",
                        rc->ctx->cfg.receipt_max_pending);
            rc->warned = true;
            return;
        }
        rc->warned = false;
        e = nt_calloc(1, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
        snprintf(e->app, sizeof e->app, "%s", app);
        snprintf(e->room, sizeof e->room, "%s", room);
        snprintf(e->user, sizeof e->user, "%s", user);
        e->delivered = delivered;
        e->seq = seq;
        snprintf(e->at, sizeof e->at, "%s", at);
        publish(rc, e);
        e->sent_ms = now;
        nt_map_put(&rc->map, e->key, e);
        if (!uv_is_active((uv_handle_t *)rc->timer)) {
            uint64_t tick = (uint64_t)rc->ctx->cfg.receipt_interval_ms / 4;
            uv_timer_start(rc->timer, on_tick, tick ? tick : 1, tick ? tick : 1);
        }
        return;
    }
    if (seq > e->seq) {
        e->seq = seq;
        snprintf(e->at, sizeof e->at, "%s", at);
    }
    if (e->pending)
        nt_metric_add(rc->ctx->m.receipts_coalesced, 1);
    if (now - e->sent_ms >= (uint64_t)rc->ctx->cfg.receipt_interval_ms && !e->pending) {
        publish(rc, e);
        e->sent_ms = now;
    } else {
        e->pending = true;
    }
}
