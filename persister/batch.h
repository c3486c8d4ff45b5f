/* batch.h: a fetched batch decoded, committed (txn.h), then JetStream acked and the
 * acks and room events published, in that order. */
#ifndef PS_BATCH_H
#define PS_BATCH_H

#include "partitions.h"
#include "pull.h"

/* Creates what every batch shares. Loop thread, like every function here. */
ps_batches *ps_batch_create(ps_ctx *ctx);
/* Frees it and the write connections' batch queues, once no batch is left (at stop). */
void ps_batch_destroy(ps_batches *bs);

/* Takes over a batch of p fetched under gen (msgs and its messages are then the
 * batch's): commits it and publishes, or drops it at once when p is not owned under
 * gen any more, is draining or has a batch in flight; reports ps_pull_batch_done
 * either way. Loop thread. */
void ps_batch_start(ps_batches *bs, unsigned p, uint64_t gen, ps_jsmsg **msgs, int n);
/* A pull request ended with nothing: a write connection's transaction need not wait
 * for it any longer. */
void ps_batch_gather_over(ps_batches *bs);

/* Drops the partition's in-flight batch unacked unless its results are still
 * awaited (then the failing connection drops it). JetStream redelivers. */
void ps_batch_release_idle(ps_part *part);

#endif
