/* rooms.c: interest-based room and user subscriptions, and fan-out of their events. */
#include "rooms.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"
#include "gw.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "reply.h"
#include "wire.h"

/* This module's state (gw->rooms), from gw_rooms_start to gw_rooms_stop. */
typedef struct gw_rooms {
    nt_map rooms, users;            /* by subject */
    gw_rooms_hooks hooks;           /* what user-subject envelopes and acks go to */
    nt_bus_sub *unread;             /* NT_SUBJ_UNREAD */
    uint64_t replay_gens;           /* the last replay generation handed out */
    char noname[1];                 /* the empty display name, shared */
} gw_rooms;

/* Queues an envelope's pre-rendered json to each connection in a list, encoded once. */
static gw_buf *event_buf(const nt_bus_msg *msg, nt_envr *r, const char *what)
{
    size_t len;
    if (nt_envr_parse(r, msg->data, msg->len) != NT_OK) {
        nt_warn("dropping malformed envelope on %s", msg->subject);
        return NULL;
    }
    if (!nt_envr_str_eq(r, "type", "event"))
        return NULL;
    const char *json = nt_envr_str(r, "json", &len);
    if (!json) {
        nt_warn("dropping %s event without json on %s", what, msg->subject);
        return NULL;
    }
    return gw_buf_create(json, len);
}

/* Keeps b for a replaying member; over the bound the replay is marked failed. */
static void replay_buffer(gw_replay *rp, gw_buf *b, int64_t seq)
{
    if (rp->overflow)
        return;
    if (rp->n >= rp->max) {
        rp->overflow = true;
        return;
    }
    if (rp->n == rp->cap) {
        rp->cap = rp->cap ? rp->cap * 2 : 64;
        rp->bufs = nt_realloc(rp->bufs, rp->cap * sizeof *rp->bufs);
        rp->seqs = nt_realloc(rp->seqs, rp->cap * sizeof *rp->seqs);
    }
    gw_buf_retain(b);
    rp->bufs[rp->n] = b;
    rp->seqs[rp->n++] = seq;
}

static void replay_free(gw_replay *rp)
{
    if (!rp)
        return;
    for (uint32_t i = 0; i < rp->n; i++)
        gw_buf_release(rp->bufs[i]);
    nt_free(rp->bufs);
    nt_free(rp->seqs);
    nt_free(rp);
}

uint64_t gw_member_replay_start(gw_member *m, uint32_t max)
{
    replay_free(m->replay);
    m->replay = nt_calloc(1, sizeof *m->replay);
    m->replay->gen = ++gw->rooms->replay_gens;
    m->replay->max = max;
    return m->replay->gen;
}

void gw_member_replay_finish(gw_member *m, int64_t last_seq)
{
    gw_replay *rp = m->replay;
    if (!rp)
        return;
    m->replay = NULL;
    for (uint32_t i = 0; i < rp->n; i++)
        if (rp->seqs[i] < 0 || rp->seqs[i] > last_seq)
            gw_conn_enqueue(m->conn, rp->bufs[i]);
    replay_free(rp);
}

/* A message event may carry its send's ack (internals.md, send path): every gateway
 * holding the sender answers that user's sends pending on cmid (a resend through
 * another gateway waits for the same ack). */
static void room_event_ack(const gw_room *room, const nt_envr *r)
{
    size_t slen, clen, alen;
    const char *ack = nt_envr_str(r, "ack", &alen);
    const char *sender = ack ? nt_envr_str(r, "sender", &slen) : NULL;
    const char *cmid = sender ? nt_envr_str(r, "cmid", &clen) : NULL;
    char app[65], user[65];               /* ids are at most 64 characters */
    nt_subj_parts parts;
    if (!cmid || slen >= sizeof user ||
        !nt_subj_parse_room(room->subject, strlen(room->subject), &parts) ||
        parts.app_len >= sizeof app)
        return;
    memcpy(app, parts.app, parts.app_len);
    app[parts.app_len] = '\0';
    memcpy(user, sender, slen);
    user[slen] = '\0';
    gw_user *u = gw_user_find(app, user);
    if (u)
        gw->rooms->hooks.ack(u, cmid, clen, ack, alen);
}

