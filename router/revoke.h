/* revoke.h: revoked tokens. natter.ctl.revoke {app, user, before} (from a gateway's
 * server API disconnect with "revoke":true) is kept in the sorted set natter:revoked
 * (member "<app>|<user>", score before, seconds since the epoch; entries older than
 * NATTER_MAX_TOKEN_LIFETIME_S are dropped, since no token they refuse can still be
 * valid); natter.rpc.router.revocations answers the whole live list, which a gateway
 * loads at start (it hears later ones on natter.ctl.revoke itself). */
#ifndef RT_REVOKE_H
#define RT_REVOKE_H

#include <stdint.h>

#include "router.h"

typedef struct rt_revoke rt_revoke;

/* Subscribes both subjects in the router queue group; NULL on failure. */
rt_revoke *rt_revoke_create(rt_router *rt, int64_t max_lifetime_s);
/* Stops taking messages (commands in flight finish with their Redis reply). */
void rt_revoke_stop(rt_revoke *v);
void rt_revoke_destroy(rt_revoke *v);

#endif
