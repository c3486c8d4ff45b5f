/* user_status.h: user status: the presence action, presence events, and the online and
 * presence queries (natter.ctl.presence, natter.rpc.router.online, .presence). */
#ifndef RT_USER_STATUS_H
#define RT_USER_STATUS_H

#include "router.h"

/* Lua helper prepended to scripts that report a user's presence: rec(app, user)
 * returns {app, user, conns, last_seen, status, device, status_text, name, rooms}
 * (missing hash fields as nil, rooms = the user's live rooms, urooms set, the room
 * with the most live users first (HLEN live:<room>, ties by id): a gateway delivers
 * a presence event to a connection only through the first listed room it is
 * subscribed to, so the big rooms, listed first, cost it the least to check). */
#define RT_USER_STATUS_REC_LUA                                                                   \
    "local function rec(app, user)\n"                                                       \
    "  local h = redis.call('HMGET', 'natter:{' .. app .. '}:online:' .. user, 'conns',\n"  \
    "    'last_seen', 'status', 'device', 'status_text', 'name')\n"                         \
    "  local rooms = redis.call('SMEMBERS', 'natter:{' .. app .. '}:urooms:' .. user)\n"   \
    "  local size = {}\n"                                                                   \
    "  for _, r in ipairs(rooms) do\n"                                                      \
    "    size[r] = redis.call('HLEN', 'natter:{' .. app .. '}:live:' .. r)\n"               \
    "  end\n"                                                                               \
    "  table.sort(rooms, function(a, b)\n"                                                  \
    "    if size[a] ~= size[b] then return size[a] > size[b] end\n"                         \
    "    return a < b\n"                                                                    \
    "  end)\n"                                                                              \
    "  local sizes = {}\n"                                                                  \
    "  for i, r in ipairs(rooms) do sizes[i] = size[r] end\n"                               \
    "  return {app, user, h[1], h[2], h[3], h[4], h[5], h[6], rooms, sizes}\n"              \
    "end\n"

/* Most rooms named in the `rooms` field of one presence event (the first ones of
 * rec()'s list); see rt_user_status_publish. */
#define RT_PRESENCE_ROOMS_LISTED 64

typedef struct rt_user_status rt_user_status;

/* Publishes the presence event of one rec() reply (see RT_USER_STATUS_REC_LUA: the
 * user's live rooms, largest first, with their live member counts) to each room it
 * names that has at most NATTER_PRESENCE_ROOM_MAX live members (skipping the user's
 * own connections) and, when to_user, to the
 * user's own subject (their other devices). With two or more rooms every room
 * envelope also carries `rooms`, the room list in publishing order (at most
 * RT_PRESENCE_ROOMS_LISTED): a gateway forwards the event to a connection only in
 * the first listed room it is subscribed to, so each connection gets it once.
 * Ignores a reply of another shape (logged). */
void rt_user_status_publish(rt_router *rt, const redisReply *rec, bool to_user);

/* Subscribes natter.ctl.presence, natter.rpc.router.online and
 * natter.rpc.router.presence (queue group "router"). NULL when a subscription fails. */
rt_user_status *rt_user_status_create(rt_router *rt);
/* Stops taking messages. */
void rt_user_status_stop(rt_user_status *s);
/* Frees s (after rt_redis_destroy, which completes every Redis callback). */
void rt_user_status_destroy(rt_user_status *s);

#endif
