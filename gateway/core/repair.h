/* repair.h: live receivers repair their gaps (docs/protocol.md "Gaps and resync"). A
 * room's message events reach the gateway's members in seq order, each once. Core NATS
 * does not redeliver what the gateway missed (while it was disconnected from
 * nats-server, say), so a message event past a gap is held while the missing messages
 * are fetched from the persister (history after the last delivered seq) and delivered
 * first; after every NATS reconnect each room with messages asks the same, since the
 * missed messages may be the last ones. A gap larger than NATTER_GAP_REPAIR_MAX is not
 * fetched: the members get a `resync` event naming the range, to recover themselves.
 * Loop thread only. */
#ifndef GW_REPAIR_H
#define GW_REPAIR_H

#include <stdint.h>
#include "conn.h"
#include "gw.h"
#include "rooms.h"

/* Creates this module's state (gw->repairs) and registers its metrics. */
void gw_repair_create(gw_ctx *ctx);
/* Ends every repair (a request in flight is forgotten and its room reference dropped)
 * and frees the state; before the rooms module stops. */
void gw_repair_destroy(gw_ctx *ctx);
/* A room's message event of seq (rooms.c's `message` hook): delivered now, dropped as
 * a repeat, or held until the gap before it is filled. Borrows b. */
void gw_repair_message(gw_room *room, gw_buf *b, int64_t seq);
/* room is being freed (rooms.c's `room_freed` hook): its held events go. */
void gw_repair_room_freed(gw_room *room);
/* Each tick: fetches that failed are retried; after a NATS reconnect every room asks
 * for what came after its last message. */
void gw_repair_tick(int64_t now_ms);

#endif
