/* rate.c: a rate and its bucket, GCRA style (one theoretical arrival time per key). */
#include "rate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gw.h"

bool gw_rate_parse(const char *s, gw_rate *out, char *why, size_t whylen)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    uint32_t period_ms;
    if (errno || end == s || n < 1 || n > 1000000 || *end != '/') {
        snprintf(why, whylen, "expected <count>/s or <count>/min, optionally :<burst> (e.g. 10/s:30)");
        return false;
    }
    end++;
    if (strncmp(end, "min", 3) == 0) {
        period_ms = 60000;
        end += 3;
    } else if (*end == 's') {
        period_ms = 1000;
        end++;
    } else {
        snprintf(why, whylen, "the period must be s or min (e.g. 10/s:30)");
        return false;
    }
    unsigned long burst = n;
    if (*end == ':') {
        const char *b = end + 1;
        errno = 0;
        burst = strtoul(b, &end, 10);
        if (errno || end == b || burst < 1 || burst > 1000000) {
            snprintf(why, whylen, "the burst must be an integer from 1 to 1000000");
            return false;
        }
    }
    if (*end != '\0') {
        snprintf(why, whylen, "unexpected '%s' (e.g. 10/s:30)", end);
        return false;
    }
    uint64_t interval_us = (uint64_t)period_ms * 1000 / n;
    if (interval_us * burst > (uint64_t)30 * 60 * 1000000) {
        snprintf(why, whylen, "a burst of %lu at that rate spans more than 30 minutes", burst);
        return false;
    }
    out->interval_us = interval_us ? (uint32_t)interval_us : 1;
    out->burst = (uint32_t)burst;
    out->count = (uint32_t)n;
    out->period_ms = period_ms;
    return true;
}

uint32_t gw_rate_now(void)
{
    return (uint32_t)(uv_now(gw->loop) * 1000);
}

bool gw_rate_take(uint32_t *tat, const gw_rate *r, uint32_t now, uint32_t *retry_ms)
{
    uint32_t tolerance = (r->burst - 1) * r->interval_us;
    uint32_t t = *tat;
    int64_t ahead = (int32_t)(t - now);                /* how far the bucket is drawn down */
    if (t == 0 || ahead < 0 || ahead > (int64_t)tolerance + r->interval_us)
        ahead = 0;                                      /* unset, full, or from before a wrap */
    if (ahead > (int64_t)tolerance) {
        *retry_ms = (uint32_t)((ahead - tolerance + 999) / 1000);
        return false;
    }
    t = now + (uint32_t)ahead + r->interval_us;
    *tat = t ? t : 1;
    return true;
}
