/* native.h: natter's own protocol (docs/protocol.md) as the gateway's first dialect. */
#ifndef GW_NATIVE_H
#define GW_NATIVE_H

#include "dialect.h"

/* The native dialect, served on /ws. */
extern const gw_dialect gw_native_dialect;

#endif
