/* batch.c: fetched batches decoded (undecodable messages are poison: logged, acked),
 * committed on their partition's write connection by txn.c (retried after a failed
 * transaction), then, per batch: AckAll on the last message, then per message an ack
 * (and a room event when stored) or a send_error. A message at or below the
 * partition's resume point is a redelivery of the last batch a dead owner committed:
 * natter_post_batch returns its row as a duplicate and its ack and room event are
 * published again (gateways drop room seqs they already forwarded). */
#include "batch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"
#include "jsonw.h"
#include "log.h"
#include "pg.h"
#include "txn.h"
#include "unread.h"
#include "util.h"
#include "wire.h"

#define BATCH_RETRY_MIN_MS 100
#define BATCH_RETRY_MAX_MS 5000
#define BATCH_MAX_TYPE_BYTES 32
#define BATCH_MAX_REF_BYTES 64
#define BATCH_MAX_NAME_BYTES 256
#define BATCH_SLOW_MS 1000        /* a commit slower than this is counted and logged */
#define BATCH_SLOW_LOG_MS 10000
#define BATCH_ANALYZE_EVERY_MS 600000  /* statistics refreshed after a slow commit at most this often */
#define BATCH_CONFIRM_TIMEOUT_MS 5000  /* a bus barrier confirming publishes: unanswered, the marker stays */

typedef enum {
    IT_POISON,   /* cannot be decoded or answered */
    IT_BAD,      /* refused with bad_request */
    IT_POST,     /* goes to natter_post_batch */
} item_kind;

typedef struct ps_item {
    ps_txn_post post;     /* the decoded send; IT_POST: natter_post_batch's result too */
    struct ps_batch *batch;
    uint64_t sseq;
    item_kind kind;
    bool redelivered;     /* at or below the resume point: replay of a committed batch */
    const char *bad_reason;
    int64_t ts;           /* gateway receipt, ms since the epoch (0: unknown) */
    bool rack;            /* the message event carries the ack (the gateway holds the room) */
} ps_item;

/* What every batch shares (loop thread only). */
struct ps_batches {
    ps_ctx *ctx;
    ps_txn *txn;              /* the write transactions */
    nt_jsonw event_json;      /* per-message JSON is written with nt_jsonw into these, */
    nt_jsonw ack_json;        /* reused: building it with jansson was 42 % of the CPU */
    uint64_t analyze_next_ms; /* no ANALYZE before (0: the first one may run at once) */
    nt_log_limit slow;        /* the slow commit warning */
    /* The outbox: one bus barrier at a time confirms what was published before it;
     * confirm[p] is partition p's committed point when it went out (under gen[p]). */
    bool confirming;
    uint64_t confirm_id;
    uint64_t *confirm, *confirm_gen;
};

struct ps_batch {
    ps_txn_batch tb;      /* what its transaction writes: the posts are its IT_POST items */
    ps_batches *bs;
    ps_ctx *ctx;
    ps_part *part;
    uint64_t gen;
    ps_jsmsg **msgs;      /* the fetched messages, n of them */
    ps_item *items;
    int n;
    uv_timer_t *retry;    /* heap, closed with the batch */
    int64_t fetched_ms;   /* wall clock when the batch reached the loop */
    int64_t published_ms; /* wall clock when its acks and events went out */
};

/* The batch whose transaction batch is tb. */
static ps_batch *batch_of(ps_txn_batch *tb)
{
    return (ps_batch *)((char *)tb - offsetof(ps_batch, tb));
}

