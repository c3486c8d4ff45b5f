/* batch.c: fetched batches committed on their partition's write connection;
 * undecodable messages are poison (logged, acked). A connection has at most one
 * transaction in flight: batches of its other partitions that become ready meanwhile
 * wait, and the next transaction carries all of them (a transaction costs PostgreSQL
 * about as much as its first few dozen messages, and each partition lingers on its
 * own, so one transaction per partition made many partitions expensive). A batch
 * being retried after a failed transaction goes alone, so one that keeps failing
 * cannot hold the others back. A transaction's sends go to PostgreSQL as one
 * natter_post_batch call (migration 006): eight parallel text[] parameters, one
 * element per send in stream order, one result row per send; each batch adds its
 * partition's `advance`. After the commit, per batch: AckAll on the last message,
 * then per message an ack (and a room event when stored) or a send_error. A message
 * at or below the partition's resume point is a redelivery of the last batch a dead
 * owner committed: natter_post_batch returns its row as a duplicate and its ack and
 * room event are published again (gateways drop room seqs they already forwarded). */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"
#include "jsonw.h"
#include "log.h"
#include "pg.h"
#include "pull.h"
#include "unread.h"
#include "util.h"

#define BATCH_RETRY_MIN_MS 100
#define BATCH_RETRY_MAX_MS 5000
#define BATCH_MAX_TYPE_BYTES 32
#define BATCH_MAX_REF_BYTES 64
#define BATCH_MAX_NAME_BYTES 256
#define BATCH_SLOW_MS 1000        /* a commit slower than this is counted and logged */
#define BATCH_SLOW_LOG_MS 10000
#define BATCH_ANALYZE_EVERY_MS 600000  /* statistics refreshed after a slow commit at most this often */

const ps_pg_stmt ps_batch_stmts[] = {
    { "claim", "SELECT natter_claim($1::int)", 1 },
    { "post_batch",
      "SELECT ord, status, room_id, msg_id, msg_seq, created_at_text FROM natter_post_batch("
      "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
      " $8::text[])", 8 },
    { "advance", "UPDATE partitions SET stream_seq = greatest(stream_seq, $1::bigint), "
                 "batch_start = $3::bigint WHERE p = $2::int", 3 },
};
const size_t ps_batch_nstmts = sizeof(ps_batch_stmts) / sizeof(ps_batch_stmts[0]);

typedef enum {
    IT_POISON,   /* cannot be decoded or answered */
    IT_BAD,      /* refused with bad_request */
    IT_POST,     /* goes to natter_post_batch */
} item_kind;

typedef struct ps_item {
    struct ps_batch *batch;
    uint64_t sseq;
    item_kind kind;
    bool redelivered;     /* at or below the resume point: replay of a committed batch */
    char *app, *room, *sender, *name, *cmid, *mtype, *body, *reply_to;
    const char *bad_reason;
    char *status;         /* natter_post_batch result */
    char *room_id;
    char *id;
    int64_t seq;
    char *created_at;
    int64_t ts;           /* gateway receipt, ms since the epoch (0: unknown) */
    bool rack;            /* the message event carries the ack (the gateway holds the room) */
} ps_item;

/* What every batch shares (loop thread only). */
struct ps_batches {
    ps_ctx *ctx;
    nt_jsonw event_json;      /* per-message JSON is written with nt_jsonw into these, */
    nt_jsonw ack_json;        /* reused: building it with jansson was 42 % of the CPU */
    uint64_t analyze_next_ms; /* no ANALYZE before (0: the first one may run at once) */
    nt_log_limit slow;        /* the slow commit warning */
};

struct ps_batch {
    ps_batches *bs;
    ps_ctx *ctx;
    ps_part *part;
    uint64_t gen;
    ps_jsmsg **msgs;      /* the fetched messages, n of them */
    ps_item *items;
    int n;
    ps_item **posts;      /* the IT_POST items in stream order: ord i is posts[i - 1] */
    int nposts;
    uint64_t max_sseq;
    uint64_t min_sseq;        /* first stream sequence of the batch (0 until known) */
    bool awaiting;        /* queries are in the pipeline */
    bool failed;
    char err[256];
    uv_timer_t *retry;    /* heap, closed with the batch */
    int retries;
    uint64_t t0;
    int64_t fetched_ms;   /* wall clock when the batch reached the loop */
    int64_t published_ms; /* wall clock when its acks and events went out */
    struct ps_batch *qnext; /* next in its write connection's queue */
    bool queued;          /* waiting in that queue */
    int ord0;             /* its posts are ords ord0 + 1 .. ord0 + nposts of the call */
};

/* A write connection's batches waiting for its transaction in flight to end. */
typedef struct ps_wq {
    ps_batch *head, *tail;
    bool busy;            /* a transaction is in flight (or being queued) */
} ps_wq;

