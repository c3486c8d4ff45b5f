/* rooms.h: room joins and leaves (decided with the persister) and live room membership in Redis. */
#ifndef RT_ROOMS_H
#define RT_ROOMS_H

#include <stdbool.h>
#include <stddef.h>

#include "router.h"

typedef struct rt_rooms rt_rooms;

/* Subscribes natter.rpc.router.join, natter.rpc.router.leave and natter.ctl.live
 * (queue group "router"). NULL when a subscription fails. */
rt_rooms *rt_rooms_create(rt_router *rt);

/* Stops taking new requests; calls already started run to completion. */
void rt_rooms_unsubscribe(rt_rooms *rooms);

/* Join/leave calls not yet answered (waiting for the persister or for Redis). */
size_t rt_rooms_pending(const rt_rooms *rooms);

/* Answers `unavailable` to every call still waiting for the persister and forgets
 * it; calls waiting for Redis finish when rt_redis_destroy fails them. */
void rt_rooms_abort(rt_rooms *rooms);

/* Frees `rooms`; call after rt_rooms_abort and rt_redis_destroy. */
void rt_rooms_destroy(rt_rooms *rooms);

#endif