static void item_free(ps_item *it)
{
    ps_txn_post_clear(&it->post);
    nt_free(it->post.app);
    nt_free(it->post.room);
    nt_free(it->post.sender);
    nt_free(it->post.name);
    nt_free(it->post.cmid);
    nt_free(it->post.mtype);
    nt_free(it->post.body);
    nt_free(it->post.reply_to);
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
    ps_txn_unqueue(b->bs->txn, &b->tb);
    for (int i = 0; i < b->n; i++) {
        item_free(&b->items[i]);
        nt_free(b->msgs[i]);
    }
    nt_free(b->msgs);
    nt_free(b->items);
    nt_free(b->tb.posts);
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
    if (!nt_envr_str_eq(&r, NT_KEY_TYPE, NT_TYPE_SEND))
        goto out;
    it->post.app = env_id(&r, NT_KEY_APP);
    it->post.sender = env_id(&r, NT_KEY_SENDER);
    it->post.cmid = env_text(&r, NT_KEY_CMID, BATCH_MAX_REF_BYTES, &ok);
    if (it->post.app == NULL || it->post.sender == NULL || it->post.cmid == NULL || it->post.cmid[0] == '\0')
        goto out;
    it->kind = IT_BAD;
    if (!nt_envr_int(&r, NT_KEY_TS, &it->ts))
        it->ts = 0;
    if (!nt_envr_bool(&r, NT_KEY_RACK, &it->rack))
        it->rack = false;
    it->post.room = env_id(&r, NT_KEY_ROOM);
    if (it->post.room == NULL) {
        it->bad_reason = "invalid room id";
        goto out;
    }
    it->post.name = env_text(&r, NT_KEY_NAME, BATCH_MAX_NAME_BYTES, &ok);
    it->post.mtype = env_text(&r, NT_KEY_MTYPE, BATCH_MAX_TYPE_BYTES, &ok);
    it->post.reply_to = env_text(&r, NT_KEY_REPLY_TO, BATCH_MAX_REF_BYTES, &ok);
    it->post.body = env_text(&r, NT_KEY_BODY, SIZE_MAX, &ok);
    if (!ok) {
        it->bad_reason = "invalid field";
        goto out;
    }
    size_t chars = it->post.body != NULL ? nt_utf8_len(it->post.body, strlen(it->post.body)) : 0;
    if (chars == 0 || chars > (size_t)ctx->cfg.max_message_chars) {
        it->bad_reason = "message must be 1 to NATTER_MAX_MESSAGE_CHARS characters";
        goto out;
    }
    if (it->post.mtype == NULL || it->post.mtype[0] == '\0') {
        nt_free(it->post.mtype);
        it->post.mtype = nt_strdup("text");
    }
    if (it->post.reply_to != NULL && it->post.reply_to[0] == '\0') {
        nt_free(it->post.reply_to);
        it->post.reply_to = NULL;
    }
    if (it->post.name == NULL)
        it->post.name = nt_strdup("");
    it->kind = IT_POST;
out:
    nt_envr_free(&r);
}

static void publish_env(ps_ctx *ctx, const char *subject, nt_envw *w)
{
    size_t len;
    const char *data = nt_envw_finish(w, &len);
    if (nt_bus_publish(ctx->bus, subject, NULL, data, len) != NT_OK)
        nt_warn("publish to %s failed", subject);
    nt_envw_free(w);
}

/* natter.user.<app>.<sender> of it into subject[NT_SUBJ_CAP]; false (logged) when the
 * ids make none (the decoder let only valid ids through). */
static bool sender_subject(const ps_item *it, char *subject)
{
    if (nt_subj_user(subject, NT_SUBJ_CAP, it->post.app, it->post.sender) >= 0)
        return true;
    nt_warn("stream sequence %llu: sender %s has no subject", (unsigned long long)it->sseq,
            it->post.sender);
    return false;
}

/* The members of the ack data (what the sender's `ack` event carries); the message
 * event's data starts with the same ones. */
