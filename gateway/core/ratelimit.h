/* ratelimit.h: the rate limits of one gateway, per connection and per user across it:
 * each limit is one GCRA timestamp (the "theoretical arrival time" of the next
 * action, loop time in µs, 32 bits), so a limit costs 4 bytes where it is kept. A refusal
 * is the rate_limited error naming the limit with data.retry_after_ms; a user who
 * keeps being refused (NATTER_ABUSE_REFUSALS) has the refused connection closed
 * with 4029. docs/security.md lists every limit and its default. */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "rate.h"

typedef struct gw_ctx gw_ctx;

struct gw_conn;

/* Reads every NATTER_RATE_* setting ("<n>/s" or "<n>/min", optionally ":<burst>");
 * a bad one is fatal (exit 2) with a line naming it. */
void gw_limits_configure(void);

/* Takes one action of kind `l` (a CONN_ limit with its USER_ twin) for c: false when
 * refused, and then c has been answered on ref (rate_limited, retry_after_ms). */
bool gw_limit_admit(struct gw_conn *c, const json_t *ref, gw_limit conn_limit, gw_limit user_limit);
/* The same for a per-user limit alone. */
bool gw_limit_admit_user(struct gw_conn *c, const json_t *ref, gw_limit user_limit);

/* Requests in flight (history, read marks, create_room, dm, joins, online_users): at
 * most NATTER_MAX_REQUESTS_PER_CONN per connection. begin answers c on ref and
 * returns false when c is at the limit; end is called with the connection found
 * again by id (NULL when it is gone: nothing to do). */
bool gw_limit_req_begin(struct gw_conn *c, const json_t *ref);
void gw_limit_req_end(struct gw_conn *c);

/* Answers ref with rate_limited, message `what`, data.retry_after_ms, and counts the
 * refusal against c's user (closing c with 4029 past NATTER_ABUSE_REFUSALS). */
void gw_limit_refuse(struct gw_conn *c, const json_t *ref, const char *what, uint32_t retry_ms);

/* Creates this module's state in ctx: registers the limits' metrics (at start-up);
 * frees it. */
void gw_limits_create(gw_ctx *ctx);
void gw_limits_destroy(gw_ctx *ctx);

#endif
