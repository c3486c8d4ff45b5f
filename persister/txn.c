/* txn.c: the write transactions. A write connection has at most one transaction in
 * flight: batches of its other partitions that become ready meanwhile wait, and the
 * next transaction carries all of them (a transaction costs PostgreSQL about as much
 * as its first few dozen messages, and each partition lingers on its own, so one
 * transaction per partition made many partitions expensive). A batch being retried
 * after a failed transaction goes alone, so one that keeps failing cannot hold the
 * others back. A transaction's sends go to PostgreSQL as one natter_post_batch call
 * (migration 006): eight parallel text[] parameters, one element per send in stream
 * order, one result row per send; each batch adds its partition's `advance`. */
#include "txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "pull.h"

const ps_pg_stmt ps_txn_stmts[] = {
    { "claim", "SELECT natter_claim($1::int)", 1 },
    { "post_batch",
      "SELECT ord, status, room_id, msg_id, msg_seq, created_at_text FROM natter_post_batch("
      "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
      " $8::text[])", 8 },
    { "advance", "UPDATE partitions SET stream_seq = greatest(stream_seq, $1::bigint), "
                 "batch_start = $3::bigint WHERE p = $2::int", 3 },
};
const size_t ps_txn_nstmts = sizeof(ps_txn_stmts) / sizeof(ps_txn_stmts[0]);

/* A write connection's batches waiting for its transaction in flight to end. */
typedef struct ps_wq {
    nt_list batches;      /* ps_txn_batch.link, in the order queued */
    bool busy;            /* a transaction is in flight (or being queued) */
} ps_wq;

/* The write connections' queues, the idle handle that flushes them once per loop
 * iteration and the timer that ends a connection's wait for the batches about to
 * join its next transaction (loop thread only). */
struct ps_txn {
    ps_ctx *ctx;
    ps_txn_synced_fn on_synced;
    ps_txn_refused_fn on_refused;
    void *arg;            /* of on_synced and on_refused */
    uv_idle_t flush;
    uv_timer_t gather;
    int closing;          /* handles not yet closed, at stop */
    ps_wq q[];            /* one per write connection */
};

/* The batches one transaction carries. */
typedef struct txn_run {
    ps_txn *x;
    ps_ctx *ctx;
    unsigned k;           /* write connection */
    int nb;
    int nposts;
    ps_txn_batch *b[];
} txn_run;

static void wq_on_flush(uv_idle_t *h);
static void wq_on_gather(uv_timer_t *t);

/* The batch queued first on q, or NULL. */
static ps_txn_batch *wq_first(const ps_wq *q)
{
    nt_list *n = nt_list_first(&q->batches);
    return n != NULL ? nt_list_entry(n, ps_txn_batch, link) : NULL;
}

void ps_txn_batch_init(ps_txn_batch *b)
{
    nt_list_init(&b->link);
}

void ps_txn_unqueue(ps_txn *x, ps_txn_batch *b)
{
    nt_list_remove(&b->link);
}

void ps_txn_post_clear(ps_txn_post *post)
{
    nt_free(post->status);
    nt_free(post->room_id);
    nt_free(post->id);
    nt_free(post->created_at);
    post->status = post->room_id = post->id = post->created_at = NULL;
    post->seq = 0;
}

static void batch_record_error(ps_txn_batch *b, const PGresult *res)
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

static void batch_bad_result(ps_txn_batch *b, const char *fmt, int x, int y, int z)
{
    if (b->failed)
        return;
    b->failed = true;
    snprintf(b->err, sizeof(b->err), fmt, x, y, z);
}

static void txn_record_error(txn_run *t, PGresult *res)
{
    for (int i = 0; i < t->nb; i++)
        batch_record_error(t->b[i], res);
}

static void txn_bad_result(txn_run *t, const char *fmt, int x, int y)
{
    for (int i = 0; i < t->nb; i++)
        batch_bad_result(t->b[i], fmt, x, y, t->nposts);
}

