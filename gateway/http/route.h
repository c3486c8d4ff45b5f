/* route.h: the REST side's routes as a table {method, pattern, handler}, and the matcher
 * that picks one. Pure (no lws, no bus): unit-tested and fuzzed on its own. */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_http gw_http;

typedef enum { GW_HTTP_OTHER, GW_HTTP_GET, GW_HTTP_POST, GW_HTTP_DELETE } gw_http_method;

#define GW_ROUTE_MAX_PARAMS 2

/* One {} of a pattern: the bytes of that path segment (not NUL-terminated; they point
 * into the path and live as long as it). */
typedef struct {
    const char *s;
    size_t len;
} gw_route_param;

typedef struct {
    gw_route_param v[GW_ROUTE_MAX_PARAMS];
    unsigned n;
} gw_route_params;

/* A pattern is the path with each variable segment written {}: it matches one whole
 * segment, possibly empty, never a '/'. A pattern ending in '*' matches any rest of the
 * path after the bytes before it. At most GW_ROUTE_MAX_PARAMS {} per pattern. */
typedef struct gw_route {
    gw_http_method method;
    const char *pattern;
    /* Runs on the request's headers with the pattern's segments. It answers, starts a
     * bus request, or (POST) asks for the body with gw_http_read_body. */
    void (*handler)(gw_http *h, const gw_route_params *p);
} gw_route;

/* Whether path matches pattern; p gets the {} segments in order. */
bool gw_route_match(const char *pattern, const char *path, gw_route_params *p);

/* The first route of table[0..n) with method m whose pattern matches path (p filled),
 * else NULL. */
const gw_route *gw_route_find(const gw_route *table, size_t n, gw_http_method m,
                              const char *path, gw_route_params *p);

#endif
