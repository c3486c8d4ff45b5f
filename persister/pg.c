/* pg.c: non-blocking libpq connection in pipeline mode on the loop: connect with
 * PQconnectPoll, prepare statements, then queue queries and syncs whose results are
 * matched to callbacks in FIFO order. A lost connection fails every pending
 * callback with NULL and reconnects with backoff. */
#include "pg.h"

#include <string.h>

#include "alloc.h"
#include "list.h"
#include "log.h"

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
/* Cached plans are dropped (DISCARD PLANS before the next statement) every 60 s,
 * whenever the rows a session wrote have doubled (ps_pg_wrote: after 1, 2, 4, ...),
 * and at once on ps_pg_replan. A generic plan is built once per session, with the
 * table sizes of that moment: one built while a table is nearly empty can cost a
 * full scan the same as an index lookup and keep it while the table grows
 * (docs/internals.md). By doubling, the plans in use were made after at least half
 * of what the session wrote, however long it waited for its first row. */
#define PG_REPLAN_MAX_MS 60000

typedef enum { PG_DOWN, PG_CONNECTING, PG_PREPARING, PG_UP, PG_CLOSED } pg_state;

typedef struct pg_entry {
    nt_list link;         /* in ps_pg.entries */
    bool sync;            /* a pipeline sync point rather than a query */
    ps_pg_result_cb cb;
    void *arg;
    PGresult *res;        /* result of the query, kept until its terminating NULL */
} pg_entry;

struct ps_pg {
    uv_loop_t *loop;
    char *conninfo;
    char *label;
    const ps_pg_stmt *stmts;
    size_t nstmts;
    ps_pg_state_cb state_cb;
    void *state_arg;
    nt_metric *reconnects;

    PGconn *conn;
    pg_state state;
    uv_poll_t *poll;      /* heap: replaced when libpq changes sockets */
    int poll_fd;
    int poll_events;
    uv_timer_t timer;     /* reconnect backoff, deferred failure */
    int backoff_ms;
    bool failing;         /* a send failed: teardown scheduled, sends only queue */
    bool prepare_failed;
    bool destroyed;
    int handles;          /* open uv handles; freed at zero once destroyed */

    nt_list entries;      /* pg_entry.link: queries and syncs sent, in the order sent */
    size_t pending;

    bool replan;          /* drop cached plans before the next statement */
    uint64_t replan_at;   /* loop time of the latest next drop */
    uint64_t rows;        /* rows this session wrote (ps_pg_wrote) */
    uint64_t replan_rows; /* drop when rows reaches this; then twice rows */
};

static void pg_connect(ps_pg *pg);
static void pg_teardown(ps_pg *pg, const char *why);

static void pg_on_closed(uv_handle_t *h)
{
    ps_pg *pg = h->data;
    if (h != (uv_handle_t *)&pg->timer)
        nt_free(h);
    if (--pg->handles == 0 && pg->destroyed) {
        nt_free(pg->conninfo);
        nt_free(pg->label);
        nt_free(pg);
    }
}

static void pg_poll_close(ps_pg *pg)
{
    if (pg->poll == NULL)
        return;
    uv_poll_stop(pg->poll);
    uv_close((uv_handle_t *)pg->poll, pg_on_closed);
    pg->poll = NULL;
    pg->poll_events = 0;
}

static void pg_on_poll(uv_poll_t *h, int status, int events);

/* Watches the connection's current socket for `events`. False on failure. */
static bool pg_poll_set(ps_pg *pg, int events)
{
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return false;
    if (pg->poll != NULL && pg->poll_fd != fd)
        pg_poll_close(pg);
    if (pg->poll == NULL) {
        pg->poll = nt_malloc(sizeof(*pg->poll));
        if (uv_poll_init(pg->loop, pg->poll, fd) != 0) {
            nt_free(pg->poll);
            pg->poll = NULL;
            return false;
        }
        pg->poll->data = pg;
        pg->handles++;
        pg->poll_fd = fd;
        pg->poll_events = 0;
    }
    if (events != pg->poll_events) {
        if (uv_poll_start(pg->poll, events, pg_on_poll) != 0)
            return false;
        pg->poll_events = events;
    }
    return true;
}