/* A room event carrying `rooms` (a presence event the router published to each of
 * those rooms, in that order): true when c is subscribed to a listed room that comes
 * before `room` (or to any listed room when `room` is not listed), so c gets the event
 * there and is skipped here. False when rooms is NULL or not an array. */
static long listed_at(const msgpack_object *rooms, const char *id, size_t len)
{
    for (uint32_t i = 0; i < rooms->via.array.size; i++) {
        const msgpack_object *o = &rooms->via.array.ptr[i];
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
            memcmp(o->via.str.ptr, id, len) == 0)
            return (long)i;
    }
    return -1;
}

static bool heard_elsewhere(const gw_conn *c, const char *room, const msgpack_object *rooms)
{
    if (!rooms || rooms->type != MSGPACK_OBJECT_ARRAY)
        return false;
    long here = listed_at(rooms, room, strlen(room));
    for (const gw_member *m = c->rooms; m; m = m->cnext) {
        if (m->room->id == room || strcmp(m->room->id, room) == 0)
            continue;
        long at = listed_at(rooms, m->room->id, strlen(m->room->id));
        /* an unlisted room (past RT_PRESENCE_ROOMS_LISTED) comes after every listed one */
        if (at >= 0 && (here < 0 || at < here))
            return true;
    }
    return false;
}

void gw_room_deliver(gw_room *room, gw_buf *b, int64_t seq)
{
    gw_fanout fo;
    gw_fanout_init(&fo, b);
    nt_list *n;
    nt_list_foreach(n, &room->members) {
        gw_member *m = nt_list_entry(n, gw_member, rlink);
        gw_buf *out = gw_fanout_for(&fo, m->conn);
        if (m->replay)
            replay_buffer(m->replay, out, seq);
        else
            gw_conn_enqueue(m->conn, out);
    }
    gw_fanout_free(&fo);
    room->last_seq = seq;
}

static void on_room_msg(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    gw_room *room = arg;
    nt_envr r;
    int64_t seq = -1;
    gw_buf *b = event_buf(msg, &r, "room");
    /* A message event: in seq order, each seq once (a persister that takes over a
     * partition republishes the last batch its predecessor committed; per-member
     * replays buffer after this room-wide order). */
    if (b && nt_envr_int(&r, "seq", &seq) && seq >= 0) {
        if (gw->rooms->hooks.message)
            gw->rooms->hooks.message(room, b, seq);
        else if (seq > room->last_seq)
            gw_room_deliver(room, b, seq);
        gw_buf_release(b);
        b = NULL;
    }
    if (b) {
        /* "skip_user": an event for the room's other subscribers (typing). */
        size_t skip_len = 0;
        const char *skip = nt_envr_str(&r, "skip_user", &skip_len);
        /* "rooms": a presence event published to several rooms; once per connection */
        const msgpack_object *listed = nt_envr_get(&r, "rooms");
        /* "lazy": an announcement (presence, member_joined/left) that may wait for
         * the connection's next frame */
        bool lazy = false;
        nt_envr_bool(&r, "lazy", &lazy);
        gw_fanout fo;
        gw_fanout_init(&fo, b);
        nt_list *n;
        nt_list_foreach(n, &room->members) {
            gw_member *m = nt_list_entry(n, gw_member, rlink);
            const char *uid = m->conn->user ? m->conn->user->id : NULL;
            if (skip && uid && strlen(uid) == skip_len && memcmp(uid, skip, skip_len) == 0)
                continue;
            if (listed && heard_elsewhere(m->conn, room->id, listed))
                continue;
            gw_buf *out = gw_fanout_for(&fo, m->conn);
            if (m->replay)
                replay_buffer(m->replay, out, -1);
            else if (lazy)
                gw_conn_enqueue_lazy(m->conn, out);
            else
                gw_conn_enqueue(m->conn, out);
        }
        gw_fanout_free(&fo);
        gw_buf_release(b);
    }
    if (r.map)
        room_event_ack(room, &r);
    nt_envr_free(&r);
}

static void on_user_msg(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    gw_user *u = arg;
    nt_envr r;
    gw_buf *b = event_buf(msg, &r, "user");
    if (b) {
        gw_fanout fo;
        gw_fanout_init(&fo, b);
        for (gw_conn *c = gw_user_conns(u, NULL); c; c = gw_user_conns(u, c))
            gw_conn_enqueue(c, gw_fanout_for(&fo, c));
        gw_fanout_free(&fo);
        gw_buf_release(b);
    } else if (r.map) {
        gw->rooms->hooks.user_envelope(u, &r);
    }
    nt_envr_free(&r);
}

