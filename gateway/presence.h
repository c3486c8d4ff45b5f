/* presence.h: presence, typing and online users (PROTOCOL.md), through the router. */
#ifndef GW_PRESENCE_H
#define GW_PRESENCE_H

#include "conn.h"
#include "frame.h"

/* The "typing" action: forwards is_typing for a subscribed room, at most once per
 * user per room per second. */
void gw_presence_typing(gw_conn *c, const gw_frame *f);
/* The "presence" action: status, device, status_text. */
void gw_presence_set(gw_conn *c, const gw_frame *f);
/* The "online_users" action for a room. */
void gw_presence_online_users(gw_conn *c, const gw_frame *f);
/* c just sent a message to room: its typing indicator there stops. */
void gw_presence_sent_message(gw_conn *c, const char *room);

#endif
