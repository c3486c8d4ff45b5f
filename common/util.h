/* util.h: small helpers shared by all processes: ids, UUIDs, partitions; with utf8.h and clock.h. */
#ifndef NT_UTIL_H
#define NT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"   /* nt_now_ms, nt_rfc3339_ms: kept reachable from here for existing users */
#include "utf8.h"    /* nt_valid_utf8 and the other UTF-8 helpers: likewise */

/* True when s[0..len) matches [A-Za-z0-9_-]{1,64}: user, room and app ids. */
bool nt_valid_id(const char *s, size_t len);
/* Writes a random UUIDv4 string (36 chars + NUL) into out[37]. */
void nt_uuid(char out[37]);
/* Partition of a room: stable hash (FNV-1a of "app/room") modulo nparts. */
unsigned nt_partition(const char *app, const char *room, unsigned nparts);
/* Constant-time comparison of two byte strings (lengths may differ). */
bool nt_consttime_eq(const char *a, size_t alen, const char *b, size_t blen);

#endif