/* The write connections' queues, the idle handle that flushes them once per loop
 * iteration and the timer that ends a connection's wait for the batches about to
 * join its next transaction (loop thread only). */
typedef struct ps_wqs {
    uv_idle_t flush;
    uv_timer_t gather;
    int closing;          /* handles not yet closed, at stop */
    ps_wq q[];            /* one per write connection */
} ps_wqs;

static ps_wqs *g_wqs;

/* The batches one transaction carries. */
typedef struct ps_txn {
    ps_ctx *ctx;
    unsigned k;           /* write connection */
    int nb;
    int nposts;
    ps_batch *b[];
} ps_txn;

static void batch_send(ps_batch *b);
static void wq_on_flush(uv_idle_t *h);
static void wq_on_gather(uv_timer_t *t);

static ps_wq *batch_wq(const ps_batch *b)
{
    ps_ctx *ctx = b->ctx;
    if (g_wqs == NULL) {
        g_wqs = nt_calloc(1, sizeof(*g_wqs) + ctx->nwpg * sizeof(g_wqs->q[0]));
        uv_idle_init(ctx->loop, &g_wqs->flush);
        uv_timer_init(ctx->loop, &g_wqs->gather);
        g_wqs->flush.data = ctx;
        g_wqs->gather.data = ctx;
    }
    return &g_wqs->q[b->part->p % ctx->nwpg];
}

static void wq_unlink(ps_batch *b)
{
    if (!b->queued)
        return;
    ps_wq *q = batch_wq(b);
    ps_batch **pp = &q->head, *prev = NULL;
    while (*pp != b) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    *pp = b->qnext;
    if (q->tail == b)
        q->tail = prev;
    b->qnext = NULL;
    b->queued = false;
}

static void item_clear_result(ps_item *it)
{
    nt_free(it->status);
    nt_free(it->room_id);
    nt_free(it->id);
    nt_free(it->created_at);
    it->status = it->room_id = it->id = it->created_at = NULL;
    it->seq = 0;
}

static void item_free(ps_item *it)
{
    item_clear_result(it);
    nt_free(it->app);
    nt_free(it->room);
    nt_free(it->sender);
    nt_free(it->name);
    nt_free(it->cmid);
    nt_free(it->mtype);
    nt_free(it->body);
    nt_free(it->reply_to);
}

static void batch_on_timer_closed(uv_handle_t *h)
{
    nt_free(h);
}

/* Frees the batch after its messages were acked or abandoned. */
static void batch_finish(ps_batch *b)
{
    ps_ctx *ctx = b->ctx;
    ps_part *part = b->part;
    unsigned p = part->p;
    wq_unlink(b);
    for (int i = 0; i < b->n; i++) {
        item_free(&b->items[i]);
        nt_free(b->msgs[i]);
    }
    nt_free(b->msgs);
    nt_free(b->items);
    nt_free(b->posts);
    if (b->retry != NULL)
        uv_close((uv_handle_t *)b->retry, batch_on_timer_closed);
    if (part->inflight == b)
        part->inflight = NULL;
    nt_free(b);
    ps_pull_batch_done(ctx->pull, p);
    ps_settled(ctx);
}

static void batch_drop(ps_batch *b, const char *why)
{
    nt_warn("partition %u: dropping a batch of %d unacked (%s); JetStream redelivers",
            b->part->p, b->n, why);
    batch_finish(b);
}

/* Copies a string field when it is valid UTF-8 without NUL and at most max bytes.
 * *ok is cleared when present but invalid. */
static char *env_text(const nt_envr *r, const char *key, size_t max, bool *ok)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    if (s == NULL)
        return NULL;
    if (len > max || !nt_valid_utf8(s, len) || memchr(s, '\0', len) != NULL) {
        *ok = false;
        return NULL;
    }
    return nt_strndup(s, len);
}

static char *env_id(const nt_envr *r, const char *key)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    return s != NULL && nt_valid_id(s, len) ? nt_strndup(s, len) : NULL;
}

