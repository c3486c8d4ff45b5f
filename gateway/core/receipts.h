/* receipts.h: read and delivered marks of a connection, asked of the persister
 * (natter.rpc.persist.{read,delivered}). Receipt and unread events come back on room and
 * user subjects and are forwarded by rooms.c. */
#ifndef GW_RECEIPTS_H
#define GW_RECEIPTS_H

#include <stdbool.h>
#include <stdint.h>
#include "bus.h"
#include "conn.h"
#include <jansson.h>
#include "command.h"

/* read (delivered false) or delivered of room for c: the persister moves the mark and
 * answers ref with the ack data; the receipt and unread events follow on the bus. */
void gw_receipts_mark(gw_conn *c, const json_t *ref, const char *room, bool delivered,
                      const gw_mark_req *m);

#endif
