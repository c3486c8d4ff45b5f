/* access.h: who may come in. Allowed origins (NATTER_ALLOWED_ORIGINS) for WebSocket
 * upgrades and CORS on the REST API; the client's address (the peer, or the last
 * untrusted hop of X-Forwarded-For when the peer is in NATTER_TRUSTED_PROXIES); new
 * connections per address (NATTER_RATE_CONNECTS_PER_IP) and HTTP requests per token
 * (NATTER_RATE_HTTP), each kept in a bounded, lossy table (a collision can let one
 * more through, never refuse one too many). */
#ifndef GW_ACCESS_H
#define GW_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws;
typedef struct gw_ctx gw_ctx;

/* Creates this module's state in ctx (the settings, the admission tables, the metrics):
 * reads NATTER_ALLOWED_ORIGINS ("*", the default, or a comma-separated list of origins
 * such as https://app.example.com), NATTER_TRUSTED_PROXIES (comma-separated IPv4/IPv6
 * addresses or CIDR blocks) and the two rates; a bad one is fatal (exit 2). */
void gw_access_configure(gw_ctx *ctx);
/* Frees it (after the transport is gone). */
void gw_access_destroy(gw_ctx *ctx);

/* The request's Origin header into origin ("" when absent); true when absent or
 * allowed. */
bool gw_access_origin(struct lws *wsi, char *origin, size_t cap);
/* The CORS headers for an allowed, present origin (nothing for ""); 0 or -1 when
 * they did not fit. */
int gw_access_cors_headers(struct lws *wsi, const char *origin, bool preflight,
                           unsigned char **p, unsigned char *end);

/* The client's address as text ("?" when unknown). */
void gw_access_client_addr(struct lws *wsi, char *out, size_t cap);
/* Takes one new connection for the client's address: false with *retry_ms over the rate. */
bool gw_access_connect_admit(struct lws *wsi, uint32_t *retry_ms);
/* Takes one HTTP request for this bearer token: false with *retry_ms over the rate. */
bool gw_access_http_admit(const char *token, size_t len, uint32_t *retry_ms);

/* Parses one address or CIDR block into a 16-byte form (IPv4 as ::ffff:a.b.c.d) and
 * prefix length; false when invalid. For tests and the configuration. */
bool gw_access_parse_cidr(const char *s, uint8_t addr[16], unsigned *prefix);

#endif