static void item_decode(ps_ctx *ctx, ps_item *it, const ps_jsmsg *m)
{
    nt_envr r;
    if (nt_envr_parse(&r, m->data, m->len) != NT_OK) {
        it->kind = IT_POISON;
        return;
    }
    bool ok = true;
    it->kind = IT_POISON;
    if (!nt_envr_str_eq(&r, "type", "send"))
        goto out;
    it->app = env_id(&r, "app");
    it->sender = env_id(&r, "sender");
    it->cmid = env_text(&r, "cmid", BATCH_MAX_REF_BYTES, &ok);
    if (it->app == NULL || it->sender == NULL || it->cmid == NULL || it->cmid[0] == '\0')
        goto out;
    it->kind = IT_BAD;
    if (!nt_envr_int(&r, "ts", &it->ts))
        it->ts = 0;
    if (!nt_envr_bool(&r, "rack", &it->rack))
        it->rack = false;
    it->room = env_id(&r, "room");
    if (it->room == NULL) {
        it->bad_reason = "invalid room id";
        goto out;
    }
    it->name = env_text(&r, "name", BATCH_MAX_NAME_BYTES, &ok);
    it->mtype = env_text(&r, "mtype", BATCH_MAX_TYPE_BYTES, &ok);
    it->reply_to = env_text(&r, "reply_to", BATCH_MAX_REF_BYTES, &ok);
    it->body = env_text(&r, "body", SIZE_MAX, &ok);
    if (!ok) {
        it->bad_reason = "invalid field";
        goto out;
    }
    size_t chars = it->body != NULL ? nt_utf8_len(it->body, strlen(it->body)) : 0;
    if (chars == 0 || chars > (size_t)ctx->cfg.max_message_chars) {
        it->bad_reason = "message must be 1 to NATTER_MAX_MESSAGE_CHARS characters";
        goto out;
    }
    if (it->mtype == NULL || it->mtype[0] == '\0') {
        nt_free(it->mtype);
        it->mtype = nt_strdup("text");
    }
    if (it->reply_to != NULL && it->reply_to[0] == '\0') {
        nt_free(it->reply_to);
        it->reply_to = NULL;
    }
    if (it->name == NULL)
        it->name = nt_strdup("");
    it->kind = IT_POST;
out:
    nt_envr_free(&r);
}

static void batch_record_error(ps_batch *b, PGresult *res)
{
    if (b->failed)
        return;
    b->failed = true;
    snprintf(b->err, sizeof(b->err), "%s",
             res != NULL ? PQresultErrorMessage(res) : "connection lost");
    b->err[strcspn(b->err, "\n")] = '\0';
}

static void batch_step_done(PGresult *res, void *arg)
{
    if (!ps_pg_ok(res))
        batch_record_error(arg, res);
}

static char *pg_strdup(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : nt_strdup(PQgetvalue(res, row, col));
}

static void batch_bad_result(ps_batch *b, const char *fmt, int x, int y, int z)
{
    if (b->failed)
        return;
    b->failed = true;
    snprintf(b->err, sizeof(b->err), fmt, x, y, z);
}

static void txn_record_error(ps_txn *t, PGresult *res)
{
    for (int i = 0; i < t->nb; i++)
        batch_record_error(t->b[i], res);
}

static void txn_bad_result(ps_txn *t, const char *fmt, int x, int y)
{
    for (int i = 0; i < t->nb; i++)
        batch_bad_result(t->b[i], fmt, x, y, t->nposts);
}

/* The batch whose posts hold ord (1-based over the whole call), or NULL. */
static ps_batch *txn_batch_of(const ps_txn *t, long ord)
{
    for (int i = 0; i < t->nb; i++)
        if (ord > t->b[i]->ord0 && ord <= t->b[i]->ord0 + t->b[i]->nposts)
            return t->b[i];
    return NULL;
}

/* Rows: ord, status, room_id, msg_id, msg_seq, created_at_text; one per post of
 * every batch of the transaction. A malformed result fails them all; their retries
 * get the stored rows as duplicates. */
static void txn_post_done(PGresult *res, void *arg)
{
    ps_txn *t = arg;
    if (!ps_pg_ok(res)) {
        txn_record_error(t, res);
        return;
    }
    if (PQntuples(res) != t->nposts || PQnfields(res) != 6) {
        txn_bad_result(t, "natter_post_batch returned %d rows of %d columns for %d sends",
                       PQntuples(res), PQnfields(res));
        return;
    }
    for (int r = 0; r < t->nposts; r++) {
        long ord = PQgetisnull(res, r, 0) ? 0 : strtol(PQgetvalue(res, r, 0), NULL, 10);
        ps_batch *b = txn_batch_of(t, ord);
        if (b == NULL || b->posts[ord - b->ord0 - 1]->status != NULL || PQgetisnull(res, r, 1)) {
            txn_bad_result(t, "natter_post_batch row %d: ord %d missing, repeated or "
                           "out of 1..%d", r, (int)ord);
            return;
        }
        ps_item *it = b->posts[ord - b->ord0 - 1];
        it->status = pg_strdup(res, r, 1);
        it->room_id = pg_strdup(res, r, 2);
        it->id = pg_strdup(res, r, 3);
        it->seq = PQgetisnull(res, r, 4) ? 0 : strtoll(PQgetvalue(res, r, 4), NULL, 10);
        it->created_at = pg_strdup(res, r, 5);
    }
}

