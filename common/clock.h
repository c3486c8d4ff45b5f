/* clock.h: the wall clock in milliseconds and its RFC 3339 text; no dependencies (log.c uses it). */
#ifndef NT_CLOCK_H
#define NT_CLOCK_H

#include <stdint.h>

/* Wall clock in milliseconds since epoch. */
int64_t nt_now_ms(void);
/* RFC 3339 UTC with milliseconds: "2026-11-22T03:17:21.123Z" into out[32]. */
void nt_rfc3339_ms(int64_t ms, char out[32]);

#endif
