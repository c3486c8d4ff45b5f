/* unread.c: dirty (app, user, room) and (app, room) sets, bounded by
 * NATTER_UNREAD_MAX_DIRTY each, flushed every NATTER_UNREAD_FLUSH_MS on the read
 * connection. Counts are rooms.last_seq - members.last_read_seq (never a COUNT): the
 * query joins the dirty rooms to their members in SQL, so member lists are never
 * loaded into memory.
 *
 * A tick moves the dirty sets aside as the cycle, and the cycle is flushed in chunks
 * of at most NATTER_UNREAD_CHUNK entries of each set, one query in flight, the next
 * chunk a gap after the previous one's events are out, the gaps spreading the cycle
 * over 4/5 of the interval. One query for everything made
 * a stall once a second: with 10,000 dirty members the query, the 10,000 events the
 * persister built and published, and the gateways' 10,000 sends came in one burst,
 * and every message committed meanwhile waited behind it (chat mix p99 ~300 ms).
 * Marks made during a cycle go to the next one, so a user still gets at most one
 * event per room change per interval. */
#include "unread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "map.h"
#include "pg.h"
#include "wire.h"

struct ps_unread {
    ps_ctx *ctx;
    nt_map users;                /* "app user room" -> the key itself */
    nt_map rooms;                /* "app room" -> the key itself */
    nt_map cyc_users, cyc_rooms; /* the cycle being flushed, chunk by chunk; freed once done */
    size_t pos_users, pos_rooms; /* iteration cursors into them */
    uv_timer_t *timer;
    uv_timer_t *gap;             /* paces the chunks of a cycle */
    uint64_t gap_ms;             /* 4/5 of the interval spread over the cycle's chunks */
    bool inflight;               /* a flush query is waiting */
    bool warned;
};

/* One user's event being built from result rows, and the batch for NT_SUBJ_UNREAD
 * (parallel arrays). app and user strings point into the PGresult, which outlives
 * every publish of on_flushed; only the JSON frames are owned. */
typedef struct flush_out {
    const char *app, *user;
    json_t *rooms;
    int64_t total;
    const char **apps, **users;
    char **jsons;
    size_t n, cap, bytes;
    size_t limit;                /* publish once the frames reach this many bytes */
} flush_out;

static void flush_chunk(ps_unread *u);
static void on_gap(uv_timer_t *t);

/* Publishes the events batched so far as one message and empties the batch. */
static void batch_publish(ps_unread *u, flush_out *o)
{
    if (o->n == 0)
        return;
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_TYPE, NT_TYPE_UNREAD);
    nt_envw_str_array(&w, NT_KEY_APPS, o->apps, o->n);
    nt_envw_str_array(&w, NT_KEY_USERS, o->users, o->n);
    nt_envw_str_array(&w, NT_KEY_JSONS, (const char *const *)o->jsons, o->n);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_publish(u->ctx->bus, NT_SUBJ_UNREAD, NULL, data, len) != NT_OK)
        nt_warn("publish of %zu unread events failed", o->n);
    else
        nt_metric_add(u->ctx->m.unread_events, (int64_t)o->n);
    nt_envw_free(&w);
    for (size_t i = 0; i < o->n; i++)
        nt_free(o->jsons[i]);
    o->n = 0;
    o->bytes = 0;
}

/* Adds the user's event being built to the batch. */
static void flush_publish(ps_unread *u, flush_out *o)
{
    if (o->rooms == NULL)
        return;
    json_t *frame = json_pack("{s:s,s:{s:o,s:I}}", "event", "unread", "data", "rooms", o->rooms,
                              "total", (json_int_t)o->total);
    o->rooms = NULL;
    char *js = json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    if (!js)
        return;
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->apps = nt_realloc(o->apps, o->cap * sizeof *o->apps);
        o->users = nt_realloc(o->users, o->cap * sizeof *o->users);
        o->jsons = nt_realloc(o->jsons, o->cap * sizeof *o->jsons);
    }
    o->apps[o->n] = o->app;
    o->users[o->n] = o->user;
    o->jsons[o->n] = js;
    o->n++;
    o->bytes += strlen(js);
    if (o->bytes >= o->limit)
        batch_publish(u, o);
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
    flush_out o = { .rooms = NULL, .n = 0, .limit = NT_UNREAD_BATCH_BYTES };
    int64_t server_max = natsConnection_GetMaxPayload(nt_bus_conn(u->ctx->bus));
    if (server_max > 0 && (size_t)server_max / 2 < o.limit)
        o.limit = (size_t)server_max / 2;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *app = PQgetvalue(res, i, 0), *user = PQgetvalue(res, i, 1);
        if (o.rooms == NULL || strcmp(app, o.app) != 0 || strcmp(user, o.user) != 0) {
            flush_publish(u, &o);
            o.app = app;
            o.user = user;
            o.rooms = json_object();
            o.total = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        }
        json_object_set_new(o.rooms, PQgetvalue(res, i, 2),
                            json_integer(strtoll(PQgetvalue(res, i, 3), NULL, 10)));
    }
    flush_publish(u, &o);
    batch_publish(u, &o);
    nt_free(o.apps);
    nt_free(o.users);
    nt_free(o.jsons);
    if (u->cyc_users.count > 0 || u->cyc_rooms.count > 0)
        uv_timer_start(u->gap, on_gap, u->gap_ms, 0);
}

