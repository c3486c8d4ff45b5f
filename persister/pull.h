/* pull.h: JetStream pull consumers driven from the loop, one per owned partition.
 * Consumer setup goes through the JetStream API as bus requests and fetching as
 * pull requests whose messages arrive on a bus subscription, so nothing blocks
 * and no thread is involved (pull.c). Fetched messages wait in the partition's
 * bounded buffer; a batch of them goes to the on_batch callback, one batch in flight
 * per partition. */
#ifndef PS_PULL_H
#define PS_PULL_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "persister.h"

/* A fetched message, copied off the bus: one allocation, freed with nt_free. */
typedef struct ps_jsmsg {
    uint64_t sseq;       /* stream sequence, 0 when its metadata could not be read */
    const char *reply;   /* the ack subject (inside the allocation) */
    size_t len;
    char data[];         /* len bytes of envelope, then the reply, NUL-terminated */
} ps_jsmsg;

/* Called for every batch of p fetched under gen (at least one message, in stream
 * order). The callee owns msgs and its messages and reports ps_pull_batch_done when
 * finished with them. Loop thread. */
typedef void (*ps_pull_batch_fn)(void *arg, unsigned p, uint64_t gen, ps_jsmsg **msgs, int n);
/* A pull request ended with nothing to start a batch of: a write connection's
 * transaction need not wait for it any longer. Loop thread. */
typedef void (*ps_pull_over_fn)(void *arg);

/* Creates the pullers of NATTER_PARTITIONS partitions, none fetching; on_batch and
 * on_over get arg. */
ps_pull *ps_pull_create(ps_ctx *ctx, ps_pull_batch_fn on_batch, ps_pull_over_fn on_over,
                        void *arg);
/* Partition p is owned under `gen`: (re)create consumer natter_p<p> to start after
 * the partition's committed stream sequence (ps_part.committed) and fetch it. */
void ps_pull_start_part(ps_pull *pl, unsigned p, uint64_t gen);
/* Stops fetching p and drops what it fetched and did not hand out. */
void ps_pull_stop_part(ps_pull *pl, unsigned p);
void ps_pull_stop_all(ps_pull *pl);
/* 0, or until when (uv_now ms) partition p is about to start a batch: a no_wait
 * request of its own is being answered, or what it fetched starts on its timer. */
uint64_t ps_pull_batch_due(const ps_pull *pl, unsigned p);
/* The batch of p handed out last is finished (acked or dropped). */
void ps_pull_batch_done(ps_pull *pl, unsigned p);
/* Stops everything and closes the handles; on_exit(arg) runs once they are closed.
 * Every batch must have been reported done before. */
void ps_pull_quit(ps_pull *pl, nt_bus_post_fn on_exit, void *arg);
/* Frees it (after on_exit ran). */
void ps_pull_destroy(ps_pull *pl);

#endif
