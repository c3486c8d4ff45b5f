/* batch.h: committing a fetched batch in one transaction on the write connection,
 * then acking JetStream and publishing acks and room events, in that order. */
#ifndef PS_BATCH_H
#define PS_BATCH_H

#include "partitions.h"
#include "pg.h"

/* Statements the write connection prepares for batches and claims. */
extern const ps_pg_stmt ps_batch_stmts[];
extern const size_t ps_batch_nstmts;

/* Drops the partition's in-flight batch unacked unless its results are still
 * awaited (then the failing connection drops it). JetStream redelivers. */
void ps_batch_release_idle(ps_part *part);
/* Frees the write connections' batch queues, once no batch is left (at stop). */
void ps_batch_free_queues(void);

#endif
