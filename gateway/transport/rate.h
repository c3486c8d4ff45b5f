/* rate.h: a rate ("10/s:30") and the GCRA bucket that enforces it: one 32-bit
 * theoretical arrival time per key, no timer, no allocation; and the rated actions
 * with the buckets a connection and a user carry. Used by the limits of connections
 * and users (ratelimit.h) and of addresses and tokens (access.h). */
#ifndef GW_RATE_H
#define GW_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One rate: `count` actions per period (an action every interval_us), up to `burst` at once. */
typedef struct gw_rate {
    uint32_t interval_us;
    uint32_t burst;
    uint32_t count;
    uint32_t period_ms;           /* 1000 or 60000 */
} gw_rate;

/* Parses "<count>/s" or "<count>/min", optionally ":<burst>" (10/s:30); false with
 * why set when invalid. */
bool gw_rate_parse(const char *s, gw_rate *out, char *why, size_t whylen);
/* GCRA: takes one action of rate r at time now (µs) from *tat; false (nothing
 * taken) with *retry_ms set when over the rate. */
bool gw_rate_take(uint32_t *tat, const gw_rate *r, uint32_t now, uint32_t *retry_ms);
/* The loop clock as the limits keep it (µs, 32 bits: wraps every 71 minutes, which
 * the limits tolerate; a burst may span at most 30 minutes). */
uint32_t gw_rate_now(void);

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

#endif
