/* hist.h: log-bucketed latency histogram (power-of-two ranges, 16 linear sub-buckets each). */
#ifndef NB_HIST_H
#define NB_HIST_H

#include <stdint.h>

#define NB_HIST_SUB 16
#define NB_HIST_BUCKETS (64 * NB_HIST_SUB)

typedef struct nb_hist {
    uint64_t count, max, min, sum;
    uint64_t b[NB_HIST_BUCKETS];
} nb_hist;

void nb_hist_add(nb_hist *h, uint64_t v);          /* v in ns */
void nb_hist_merge(nb_hist *into, const nb_hist *from);
uint64_t nb_hist_quantile(const nb_hist *h, double q);  /* upper bound of the bucket, ns; 0 when empty */

#endif
