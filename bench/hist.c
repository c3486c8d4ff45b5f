/* hist.c: log-bucketed histogram; relative error of a bucket is at most 1/16. */
#include "hist.h"

#include <string.h>

static int bucket_of(uint64_t v)
{
    if (v < NB_HIST_SUB) return (int)v;
    int e = 63 - __builtin_clzll(v);               /* v in [2^e, 2^(e+1)), e >= 4 */
    int sub = (int)((v >> (e - 4)) & (NB_HIST_SUB - 1));
    return (e - 3) * NB_HIST_SUB + sub;
}

static uint64_t bucket_high(int i)
{
    if (i < NB_HIST_SUB) return (uint64_t)i;
    int e = i / NB_HIST_SUB + 3, sub = i % NB_HIST_SUB;
    uint64_t lo = ((uint64_t)(NB_HIST_SUB + sub)) << (e - 4);
    return lo + (1ull << (e - 4)) - 1;
}

void nb_hist_add(nb_hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    if (h->count == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->count++;
    h->sum += v;
}

void nb_hist_merge(nb_hist *into, const nb_hist *from)
{
    if (!from->count) return;
    for (int i = 0; i < NB_HIST_BUCKETS; i++) into->b[i] += from->b[i];
    if (into->count == 0 || from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
}

uint64_t nb_hist_quantile(const nb_hist *h, double q)
{
    if (!h->count) return 0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.5), seen = 0;
    if (want < 1) want = 1;
    for (int i = 0; i < NB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t hi = bucket_high(i);
            return hi > h->max ? h->max : hi;
        }
    }
    return h->max;
}