/* Copies msgpack string o into buf (NUL-terminated); false when not a string or
 * too long for buf. */
static bool obj_cstr(const msgpack_object *o, char *buf, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap)
        return false;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return true;
}

/* True when o is an array of n elements. */
static bool array_of(const msgpack_object *o, uint32_t n)
{
    return o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == n;
}

/* NT_SUBJ_UNREAD: one persister flush chunk, {apps, users, jsons} as parallel
 * string arrays, broadcast to every gateway; each sends the events of the users it
 * holds. One NATS message per chunk instead of one per user (each a hop through
 * cnats's delivery thread). */
static void on_unread_batch(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    nt_envr r;
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK)
        return;
    const msgpack_object *apps = nt_envr_get(&r, "apps"), *ids = nt_envr_get(&r, "users"),
                         *jsons = nt_envr_get(&r, "jsons");
    uint32_t n = ids && ids->type == MSGPACK_OBJECT_ARRAY ? ids->via.array.size : 0;
    if (!array_of(apps, n) || !array_of(jsons, n))
        n = 0;
    for (uint32_t i = 0; i < n; i++) {
        char app[65], id[65];
        const msgpack_object *j = &jsons->via.array.ptr[i];
        if (!obj_cstr(&apps->via.array.ptr[i], app, sizeof app) ||
            !obj_cstr(&ids->via.array.ptr[i], id, sizeof id) || j->type != MSGPACK_OBJECT_STR)
            continue;
        gw_user *u = gw_user_find(app, id);
        if (!u)
            continue;
        gw_buf *b = gw_buf_create(j->via.str.ptr, j->via.str.size);
        gw_fanout fo;
        gw_fanout_init(&fo, b);
        for (gw_conn *c = gw_user_conns(u, NULL); c; c = gw_user_conns(u, c))
            gw_conn_enqueue_lazy(c, gw_fanout_for(&fo, c));
        gw_fanout_free(&fo);
        gw_buf_release(b);
    }
    nt_envr_free(&r);
}

nt_status gw_rooms_start(gw_ctx *ctx, const gw_rooms_hooks *h)
{
    gw_rooms *s = nt_calloc(1, sizeof *s);
    s->hooks = *h;
    s->unread = nt_bus_subscribe(ctx->bus, NT_SUBJ_UNREAD, NULL, on_unread_batch, NULL);
    if (!s->unread) {
        nt_free(s);
        return NT_EUNAVAIL;
    }
    ctx->rooms = s;
    return NT_OK;
}

void gw_rooms_stop(gw_ctx *ctx)
{
    gw_rooms *s = ctx->rooms;
    if (!s)
        return;
    nt_bus_unsubscribe(s->unread);
    nt_map_free(&s->rooms);
    nt_map_free(&s->users);
    nt_free(s);
    ctx->rooms = NULL;
}

gw_user *gw_user_find(const char *app, const char *user)
{
    char key[NT_SUBJ_CAP];
    return nt_subj_user(key, sizeof key, app, user) < 0 ? NULL
                                                        : nt_map_get(&gw->rooms->users, key);
}

/* Keeps the latest token's display name; the empty name costs no block. */
static void user_set_name(gw_user *u, const char *name)
{
    char *noname = gw->rooms->noname;
    if (strcmp(u->name, name) == 0)
        return;
    if (u->name != noname)
        nt_free(u->name);
    u->name = *name ? nt_strdup(name) : noname;
}

