/* server.h: the libwebsockets context on our libuv loop: /ws and HTTP on NATTER_LISTEN. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "status.h"

/* Creates the lws context as a foreign-loop user of gw.loop. NT_EIO when it cannot listen. */
nt_status gw_server_start(void);
/* Starts a graceful stop: refuses new upgrades, closes every connection with 1001. */
void gw_server_drain(void);
/* Destroys the context; run the loop afterwards until its handles are closed. */
void gw_server_destroy(void);

#endif