/* The batch whose posts hold ord (1-based over the whole call), or NULL. */
static ps_txn_batch *txn_batch_of(const txn_run *t, long ord)
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
    txn_run *t = arg;
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
        ps_txn_batch *b = txn_batch_of(t, ord);
        if (b == NULL || b->posts[ord - b->ord0 - 1]->status != NULL || PQgetisnull(res, r, 1)) {
            txn_bad_result(t, "natter_post_batch row %d: ord %d missing, repeated or "
                           "out of 1..%d", r, (int)ord);
            return;
        }
        ps_txn_post *it = b->posts[ord - b->ord0 - 1];
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
 * (ps_txn_post). Grown with arr_add in an unbounded nt_buf, finished by arr_end. */
static void arr_add(nt_buf *a, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    (void)nt_buf_reserve(a, 2 * n + 5);   /* separator, quotes, escapes; or ",NULL" */
    char *start = a->data + a->len, *p = start;
    *p++ = a->len == 0 ? '{' : ',';
    if (s == NULL) {
        memcpy(p, "NULL", 4);
        p += 4;
    } else {
        *p++ = '"';
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\')
                *p++ = '\\';
            *p++ = s[i];
        }
        *p++ = '"';
    }
    nt_buf_commit(a, (size_t)(p - start));
}

static const char *arr_end(nt_buf *a)
{
    (void)nt_buf_append(a, a->len == 0 ? "{}" : "}", a->len == 0 ? 2 : 1);
    return a->data;
}

static void wq_flush(ps_txn *x, unsigned k);

/* The transaction ended (res NULL: the connection was lost): each batch as if it had
 * been alone, then the connection's next transaction. */
static void txn_synced(PGresult *res, void *arg)
{
    txn_run *t = arg;
    ps_txn *x = t->x;
    ps_ctx *ctx = t->ctx;
    unsigned k = t->k;
    const ps_txn_batch *failed = NULL;
    for (int i = 0; i < t->nb && failed == NULL; i++)
        if (t->b[i]->failed)
            failed = t->b[i];
    /* one batch's error rolled back the others' statements too, even those that
     * had succeeded before it */
    for (int i = 0; failed != NULL && i < t->nb; i++) {
        ps_txn_batch *b = t->b[i];
        if (!b->failed) {
            b->failed = true;
            snprintf(b->err, sizeof(b->err), "rolled back with partition %u's batch: %.160s",
                     failed->p, failed->err);
        }
    }
    if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC && failed == NULL)
        nt_metric_add(ctx->m.transactions, 1);
    for (int i = 0; i < t->nb; i++) {
        ps_txn_batch *b = t->b[i];
        b->awaiting = false;
        if (res != NULL && PQresultStatus(res) != PGRES_PIPELINE_SYNC)
            batch_record_error(b, res);
        x->on_synced(b, res, x->arg);
    }
    nt_free(t);
    x->q[k].busy = false;
    wq_flush(x, k);
}

/* Queues one transaction's statements and the sync that commits them as one implicit
 * transaction: every batch's `advance`, then one natter_post_batch call with all
 * their sends. An explicit BEGIN/COMMIT would leave the session in an aborted
 * transaction after an error, failing the next pipeline segment too. The
 * connection's state changes only on the loop, so either the first send is refused
 * and nothing was queued (false), or every send is queued. */
