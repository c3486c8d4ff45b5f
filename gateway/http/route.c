/* route.c: matching a request path against the route table (route.h). */
#include "route.h"

#include <string.h>

bool gw_route_match(const char *pattern, const char *path, gw_route_params *p)
{
    p->n = 0;
    for (;;) {
        if (*pattern == '*' && pattern[1] == '\0')
            return true;
        if (pattern[0] == '{' && pattern[1] == '}') {
            if (p->n == GW_ROUTE_MAX_PARAMS)
                return false;                    /* a pattern the table must not hold */
            size_t len = strcspn(path, "/");
            p->v[p->n++] = (gw_route_param){ path, len };
            pattern += 2;
            path += len;
            continue;
        }
        if (*pattern != *path)
            return false;
        if (*pattern == '\0')
            return true;
        pattern++;
        path++;
    }
}

const gw_route *gw_route_find(const gw_route *table, size_t n, gw_http_method m,
                              const char *path, gw_route_params *p)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].method == m && gw_route_match(table[i].pattern, path, p))
            return &table[i];
    return NULL;
}
