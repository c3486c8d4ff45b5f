/* rest.h: the REST calls of clients (docs/protocol.md "HTTP"): health, history, unread
 * counts, the room list, read marks, room creation, members, dev tokens. Route
 * handlers for routes.c (route.h). */
#ifndef GW_REST_H
#define GW_REST_H

#include "route.h"

void gw_rest_healthz(gw_http *h, const gw_route_params *p);          /* GET /healthz */
void gw_rest_readyz(gw_http *h, const gw_route_params *p);           /* GET /readyz */
void gw_rest_history(gw_http *h, const gw_route_params *p);          /* GET /api/rooms/{}/messages */
void gw_rest_unread(gw_http *h, const gw_route_params *p);           /* GET /api/me/unread */
void gw_rest_rooms(gw_http *h, const gw_route_params *p);            /* GET /api/rooms */
void gw_rest_read(gw_http *h, const gw_route_params *p);             /* POST /api/rooms/{}/read */
void gw_rest_create(gw_http *h, const gw_route_params *p);           /* POST /api/rooms */
void gw_rest_member_add(gw_http *h, const gw_route_params *p);       /* POST /api/rooms/{}/members */
void gw_rest_member_delete(gw_http *h, const gw_route_params *p);    /* DELETE /api/rooms/{}/members/{} */
void gw_rest_member_remove(gw_http *h, const gw_route_params *p);    /* POST .../members/{}/delete */
void gw_rest_dev_token(gw_http *h, const gw_route_params *p);        /* POST /api/dev/token */

#endif
