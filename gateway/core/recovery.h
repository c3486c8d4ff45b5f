/* recovery.h: since_seq recovery of a member just added (docs/protocol.md "Recovery"). */
#ifndef GW_RECOVERY_H
#define GW_RECOVERY_H

#include <stdint.h>
#include <jansson.h>
#include "conn.h"

/* Ends the delivery of room to c (the recovery failed: the client subscribes again). */
typedef void (*gw_recovery_stop_fn)(gw_conn *c, const char *room);

/* Replays to c the room's messages after since_seq, page by page, while rooms.c buffers
 * m's live events; then answers ref with the subscribe ack (recovered:true; last_seq,
 * last_read_seq and unread from the join) and delivers the buffered events newer than
 * the last replayed one. On failure (store down, malformed reply, more than
 * NATTER_RECOVERY_BUFFER live events, more than NATTER_REPLAY_MAX messages) it calls
 * stop and answers ref with the error. */
void gw_recovery_begin(gw_conn *c, gw_member *m, const json_t *ref, int64_t since_seq,
                       int64_t last_seq, int64_t last_read, int64_t unread,
                       gw_recovery_stop_fn stop);

#endif
