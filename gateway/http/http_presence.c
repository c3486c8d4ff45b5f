/* http_presence.c: the presence REST calls (GET /api/rooms/{id}/online,
 * /api/rooms/{id}/typing, /api/users/{id}/presence), answered by router queries
 * (rpc_client.h). Route handlers (http_presence.h). */
#include "http_presence.h"

#include "http.h"
#include "jwt.h"
#include "rpc_client.h"
#include "wire.h"

/* Asks the router `subject` about the id in the path (a room's or a user's, `key`),
 * with the token's app. For a room the router first asks the persister whether the
 * token's user may see it (a private room: members only). */
static void query(gw_http *h, const gw_route_param *id, const char *subject, const char *key)
{
    nt_claims cl;
    if (!gw_http_id(h, key, id, h->room) || !gw_http_claims(h, &cl))
        return;
    bool room = key[0] == 'r';
    gw_http_await(h, gw_rpc_router_query(subject, cl.app, key, h->room, room ? cl.sub : NULL,
                                         gw_http_json_reply, h, &h->req_id), "router");
}

void gw_http_online(gw_http *h, const gw_route_params *p)
{
    query(h, &p->v[0], NT_SUBJ_RPC_ROUTER_ONLINE, NT_KEY_ROOM);
}

void gw_http_typing(gw_http *h, const gw_route_params *p)
{
    query(h, &p->v[0], NT_SUBJ_RPC_ROUTER_TYPING, NT_KEY_ROOM);
}

void gw_http_presence(gw_http *h, const gw_route_params *p)
{
    query(h, &p->v[0], NT_SUBJ_RPC_ROUTER_PRESENCE, NT_KEY_USER);
}
