/* redis_conn.h: the router's one async Redis connection: reconnects with a 1 s
 * backoff, authenticates first on every connection, fails commands fast while down
 * and bounds commands in flight. */
#ifndef RT_REDIS_CONN_H
#define RT_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "metrics.h"
#include "status.h"

typedef struct rt_redis rt_redis;

/* Reply to rt_redis_command, on the loop thread: NT_OK with a non-error reply;
 * NT_EIO with the error reply (reply->str); NT_ECLOSED with reply == NULL when
 * the connection was lost or closed first. `reply` is valid during the call only.
 * Do not call rt_redis_destroy from here. */
typedef void (*rt_redis_cb)(nt_status st, const redisReply *reply, void *arg);

typedef struct rt_redis_opts {
    const char *host;             /* IP literal: hiredis resolves names blocking */
    int port;
    const char *username;         /* ACL user for AUTH; NULL: the default user */
    const char *password;         /* NULL: no AUTH; never logged */
    size_t max_inflight;          /* NATTER_REDIS_MAX_INFLIGHT */
    nt_metric *errors;            /* counts error replies and lost commands; may be NULL */
    nt_metric *rejected;          /* counts commands refused by rt_redis_command; may be NULL */
} rt_redis_opts;

/* Starts connecting on `loop` (never blocks) and keeps reconnecting until
 * rt_redis_destroy. Copies what it needs from opts. With a password, AUTH is the
 * first command of every connection and the connection counts as connected only
 * once Redis accepted it; a refused AUTH is logged, the connection dropped and
 * retried with a backoff that doubles up to 30 s. */
rt_redis *rt_redis_create(uv_loop_t *loop, const rt_redis_opts *opts);

/* Closes the connection: commands still in flight get NT_ECLOSED at once. Frees
 * `r` once its timer is closed, so run the loop afterwards. Not from an rt_redis_cb. */
void rt_redis_destroy(rt_redis *r);

/* Sends one command (binary-safe arguments, copied). cb may be NULL. Returns
 * NT_OK (cb will be called exactly once), NT_EUNAVAIL while disconnected or
 * closing, or NT_EFULL at the in-flight bound; cb is not called on failure. */
nt_status rt_redis_command(rt_redis *r, rt_redis_cb cb, void *arg, int argc,
                           const char **argv, const size_t *argvlen);

bool rt_redis_connected(const rt_redis *r);
/* True when rt_redis_command would accept a command now (connected, under the bound). */
bool rt_redis_available(const rt_redis *r);
size_t rt_redis_inflight(const rt_redis *r);

#endif
