/* receipts.h: read and delivered marks, receipts and unread counts, through the persister. */
#ifndef GW_RECEIPTS_H
#define GW_RECEIPTS_H

#include "conn.h"
#include "frame.h"

/* The "read" action: seq or message_ids; the read mark only moves forward. */
void gw_receipts_read(gw_conn *c, const gw_frame *f);
/* The "delivered" action: seq. */
void gw_receipts_delivered(gw_conn *c, const gw_frame *f);

#endif
