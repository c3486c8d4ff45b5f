/* routes.c: the gateway's REST routes (docs/protocol.md "HTTP", "Server API"). The
 * first route whose method and pattern match takes the request (route.h); a request
 * no route takes is answered 404 at once. */
#include "routes.h"

#include "http.h"
#include "http_presence.h"
#include "rest.h"
#include "server_api.h"

const gw_route gw_routes[] = {
    { GW_HTTP_GET, "/healthz", gw_rest_healthz },
    { GW_HTTP_GET, "/readyz", gw_rest_readyz },
    { GW_HTTP_GET, "/api/rooms", gw_rest_rooms },
    { GW_HTTP_GET, "/api/rooms/{}/messages", gw_rest_history },
    { GW_HTTP_GET, "/api/rooms/{}/online", gw_http_online },
    { GW_HTTP_GET, "/api/rooms/{}/typing", gw_http_typing },
    { GW_HTTP_GET, "/api/users/{}/presence", gw_http_presence },
    { GW_HTTP_GET, "/api/me/unread", gw_rest_unread },
    { GW_HTTP_POST, "/api/rooms", gw_rest_create },
    { GW_HTTP_POST, "/api/rooms/{}/read", gw_rest_read },
    { GW_HTTP_POST, "/api/rooms/{}/members", gw_rest_member_add },
    { GW_HTTP_POST, "/api/rooms/{}/members/{}/delete", gw_rest_member_remove },
    { GW_HTTP_DELETE, "/api/rooms/{}/members/{}", gw_rest_member_delete },
    { GW_HTTP_POST, "/api/dev/token", gw_rest_dev_token },
    { GW_HTTP_GET, "/api/server/stats", gw_server_api_stats },
    { GW_HTTP_POST, "/api/server/publish", gw_server_api_publish },
    { GW_HTTP_POST, "/api/server/notify", gw_server_api_notify },
    { GW_HTTP_POST, "/api/server/users/{}/disconnect", gw_server_api_disconnect },
    /* An unknown server API call is answered before its body; any other unknown POST
     * after it, so that the connection can carry the next request. */
    { GW_HTTP_POST, "/api/server/*", gw_http_not_found },
    { GW_HTTP_POST, "*", gw_http_not_found_after_body },
};

const size_t gw_nroutes = sizeof gw_routes / sizeof gw_routes[0];
