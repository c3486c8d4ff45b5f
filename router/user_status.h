/* user_status.h: user status: the presence action, presence events, and the online and
 * presence queries (natter.ctl.presence, natter.rpc.router.online, .presence). */
#ifndef RT_USER_STATUS_H
#define RT_USER_STATUS_H

#include "router.h"

/* Lua helper prepended to scripts that report a user's presence: rec(app, user)
 * returns {app, user, conns, last_seen, status, device, status_text, name, rooms}
 * (missing hash fields as nil, rooms = the user's live rooms, urooms set). */
#define RT_USER_STATUS_REC_LUA                                                                   \
    "local function rec(app, user)\n"                                                       \
    "  local h = redis.call('HMGET', 'natter:{' .. app .. '}:online:' .. user, 'conns',\n"  \
    "    'last_seen', 'status', 'device', 'status_text', 'name')\n"                         \
    "  return {app, user, h[1], h[2], h[3], h[4], h[5], h[6],\n"                            \
    "    redis.call('SMEMBERS', 'natter:{' .. app .. '}:urooms:' .. user)}\n"              \
    "end\n"

typedef struct rt_user_status rt_user_status;

/* Publishes the presence event of one rec() reply (see RT_USER_STATUS_REC_LUA) to each
 * room it names (skipping the user's own connections) and, when to_user, to the
 * user's own subject (their other devices). Ignores a reply of another shape (logged). */
void rt_user_status_publish(rt_router *rt, const redisReply *rec, bool to_user);

/* Subscribes natter.ctl.presence, natter.rpc.router.online and
 * natter.rpc.router.presence (queue group "router"). NULL when a subscription fails. */
rt_user_status *rt_user_status_create(rt_router *rt);
/* Stops taking messages. */
void rt_user_status_stop(rt_user_status *s);
/* Frees s (after rt_redis_destroy, which completes every Redis callback). */
void rt_user_status_destroy(rt_user_status *s);

#endif
