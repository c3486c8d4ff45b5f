/* history.c: a page of a room's stored messages for a connection. */
#include "history.h"

#include "ask.h"
#include "rooms.h"
#include "rpc_client.h"

void gw_history_fetch(gw_conn *c, const json_t *ref, const char *room, const gw_history_req *h)
{
    gw_ask *a = gw_ask_begin(c, ref, "message store");
    if (a && gw_rpc_history(c->user->app, room, c->user->id, h, gw_ask_answered, a, NULL) != NT_OK)
        gw_ask_unsent(c, a);
}
