/* presence.c: presence, typing and online users: throttled here, decided and
 * stored by the router (natter.ctl.presence, natter.ctl.typing,
 * natter.rpc.router.online). Typing is throttled here, before the bus. */
#include "presence.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "ask.h"
#include "gw.h"
#include "list.h"
#include "log.h"
#include "ratelimit.h"
#include "reply.h"
#include "rooms.h"
#include "rpc_client.h"
#include "util.h"
#include "wire.h"

#define TYPING_SLOTS 4096                /* throttle records (a lossy cache, power of 2) */

/* Typing state of one (app, user, room), in a direct-mapped table indexed by the
 * key's hash: bounded, no per-connection cleanup. A collision evicts the older
 * record, which at worst lets one more change through. At most one change is
 * forwarded per NATTER_TYPING_INTERVAL_MS (true or false alike: an alternation
 * is as costly to every watcher as a repetition); a change asked for within it
 * is held and forwarded when the interval ends, the latest one winning. */
typedef struct typing_rec {
    uint64_t key;                        /* 64-bit hash of app, user, room; 0 = empty */
    uint32_t last_ms;                    /* loop ms a change was last forwarded */
    bool on;                             /* the last forwarded state */
    bool want;                           /* the latest state asked for */
    bool held;                           /* want != on, waiting for the interval */
    bool listed;                         /* the slot is in held_slots */
    char conn[17];                       /* the connection that asked last */
    char room[65];
} typing_rec;

/* The latest presence change of a user, held for the end of the interval. */
typedef struct gw_presence_hold {
    nt_list link;                            /* in presence_holds */
    gw_user *user;
    uint32_t len;
    char data[];                             /* the natter.ctl.presence envelope */
} gw_presence_hold;

/* This module's state (gw->presence). */
typedef struct gw_presence {
    typing_rec typing_table[TYPING_SLOTS];
    uint16_t held_slots[TYPING_SLOTS];   /* slots with a held change, each once */
    size_t nheld;
    nt_list presence_holds;              /* of gw_presence_hold */
    nt_metric *typing_forwarded;         /* natter.ctl.typing published */
    nt_metric *typing_throttled;         /* typing frames acknowledged but not forwarded */
    nt_metric *presence_sets;            /* natter.ctl.presence published */
    nt_metric *presence_held;            /* presence changes held for the interval */
} gw_presence;

void gw_presence_create(gw_ctx *ctx)
{
    gw_presence *pm = nt_calloc(1, sizeof *pm);
    nt_list_init(&pm->presence_holds);
    ctx->presence = pm;
    pm->typing_forwarded = nt_metric_counter("natter_gateway_typing_forwarded_total",
                                            "Typing changes forwarded to the router");
    pm->typing_throttled = nt_metric_counter("natter_gateway_typing_throttled_total",
                                            "Typing frames not forwarded at once (repeated, or held for NATTER_TYPING_INTERVAL_MS)");
    pm->presence_sets = nt_metric_counter("natter_gateway_presence_sets_total",
                                         "Presence actions forwarded to the router");
    pm->presence_held = nt_metric_counter("natter_gateway_presence_held_total",
                                          "Presence changes held for NATTER_PRESENCE_INTERVAL_MS (the latest is forwarded)");
}

void gw_presence_destroy(gw_ctx *ctx)
{
    gw_presence *pm = ctx->presence;
    if (!pm)
        return;
    nt_list *n, *tmp;
    nt_list_foreach_safe(n, tmp, &pm->presence_holds) {   /* users are gone first: none */
        gw_presence_hold *h = nt_list_entry(n, gw_presence_hold, link);
        h->user->presence_held = NULL;
        nt_list_remove(&h->link);
        nt_free(h);
    }
    nt_free(pm);
    ctx->presence = NULL;
}

static uint64_t typing_key(const gw_conn *c, const char *room)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a over app \0 user \0 room */
    const char *parts[] = { c->user->app, c->user->id, room };
    for (size_t i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h ? h : 1;
}

static typing_rec *typing_find(uint64_t key)
{
    typing_rec *r = &gw->presence->typing_table[key & (TYPING_SLOTS - 1)];
    return r->key == key ? r : NULL;
}