nt_status gw_user_attach(gw_conn *c, const nt_claims *cl)
{
    gw_user *u = gw_user_find(cl->app, cl->sub);
    if (!u) {
        /* one block: the struct, "natter.user.<app>.<user>\0", "<app>\0" */
        char subject[NT_SUBJ_CAP];
        int n = nt_subj_user(subject, sizeof subject, cl->app, cl->sub);
        if (n < 0)
            return NT_EINVAL;               /* the token's ids are checked: never */
        size_t al = strlen(cl->app), il = strlen(cl->sub), sl = (size_t)n;
        u = nt_malloc(sizeof *u + sl + 1 + al + 1);
        memset(u, 0, sizeof *u);
        nt_list_init(&u->conns);
        u->name = gw->rooms->noname;
        memcpy(u->subject, subject, sl + 1);
        memcpy(u->subject + sl + 1, cl->app, al + 1);
        u->app = u->subject + sl + 1;
        u->id = u->subject + sl - il;
        u->sub = nt_bus_subscribe(gw->bus, u->subject, NULL, on_user_msg, u);
        if (!u->sub) {
            nt_error("cannot subscribe %s", u->subject);
            nt_free(u);
            return NT_EUNAVAIL;
        }
        nt_map_put(&gw->rooms->users, u->subject, u);
        nt_metric_add(gw->m.user_subjects, 1);
    }
    user_set_name(u, cl->name);
    c->user = u;
    nt_list_insert_head(&u->conns, &c->link);
    u->nconns++;
    return NT_OK;
}

void gw_user_detach(gw_conn *c)
{
    gw_user *u = c->user;
    if (!u)
        return;
    nt_list_remove(&c->link);
    c->user = NULL;
    if (--u->nconns > 0)
        return;
    nt_bus_unsubscribe(u->sub);
    nt_map_del(&gw->rooms->users, u->subject);
    nt_metric_add(gw->m.user_subjects, -1);
    if (u->name != gw->rooms->noname)
        nt_free(u->name);
    nt_free(u);
}

gw_room *gw_room_acquire(const char *app, const char *room)
{
    char key[NT_SUBJ_CAP];
    int n = nt_subj_room(key, sizeof key, app, room);
    if (n < 0)
        return NULL;
    gw_room *r = nt_map_get(&gw->rooms->rooms, key);
    if (r) {
        r->interest++;
        return r;
    }
    r = nt_malloc(sizeof *r + (size_t)n + 1);
    memcpy(r->subject, key, (size_t)n + 1);
    r->id = r->subject + n - strlen(room);
    nt_list_init(&r->members);
    r->last_seq = 0;
    r->repair = NULL;
    r->sub = nt_bus_subscribe(gw->bus, r->subject, NULL, on_room_msg, r);
    if (!r->sub) {
        nt_error("cannot subscribe %s", r->subject);
        nt_free(r);
        return NULL;
    }
    r->interest = 1;
    nt_map_put(&gw->rooms->rooms, r->subject, r);
    nt_metric_add(gw->m.room_subjects, 1);
    return r;
}

void gw_room_hold(gw_room *r)
{
    r->interest++;
}

void gw_room_release(gw_room *r)
{
    if (--r->interest > 0)
        return;
    if (gw->rooms->hooks.room_freed)
        gw->rooms->hooks.room_freed(r);
    nt_bus_unsubscribe(r->sub);
    nt_map_del(&gw->rooms->rooms, r->subject);
    nt_metric_add(gw->m.room_subjects, -1);
    nt_free(r);
}

size_t gw_room_count(void) { return gw->rooms->rooms.count; }

void gw_rooms_foreach(void (*fn)(gw_room *r, void *arg), void *arg)
{
    size_t i = 0;
    nt_map_entry *e;
    while ((e = nt_map_next(&gw->rooms->rooms, &i)) != NULL)
        fn(e->val, arg);
}

gw_member *gw_member_find(gw_conn *c, const char *room_id)
{
    for (gw_member *m = c->rooms; m; m = m->cnext)
        if (strcmp(m->room->id, room_id) == 0)
            return m;
    return NULL;
}

void gw_member_add(gw_conn *c, gw_room *r)
{
    gw_member *m = nt_malloc(sizeof *m);
    m->replay = NULL;
    m->room = r;
    m->conn = c;
    nt_list_insert_head(&r->members, &m->rlink);
    m->cnext = c->rooms;
    c->rooms = m;
}

void gw_member_remove(gw_conn *c, gw_member *m)
{
    for (gw_member **pp = &c->rooms; *pp; pp = &(*pp)->cnext)
        if (*pp == m) {
            *pp = m->cnext;
            break;
        }
    nt_list_remove(&m->rlink);
    gw_room_release(m->room);
    replay_free(m->replay);
    nt_free(m);
}

void gw_rooms_conn_closed(gw_conn *c)
{
    while (c->rooms)
        gw_member_remove(c, c->rooms);
}
