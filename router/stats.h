/* stats.h: natter.rpc.router.stats: cluster-wide counts for GET /api/server/stats. */
#ifndef RT_STATS_H
#define RT_STATS_H

#include "router.h"

typedef struct rt_stats rt_stats;

/* Subscribes natter.rpc.router.stats in the router queue group; NULL on failure. */
rt_stats *rt_stats_create(rt_router *rt);
/* Stops taking requests (requests in flight finish or fail with their Redis command). */
void rt_stats_stop(rt_stats *s);
void rt_stats_destroy(rt_stats *s);

#endif
