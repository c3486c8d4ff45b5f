/* http_presence.h: presence over REST, route handlers for routes.c (route.h). Each
 * verifies the Authorization: Bearer JWT, whose app scopes the router query, and
 * answers 200 with the router's answer (docs/protocol.md "Presence and typing over
 * HTTP"). */
#ifndef GW_HTTP_PRESENCE_H
#define GW_HTTP_PRESENCE_H

#include "route.h"

void gw_http_online(gw_http *h, const gw_route_params *p);     /* GET /api/rooms/{}/online */
void gw_http_typing(gw_http *h, const gw_route_params *p);     /* GET /api/rooms/{}/typing */
void gw_http_presence(gw_http *h, const gw_route_params *p);   /* GET /api/users/{}/presence */

#endif
