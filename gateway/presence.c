/* presence.c: presence, typing and online users. Not implemented yet: each action
 * is refused with a clear error until the router side exists. */
#include "presence.h"

#include "actions.h"

void gw_presence_typing(gw_conn *c, const gw_frame *f)
{
    gw_conn_send_error(c, f->ref, GW_E_BAD_REQUEST, "typing is not implemented yet");
}

void gw_presence_set(gw_conn *c, const gw_frame *f)
{
    gw_conn_send_error(c, f->ref, GW_E_BAD_REQUEST, "presence is not implemented yet");
}

void gw_presence_online_users(gw_conn *c, const gw_frame *f)
{
    gw_conn_send_error(c, f->ref, GW_E_BAD_REQUEST, "online_users is not implemented yet");
}

void gw_presence_sent_message(gw_conn *c, const char *room)
{
    (void)c;
    (void)room;
}
