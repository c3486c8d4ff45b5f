/* unread.c: dirty (app, user, room) and (app, room) sets, bounded by
 * NATTER_UNREAD_MAX_DIRTY each, flushed every NATTER_UNREAD_FLUSH_MS with one query
 * on the read connection. Counts are rooms.last_seq - members.last_read_seq (never
 * a COUNT): the query joins the dirty rooms to their members in SQL, so member lists
 * are never loaded into memory. One flush is in flight at a time. */
#include "unread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "envelope.h"
#include "log.h"
#include "map.h"
#include "pg.h"

struct ps_unread {
    ps_ctx *ctx;
    nt_map users;                /* "app user room" -> the key itself */
    nt_map rooms;                /* "app room" -> the key itself */
    uv_timer_t *timer;
    bool inflight;               /* a flush query is waiting */
    bool warned;
};

typedef struct flush_out {       /* one user's event being built from result rows */
    char app[65], user[65];
    json_t *rooms;
    int64_t total;
} flush_out;

static void flush_publish(ps_unread *u, flush_out *o)
{
    if (o->rooms == NULL)
        return;
    char subject[200];
    snprintf(subject, sizeof subject, "natter.user.%s.%s", o->app, o->user);
    json_t *frame = json_pack("{s:s,s:{s:o,s:I}}", "event", "unread", "data", "rooms", o->rooms,
                              "total", (json_int_t)o->total);
    o->rooms = NULL;
    char *js = json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "event");
    nt_envw_cstr(&w, "json", js);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(u->ctx->bus, subject, NULL, data, len) != NT_OK)
        nt_warn("publish to %s failed", subject);
    else
        nt_metric_add(u->ctx->m.unread_events, 1);
    nt_envw_free(&w);
    free(js);
}

/* Rows: app, user_id, room, unread, total; ordered by app, user_id. */
static void on_flushed(PGresult *res, void *arg)
{
    ps_unread *u = arg;
    u->inflight = false;
    if (!ps_pg_ok(res)) {
        nt_warn("unread flush failed: %s; those counts are sent with the next change",
                res ? PQresultErrorMessage(res) : "connection lost");
        return;
    }
    flush_out o = { .rooms = NULL };
    for (int i = 0; i < PQntuples(res); i++) {
        const char *app = PQgetvalue(res, i, 0), *user = PQgetvalue(res, i, 1);
        if (o.rooms == NULL || strcmp(app, o.app) != 0 || strcmp(user, o.user) != 0) {
            flush_publish(u, &o);
            snprintf(o.app, sizeof o.app, "%s", app);
            snprintf(o.user, sizeof o.user, "%s", user);
            o.rooms = json_object();
            o.total = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        }
        json_object_set_new(o.rooms, PQgetvalue(res, i, 2),
                            json_integer(strtoll(PQgetvalue(res, i, 3), NULL, 10)));
    }
    flush_publish(u, &o);
}

typedef struct lit {
    char *buf;
    size_t len, cap;
} lit;

static void lit_push(lit *l, const char *s, size_t n)
{
    if (l->len + n + 3 > l->cap) {
        l->cap = (l->len + n + 3) * 2;
        l->buf = nt_realloc(l->buf, l->cap);
    }
    char sep = l->len == 0 ? '{' : ',';
    l->buf[l->len++] = sep;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
}

static const char *lit_end(lit *l)
{
    if (l->len == 0)
        lit_push(l, "", 0);
    l->buf[l->len] = '}';
    l->buf[l->len + 1] = '\0';
    return l->buf;
}

/* Splits "a b c" keys into the literals, one per field, and empties the set. */
static void drain_set(nt_map *m, lit *cols, int ncols)
{
    size_t i = 0;
    nt_map_entry *e;
    while ((e = nt_map_next(m, &i)) != NULL) {
        const char *s = e->key;
        for (int c = 0; c < ncols; c++) {
            const char *sp = strchr(s, ' ');
            size_t n = sp ? (size_t)(sp - s) : strlen(s);
            lit_push(&cols[c], s, n);
            s += n + (sp ? 1 : 0);
        }
        nt_free(e->val);
    }
    nt_map_free(m);
}

static void on_tick(uv_timer_t *t)
{
    ps_unread *u = t->data;
    ps_ctx *ctx = u->ctx;
    if (u->inflight || (u->users.count == 0 && u->rooms.count == 0) || !ps_pg_up(ctx->rpg))
        return;
    lit cols[5];
    memset(cols, 0, sizeof cols);
    drain_set(&u->users, cols, 3);
    drain_set(&u->rooms, cols + 3, 2);
    const char *p[5];
    for (int c = 0; c < 5; c++)
        p[c] = lit_end(&cols[c]);
    if (ps_pg_prepared(ctx->rpg, "unread_flush", 5, p, on_flushed, u) == NT_OK) {
        u->inflight = true;
        ps_pg_sync(ctx->rpg, NULL, NULL);
    }
    for (int c = 0; c < 5; c++)
        nt_free(cols[c].buf);
}

ps_unread *ps_unread_create(ps_ctx *ctx)
{
    ps_unread *u = nt_calloc(1, sizeof *u);
    u->ctx = ctx;
    u->timer = nt_malloc(sizeof *u->timer);
    uv_timer_init(ctx->loop, u->timer);
    u->timer->data = u;
    uv_timer_start(u->timer, on_tick, (uint64_t)ctx->cfg.unread_flush_ms,
                   (uint64_t)ctx->cfg.unread_flush_ms);
    return u;
}

static void on_timer_closed(uv_handle_t *h)
{
    nt_free(h);
}

static void free_set(nt_map *m)
{
    size_t i = 0;
    nt_map_entry *e;
    while ((e = nt_map_next(m, &i)) != NULL)
        nt_free(e->val);
    nt_map_free(m);
}

void ps_unread_destroy(ps_unread *u)
{
    if (u == NULL)
        return;
    free_set(&u->users);
    free_set(&u->rooms);
    uv_close((uv_handle_t *)u->timer, on_timer_closed);
    nt_free(u);
}

static void mark(ps_unread *u, nt_map *m, const char *key)
{
    if (nt_map_get(m, key) != NULL)
        return;
    if (m->count >= (size_t)u->ctx->cfg.unread_max_dirty) {
        nt_metric_add(u->ctx->m.unread_dropped, 1);
        if (!u->warned)
            nt_warn("unread dirty set full (NATTER_UNREAD_MAX_DIRTY=%d): dropping changes",
                    u->ctx->cfg.unread_max_dirty);
        u->warned = true;
        return;
    }
    u->warned = false;
    char *k = nt_strdup(key);
    nt_map_put(m, k, k);
}

void ps_unread_user(ps_unread *u, const char *app, const char *user, const char *room)
{
    char key[3 * 66];
    snprintf(key, sizeof key, "%s %s %s", app, user, room);
    mark(u, &u->users, key);
}

void ps_unread_room(ps_unread *u, const char *app, const char *room)
{
    char key[2 * 66];
    snprintf(key, sizeof key, "%s %s", app, room);
    mark(u, &u->rooms, key);
}
