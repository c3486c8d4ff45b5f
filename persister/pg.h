/* pg.h: one non-blocking libpq connection in pipeline mode, driven by a uv_poll_t,
 * reconnecting with backoff. Results come back in the order queries were sent. */
#ifndef PS_PG_H
#define PS_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include <uv.h>

#include "persister.h"
#include "status.h"

/* Result of one query or sync. res is NULL when the connection was lost before the
 * result arrived; it is freed by the driver after the callback returns. */
typedef void (*ps_pg_result_cb)(PGresult *res, void *arg);
/* Connection became usable (up) or was lost (down). On loss it is called before
 * the callbacks of pending queries are failed with NULL. */
typedef void (*ps_pg_state_cb)(ps_pg *pg, bool up, void *arg);

/* A statement prepared on every (re)connect before the connection is reported up. */
typedef struct ps_pg_stmt {
    const char *name;
    const char *sql;
    int nparams;
} ps_pg_stmt;

/* Creates a connection object; stmts must stay valid for its lifetime. Connecting
 * starts at ps_pg_start. `reconnects` (may be NULL) is bumped on each loss. */
ps_pg *ps_pg_create(uv_loop_t *loop, const char *conninfo, const char *label,
                    const ps_pg_stmt *stmts, size_t nstmts, ps_pg_state_cb cb, void *arg,
                    nt_metric *reconnects);
void ps_pg_start(ps_pg *pg);
/* Fails pending queries with NULL, closes, and frees once its handles are closed.
 * The state callback is not called any more. */
void ps_pg_destroy(ps_pg *pg);

bool ps_pg_up(const ps_pg *pg);
/* Queries sent whose results have not arrived. */
size_t ps_pg_pending(const ps_pg *pg);

/* Queues a prepared statement with text parameters (NULL value is SQL NULL).
 * NT_EUNAVAIL when not up (cb is not called). Results arrive after ps_pg_sync. */
nt_status ps_pg_prepared(ps_pg *pg, const char *stmt, int nparams, const char *const *values,
                         ps_pg_result_cb cb, void *arg);
/* Queues one statement without parameters (not prepared: a utility statement such
 * as ANALYZE); like ps_pg_prepared otherwise. */
nt_status ps_pg_query(ps_pg *pg, const char *sql, ps_pg_result_cb cb, void *arg);
/* Drops the session's cached plans before the next statement (DISCARD PLANS):
 * for a connection whose statement was unexpectedly slow. Besides, pg.c does it
 * every 60 s and when the rows counted by ps_pg_wrote have doubled. */
void ps_pg_replan(ps_pg *pg);
/* Counts rows the session committed (a write connection's stored messages). */
void ps_pg_wrote(ps_pg *pg, uint64_t rows);
/* Queues a pipeline sync point and flushes. Statements since the previous sync
 * form one implicit transaction, committed here. cb (may be NULL) gets the
 * PGRES_PIPELINE_SYNC result (the commit is done), an error result when the commit
 * failed, or NULL when the connection was lost. */
nt_status ps_pg_sync(ps_pg *pg, ps_pg_result_cb cb, void *arg);

/* True when res is a successful command or rows result. */
bool ps_pg_ok(const PGresult *res);

#endif
