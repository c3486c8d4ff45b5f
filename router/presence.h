/* presence.h: connection open/close, gateway heartbeats and the sweep of dead gateways. */
#ifndef RT_PRESENCE_H
#define RT_PRESENCE_H

#include "router.h"

typedef struct rt_presence rt_presence;

/* Subscribes natter.ctl.conn and natter.ctl.hb (queue group "router") and starts
 * the sweep timer (every rt->sweep_ms). NULL when a subscription fails. */
rt_presence *rt_presence_create(rt_router *rt);

/* Stops taking messages and sweeping; work already sent to Redis completes. */
void rt_presence_stop(rt_presence *p);

/* Closes the timer and frees `p` once closed (run the loop afterwards); call
 * after rt_redis_destroy, which completes every Redis callback. */
void rt_presence_destroy(rt_presence *p);

#endif
