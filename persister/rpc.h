/* rpc.h: natter.rpc.persist.{join,leave,history,lookup,read,delivered,unread,rooms}
 * (queue group "persister"),
 * answered from the read connection with a bounded number of pending queries. */
#ifndef PS_RPC_H
#define PS_RPC_H

#include "persister.h"
#include "pg.h"

/* Statements the read connection prepares. */
extern const ps_pg_stmt ps_rpc_stmts[];
extern const size_t ps_rpc_nstmts;

/* Subscribes the rpc subjects. NULL when a subscription fails. */
ps_rpc *ps_rpc_create(ps_ctx *ctx);
/* Stops taking requests; pending ones are still answered. */
void ps_rpc_unsubscribe(ps_rpc *rpc);
/* Unsubscribes and frees. Destroy the read connection first: that answers and
 * frees every pending request. */
void ps_rpc_destroy(ps_rpc *rpc);
/* Requests waiting for PostgreSQL. */
size_t ps_rpc_pending(const ps_rpc *rpc);

#endif