/* A text-format array literal: every element double-quoted, with '"' and '\'
 * backslash-escaped, so any text (braces, commas, quotes, spaces, newlines) reads back
 * unchanged; a NULL string is the unquoted element NULL. Strings never hold NUL
 * (item_decode). Grown with arr_add, finished by arr_end; the caller frees buf. */
typedef struct arr_lit {
    char *buf;
    size_t len, cap;
} arr_lit;

static void arr_reserve(arr_lit *a, size_t more)
{
    if (a->len + more <= a->cap)
        return;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + more)
        cap *= 2;
    a->buf = nt_realloc(a->buf, cap);
    a->cap = cap;
}

static void arr_add(arr_lit *a, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    arr_reserve(a, 2 * n + 8);            /* separator, quotes, escapes, "}\0" */
    char sep = a->len == 0 ? '{' : ',';
    a->buf[a->len++] = sep;
    if (s == NULL) {
        memcpy(a->buf + a->len, "NULL", 4);
        a->len += 4;
        return;
    }
    a->buf[a->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = s[i];
    }
    a->buf[a->len++] = '"';
}

static const char *arr_end(arr_lit *a)
{
    arr_reserve(a, 3);
    if (a->len == 0)
        a->buf[a->len++] = '{';
    a->buf[a->len++] = '}';
    a->buf[a->len] = '\0';
    return a->buf;
}

static void publish_env(ps_ctx *ctx, const char *subject, nt_envw *w)
{
    size_t len;
    const char *data = nt_envw_finish(w, &len);
    if (nt_bus_publish(ctx->bus, subject, NULL, data, len) != NT_OK)
        nt_warn("publish to %s failed", subject);
    nt_envw_free(w);
}

/* The members of the ack data (what the sender's `ack` event carries); the message
 * event's data starts with the same ones. */
static void ack_members(nt_jsonw *w, const ps_item *it)
{
    nt_jsonw_kstr(w, "id", it->id);
    nt_jsonw_kstr(w, "room_id", it->room_id);
    nt_jsonw_kint(w, "seq", it->seq);
    nt_jsonw_kstr(w, "created_at", it->created_at);
    nt_jsonw_kstr(w, "client_msg_id", it->cmid);
}

static void ack_json(nt_jsonw *w, const ps_item *it)
{
    nt_jsonw_open(w);
    ack_members(w, it);
    nt_jsonw_close(w);
}

static void publish_ack(ps_batches *bs, const ps_item *it)
{
    nt_jsonw *a = &bs->ack_json;
    char subject[256];
    snprintf(subject, sizeof(subject), "natter.user.%s.%s", it->app, it->sender);
    nt_jsonw_reset(a);
    ack_json(a, it);
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "ack");
    nt_envw_cstr(&w, "cmid", it->cmid);
    nt_envw_cstr(&w, "json", nt_jsonw_text(a, NULL));
    publish_env(bs->ctx, subject, &w);
}

static void publish_send_error(ps_ctx *ctx, const ps_item *it, const char *code,
                               const char *message)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "natter.user.%s.%s", it->app, it->sender);
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "send_error");
    nt_envw_cstr(&w, "cmid", it->cmid);
    nt_envw_cstr(&w, "code", code);
    nt_envw_cstr(&w, "message", message);
    publish_env(ctx, subject, &w);
}

/* with_ack: the sender's gateway holds the room's subject for the send and answers
 * it from this event, which then carries sender, cmid and the ack data. */
static void publish_room_event(ps_batches *bs, const ps_item *it, bool with_ack)
{
    char subject[256], channel[80];
    snprintf(subject, sizeof(subject), "natter.room.%s.%s", it->app, it->room_id);
    snprintf(channel, sizeof(channel), "room.%s", it->room_id);
    nt_jsonw *j = &bs->event_json;
    nt_jsonw_reset(j);
    nt_jsonw_open(j);
    nt_jsonw_kstr(j, "event", "message");
    nt_jsonw_kstr(j, "channel", channel);
    nt_jsonw_key(j, "data");
    nt_jsonw_open(j);
    ack_members(j, it);
    nt_jsonw_kstr(j, "sender_id", it->sender);
    nt_jsonw_kstr(j, "sender_name", it->name);
    nt_jsonw_kstr(j, "message", it->body);
    nt_jsonw_kstr(j, "message_type", it->mtype);
    nt_jsonw_kstr(j, "reply_to", it->reply_to);
    nt_jsonw_close(j);
    nt_jsonw_close(j);
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "event");
    nt_envw_cstr(&w, "room", it->room_id);
    nt_envw_int(&w, "seq", it->seq);
    nt_envw_cstr(&w, "json", nt_jsonw_text(j, NULL));
    if (with_ack) {
        nt_jsonw_reset(&bs->ack_json);
        ack_json(&bs->ack_json, it);
        nt_envw_cstr(&w, "sender", it->sender);
        nt_envw_cstr(&w, "cmid", it->cmid);
        nt_envw_cstr(&w, "ack", nt_jsonw_text(&bs->ack_json, NULL));
    }
    publish_env(bs->ctx, subject, &w);
}

