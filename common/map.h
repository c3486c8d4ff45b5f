/* map.h: string-keyed hash map of pointers; the key string is borrowed from the value. */
#ifndef NT_MAP_H
#define NT_MAP_H

#include <stddef.h>

typedef struct nt_map_entry {
    const char *key;            /* NULL: empty slot; owned by the value */
    void *val;
} nt_map_entry;

typedef struct nt_map {
    nt_map_entry *slots;
    size_t cap;                 /* power of two, 0 before the first insert */
    size_t count;
} nt_map;

/* Caller-owned storage: zero-initialise, or nt_map_free to release the table. */
void nt_map_free(nt_map *m);
void *nt_map_get(const nt_map *m, const char *key);
/* Inserts or replaces; `key` must stay valid while present. */
void nt_map_put(nt_map *m, const char *key, void *val);
/* Removes and returns the value, or NULL. */
void *nt_map_del(nt_map *m, const char *key);
/* Iteration: for (size_t i = 0; (e = nt_map_next(m, &i));) — do not modify meanwhile. */
nt_map_entry *nt_map_next(const nt_map *m, size_t *i);

#endif