static void publish_typing(gw_conn *c, const char *room, bool on)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", c->user->app);
    nt_envw_cstr(&w, "room", room);
    nt_envw_cstr(&w, "user", c->user->id);
    nt_envw_cstr(&w, "name", c->user->name);
    nt_envw_bool(&w, "is_typing", on);
    nt_envw_cstr(&w, "gw", gw->cfg.gw_id);
    nt_envw_cstr(&w, "conn", c->id);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(gw->bus, NT_SUBJ_CTL_TYPING, NULL, data, len) != NT_OK)
        nt_warn("cannot publish natter.ctl.typing for connection %s", c->id);
    else
        nt_metric_add(gw->presence->typing_forwarded, 1);
    nt_envw_free(&w);
}

static uint32_t loop_ms(void) { return (uint32_t)uv_now(gw->loop); }

/* last_ms is a loop time with its low bit set (0 = never), so it may be 1 ms past now. */
static bool interval_passed(uint32_t last_ms, uint32_t now, uint32_t interval)
{
    return last_ms == 0 || (int32_t)(now - last_ms) >= (int32_t)interval;
}

/* Applies the throttle: true when this change is to be forwarded now; else it may
 * have been held for the end of the interval. */
static bool typing_admit(gw_conn *c, const char *room, uint64_t key, bool on, uint32_t now)
{
    gw_presence *pm = gw->presence;
    size_t slot = key & (TYPING_SLOTS - 1);
    typing_rec *r = &pm->typing_table[slot];
    uint32_t interval = gw->cfg.typing_interval_ms;
    if (r->key != key) {                 /* unknown (or evicted): forward */
        r->key = key;
        r->on = r->want = on;
        r->held = false;
        r->last_ms = now | 1;
        snprintf(r->room, sizeof r->room, "%s", room);
        memcpy(r->conn, c->id, sizeof r->conn);
        return true;
    }
    r->want = on;
    memcpy(r->conn, c->id, sizeof r->conn);
    bool passed = interval_passed(r->last_ms, now, interval);
    if (on == r->on) {
        r->held = false;                 /* back to what watchers see: nothing to send */
        if (!on || !passed)
            return false;                /* a repeated true refreshes once per interval */
    } else if (!passed) {
        r->held = true;
        if (!r->listed) {
            r->listed = true;
            pm->held_slots[pm->nheld++] = (uint16_t)slot;
        }
        return false;
    }
    r->on = on;
    r->held = false;
    r->last_ms = now | 1;
    return true;
}

void gw_presence_typing(gw_conn *c, const json_t *ref, const char *room, bool on)
{
    gw_error err;
    if (!gw_member_find(c, room)) {
        gw_fail(&err, GW_E_FORBIDDEN, "subscribe to room %s first", room);
        return gw_reply_fail(c, ref, &err);
    }
    if (typing_admit(c, room, typing_key(c, room), on, loop_ms())) {
        publish_typing(c, room, on);
    } else {
        nt_metric_add(gw->presence->typing_throttled, 1);
    }
    gw_reply_ack(c, ref, "{}", 2);
}

void gw_presence_typing_stop(gw_conn *c, const char *room)
{
    typing_rec *r = typing_find(typing_key(c, room));
    if (r) {
        r->held = false;
        r->want = false;
    }
    if (r && r->on) {
        r->on = false;
        r->last_ms = loop_ms() | 1;
        publish_typing(c, room, false);
    }
}

/* Forwards the held typing changes whose interval has passed. */
static void typing_sweep(gw_presence *pm, uint32_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < pm->nheld; i++) {
        typing_rec *r = &pm->typing_table[pm->held_slots[i]];
        if (r->held && !interval_passed(r->last_ms, now, gw->cfg.typing_interval_ms)) {
            pm->held_slots[keep++] = pm->held_slots[i];
            continue;
        }
        r->listed = false;
        if (!r->held)
            continue;
        r->held = false;
        gw_conn *c = gw_conn_find(r->conn);
        if (!c || !c->user || !gw_member_find(c, r->room) || typing_key(c, r->room) != r->key)
            continue;                    /* gone: its close or unsubscribe said false */
        r->on = r->want;
        r->last_ms = now | 1;
        publish_typing(c, r->room, r->on);
    }
    pm->nheld = keep;
}