/* Appends s[0..n) as the next element of the array literal in l ("{a,b"). */
static void lit_push(nt_buf *l, const char *s, size_t n)
{
    (void)nt_buf_append(l, l->len == 0 ? "{" : ",", 1);
    (void)nt_buf_append(l, s, n);
}

static const char *lit_end(nt_buf *l)
{
    if (l->len == 0)
        lit_push(l, "", 0);
    (void)nt_buf_append(l, "}", 1);
    return l->data;
}

static void free_set(nt_map *m);

/* Splits the next `max` "a b c" keys of the cycle set (from *pos on) into the
 * literals, one per field; the set is not changed while its cycle lasts, and is
 * freed (count 0) once the cursor has passed its end. */
static void drain_set(nt_map *m, size_t *pos, nt_buf *cols, int ncols, size_t max)
{
    nt_map_entry *e = NULL;
    for (size_t n = 0; n < max && (e = nt_map_next(m, pos)) != NULL; n++) {
        const char *s = e->key;
        for (int c = 0; c < ncols; c++) {
            const char *sp = strchr(s, ' ');
            size_t len = sp ? (size_t)(sp - s) : strlen(s);
            lit_push(&cols[c], s, len);
            s += len + (sp ? 1 : 0);
        }
    }
    size_t peek = *pos;
    if (m->count > 0 && (e == NULL || nt_map_next(m, &peek) == NULL)) {
        free_set(m);
        *pos = 0;
    }
}

/* Sends the next chunk of the cycle, if any is left and nothing is in flight. */
static void flush_chunk(ps_unread *u)
{
    ps_ctx *ctx = u->ctx;
    if (u->inflight || (u->cyc_users.count == 0 && u->cyc_rooms.count == 0) ||
        !ps_pg_up(ctx->rpg))
        return;
    size_t max = (size_t)ctx->cfg.unread_chunk;
    nt_buf cols[5];
    for (int c = 0; c < 5; c++)
        nt_buf_init(&cols[c], 0);
    drain_set(&u->cyc_users, &u->pos_users, cols, 3, max);
    drain_set(&u->cyc_rooms, &u->pos_rooms, cols + 3, 2, max);
    const char *p[5];
    for (int c = 0; c < 5; c++)
        p[c] = lit_end(&cols[c]);
    if (ps_pg_prepared(ctx->rpg, "unread_flush", 5, p, on_flushed, u) == NT_OK) {
        u->inflight = true;
        ps_pg_sync(ctx->rpg, NULL, NULL);
    }
    for (int c = 0; c < 5; c++)
        nt_buf_free(&cols[c]);
}

static void on_tick(uv_timer_t *t)
{
    ps_unread *u = t->data;
    /* a cycle still being flushed (or waiting for the connection) goes on first */
    if (u->inflight || u->cyc_users.count > 0 || u->cyc_rooms.count > 0) {
        if (!uv_is_active((uv_handle_t *)u->gap))
            flush_chunk(u);
        return;
    }
    if (u->users.count == 0 && u->rooms.count == 0)
        return;
    u->cyc_users = u->users;
    u->cyc_rooms = u->rooms;
    u->pos_users = u->pos_rooms = 0;
    size_t most = u->users.count > u->rooms.count ? u->users.count : u->rooms.count;
    size_t chunks = (most + (size_t)u->ctx->cfg.unread_chunk - 1) / (size_t)u->ctx->cfg.unread_chunk;
    u->gap_ms = chunks > 1 ? (uint64_t)u->ctx->cfg.unread_flush_ms * 4 / 5 / chunks : 0;
    memset(&u->users, 0, sizeof u->users);
    memset(&u->rooms, 0, sizeof u->rooms);
    flush_chunk(u);
}

static void on_gap(uv_timer_t *t)
{
    flush_chunk(t->data);
}

ps_unread *ps_unread_create(ps_ctx *ctx)
{
    ps_unread *u = nt_calloc(1, sizeof *u);
    u->ctx = ctx;
    u->timer = nt_malloc(sizeof *u->timer);
    uv_timer_init(ctx->loop, u->timer);
    u->timer->data = u;
    u->gap = nt_malloc(sizeof *u->gap);
    uv_timer_init(ctx->loop, u->gap);
    u->gap->data = u;
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
    free_set(&u->cyc_users);
    free_set(&u->cyc_rooms);
    uv_close((uv_handle_t *)u->timer, on_timer_closed);
    uv_close((uv_handle_t *)u->gap, on_timer_closed);
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