static void ack_members(nt_jsonw *w, const ps_item *it)
{
    nt_jsonw_kstr(w, "id", it->post.id);
    nt_jsonw_kstr(w, "room_id", it->post.room_id);
    nt_jsonw_kint(w, "seq", it->post.seq);
    nt_jsonw_kstr(w, "created_at", it->post.created_at);
    nt_jsonw_kstr(w, "client_msg_id", it->post.cmid);
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
    char subject[NT_SUBJ_CAP];
    if (!sender_subject(it, subject))
        return;
    nt_jsonw_reset(a);
    ack_json(a, it);
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_TYPE, NT_TYPE_ACK);
    nt_envw_cstr(&w, NT_KEY_CMID, it->post.cmid);
    nt_envw_cstr(&w, NT_KEY_JSON, nt_jsonw_text(a, NULL));
    publish_env(bs->ctx, subject, &w);
}

static void publish_send_error(ps_ctx *ctx, const ps_item *it, const char *code,
                               const char *message)
{
    char subject[NT_SUBJ_CAP];
    if (!sender_subject(it, subject))
        return;
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_TYPE, NT_TYPE_SEND_ERROR);
    nt_envw_cstr(&w, NT_KEY_CMID, it->post.cmid);
    nt_envw_cstr(&w, NT_KEY_CODE, code);
    nt_envw_cstr(&w, NT_KEY_MESSAGE, message);
    publish_env(ctx, subject, &w);
}

/* with_ack: the sender's gateway holds the room's subject for the send and answers
 * it from this event, which then carries sender, cmid and the ack data. */