static void item_publish(ps_batches *bs, const ps_item *it)
{
    ps_ctx *ctx = bs->ctx;
    char msg[128];
    switch (it->kind) {
    case IT_POISON:
        nt_warn("stream sequence %llu: undecodable send envelope acked and skipped",
                (unsigned long long)it->sseq);
        nt_metric_add(ctx->m.poison, 1);
        return;
    case IT_BAD:
        nt_metric_add(ctx->m.refused, 1);
        publish_send_error(ctx, it, "bad_request", it->bad_reason);
        return;
    case IT_POST:
        break;
    }
    if (it->status == NULL) {
        nt_error("stream sequence %llu: no result from natter_post_batch",
                 (unsigned long long)it->sseq);
        return;
    }
    if (strcmp(it->status, "ok") == 0) {
        nt_metric_add(ctx->m.committed, 1);
        /* wall clocks of two hosts: a skewed one must not make a counter go down */
        if (it->ts > 0 && it->batch->fetched_ms >= it->ts) {
            nt_metric_add(ctx->m.fetch_lag_ms_sum, it->batch->fetched_ms - it->ts);
            nt_metric_add(ctx->m.publish_lag_ms_sum, it->batch->published_ms - it->ts);
        }
        publish_room_event(bs, it, it->rack);
        if (!it->rack)
            publish_ack(bs, it);
        ps_unread_room(ctx->unread, it->app, it->room_id);
    } else if (strcmp(it->status, "duplicate") == 0) {
        nt_metric_add(ctx->m.duplicates, 1);
        if (it->redelivered) {
            nt_metric_add(ctx->m.redelivered, 1);
            publish_room_event(bs, it, false);
        }
        publish_ack(bs, it);
    } else if (strcmp(it->status, "not_found") == 0) {
        nt_metric_add(ctx->m.refused, 1);
        snprintf(msg, sizeof(msg), "room %s does not exist", it->room);
        publish_send_error(ctx, it, "not_found", msg);
    } else {
        nt_metric_add(ctx->m.refused, 1);
        snprintf(msg, sizeof(msg), "not a member of room %s", it->room);
        publish_send_error(ctx, it, "forbidden", msg);
    }
}

static void on_analyzed(PGresult *res, void *arg)
{
    (void)arg;
    if (ps_pg_ok(res))
        nt_info("statistics of messages, rooms and members refreshed after a slow commit");
    else
        nt_warn("ANALYZE after a slow commit failed: %s",
                res ? PQresultErrorMessage(res) : "connection lost");
}

/* Statistics that call a full table empty (an ANALYZE that found messages with a
 * page but no committed row records reltuples 0, and the planner then scales that
 * density to any size) make every plan made from them slow: replanning alone does
 * not help. ANALYZE on the read connection, at most every BATCH_ANALYZE_EVERY_MS;
 * it invalidates the write connections' plans that read those tables. */
static void batch_refresh_stats(ps_batches *bs)
{
    ps_ctx *ctx = bs->ctx;
    uint64_t now = uv_now(ctx->loop);
    if (now < bs->analyze_next_ms)
        return;
    if (ps_pg_query(ctx->rpg, "ANALYZE messages, rooms, members", on_analyzed, NULL) != NT_OK)
        return;                        /* the read connection is down: the next slow commit */
    ps_pg_sync(ctx->rpg, NULL, NULL);
    bs->analyze_next_ms = now + BATCH_ANALYZE_EVERY_MS;
}

/* A commit that took seconds means a sick database or plan, not load: the
 * commits behind it on the same write connection wait for it. Counted always,
 * logged at most once per BATCH_SLOW_LOG_MS with the count since; the
 * connection's plans are rebuilt before its next statement (a plan made while
 * the tables were nearly empty is the usual cause: pg.c), and the statistics are
 * refreshed (batch_refresh_stats). */
static void batch_note_slow(const ps_batch *b, uint64_t ms)
{
    ps_ctx *ctx = b->ctx;
    uint64_t n;
    nt_metric_add(ctx->m.slow_commits, 1);
    ps_pg_replan(ps_wpg(ctx, b->part->p));
    batch_refresh_stats(b->bs);
    if (nt_log_limit_due(&b->bs->slow, uv_now(ctx->loop), BATCH_SLOW_LOG_MS, &n))
        nt_warn("partition %u: a batch of %d took %llu ms to commit on write connection %u "
                "(%llu commits over %d ms since the last warning)",
                b->part->p, b->n, (unsigned long long)ms, b->part->p % ctx->nwpg,
                (unsigned long long)n, BATCH_SLOW_MS);
}

