/* server_api.h: the application backend's API (PROTOCOL.md "Server API"), authenticated
 * by NATTER_API_KEY: publish, notify, disconnect, stats. */
#ifndef GW_SERVER_API_H
#define GW_SERVER_API_H

#include "envelope.h"
#include "rooms.h"

/* A {type:"disconnect"} envelope on user u's subject: closes u's local connections. */
void gw_server_api_disconnect(gw_user *u, const nt_envr *r);

#endif
