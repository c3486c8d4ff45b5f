/* queries.h: the persister's request subjects, natter.rpc.persist.* (queue group
 * "persister"), answered from the read connections with a bounded number of pending
 * queries. */
#ifndef PS_QUERIES_H
#define PS_QUERIES_H

#include "persister.h"
#include "pg.h"

/* Statements the read connection prepares. */
extern const ps_pg_stmt ps_queries_stmts[];
extern const size_t ps_queries_nstmts;

/* Subscribes the rpc subjects, one per row of queries.c's RPC_MAP (subject, statement,
 * result callback, sender); a request whose subject has no row is answered bad_request
 * naming it. NULL when a subscription fails. */
ps_queries *ps_queries_create(ps_ctx *ctx);
/* Stops taking requests; pending ones are still answered. */
void ps_queries_unsubscribe(ps_queries *qs);
/* Unsubscribes and frees. Destroy the read connection first: that answers and
 * frees every pending request. */
void ps_queries_destroy(ps_queries *qs);
/* Requests waiting for PostgreSQL. */
size_t ps_queries_pending(const ps_queries *qs);

#endif
