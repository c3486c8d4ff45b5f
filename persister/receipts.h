/* receipts.h: receipt events to a room, coalesced to at most one per user, room and
 * type per NATTER_RECEIPT_INTERVAL_MS (the latest mark wins), in a bounded table. */
#ifndef PS_RECEIPTS_H
#define PS_RECEIPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "persister.h"

ps_receipts *ps_receipts_create(ps_ctx *ctx);
/* Closes the timer and frees the table; pending receipts are not published. */
void ps_receipts_destroy(ps_receipts *rc);
/* A mark moved: publishes a receipt now, or keeps it as the pending one when a receipt
 * for the same (app, room, user, type) went out less than the interval ago. When the
 * table is full the receipt is dropped and counted. `at` is RFC 3339. */
void ps_receipts_note(ps_receipts *rc, const char *app, const char *room, const char *user,
                      bool delivered, int64_t seq, const char *at);

#endif
