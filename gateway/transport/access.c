/* access.c: origins and CORS, the client's address behind trusted proxies, and the
 * per-address and per-token admission tables. */
#include "access.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "config.h"
#include "gw.h"
#include "rate.h"
#include "log.h"

#define ACCESS_MAX_ORIGINS 64
#define ACCESS_MAX_PROXIES 64
#define ACCESS_SLOTS 8192                   /* per admission table, a power of two */

typedef struct cidr {
    uint8_t addr[16];
    unsigned prefix;                        /* bits of addr that must match (0..128) */
} cidr;

typedef struct slot {                       /* one address's or token's bucket */
    uint64_t key;                           /* hash; 0 = empty */
    uint32_t tat;
} slot;

/* This module's state (gw->access), from gw_access_configure to gw_access_destroy. */
typedef struct gw_access {
    bool any_origin;
    char *origins[ACCESS_MAX_ORIGINS];
    size_t norigins;
    cidr proxies[ACCESS_MAX_PROXIES];
    size_t nproxies;
    gw_rate connects, http;
    uint64_t seed;                          /* per process: table slots are not predictable */
    slot by_addr[ACCESS_SLOTS];
    slot by_token[ACCESS_SLOTS];
    nt_metric *origin_refused, *connects_refused, *http_refused;
} gw_access;

bool gw_access_parse_cidr(const char *s, uint8_t addr[16], unsigned *prefix)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof host)
        return false;
    memcpy(host, s, n);
    host[n] = '\0';
    unsigned max;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        memset(addr, 0, 10);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &v4, 4);
        max = 32;
    } else if (inet_pton(AF_INET6, host, addr) == 1) {
        max = 128;
    } else {
        return false;
    }
    unsigned bits = max;
    if (slash) {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end || v > max)
            return false;
        bits = (unsigned)v;
    }
    *prefix = bits + (128 - max);           /* an IPv4 block also fixes the ::ffff: part */
    return true;
}

static bool cidr_has(const cidr *c, const uint8_t a[16])
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, a, full) != 0)
        return false;
    return rest == 0 || ((c->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

static bool is_trusted(const gw_access *acc, const char *ip)
{
    uint8_t a[16];
    unsigned prefix;
    if (!gw_access_parse_cidr(ip, a, &prefix))
        return false;
    for (size_t i = 0; i < acc->nproxies; i++)
        if (cidr_has(&acc->proxies[i], a))
            return true;
    return false;
}

void gw_access_configure(gw_ctx *ctx)
{
    gw_access *acc = ctx->access = nt_calloc(1, sizeof *ctx->access);
    const char *o = nt_config_str("NATTER_ALLOWED_ORIGINS", "*", "origins allowed to connect");
    acc->any_origin = strcmp(o, "*") == 0;
    for (const char *p = o; !acc->any_origin && *p;) {
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            if (acc->norigins == ACCESS_MAX_ORIGINS)
                nt_config_fatal("NATTER_ALLOWED_ORIGINS is invalid: more than %d origins", ACCESS_MAX_ORIGINS);
            if (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0)
                nt_config_fatal("NATTER_ALLOWED_ORIGINS is invalid: '%.*s' is not an origin "
                                "(scheme://host[:port], or * for any)", (int)n, p);
            acc->origins[acc->norigins++] = nt_strndup(p, n);
        }
        p += strcspn(p, ",");
        while (*p == ',' || *p == ' ')
            p++;
    }
    const char *t = nt_config_str("NATTER_TRUSTED_PROXIES", "", "proxies whose X-Forwarded-For is believed");
    for (const char *p = t; *p;) {
        char one[64];
        size_t n = strcspn(p, ",");
        if (n && n < sizeof one) {
            memcpy(one, p, n);
            one[n] = '\0';
            if (acc->nproxies == ACCESS_MAX_PROXIES ||
                !gw_access_parse_cidr(one, acc->proxies[acc->nproxies].addr,
                                      &acc->proxies[acc->nproxies].prefix))
                nt_config_fatal("NATTER_TRUSTED_PROXIES is invalid: '%s' is not an address or "
                                "CIDR block (at most %d)", one, ACCESS_MAX_PROXIES);
            acc->nproxies++;
        } else if (n) {
            nt_config_fatal("NATTER_TRUSTED_PROXIES is invalid: '%.*s' is too long", (int)n, p);
        }
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    char why[96];
    const char *cr = nt_config_str("NATTER_RATE_CONNECTS_PER_IP", "20/s:100", "new connections per address");
    if (!gw_rate_parse(cr, &acc->connects, why, sizeof why))
        nt_config_fatal("NATTER_RATE_CONNECTS_PER_IP=%s is invalid: %s", cr, why);
    const char *hr = nt_config_str("NATTER_RATE_HTTP", "20/s:100", "HTTP requests per token");
    if (!gw_rate_parse(hr, &acc->http, why, sizeof why))
        nt_config_fatal("NATTER_RATE_HTTP=%s is invalid: %s", hr, why);
    if (getrandom(&acc->seed, sizeof acc->seed, 0) != sizeof acc->seed)
        acc->seed = (uint64_t)uv_hrtime();
    acc->origin_refused = nt_metric_counter("natter_gateway_origin_refused_total",
                                           "Upgrades and requests refused for their Origin");
    acc->connects_refused = nt_metric_counter("natter_gateway_connects_rate_limited_total",
                                             "Upgrades refused over NATTER_RATE_CONNECTS_PER_IP");
    acc->http_refused = nt_metric_counter("natter_gateway_http_rate_limited_total",
                                         "HTTP requests refused over NATTER_RATE_HTTP");
}

void gw_access_destroy(gw_ctx *ctx)
{
    gw_access *acc = ctx->access;
    if (!acc)
        return;
    for (size_t i = 0; i < acc->norigins; i++)
        nt_free(acc->origins[i]);
    nt_free(acc);
    ctx->access = NULL;
}

bool gw_access_origin(struct lws *wsi, char *origin, size_t cap)
{
    const gw_access *acc = gw->access;
    origin[0] = '\0';
    int n = lws_hdr_copy(wsi, origin, (int)cap, WSI_TOKEN_ORIGIN);
    if (n <= 0) {
        origin[0] = '\0';
        return lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0;   /* too long to copy: refused */
    }
    if (acc->any_origin)
        return true;
    for (size_t i = 0; i < acc->norigins; i++)
        if (strcmp(acc->origins[i], origin) == 0)
            return true;
    nt_metric_add(acc->origin_refused, 1);
    return false;
}

int gw_access_cors_headers(struct lws *wsi, const char *origin, bool preflight,
                           unsigned char **p, unsigned char *end)
{
    static const char methods[] = "GET, POST, DELETE, OPTIONS";
    static const char headers[] = "Authorization, Content-Type";
    const gw_access *acc = gw->access;
    if (!origin[0])
        return 0;
    const char *allow = acc->any_origin ? "*" : origin;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                    (const unsigned char *)allow, (int)strlen(allow), p, end) ||
        (!acc->any_origin &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
                                     (const unsigned char *)"Origin", 6, p, end)))
        return -1;
    if (!preflight)
        return 0;
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-methods:",
                                       (const unsigned char *)methods, sizeof methods - 1, p, end) ||
                   lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-headers:",
                                               (const unsigned char *)headers, sizeof headers - 1, p, end) ||
                   lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-max-age:",
                                               (const unsigned char *)"600", 3, p, end)
               ? -1 : 0;
}