static void pg_entry_finish(ps_pg *pg, pg_entry *e, PGresult *res)
{
    pg->pending--;
    if (e->cb != NULL)
        e->cb(res, e->arg);
    if (res != NULL)
        PQclear(res);
    nt_free(e);
}

/* The oldest entry, whose result comes next, or NULL. */
static pg_entry *pg_head(const ps_pg *pg)
{
    nt_list *n = nt_list_first(&pg->entries);
    return n != NULL ? nt_list_entry(n, pg_entry, link) : NULL;
}

static pg_entry *pg_pop(ps_pg *pg)
{
    pg_entry *e = pg_head(pg);
    if (e != NULL)
        nt_list_remove(&e->link);
    return e;
}

static void pg_push(ps_pg *pg, bool sync, ps_pg_result_cb cb, void *arg)
{
    pg_entry *e = nt_calloc(1, sizeof(*e));
    e->sync = sync;
    e->cb = cb;
    e->arg = arg;
    nt_list_insert_tail(&pg->entries, &e->link);
    pg->pending++;
}

static void pg_on_timer(uv_timer_t *t)
{
    ps_pg *pg = t->data;
    if (pg->failing) {
        pg_teardown(pg, "sending to the server failed");
        return;
    }
    if (pg->state == PG_DOWN)
        pg_connect(pg);
}

/* A send failed inside a caller's sequence of sends: finish the teardown from the
 * loop so no callback runs inside the caller. */
static void pg_fail_soon(ps_pg *pg)
{
    if (pg->failing)
        return;
    pg->failing = true;
    nt_warn("pg %s: send failed: %s", pg->label, PQerrorMessage(pg->conn));
    uv_timer_start(&pg->timer, pg_on_timer, 0, 0);
}

static void pg_teardown(ps_pg *pg, const char *why)
{
    bool was_up = pg->state == PG_UP;
    if (!pg->destroyed)
        nt_warn("pg %s: connection lost: %s (retry in %d ms)", pg->label, why, pg->backoff_ms);
    pg_poll_close(pg);
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->failing = false;
    pg->state = pg->destroyed ? PG_CLOSED : PG_DOWN;
    if (was_up && !pg->destroyed) {
        if (pg->reconnects != NULL)
            nt_metric_add(pg->reconnects, 1);
        if (pg->state_cb != NULL)
            pg->state_cb(pg, false, pg->state_arg);
    }
    pg_entry *e;
    while ((e = pg_pop(pg)) != NULL) {
        if (e->res != NULL)
            PQclear(e->res);
        pg_entry_finish(pg, e, NULL);
    }
    if (!pg->destroyed) {
        uv_timer_start(&pg->timer, pg_on_timer, (uint64_t)pg->backoff_ms, 0);
        pg->backoff_ms *= 2;
        if (pg->backoff_ms > PG_BACKOFF_MAX_MS)
            pg->backoff_ms = PG_BACKOFF_MAX_MS;
    }
}

static void pg_flush(ps_pg *pg)
{
    if (pg->conn == NULL || pg->failing)
        return;
    int r = PQflush(pg->conn);
    if (r < 0) {
        pg_teardown(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (!pg_poll_set(pg, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)))
        pg_teardown(pg, "cannot watch the socket");
}

/* Hands every complete result to its entry; stops when libpq would block. */
static void pg_dispatch(ps_pg *pg)
{
    int nulls = 0;
    pg_entry *e;
    while (pg->conn != NULL && !pg->failing && (e = pg_head(pg)) != NULL && !PQisBusy(pg->conn)) {
        PGresult *r = PQgetResult(pg->conn);
        if (r == NULL) {
            if (e->sync || e->res == NULL) {
                if (++nulls >= 2)
                    break;
                continue;
            }
            nulls = 0;
            pg_pop(pg);
            pg_entry_finish(pg, e, e->res);
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            if (!e->sync) {
                PQclear(r);
                pg_teardown(pg, "pipeline out of step (sync before query end)");
                return;
            }
            pg_pop(pg);
            if (e->res != NULL) {
                PQclear(r);
                r = e->res;
            }
            pg_entry_finish(pg, e, r);
            continue;
        }
        if (e->sync) {
            /* an error of the implicit COMMIT at the sync point: hand it to the sync's callback */
            if (e->res != NULL)
                PQclear(e->res);
            e->res = r;
            continue;
        }
        if (e->res != NULL)
            PQclear(e->res);
        e->res = r;
    }
    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_BAD)
        pg_teardown(pg, PQerrorMessage(pg->conn));
}

