/* server_api.h: the application backend's API (docs/protocol.md "Server API"),
 * authenticated by an API key (NATTER_API_KEY or an app's api_key): publish, notify,
 * disconnect, stats. Route handlers for routes.c (route.h). */
#ifndef GW_SERVER_API_H
#define GW_SERVER_API_H

#include "gw.h"
#include "route.h"

/* Registers the calls' counters (at start-up). */
void gw_server_api_metrics_init(gw_ctx *ctx);

void gw_server_api_publish(gw_http *h, const gw_route_params *p);     /* POST /api/server/publish */
void gw_server_api_notify(gw_http *h, const gw_route_params *p);      /* POST /api/server/notify */
/* POST /api/server/users/{}/disconnect */
void gw_server_api_disconnect(gw_http *h, const gw_route_params *p);
void gw_server_api_stats(gw_http *h, const gw_route_params *p);       /* GET /api/server/stats */

#endif
