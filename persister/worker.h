/* worker.h: the JetStream fetch threads, one per owned partition. They own every
 * blocking JetStream call (consumer create/delete, pull subscribe, fetch) and hand
 * fetched batches to the loop with nt_bus_post, at most one batch in flight per
 * partition. */
#ifndef PS_WORKER_H
#define PS_WORKER_H

#include <stdint.h>
#include <nats/nats.h>

#include "persister.h"

/* A fetched batch on its way to the loop. The receiver owns it: destroys the
 * messages, nt_frees it, then reports ps_worker_batch_done. */
typedef struct ps_fetch {
    ps_ctx *ctx;
    unsigned p;
    uint64_t gen;        /* ownership generation the consumer was created for */
    natsMsgList list;
} ps_fetch;

/* Called on the loop thread for every fetched batch. */
void ps_batch_deliver(void *fetch);

/* Creates the worker; a partition's thread starts when the partition is first
 * owned. It uses nt_bus_conn(ctx->bus). */
ps_worker *ps_worker_create(ps_ctx *ctx);
/* Partition p is owned under `gen`: (re)create consumer natter_p<p> to start after
 * stream sequence `committed` and fetch it. Loop thread. */
void ps_worker_start_part(ps_worker *w, unsigned p, uint64_t gen, uint64_t committed);
/* Stops fetching p (its subscription is closed once no batch is in flight). */
void ps_worker_stop_part(ps_worker *w, unsigned p);
void ps_worker_stop_all(ps_worker *w);
/* The loop finished with the batch of p fetched under gen (acked or dropped);
 * its messages must all be destroyed already. */
void ps_worker_batch_done(ps_worker *w, unsigned p, uint64_t gen);
/* Asks the threads to close its subscriptions and end; `on_exit(arg)` is then posted
 * to the loop. Every batch must have been reported done before. */
void ps_worker_quit(ps_worker *w, nt_bus_post_fn on_exit, void *arg);
/* Joins the (ended) threads and frees the worker. Loop thread, after on_exit ran. */
void ps_worker_destroy(ps_worker *w);

#endif
