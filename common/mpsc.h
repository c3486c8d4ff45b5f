/* mpsc.h: bounded multi-producer single-consumer queue of pointers (any thread pushes, the loop pops). */
#ifndef NT_MPSC_H
#define NT_MPSC_H

#include <stddef.h>
#include "status.h"

typedef struct nt_mpsc nt_mpsc;

/* Creates a queue holding at most `capacity` items (capacity >= 1). */
nt_mpsc *nt_mpsc_create(size_t capacity);
/* Frees the queue; items still in it are not freed (drain first). */
void nt_mpsc_destroy(nt_mpsc *q);
/* Appends `item` (non-NULL). NT_EFULL when at capacity: the caller still owns item. Thread-safe. */
nt_status nt_mpsc_push(nt_mpsc *q, void *item);
/* Removes the oldest item, or returns NULL when empty. Consumer thread only. */
void *nt_mpsc_pop(nt_mpsc *q);
/* Removes up to `max` of the oldest items into out[], oldest first, under one lock
 * (a producer waits once per batch, not once per item); returns how many. Consumer
 * thread only. */
size_t nt_mpsc_pop_many(nt_mpsc *q, void **out, size_t max);
size_t nt_mpsc_size(nt_mpsc *q);
size_t nt_mpsc_capacity(nt_mpsc *q);

#endif
