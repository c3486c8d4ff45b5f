/* txn.h: the write transactions: the batches ready on a write connection committed
 * together in one transaction, at most one in flight per connection (txn.c). */
#ifndef PS_TXN_H
#define PS_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "persister.h"
#include "pg.h"

typedef struct ps_txn ps_txn;

/* Statements the write connection prepares for transactions and claims. */
extern const ps_pg_stmt ps_txn_stmts[];
extern const size_t ps_txn_nstmts;

/* One send of a natter_post_batch call: its parameters (NULL: SQL NULL; none holds
 * a NUL), owned by whoever filled them, and the result row of the call (status NULL
 * until it answered), owned by the post (ps_txn_post_clear). */
typedef struct ps_txn_post {
    char *app, *room, *sender, *name, *cmid, *mtype, *body, *reply_to;
    char *status;         /* natter_post_batch result */
    char *room_id;
    char *id;
    int64_t seq;
    char *created_at;
} ps_txn_post;

/* A partition's batch as a transaction writes it. Its owner (batch.c) initialises it
 * (ps_txn_batch_init), sets p, the stream sequences, posts and retries, and keeps it (and
 * the posts) until its transaction reported it (ps_txn_synced_fn, ps_txn_refused_fn) or
 * it is unqueued. */
typedef struct ps_txn_batch {
    unsigned p;           /* partition: written on its write connection, ps_wpg */
    uint64_t max_sseq;
    uint64_t min_sseq;    /* first stream sequence of the batch (0 until known) */
    ps_txn_post **posts;  /* in stream order: ord i is posts[i - 1] */
    int nposts;
    int retries;          /* > 0: being retried, so it goes in a transaction alone */
    bool awaiting;        /* queries are in the pipeline */
    bool failed;          /* its transaction failed (err says why) */
    char err[256];
    uint64_t t0;          /* uv_now when its statements were queued */
    nt_list link;         /* in its write connection's queue while waiting there */
    int ord0;             /* its posts are ords ord0 + 1 .. ord0 + nposts of the call */
} ps_txn_batch;

/* tb's transaction ended: committed unless res is NULL (the connection was lost
 * before its result) or tb->failed; its posts then hold their results. The callee
 * may free tb. Loop thread. */
typedef void (*ps_txn_synced_fn)(ps_txn_batch *tb, const PGresult *res, void *arg);
/* tb could not be sent (its write connection is down): nothing was written. The
 * callee may free tb. Loop thread. */
typedef void (*ps_txn_refused_fn)(ps_txn_batch *tb, void *arg);

/* Creates the queues of ctx's write connections (ctx->nwpg) and their handles; every
 * batch queued is reported to on_synced or on_refused with arg, exactly once unless
 * it is unqueued first. Loop thread, like every function here. */
ps_txn *ps_txn_create(ps_ctx *ctx, ps_txn_synced_fn on_synced, ps_txn_refused_fn on_refused,
                      void *arg);
/* Closes the handles and frees it once they are closed. No batch may be queued or in
 * a transaction any more (at stop). */
void ps_txn_destroy(ps_txn *x);

/* Makes zeroed storage a batch that is not queued. */
void ps_txn_batch_init(ps_txn_batch *tb);
/* Queues tb (not queued, not in a transaction) on its write connection, its earlier
 * error and its posts' results cleared; it goes at the end of this loop iteration if
 * that connection is idle then. */
void ps_txn_queue(ps_txn *x, ps_txn_batch *tb);
/* Takes tb out of its queue, if it is queued; a transaction already sent keeps it. */
void ps_txn_unqueue(ps_txn *x, ps_txn_batch *tb);
/* A pull request ended with nothing to start a batch of: a write connection's
 * transaction need not wait for it any longer. */
void ps_txn_gather_over(ps_txn *x);

/* Frees post's result (its parameters stay) and clears it. */
void ps_txn_post_clear(ps_txn_post *post);

#endif
