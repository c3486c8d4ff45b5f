/* map.h: string-keyed hash map of pointers; the key string is borrowed from the value. */
#ifndef GW_MAP_H
#define GW_MAP_H

#include <stddef.h>

typedef struct gw_map_entry {
    const char *key;            /* NULL: empty slot; owned by the value */
    void *val;
} gw_map_entry;

typedef struct gw_map {
    gw_map_entry *slots;
    size_t cap;                 /* power of two, 0 before the first insert */
    size_t count;
} gw_map;

/* Caller-owned storage: zero-initialise, or gw_map_free to release the table. */
void gw_map_free(gw_map *m);
void *gw_map_get(const gw_map *m, const char *key);
/* Inserts or replaces; `key` must stay valid while present. */
void gw_map_put(gw_map *m, const char *key, void *val);
/* Removes and returns the value, or NULL. */
void *gw_map_del(gw_map *m, const char *key);
/* Iteration: for (size_t i = 0; (e = gw_map_next(m, &i));) — do not modify meanwhile. */
gw_map_entry *gw_map_next(const gw_map *m, size_t *i);

#endif