static bool txn_send(txn_run *t)
{
    ps_ctx *ctx = t->ctx;
    ps_pg *pg = ctx->wpg[t->k];
    for (int i = 0; i < t->nb; i++) {
        ps_txn_batch *b = t->b[i];
        char seqv[24], pv[16], startv[24];
        snprintf(seqv, sizeof(seqv), "%llu", (unsigned long long)b->max_sseq);
        snprintf(pv, sizeof(pv), "%u", b->p);
        snprintf(startv, sizeof(startv), "%llu", (unsigned long long)b->min_sseq);
        const char *adv[3] = { seqv, pv, startv };
        if (ps_pg_prepared(pg, "advance", 3, adv, batch_step_done, b) != NT_OK)
            return false;
        b->t0 = uv_now(ctx->loop);
        b->awaiting = true;
    }
    if (t->nposts > 0) {
        nt_buf cols[8];
        for (int c = 0; c < 8; c++)
            nt_buf_init(&cols[c], 0);
        for (int i = 0; i < t->nb; i++) {
            for (int j = 0; j < t->b[i]->nposts; j++) {
                const ps_txn_post *it = t->b[i]->posts[j];
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
            nt_buf_free(&cols[c]);
    }
    ps_pg_sync(pg, txn_synced, t);
    return true;
}

static void txn_add(txn_run *t, ps_txn_batch *b)
{
    ps_txn_unqueue(t->x, b);
    b->ord0 = t->nposts;
    t->nposts += b->nposts;
    t->b[t->nb++] = b;
}

/* Starts connection k's next transaction unless one is in flight: a batch being
 * retried alone, else every queued batch that is not. The queue holds at most one
 * batch per partition of the connection (a partition has one batch in flight). A
 * refused send (the connection is down) refuses the batches (on_refused). */
static void wq_flush(ps_txn *x, unsigned k)
{
    ps_wq *q = &x->q[k];
    ps_txn_batch *head;
    while (!q->busy && (head = wq_first(q)) != NULL) {
        int fresh = 0;
        nt_list *n, *next;
        nt_list_foreach(n, &q->batches)
            fresh += nt_list_entry(n, ps_txn_batch, link)->retries == 0;
        bool alone = head->retries > 0;
        txn_run *t = nt_calloc(1, sizeof(*t) + (size_t)(alone ? 1 : fresh) * sizeof(t->b[0]));
        t->x = x;
        t->ctx = x->ctx;
        t->k = k;
        if (alone) {
            txn_add(t, head);
        } else {
            nt_list_foreach_safe(n, next, &q->batches) {
                ps_txn_batch *b = nt_list_entry(n, ps_txn_batch, link);
                if (b->retries == 0)
                    txn_add(t, b);
            }
        }
        q->busy = true;
        if (txn_send(t))
            return;
        /* refusing may start other batches: they queue behind busy, then loop */
        for (int i = 0; i < t->nb; i++)
            x->on_refused(t->b[i], x->arg);
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
static void wq_start_ready(ps_txn *x)
{
    ps_ctx *ctx = x->ctx;
    uv_idle_stop(&x->flush);
    uv_timer_stop(&x->gather);
    uint64_t wake = 0, now = uv_now(ctx->loop);
    for (unsigned k = 0; k < ctx->nwpg; k++) {
        ps_wq *q = &x->q[k];
        ps_txn_batch *head = wq_first(q);
        if (q->busy || head == NULL)
            continue;
        uint64_t until = head->retries == 0 ? wq_gather_until(ctx, k) : 0;
        if (until == 0)
            wq_flush(x, k);
        else if (wake == 0 || until < wake)
            wake = until;
    }
    if (wake != 0)
        uv_timer_start(&x->gather, wq_on_gather, wake - now, 0);
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

void ps_txn_queue(ps_txn *x, ps_txn_batch *b)
{
    b->failed = false;
    b->err[0] = '\0';
    for (int i = 0; i < b->nposts; i++)
        ps_txn_post_clear(b->posts[i]);
    nt_list_insert_tail(&x->q[b->p % x->ctx->nwpg].batches, &b->link);
    if (!uv_is_active((uv_handle_t *)&x->flush))
        uv_idle_start(&x->flush, wq_on_flush);
}

void ps_txn_gather_over(ps_txn *x)
{
    if (uv_is_active((uv_handle_t *)&x->gather) && !uv_is_active((uv_handle_t *)&x->flush))
        uv_idle_start(&x->flush, wq_on_flush);
}

ps_txn *ps_txn_create(ps_ctx *ctx, ps_txn_synced_fn on_synced, ps_txn_refused_fn on_refused,
                      void *arg)
{
    ps_txn *x = nt_calloc(1, sizeof(*x) + ctx->nwpg * sizeof(x->q[0]));
    x->ctx = ctx;
    x->on_synced = on_synced;
    x->on_refused = on_refused;
    x->arg = arg;
    for (unsigned k = 0; k < ctx->nwpg; k++)
        nt_list_init(&x->q[k].batches);
    uv_idle_init(ctx->loop, &x->flush);
    uv_timer_init(ctx->loop, &x->gather);
    x->flush.data = x;
    x->gather.data = x;
    return x;
}

static void wq_on_closed(uv_handle_t *h)
{
    ps_txn *x = h->data;
    if (--x->closing == 0)
        nt_free(x);
}

void ps_txn_destroy(ps_txn *x)
{
    if (x == NULL)
        return;
    x->closing = 2;
    uv_close((uv_handle_t *)&x->flush, wq_on_closed);
    uv_close((uv_handle_t *)&x->gather, wq_on_closed);
}
