/* receipts.h: read and delivered marks, the unread counts and the chat list, asked of
 * the persister (natter.rpc.persist.{read,delivered,unread,rooms}). Receipt and unread
 * events come back on room and user subjects and are forwarded by rooms.c. */
#ifndef GW_RECEIPTS_H
#define GW_RECEIPTS_H

#include <stdbool.h>
#include <stdint.h>
#include "bus.h"
#include "conn.h"
#include "frame.h"

/* The "read" action: seq or message_ids; the read mark only moves forward. */
void gw_receipts_read(gw_conn *c, const gw_frame *f);
/* The "delivered" action: seq. */
void gw_receipts_delivered(gw_conn *c, const gw_frame *f);

/* Sends natter.rpc.persist.read (or .delivered) for user in room; the ok reply's
 * "json" is the ack data. */
nt_status gw_receipts_mark_request(const char *app, const char *room, const char *user,
                                   bool delivered, const gw_mark_req *m, nt_bus_reply_cb cb,
                                   void *arg, uint64_t *id_out);
/* Sends natter.rpc.persist.unread (rooms false) or .rooms (rooms true) for user; the
 * ok reply's "json" is {rooms:{…},total} or {rooms:[…]}. */
nt_status gw_receipts_user_request(const char *app, const char *user, bool rooms,
                                   nt_bus_reply_cb cb, void *arg, uint64_t *id_out);

#endif