/* The transaction is committed (or nothing needed writing): ack, then publish. */
static void batch_committed(ps_batch *b, bool wrote)
{
    ps_ctx *ctx = b->ctx;
    if (b->max_sseq > b->part->committed)
        b->part->committed = b->max_sseq;
    /* the consumer is AckAll: this acks the whole batch */
    nt_status s = nt_bus_publish(ctx->bus, b->msgs[b->n - 1]->reply, NULL, "+ACK", 4);
    if (s != NT_OK)
        nt_warn("partition %u: ack failed: %s (redelivery will be skipped as committed)",
                b->part->p, nt_status_text(s));
    b->published_ms = nt_now_ms();
    for (int i = 0; i < b->n; i++)
        item_publish(b->bs, &b->items[i]);
    if (wrote) {
        uint64_t ms = uv_now(ctx->loop) - b->t0;
        if (ms >= BATCH_SLOW_MS)
            batch_note_slow(b, ms);
        ps_pg_wrote(ps_wpg(ctx, b->part->p), (uint64_t)b->nposts);
        nt_metric_add(ctx->m.batches, 1);
        nt_metric_set(ctx->m.batch_size, b->n);
        nt_metric_set(ctx->m.commit_ms, (int64_t)ms);
        nt_metric_add(ctx->m.commit_ms_sum, (int64_t)ms);
    }
    batch_finish(b);
}

static bool batch_current(const ps_batch *b)
{
    return b->part->owned && b->part->gen == b->gen && b->part->inflight == b;
}

static void batch_on_retry(uv_timer_t *t)
{
    ps_batch *b = t->data;
    if (!batch_current(b)) {
        batch_drop(b, "partition no longer owned");
        return;
    }
    if (!ps_pg_up(ps_wpg(b->ctx, b->part->p))) {
        batch_drop(b, "write connection down");
        return;
    }
    nt_metric_add(b->ctx->m.batch_retries, 1);
    batch_send(b);
}

static void batch_synced(PGresult *res, void *arg)
{
    ps_batch *b = arg;
    b->awaiting = false;
    if (res == NULL) {
        batch_drop(b, "write connection lost before the commit result");
        return;
    }
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
        batch_record_error(b, res);
    if (!b->failed) {
        b->retries = 0;
        batch_committed(b, true);
        return;
    }
    if (!batch_current(b)) {
        batch_drop(b, "partition no longer owned");
        return;
    }
    int delay = BATCH_RETRY_MIN_MS << (b->retries < 6 ? b->retries : 6);
    if (delay > BATCH_RETRY_MAX_MS)
        delay = BATCH_RETRY_MAX_MS;
    b->retries++;
    nt_error("partition %u: batch of %d failed (%s); retry %d in %d ms", b->part->p, b->n,
             b->err, b->retries, delay);
    if (b->retry == NULL) {
        b->retry = nt_malloc(sizeof(*b->retry));
        uv_timer_init(b->ctx->loop, b->retry);
        b->retry->data = b;
    }
    uv_timer_start(b->retry, batch_on_retry, (uint64_t)delay, 0);
}

static void wq_flush(ps_ctx *ctx, unsigned k);

/* The transaction ended (res NULL: the connection was lost): each batch as if it had
 * been alone, then the connection's next transaction. */
static void txn_synced(PGresult *res, void *arg)
{
    ps_txn *t = arg;
    ps_ctx *ctx = t->ctx;
    unsigned k = t->k;
    const ps_batch *failed = NULL;
    for (int i = 0; i < t->nb && failed == NULL; i++)
        if (t->b[i]->failed)
            failed = t->b[i];
    /* one batch's error rolled back the others' statements too, even those that
     * had succeeded before it */
    for (int i = 0; failed != NULL && i < t->nb; i++) {
        ps_batch *b = t->b[i];
        if (!b->failed) {
            b->failed = true;
            snprintf(b->err, sizeof(b->err), "rolled back with partition %u's batch: %.160s",
                     failed->part->p, failed->err);
        }
    }
    if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC && failed == NULL)
        nt_metric_add(ctx->m.transactions, 1);
    for (int i = 0; i < t->nb; i++)
        batch_synced(res, t->b[i]);
    nt_free(t);
    g_wqs->q[k].busy = false;
    wq_flush(ctx, k);
}

/* Queues one transaction's statements and the sync that commits them as one implicit
 * transaction: every batch's `advance`, then one natter_post_batch call with all
 * their sends. An explicit BEGIN/COMMIT would leave the session in an aborted
 * transaction after an error, failing the next pipeline segment too. The
 * connection's state changes only on the loop, so either the first send is refused
 * and nothing was queued (false), or every send is queued. */
