/* server_api.h: the application backend's API (docs/protocol.md "Server API"), authenticated
 * by NATTER_API_KEY: publish, notify, disconnect, stats. http.c owns the request
 * state (body, bus request); this module authenticates, validates and publishes. */
#ifndef GW_SERVER_API_H
#define GW_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "bus.h"
#include "envelope.h"
#include "frame.h"
#include "rooms.h"
#include "session.h"

struct lws;

typedef enum {
    GW_SAPI_PUBLISH,
    GW_SAPI_NOTIFY,
    GW_SAPI_DISCONNECT,
    GW_SAPI_STATS,
    GW_SAPI_COUNT
} gw_sapi_call;


void gw_server_api_metrics_init(void);

/* Counts one call and checks its `Authorization: Bearer <key>` (constant time): an
 * app's api_key (NATTER_APPS), and key_app is that app, or NATTER_API_KEY, and key_app
 * is "" (every app without a key of its own). False with err: unavailable when no key
 * is configured at all, unauthorized for a wrong key, forbidden for a disabled app. */
bool gw_server_api_auth(struct lws *wsi, gw_sapi_call call, char key_app[65], gw_error *err);

/* Runs a POST call with its body (may be empty); user is the {id} of disconnect,
 * already validated; key_app as gw_server_api_auth gave it (an app's key reaches only
 * that app, the global key only apps without a key of their own). On success returns
 * the 200 response object, else NULL with err. */
json_t *gw_server_api_post(struct lws *wsi, gw_sapi_call call, const char *user,
                           const char *body, size_t len, const char *key_app, gw_error *err);

/* Asks the router for the cluster stats (of key_app only, unless ""); cb gets an RPC
 * reply whose json is the answer. */
nt_status gw_server_api_stats(const char *key_app, nt_bus_reply_cb cb, void *arg, uint64_t *req_id);


#endif