void gw_presence_set(gw_conn *c, const json_t *ref, const gw_presence_req *p)
{
    const char *status = p->status, *device = p->device, *text = p->status_text;
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", c->user->app);
    nt_envw_cstr(&w, "user", c->user->id);
    nt_envw_cstr(&w, "name", c->user->name);
    nt_envw_cstr(&w, "status", status);
    if (device)
        nt_envw_cstr(&w, "device", device);
    if (text)
        nt_envw_cstr(&w, "status_text", text);
    nt_envw_cstr(&w, "gw", gw->cfg.gw_id);
    nt_envw_cstr(&w, "conn", c->id);
    const char *data = nt_envw_finish(&w, &len);
    gw_user *u = c->user;
    uint32_t now = loop_ms();
    if (u->presence_held || !interval_passed(u->presence_ms, now, gw->cfg.presence_interval_ms)) {
        /* Within the interval: held, the latest change winning, forwarded when it ends. */
        gw_presence_hold *h = u->presence_held;
        if (!h || h->len < len) {
            gw_presence_hold *n = nt_malloc(sizeof *n + len);
            if (h) {
                nt_list_remove(&h->link);
                nt_free(h);
            }
            n->user = u;
            nt_list_insert_head(&gw->presence->presence_holds, &n->link);
            u->presence_held = h = n;
        }
        memcpy(h->data, data, len);
        h->len = (uint32_t)len;
        nt_envw_free(&w);
        nt_metric_add(gw->presence->presence_held, 1);
        return gw_reply_ack(c, ref, "{}", 2);
    }
    nt_status st = nt_bus_publish(gw->bus, NT_SUBJ_CTL_PRESENCE, NULL, data, len);
    nt_envw_free(&w);
    if (st != NT_OK)
        return gw_reply_error(c, ref, GW_E_UNAVAILABLE, "router unavailable, retry");
    u->presence_ms = now | 1;
    nt_metric_add(gw->presence->presence_sets, 1);
    gw_reply_ack(c, ref, "{}", 2);
}

/* Publishes h (already out of presence_holds) and frees it. */
static void presence_forward_held(gw_presence_hold *h, uint32_t now)
{
    gw_user *u = h->user;
    if (nt_bus_publish(gw->bus, NT_SUBJ_CTL_PRESENCE, NULL, h->data, h->len) != NT_OK)
        nt_warn("cannot publish the held presence change of %s/%s", u->app, u->id);
    else
        nt_metric_add(gw->presence->presence_sets, 1);
    u->presence_held = NULL;
    u->presence_ms = now | 1;
    nt_free(h);
}

void gw_presence_user_gone(gw_user *u)
{
    gw_presence_hold *h = u->presence_held;
    if (!h)
        return;
    nt_list_remove(&h->link);
    presence_forward_held(h, loop_ms());
}

void gw_presence_sweep(void)
{
    gw_presence *pm = gw->presence;
    uint32_t now = loop_ms();
    typing_sweep(pm, now);
    nt_list *n, *tmp;
    nt_list_foreach_safe(n, tmp, &pm->presence_holds) {
        gw_presence_hold *h = nt_list_entry(n, gw_presence_hold, link);
        if (!interval_passed(h->user->presence_ms, now, gw->cfg.presence_interval_ms))
            continue;
        nt_list_remove(&h->link);
        presence_forward_held(h, now);
    }
}

/* ---- online_users ---- */

void gw_presence_online_users(gw_conn *c, const json_t *ref, const char *room)
{
    gw_error err;
    if (!gw_member_find(c, room)) {
        gw_fail(&err, GW_E_FORBIDDEN, "subscribe to room %s first", room);
        return gw_reply_fail(c, ref, &err);
    }
    gw_ask *a = gw_ask_begin(c, ref, "router");
    if (a && gw_rpc_router_query(NT_SUBJ_RPC_ROUTER_ONLINE, c->user->app, "room", room, NULL,
                                 gw_ask_answered, a, NULL) != NT_OK)
        gw_ask_unsent(c, a);
}
