/* partitions.h: partition ownership. A partition is ours while its write connection
 * (ps_wpg) holds advisory lock (0x6e6174, p); a claim timer takes free ones. */
#ifndef PS_PARTITIONS_H
#define PS_PARTITIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "persister.h"

typedef struct ps_batch ps_batch;

typedef struct ps_part {
    ps_parts *parts;      /* the table it belongs to */
    unsigned p;
    bool owned;
    bool claiming;        /* a claim query is in flight */
    uint64_t gen;         /* bumped on every acquisition */
    uint64_t committed;   /* partitions.stream_seq as last committed by us */
    uint64_t published;   /* the outbox marker: every ack and event of the messages at or
                             below it reached nats-server (a bus barrier came back after
                             them); a new consumer starts after it (batch.c) */
    ps_batch *inflight;   /* the batch being committed, at most one */
} ps_part;

/* What a change of ownership asks of the modules above (main wires them). Loop thread. */
typedef struct ps_parts_hooks {
    void (*owned)(void *arg, unsigned p, uint64_t gen); /* p was claimed under gen: pull it */
    void (*lost)(void *arg, ps_part *part, bool was_owned); /* its write connection was lost:
                                                 * stop pulling it if it was owned, and drop
                                                 * its batch unless its results are awaited */
    void *arg;
} ps_parts_hooks;

/* Creates the table of NATTER_PARTITIONS partitions, none owned; hooks is copied. */
ps_parts *ps_parts_create(ps_ctx *ctx, const ps_parts_hooks *hooks);
/* Starts the claim timer (first tick at once). */
void ps_parts_start(ps_parts *parts);
/* Stops claiming; owned partitions stay owned until the connection closes. */
void ps_parts_stop_claiming(ps_parts *parts);
void ps_parts_destroy(ps_parts *parts);

/* Write connection k's state changes (see ps_pg_state_cb). On loss its partitions
 * (p % nwpg == k) are disowned and no longer pulled. */
void ps_parts_on_pg(ps_parts *parts, unsigned k, bool up);

ps_part *ps_parts_get(ps_parts *parts, unsigned p);
/* Owned partitions now. */
unsigned ps_parts_owned(const ps_parts *parts);
/* Partitions with a batch in flight. */
unsigned ps_parts_inflight(const ps_parts *parts);

#endif
