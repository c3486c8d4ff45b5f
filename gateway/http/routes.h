/* routes.h: every REST route of the gateway, in one table (routes.c). */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <stddef.h>
#include "route.h"

extern const gw_route gw_routes[];
extern const size_t gw_nroutes;

#endif