static void pg_prepare_done(PGresult *res, void *arg)
{
    ps_pg *pg = arg;
    if (res != NULL && !ps_pg_ok(res)) {
        pg->prepare_failed = true;
        nt_error("pg %s: prepare failed: %s", pg->label, PQresultErrorMessage(res));
    }
}

static void pg_prepared_all(PGresult *res, void *arg)
{
    ps_pg *pg = arg;
    if (res == NULL)
        return;
    if (pg->prepare_failed) {
        pg_fail_soon(pg);
        return;
    }
    pg->state = PG_UP;
    pg->backoff_ms = PG_BACKOFF_MIN_MS;
    nt_info("pg %s: connected", pg->label);
    if (pg->state_cb != NULL)
        pg->state_cb(pg, true, pg->state_arg);
}

static void pg_on_connected(ps_pg *pg)
{
    if (PQsetnonblocking(pg->conn, 1) != 0 || PQenterPipelineMode(pg->conn) != 1) {
        pg_teardown(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->state = PG_PREPARING;
    pg->prepare_failed = false;
    pg->replan = false;
    pg->rows = 0;
    pg->replan_rows = 1;
    pg->replan_at = uv_now(pg->loop) + PG_REPLAN_MAX_MS;
    for (size_t i = 0; i < pg->nstmts; i++) {
        const ps_pg_stmt *s = &pg->stmts[i];
        if (!pg->failing && !PQsendPrepare(pg->conn, s->name, s->sql, s->nparams, NULL))
            pg_fail_soon(pg);
        pg_push(pg, false, pg_prepare_done, pg);
    }
    if (!pg->failing && PQpipelineSync(pg->conn) != 1)
        pg_fail_soon(pg);
    pg_push(pg, true, pg_prepared_all, pg);
    pg_flush(pg);
}

static void pg_connect_step(ps_pg *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING:
        if (!pg_poll_set(pg, UV_READABLE))
            pg_teardown(pg, "cannot watch the socket");
        break;
    case PGRES_POLLING_WRITING:
        if (!pg_poll_set(pg, UV_WRITABLE))
            pg_teardown(pg, "cannot watch the socket");
        break;
    case PGRES_POLLING_OK:
        pg_on_connected(pg);
        break;
    default:
        pg_teardown(pg, PQerrorMessage(pg->conn));
        break;
    }
}

static void pg_connect(ps_pg *pg)
{
    /* dbname is expanded as the whole connection string; the fallback names the
     * session in pg_stat_activity unless the string sets application_name */
    char app[64];
    snprintf(app, sizeof app, "natter-persister %s", pg->label);
    const char *const keys[] = { "dbname", "fallback_application_name", NULL };
    const char *const vals[] = { pg->conninfo, app, NULL };
    pg->conn = PQconnectStartParams(keys, vals, 1);
    if (pg->conn == NULL) {
        pg_teardown(pg, "out of memory");
        return;
    }
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        pg_teardown(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->state = PG_CONNECTING;
    if (!pg_poll_set(pg, UV_WRITABLE))
        pg_teardown(pg, "cannot watch the socket");
}

static void pg_on_poll(uv_poll_t *h, int status, int events)
{
    ps_pg *pg = h->data;
    if (pg->conn == NULL || pg->failing)
        return;
    if (pg->state == PG_CONNECTING) {
        pg_connect_step(pg);
        return;
    }
    if (status < 0) {
        pg_teardown(pg, uv_strerror(status));
        return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(pg->conn)) {
            pg_teardown(pg, PQerrorMessage(pg->conn));
            return;
        }
        pg_dispatch(pg);
    }
    pg_flush(pg);
}

ps_pg *ps_pg_create(uv_loop_t *loop, const char *conninfo, const char *label,
                    const ps_pg_stmt *stmts, size_t nstmts, ps_pg_state_cb cb, void *arg,
                    nt_metric *reconnects)
{
    ps_pg *pg = nt_calloc(1, sizeof(*pg));
    pg->loop = loop;
    pg->conninfo = nt_strdup(conninfo);
    pg->label = nt_strdup(label);
    pg->stmts = stmts;
    pg->nstmts = nstmts;
    pg->state_cb = cb;
    pg->state_arg = arg;
    pg->reconnects = reconnects;
    pg->state = PG_DOWN;
    nt_list_init(&pg->entries);
    pg->backoff_ms = PG_BACKOFF_MIN_MS;
    uv_timer_init(loop, &pg->timer);
    pg->timer.data = pg;
    pg->handles = 1;
    return pg;
}

void ps_pg_start(ps_pg *pg)
{
    if (pg->state == PG_DOWN && pg->conn == NULL)
        pg_connect(pg);
}

void ps_pg_destroy(ps_pg *pg)
{
    if (pg == NULL || pg->destroyed)
        return;
    pg->destroyed = true;
    uv_timer_stop(&pg->timer);
    pg_teardown(pg, "closed");
    uv_close((uv_handle_t *)&pg->timer, pg_on_closed);
}

bool ps_pg_up(const ps_pg *pg)
{
    return pg != NULL && pg->state == PG_UP && !pg->failing;
}

size_t ps_pg_pending(const ps_pg *pg)
{
    return pg->pending;
}

void ps_pg_replan(ps_pg *pg)
{
    pg->replan = true;
}

void ps_pg_wrote(ps_pg *pg, uint64_t rows)
{
    pg->rows += rows;
    if (pg->rows >= pg->replan_rows) {
        pg->replan = true;
        pg->replan_rows = 2 * pg->rows;
    }
}

/* Queues a statement without parameters (not prepared). */
static void pg_send_query(ps_pg *pg, const char *sql, ps_pg_result_cb cb, void *arg)
{
    if (!pg->failing && !PQsendQueryParams(pg->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
        pg_fail_soon(pg);
    pg_push(pg, false, cb, arg);
}

/* Queues DISCARD PLANS when one is due: the statements after it are planned anew. */
static void pg_replan_if_due(ps_pg *pg)
{
    uint64_t now = uv_now(pg->loop);
    if (!pg->replan && now < pg->replan_at)
        return;
    pg_send_query(pg, "DISCARD PLANS", NULL, NULL);
    pg->replan = false;
    pg->replan_at = now + PG_REPLAN_MAX_MS;
}

nt_status ps_pg_prepared(ps_pg *pg, const char *stmt, int nparams, const char *const *values,
                         ps_pg_result_cb cb, void *arg)
{
    if (pg->state != PG_UP)
        return NT_EUNAVAIL;
    pg_replan_if_due(pg);
    if (!pg->failing && !PQsendQueryPrepared(pg->conn, stmt, nparams, values, NULL, NULL, 0))
        pg_fail_soon(pg);
    pg_push(pg, false, cb, arg);
    return NT_OK;
}

nt_status ps_pg_query(ps_pg *pg, const char *sql, ps_pg_result_cb cb, void *arg)
{
    if (pg->state != PG_UP)
        return NT_EUNAVAIL;
    pg_send_query(pg, sql, cb, arg);
    return NT_OK;
}

nt_status ps_pg_sync(ps_pg *pg, ps_pg_result_cb cb, void *arg)
{
    if (pg->state != PG_UP)
        return NT_EUNAVAIL;
    if (!pg->failing && PQpipelineSync(pg->conn) != 1)
        pg_fail_soon(pg);
    pg_push(pg, true, cb, arg);
    pg_flush(pg);
    return NT_OK;
}

bool ps_pg_ok(const PGresult *res)
{
    if (res == NULL)
        return false;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}