static bool txn_send(ps_txn *t)
{
    ps_ctx *ctx = t->ctx;
    ps_pg *pg = ctx->wpg[t->k];
    for (int i = 0; i < t->nb; i++) {
        ps_batch *b = t->b[i];
        char seqv[24], pv[16], startv[24];
        snprintf(seqv, sizeof(seqv), "%llu", (unsigned long long)b->max_sseq);
        snprintf(pv, sizeof(pv), "%u", b->part->p);
        snprintf(startv, sizeof(startv), "%llu", (unsigned long long)b->min_sseq);
        const char *adv[3] = { seqv, pv, startv };
        if (ps_pg_prepared(pg, "advance", 3, adv, batch_step_done, b) != NT_OK)
            return false;
        b->t0 = uv_now(ctx->loop);
        b->awaiting = true;
    }
    if (t->nposts > 0) {
        arr_lit cols[8];
        memset(cols, 0, sizeof(cols));
        for (int i = 0; i < t->nb; i++) {
            for (int j = 0; j < t->b[i]->nposts; j++) {
                const ps_item *it = t->b[i]->posts[j];
                const char *v[8] = { it->app, it->room, it->sender, it->name,
                                     it->cmid, it->mtype, it->body, it->reply_to };
                for (int c = 0; c < 8; c++)
                    arr_add(&cols[c], v[c]);
            }
        }
        const char *params[8];
        for (int c = 0; c < 8; c++)
            params[c] = arr_end(&cols[c]);
        /* libpq copies the parameters into its output buffer */
        ps_pg_prepared(pg, "post_batch", 8, params, txn_post_done, t);
        for (int c = 0; c < 8; c++)
            nt_free(cols[c].buf);
    }
    ps_pg_sync(pg, txn_synced, t);
    return true;
}

static void txn_add(ps_txn *t, ps_batch *b)
{
    wq_unlink(b);
    b->ord0 = t->nposts;
    t->nposts += b->nposts;
    t->b[t->nb++] = b;
}

/* Starts connection k's next transaction unless one is in flight: a batch being
 * retried alone, else every queued batch that is not. The queue holds at most one
 * batch per partition of the connection (a partition has one batch in flight). A
 * refused send (the connection is down) drops the batches; JetStream redelivers them. */
static void wq_flush(ps_ctx *ctx, unsigned k)
{
    ps_wq *q = &g_wqs->q[k];
    while (!q->busy && q->head != NULL) {
        ps_batch *head = q->head;
        int fresh = 0;
        for (ps_batch *b = head; b != NULL; b = b->qnext)
            fresh += b->retries == 0;
        bool alone = head->retries > 0;
        ps_txn *t = nt_calloc(1, sizeof(*t) + (size_t)(alone ? 1 : fresh) * sizeof(t->b[0]));
        t->ctx = ctx;
        t->k = k;
        if (alone)
            txn_add(t, head);
        for (ps_batch *b = head, *next; !alone && b != NULL; b = next) {
            next = b->qnext;
            if (b->retries == 0)
                txn_add(t, b);
        }
        q->busy = true;
        if (txn_send(t))
            return;
        /* dropping may start other batches: they queue behind busy, then loop */
        for (int i = 0; i < t->nb; i++)
            batch_drop(t->b[i], "write connection down");
        nt_free(t);
        q->busy = false;
    }
}

/* Until when connection k's next transaction waits for batches of its other
 * partitions about to start (0: none): the partitions start their batches on a
 * shared linger grid (pull.c), so their answers arrive within a moment of each
 * other, though not always in the same loop iteration. */
static uint64_t wq_gather_until(ps_ctx *ctx, unsigned k)
{
    uint64_t until = 0, now = uv_now(ctx->loop);
    for (unsigned p = k; p < ctx->cfg.partitions; p += ctx->nwpg) {
        uint64_t due = ps_pull_batch_due(ctx->pull, p);
        if (due > now && due > until)
            until = due;
    }
    return until;
}

/* Once per loop iteration, after the batches that became ready in it were queued:
 * each idle connection's next transaction, unless another of its partitions is
 * about to bring a batch (then when it has, or at the latest PULL_GATHER_MS after
 * its request went out: the gather timer). One transaction instead of one per
 * partition: each costs PostgreSQL as much as a few dozen messages in it. */
static void wq_start_ready(ps_ctx *ctx)
{
    uv_idle_stop(&g_wqs->flush);
    uv_timer_stop(&g_wqs->gather);
    uint64_t wake = 0, now = uv_now(ctx->loop);
    for (unsigned k = 0; k < ctx->nwpg && g_wqs != NULL; k++) {
        ps_wq *q = &g_wqs->q[k];
        if (q->busy || q->head == NULL)
            continue;
        uint64_t until = q->head->retries == 0 ? wq_gather_until(ctx, k) : 0;
        if (until == 0)
            wq_flush(ctx, k);
        else if (wake == 0 || until < wake)
            wake = until;
    }
    if (wake != 0 && g_wqs != NULL)
        uv_timer_start(&g_wqs->gather, wq_on_gather, wake - now, 0);
}

