/* access_code.h: limits on access-code attempts per (app, room, user) and per room,
 * kept in Redis so they hold across gateways, connections and router replicas. */
#ifndef RT_ACCESS_CODE_H
#define RT_ACCESS_CODE_H

#include <stddef.h>
#include <stdint.h>

#include "router.h"
#include "status.h"

/* The persister's message (persister/rpc.c on_join, with code forbidden) for a
 * code that does not match; the only answer counted as a failure. */
#define RT_ACCESS_CODE_WRONG "wrong access code"

typedef enum rt_access_code_limit {
    RT_CODE_ADMITTED,             /* the code may be checked */
    RT_CODE_USER,                 /* NATTER_ACCESS_CODE_ATTEMPTS refuses it */
    RT_CODE_ROOM,                 /* NATTER_ACCESS_CODE_ROOM_ATTEMPTS refuses it */
} rt_access_code_limit;

typedef struct rt_access_code_verdict {
    rt_access_code_limit limit;
    int64_t retry_ms;             /* refused: when to retry (> 0) */
} rt_access_code_verdict;

typedef enum rt_access_code_outcome {
    RT_CODE_RIGHT,                /* the persister admitted: the user's count is reset */
    RT_CODE_WRONG,                /* the code did not match: counted for the user and the room */
    RT_CODE_UNDECIDED,            /* no answer or another refusal: nothing counted */
} rt_access_code_outcome;

/* Verdict of rt_access_code_admit, on the loop thread: NT_OK with *v, or the
 * rt_redis_cb status (v NULL) when Redis failed. */
typedef void (*rt_access_code_cb)(nt_status st, const rt_access_code_verdict *v, void *arg);

/* Asks whether `user` may have a code checked for `room` now: not while the user's
 * or the room's lock lasts, nor while as many attempts as are left before the
 * limit (one, past it) are still being checked. An admitted attempt is reserved
 * and must be ended with rt_access_code_settle (a reservation not settled lapses
 * after 2 × NATTER_REQUEST_TIMEOUT_MS). Returns NT_OK (cb called exactly once)
 * or the rt_redis_command refusal (cb not called). */
nt_status rt_access_code_admit(rt_router *rt, const char *app, const char *room,
                               const char *user, rt_access_code_cb cb, void *arg);

/* Ends an admitted attempt with what the persister said. A wrong code may start
 * or lengthen a lock: 2^(failures - limit) × NATTER_ACCESS_CODE_BACKOFF_S, at most
 * NATTER_ACCESS_CODE_WINDOW_S. Fire and forget: a Redis failure is logged. */
void rt_access_code_settle(rt_router *rt, const char *app, const char *room, const char *user,
                           rt_access_code_outcome outcome);

/* Writes the rate_limited message of a refused verdict into buf, naming the room,
 * the limit, its setting and the wait in seconds. */
void rt_access_code_message(const rt_router *rt, const rt_access_code_verdict *v,
                            const char *room, char *buf, size_t len);

#endif
