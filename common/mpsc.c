/* mpsc.c: bounded queue of pointers; a ring buffer under one mutex, so a push
 * waits at most for another push or pop, never for space. */
#include "mpsc.h"

#include <pthread.h>

#include "alloc.h"

struct nt_mpsc {
    pthread_mutex_t lock;
    size_t capacity;
    size_t head;              /* index of the oldest item */
    size_t count;             /* items in the ring */
    void **items;             /* capacity slots */
};

nt_mpsc *nt_mpsc_create(size_t capacity)
{
    if (capacity < 1)
        capacity = 1;
    nt_mpsc *q = nt_calloc(1, sizeof(*q));
    q->items = nt_calloc(capacity, sizeof(void *));
    q->capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void nt_mpsc_destroy(nt_mpsc *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->lock);
    nt_free(q->items);
    nt_free(q);
}

nt_status nt_mpsc_push(nt_mpsc *q, void *item)
{
    if (item == NULL)
        return NT_EINVAL;
    nt_status st = NT_OK;
    pthread_mutex_lock(&q->lock);
    if (q->count == q->capacity) {
        st = NT_EFULL;
    } else {
        size_t tail = q->head + q->count;
        if (tail >= q->capacity)
            tail -= q->capacity;
        q->items[tail] = item;
        q->count++;
    }
    pthread_mutex_unlock(&q->lock);
    return st;
}

void *nt_mpsc_pop(nt_mpsc *q)
{
    void *item = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->count > 0) {
        item = q->items[q->head];
        q->items[q->head] = NULL;
        q->head = q->head + 1 == q->capacity ? 0 : q->head + 1;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return item;
}

size_t nt_mpsc_size(nt_mpsc *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t nt_mpsc_capacity(nt_mpsc *q)
{
    return q->capacity;
}

size_t nt_mpsc_pop_many(nt_mpsc *q, void **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    while (n < max && q->count > 0) {
        out[n++] = q->items[q->head];
        q->items[q->head] = NULL;
        q->head = q->head + 1 == q->capacity ? 0 : q->head + 1;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}
