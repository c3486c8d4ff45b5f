/* map.c: string-keyed hash map: open addressing with linear probing and backward-shift deletion. */
#include "map.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"

/* Seeded once per process from the kernel, so which keys collide (room and user ids
 * come from clients) cannot be worked out in advance to make one slot's probe long. */
static uint64_t seed_value;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
    if (getrandom(&seed_value, sizeof seed_value, 0) != sizeof seed_value)
        seed_value = (uint64_t)(uintptr_t)&seed_value ^ 0x9e3779b97f4a7c15ull;
}

static uint64_t seed(void)
{
    pthread_once(&seed_once, seed_init);
    return seed_value;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull ^ seed();
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

void nt_map_free(nt_map *m)
{
    nt_free(m->slots);
    memset(m, 0, sizeof *m);
}

static size_t find(const nt_map *m, const char *key)
{
    size_t mask = m->cap - 1, i = hash(key) & mask;
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *nt_map_get(const nt_map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    return m->slots[find(m, key)].val;
}

static void grow(nt_map *m)
{
    nt_map old = *m;
    m->cap = old.cap ? old.cap * 2 : 16;
    m->slots = nt_calloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            m->slots[find(m, old.slots[i].key)] = old.slots[i];
    nt_free(old.slots);
}

void nt_map_put(nt_map *m, const char *key, void *val)
{
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    size_t i = find(m, key);
    if (!m->slots[i].key)
        m->count++;
    m->slots[i].key = key;
    m->slots[i].val = val;
}

void *nt_map_del(nt_map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1, i = find(m, key);
    void *val = m->slots[i].val;
    if (!m->slots[i].key)
        return NULL;
    m->slots[i].key = NULL;
    m->slots[i].val = NULL;
    m->count--;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = hash(m->slots[j].key) & mask;
        /* move j back into the hole at i when its home is not in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            m->slots[j].val = NULL;
            i = j;
        }
    }
    return val;
}

nt_map_entry *nt_map_next(const nt_map *m, size_t *i)
{
    for (; *i < m->cap; (*i)++)
        if (m->slots[*i].key)
            return &m->slots[(*i)++];
    return NULL;
}
