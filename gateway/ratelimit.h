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

struct gw_conn;

/* One rate: `count` actions per period (an action every interval_us), up to `burst` at once. */
typedef struct gw_rate {
    uint32_t interval_us;
    uint32_t burst;
    uint32_t count;
    uint32_t period_ms;           /* 1000 or 60000 */
} gw_rate;

/* The rated actions: X(name, setting, default, what a refusal says is limited, per user);
 * the per-connection ones first (GW_L_FIRST_USER is the first per-user one). */
#define GW_LIMIT_MAP(X)                                                                    \
    X(CONN_SENDS, "NATTER_RATE_SENDS", "10/s:30", "messages per connection", false)        \
    X(CONN_SUBSCRIBES, "NATTER_RATE_SUBSCRIBES", "10/s:50", "subscribes per connection", false) \
    X(USER_SENDS, "NATTER_RATE_USER_SENDS", "20/s:60", "messages per user", true)          \
    X(USER_SUBSCRIBES, "NATTER_RATE_USER_SUBSCRIBES", "20/s:100", "subscribes per user", true) \
    X(USER_CREATE_ROOMS, "NATTER_RATE_CREATE_ROOMS", "10/min:5", "rooms created per user", true) \
    X(USER_DMS, "NATTER_RATE_DMS", "30/min:10", "direct-message rooms opened per user", true) \
    X(USER_REFUSALS, "NATTER_ABUSE_REFUSALS", "2/s:20", "refusals per user", true)

typedef enum {
#define GW_LIMIT_ENUM(name, setting, def, what, per_user) GW_L_##name,
    GW_LIMIT_MAP(GW_LIMIT_ENUM)
#undef GW_LIMIT_ENUM
    GW_L_COUNT
} gw_limit;

#define GW_L_FIRST_USER GW_L_USER_SENDS

/* Per-user state (in gw_user): one timestamp per per-user limit, tat[l - GW_L_FIRST_USER]. */
typedef struct gw_user_limits {
    uint32_t tat[GW_L_COUNT - GW_L_FIRST_USER];
} gw_user_limits;

/* Per-connection state (in gw_conn, sharing the bytes of the auth deadline). */
typedef struct gw_conn_limits {
    uint32_t sends_tat, subscribes_tat;
} gw_conn_limits;

/* Reads every NATTER_RATE_* setting ("<n>/s" or "<n>/min", optionally ":<burst>");
 * a bad one is fatal (exit 2) with a line naming it. */
void gw_limits_configure(void);
/* Parses one rate as above; false with why set when invalid. */
bool gw_rate_parse(const char *s, gw_rate *out, char *why, size_t whylen);

/* GCRA: takes one action of rate r at time now (µs) from *tat; false (nothing
 * taken) with *retry_ms set when over the rate. */
bool gw_rate_take(uint32_t *tat, const gw_rate *r, uint32_t now, uint32_t *retry_ms);

/* The loop clock as the limits keep it (µs, 32 bits: wraps every 71 minutes, which
 * the limits tolerate; a burst may span at most 30 minutes). */
uint32_t gw_limits_now(void);

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

/* Registers the limits' metrics (at start-up). */
void gw_limits_metrics_init(void);

#endif
