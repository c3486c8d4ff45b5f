/* receipts.c: the read and delivered actions. The persister moves the marks, answers
 * with the ack data, and publishes the receipt (room subject) and unread (user subject)
 * events itself, so a reply only has to reach the connection that asked. */
#include "receipts.h"

#include "ask.h"
#include "rooms.h"
#include "rpc_client.h"

void gw_receipts_mark(gw_conn *c, const json_t *ref, const char *room, bool delivered,
                      const gw_mark_req *m)
{
    gw_ask *a = gw_ask_begin(c, ref, "message store");
    if (a && gw_rpc_mark(c->user->app, room, c->user->id, delivered, m, gw_ask_answered, a,
                         NULL) != NT_OK)
        gw_ask_unsent(c, a);
}
