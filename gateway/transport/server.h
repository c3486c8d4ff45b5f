/* server.h: the libwebsockets context on our libuv loop: the dialects' WebSocket paths
 * and HTTP on NATTER_LISTEN. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <libwebsockets.h>
#include "conn.h"
#include "status.h"

typedef struct gw_http gw_http;

/* What the transport hands up: whether an upgrade's path is served, a new WebSocket
 * (with the ?token= of its URL, or NULL), each complete valid UTF-8 text frame, the end
 * of a WebSocket, and every HTTP callback reason (with the request state kept per lws
 * session, NULL between requests). */
typedef struct gw_server_hooks {
    bool (*accepts)(const char *path);
    void (*opened)(gw_conn *c, const char *path, const char *token);
    void (*frame)(gw_conn *c, const char *buf, size_t len);
    void (*closed)(gw_conn *c);
    int (*http)(struct lws *wsi, enum lws_callback_reasons reason, gw_http **state, void *in,
                size_t len);
} gw_server_hooks;

/* Creates this module's state in ctx and the lws context as a foreign-loop user of
 * ctx->loop; h is copied. NT_EIO (and no state) when it cannot listen. */
nt_status gw_server_start(gw_ctx *ctx, const gw_server_hooks *h);
/* Starts a graceful stop: refuses new upgrades, closes every connection with 1001. */
void gw_server_drain(gw_ctx *ctx);
/* Destroys the lws context (closing every connection through the hooks) and the
 * state; run the loop afterwards until its handles are closed. */
void gw_server_destroy(gw_ctx *ctx);

#endif