/* The peer, with an IPv4-mapped IPv6 address shown as IPv4. */
static void peer_addr(struct lws *wsi, char *out, size_t cap)
{
    if (!lws_get_peer_simple(wsi, out, cap) || !out[0]) {
        snprintf(out, cap, "?");
        return;
    }
    if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
        memmove(out, out + 7, strlen(out + 7) + 1);
}

void gw_access_client_addr(struct lws *wsi, char *out, size_t cap)
{
    const gw_access *acc = gw->access;
    peer_addr(wsi, out, cap);
    if (!acc->nproxies || !is_trusted(acc, out))
        return;
    char xff[512];
    if (lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR) <= 0)
        return;
    /* From the right: each hop a trusted proxy appended; the first untrusted one is
     * the client (what a client writes itself, further left, is not believed). */
    for (;;) {
        char *comma = strrchr(xff, ',');
        char *hop = comma ? comma + 1 : xff;
        while (*hop == ' ')
            hop++;
        size_t n = strlen(hop);
        while (n && hop[n - 1] == ' ')
            hop[--n] = '\0';
        if (!n)
            return;
        snprintf(out, cap, "%s", hop);
        if (!is_trusted(acc, hop) || !comma)
            return;
        *comma = '\0';
    }
}

static uint64_t hash(const gw_access *acc, const void *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ acc->seed;     /* FNV-1a, seeded */
    for (const unsigned char *p = data; len--; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h ? h : 1;
}

static bool admit(slot *table, uint64_t key, const gw_rate *r, uint32_t *retry_ms)
{
    slot *s = &table[key & (ACCESS_SLOTS - 1)];
    if (s->key != key) {                     /* new (or evicted): a full bucket */
        s->key = key;
        s->tat = 0;
    }
    return gw_rate_take(&s->tat, r, gw_rate_now(), retry_ms);
}

bool gw_access_connect_admit(struct lws *wsi, uint32_t *retry_ms)
{
    gw_access *acc = gw->access;
    char addr[80];
    gw_access_client_addr(wsi, addr, sizeof addr);
    if (admit(acc->by_addr, hash(acc, addr, strlen(addr)), &acc->connects, retry_ms))
        return true;
    nt_metric_add(acc->connects_refused, 1);
    return false;
}

bool gw_access_http_admit(const char *token, size_t len, uint32_t *retry_ms)
{
    gw_access *acc = gw->access;
    if (admit(acc->by_token, hash(acc, token, len), &acc->http, retry_ms))
        return true;
    nt_metric_add(acc->http_refused, 1);
    return false;
}