static void wq_on_flush(uv_idle_t *h)
{
    wq_start_ready(h->data);
}

/* A connection's wait is over: each partition waited for has brought its batch, or is
 * past its PULL_GATHER_MS and no longer waited for. */
static void wq_on_gather(uv_timer_t *t)
{
    wq_start_ready(t->data);
}

/* Queues the batch on its write connection; it goes at the end of this loop
 * iteration if that connection is idle then. */
static void batch_send(ps_batch *b)
{
    b->failed = false;
    b->err[0] = '\0';
    for (int i = 0; i < b->nposts; i++)
        item_clear_result(b->posts[i]);
    ps_wq *q = batch_wq(b);
    b->qnext = NULL;
    if (q->tail != NULL)
        q->tail->qnext = b;
    else
        q->head = b;
    q->tail = b;
    b->queued = true;
    if (!uv_is_active((uv_handle_t *)&g_wqs->flush))
        uv_idle_start(&g_wqs->flush, wq_on_flush);
}

static void wq_on_closed(uv_handle_t *h)
{
    ps_wqs *w = h->data;
    if (--w->closing == 0)
        nt_free(w);
}

static void batch_free_queues(void)
{
    if (g_wqs == NULL)
        return;
    g_wqs->closing = 2;
    g_wqs->flush.data = g_wqs->gather.data = g_wqs;
    uv_close((uv_handle_t *)&g_wqs->flush, wq_on_closed);
    uv_close((uv_handle_t *)&g_wqs->gather, wq_on_closed);
    g_wqs = NULL;
}

void ps_batch_gather_over(ps_batches *bs)
{
    (void)bs;
    if (g_wqs != NULL && uv_is_active((uv_handle_t *)&g_wqs->gather) &&
        !uv_is_active((uv_handle_t *)&g_wqs->flush))
        uv_idle_start(&g_wqs->flush, wq_on_flush);
}

ps_batches *ps_batch_create(ps_ctx *ctx)
{
    ps_batches *bs = nt_calloc(1, sizeof(*bs));
    bs->ctx = ctx;
    nt_jsonw_init(&bs->event_json);
    nt_jsonw_init(&bs->ack_json);
    return bs;
}

void ps_batch_destroy(ps_batches *bs)
{
    if (bs == NULL)
        return;
    batch_free_queues();
    nt_jsonw_free(&bs->event_json);
    nt_jsonw_free(&bs->ack_json);
    nt_free(bs);
}

void ps_batch_start(ps_batches *bs, unsigned p, uint64_t gen, ps_jsmsg **msgs, int n)
{
    ps_ctx *ctx = bs->ctx;
    ps_part *part = ps_parts_get(ctx->parts, p);
    if (part == NULL || !part->owned || part->gen != gen || ctx->draining ||
        part->inflight != NULL) {
        for (int i = 0; i < n; i++)
            nt_free(msgs[i]);
        nt_free(msgs);
        ps_pull_batch_done(ctx->pull, p);
        ps_settled(ctx);
        return;
    }
    ps_batch *b = nt_calloc(1, sizeof(*b));
    b->bs = bs;
    b->ctx = ctx;
    b->part = part;
    b->gen = gen;
    b->msgs = msgs;
    b->n = n;
    b->fetched_ms = nt_now_ms();
    b->items = nt_calloc((size_t)b->n, sizeof(*b->items));
    part->inflight = b;

    bool need_db = false;
    for (int i = 0; i < b->n; i++) {
        ps_item *it = &b->items[i];
        const ps_jsmsg *m = b->msgs[i];
        it->batch = b;
        if (m->sseq == 0) {
            it->kind = IT_POISON;
            continue;
        }
        it->sseq = m->sseq;
        if (it->sseq > b->max_sseq)
            b->max_sseq = it->sseq;
        if (b->min_sseq == 0 || it->sseq < b->min_sseq)
            b->min_sseq = it->sseq;
        it->redelivered = it->sseq <= part->committed;
        item_decode(ctx, it, m);
        need_db = true;
    }
    b->posts = nt_calloc((size_t)b->n + 1, sizeof(*b->posts));
    for (int i = 0; i < b->n; i++)
        if (b->items[i].kind == IT_POST)
            b->posts[b->nposts++] = &b->items[i];
    if (!need_db) {
        batch_committed(b, false);
        return;
    }
    batch_send(b);
}

void ps_batch_release_idle(ps_part *part)
{
    ps_batch *b = part->inflight;
    if (b != NULL && !b->awaiting)
        batch_drop(b, "partition released");
}