static void publish_room_event(ps_batches *bs, const ps_item *it, bool with_ack)
{
    char subject[NT_SUBJ_CAP], channel[80];
    if (nt_subj_room(subject, sizeof subject, it->post.app, it->post.room_id) < 0) {
        nt_warn("stream sequence %llu: room %s has no subject", (unsigned long long)it->sseq,
                it->post.room_id ? it->post.room_id : "(none)");
        return;
    }
    snprintf(channel, sizeof(channel), "room.%s", it->post.room_id);
    nt_jsonw *j = &bs->event_json;
    nt_jsonw_reset(j);
    nt_jsonw_open(j);
    nt_jsonw_kstr(j, "event", "message");
    nt_jsonw_kstr(j, "channel", channel);
    nt_jsonw_key(j, "data");
    nt_jsonw_open(j);
    ack_members(j, it);
    nt_jsonw_kstr(j, "sender_id", it->post.sender);
    nt_jsonw_kstr(j, "sender_name", it->post.name);
    nt_jsonw_kstr(j, "message", it->post.body);
    nt_jsonw_kstr(j, "message_type", it->post.mtype);
    nt_jsonw_kstr(j, "reply_to", it->post.reply_to);
    nt_jsonw_close(j);
    nt_jsonw_close(j);
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, NT_KEY_TYPE, NT_TYPE_EVENT);
    nt_envw_cstr(&w, NT_KEY_ROOM, it->post.room_id);
    nt_envw_int(&w, NT_KEY_SEQ, it->post.seq);
    nt_envw_cstr(&w, NT_KEY_JSON, nt_jsonw_text(j, NULL));
    if (with_ack) {
        nt_jsonw_reset(&bs->ack_json);
        ack_json(&bs->ack_json, it);
        nt_envw_cstr(&w, NT_KEY_SENDER, it->post.sender);
        nt_envw_cstr(&w, NT_KEY_CMID, it->post.cmid);
        nt_envw_cstr(&w, NT_KEY_ACK, nt_jsonw_text(&bs->ack_json, NULL));
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
    if (it->post.status == NULL) {
        nt_error("stream sequence %llu: no result from natter_post_batch",
                 (unsigned long long)it->sseq);
        return;
    }
    if (strcmp(it->post.status, "ok") == 0) {
        nt_metric_add(ctx->m.committed, 1);
        /* wall clocks of two hosts: a skewed one must not make a counter go down */
        if (it->ts > 0 && it->batch->fetched_ms >= it->ts) {
            nt_metric_add(ctx->m.fetch_lag_ms_sum, it->batch->fetched_ms - it->ts);
            nt_metric_add(ctx->m.publish_lag_ms_sum, it->batch->published_ms - it->ts);
        }
        publish_room_event(bs, it, it->rack);
        if (!it->rack)
            publish_ack(bs, it);
        ps_unread_room(ctx->unread, it->post.app, it->post.room_id);
    } else if (strcmp(it->post.status, "duplicate") == 0) {
        nt_metric_add(ctx->m.duplicates, 1);
        if (it->redelivered) {
            nt_metric_add(ctx->m.redelivered, 1);
            publish_room_event(bs, it, false);
        }
        publish_ack(bs, it);
    } else if (strcmp(it->post.status, "conflict") == 0) {
        nt_metric_add(ctx->m.refused, 1);
        char text[320];
        snprintf(text, sizeof text, "client_msg_id %s was already used for message %s (seq %lld "
                 "in room %s): a resend must have the same room and text; use a new "
                 "client_msg_id", it->post.cmid, it->post.id ? it->post.id : "?",
                 (long long)it->post.seq, it->post.room_id ? it->post.room_id : "?");
        publish_send_error(ctx, it, "conflict", text);
    } else if (strcmp(it->post.status, "not_found") == 0) {
        nt_metric_add(ctx->m.refused, 1);
        snprintf(msg, sizeof(msg), "room %s does not exist", it->post.room);
        publish_send_error(ctx, it, "not_found", msg);
    } else {
        nt_metric_add(ctx->m.refused, 1);
        snprintf(msg, sizeof(msg), "not a member of room %s", it->post.room);
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

static void outbox_confirm(ps_batches *bs);

/* The barrier is back: everything published before it reached nats-server. */
static void on_confirmed(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    ps_batches *bs = arg;
    (void)bus, (void)msg;
    bs->confirming = false;
    if (st != NT_OK)
        return;                    /* a consumer set up again starts from the marker */
    for (unsigned p = 0; p < bs->ctx->cfg.partitions; p++) {
        ps_part *part = ps_parts_get(bs->ctx->parts, p);
        if (part->owned && part->gen == bs->confirm_gen[p] && bs->confirm[p] > part->published)
            part->published = bs->confirm[p];
    }
    outbox_confirm(bs);            /* what was published meanwhile */
}

/* Sends a barrier after what was published, unless one is out or nothing waits. */
static void outbox_confirm(ps_batches *bs)
{
    ps_ctx *ctx = bs->ctx;
    bool any = false;
    if (bs->confirming)
        return;
    for (unsigned p = 0; p < ctx->cfg.partitions; p++) {
        const ps_part *part = ps_parts_get(ctx->parts, p);
        bs->confirm[p] = part->committed;
        bs->confirm_gen[p] = part->gen;
        any |= part->owned && part->published < part->committed;
    }
    if (any && nt_bus_barrier(ctx->bus, BATCH_CONFIRM_TIMEOUT_MS, on_confirmed, bs,
                              &bs->confirm_id) == NT_OK)
        bs->confirming = true;
}

/* The transaction is committed (or nothing needed writing): ack, then publish. */
static void batch_committed(ps_batch *b, bool wrote)
{
    ps_ctx *ctx = b->ctx;
    if (b->tb.max_sseq > b->part->committed)
        b->part->committed = b->tb.max_sseq;
    /* the consumer is AckAll: this acks the whole batch */
    nt_status s = nt_bus_publish(ctx->bus, b->msgs[b->n - 1]->reply, NULL, "+ACK", 4);
    if (s != NT_OK)
        nt_warn("partition %u: ack failed: %s (redelivery will be skipped as committed)",
                b->part->p, nt_status_text(s));
    b->published_ms = nt_now_ms();
    for (int i = 0; i < b->n; i++)
        item_publish(b->bs, &b->items[i]);
    outbox_confirm(b->bs);
    if (wrote) {
        uint64_t ms = uv_now(ctx->loop) - b->tb.t0;
        if (ms >= BATCH_SLOW_MS)
            batch_note_slow(b, ms);
        ps_pg_wrote(ps_wpg(ctx, b->part->p), (uint64_t)b->tb.nposts);
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
    ps_txn_queue(b->bs->txn, &b->tb);
}

/* ps_txn_synced_fn: committed, or retried after a delay while p is still owned. */
static void batch_synced(ps_txn_batch *tb, const PGresult *res, void *arg)
{
    (void)arg;
    ps_batch *b = batch_of(tb);
    if (res == NULL) {
        batch_drop(b, "write connection lost before the commit result");
        return;
    }
    if (!b->tb.failed) {
        b->tb.retries = 0;
        batch_committed(b, true);
        return;
    }
    if (!batch_current(b)) {
        batch_drop(b, "partition no longer owned");
        return;
    }
    int delay = BATCH_RETRY_MIN_MS << (b->tb.retries < 6 ? b->tb.retries : 6);
    if (delay > BATCH_RETRY_MAX_MS)
        delay = BATCH_RETRY_MAX_MS;
    b->tb.retries++;
    nt_error("partition %u: batch of %d failed (%s); retry %d in %d ms", b->part->p, b->n,
             b->tb.err, b->tb.retries, delay);
    if (b->retry == NULL) {
        b->retry = nt_malloc(sizeof(*b->retry));
        uv_timer_init(b->ctx->loop, b->retry);
        b->retry->data = b;
    }
    uv_timer_start(b->retry, batch_on_retry, (uint64_t)delay, 0);
}

/* ps_txn_refused_fn: JetStream redelivers it. */
static void batch_refused(ps_txn_batch *tb, void *arg)
{
    (void)arg;
    batch_drop(batch_of(tb), "write connection down");
}

void ps_batch_gather_over(ps_batches *bs)
{
    ps_txn_gather_over(bs->txn);
}

ps_batches *ps_batch_create(ps_ctx *ctx)
{
    ps_batches *bs = nt_calloc(1, sizeof(*bs));
    bs->ctx = ctx;
    bs->txn = ps_txn_create(ctx, batch_synced, batch_refused, bs);
    nt_jsonw_init(&bs->event_json);
    nt_jsonw_init(&bs->ack_json);
    bs->confirm = nt_calloc(ctx->cfg.partitions, sizeof *bs->confirm);
    bs->confirm_gen = nt_calloc(ctx->cfg.partitions, sizeof *bs->confirm_gen);
    return bs;
}

void ps_batch_destroy(ps_batches *bs)
{
    if (bs == NULL)
        return;
    if (bs->confirming && bs->ctx->bus != NULL)
        nt_bus_request_cancel(bs->ctx->bus, bs->confirm_id);
    ps_txn_destroy(bs->txn);
    nt_jsonw_free(&bs->event_json);
    nt_jsonw_free(&bs->ack_json);
    nt_free(bs->confirm);
    nt_free(bs->confirm_gen);
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
    ps_txn_batch_init(&b->tb);
    b->tb.p = p;
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
        if (it->sseq > b->tb.max_sseq)
            b->tb.max_sseq = it->sseq;
        if (b->tb.min_sseq == 0 || it->sseq < b->tb.min_sseq)
            b->tb.min_sseq = it->sseq;
        it->redelivered = it->sseq <= part->committed;
        item_decode(ctx, it, m);
        need_db = true;
    }
    b->tb.posts = nt_calloc((size_t)b->n + 1, sizeof(*b->tb.posts));
    for (int i = 0; i < b->n; i++)
        if (b->items[i].kind == IT_POST)
            b->tb.posts[b->tb.nposts++] = &b->items[i].post;
    if (!need_db) {
        batch_committed(b, false);
        return;
    }
    ps_txn_queue(bs->txn, &b->tb);
}

void ps_batch_release_idle(ps_part *part)
{
    ps_batch *b = part->inflight;
    if (b != NULL && !b->tb.awaiting)
        batch_drop(b, "partition released");
}
