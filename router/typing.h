/* typing.h: typing indicators: natter.ctl.typing, their expiry without renewal,
 * and the typing query (natter.rpc.router.typing). */
#ifndef RT_TYPING_H
#define RT_TYPING_H

#include "router.h"

typedef struct rt_typing rt_typing;

/* Subscribes natter.ctl.typing and natter.rpc.router.typing (queue group "router")
 * and starts the expiry timer (every min(250, rt->typing_ttl_ms / 4) ms, at least
 * 50). NULL when a subscription fails. */
rt_typing *rt_typing_create(rt_router *rt);

/* Stops taking messages and expiring; work already sent to Redis completes. */
void rt_typing_stop(rt_typing *t);

/* Closes the timer and frees `t` once closed (run the loop afterwards); call
 * after rt_redis_destroy, which completes every Redis callback. */
void rt_typing_destroy(rt_typing *t);

#endif
