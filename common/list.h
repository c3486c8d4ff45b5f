/* list.h: the intrusive doubly-linked list (like libuv's uv__queue): a node embedded in the
 * element, a circular list around a head node, no allocation. */
#ifndef NT_LIST_H
#define NT_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* Both a list's head and the node embedded in each element: two pointers. A head must be
 * initialised (nt_list_init or NT_LIST_INIT) before use; an element's node needs nothing
 * before it is inserted. Not thread-safe: the owner of the list serialises access. */
typedef struct nt_list {
    struct nt_list *next;
    struct nt_list *prev;
} nt_list;

/* Static initialiser of an empty head: `nt_list conns = NT_LIST_INIT(conns);`. */
#define NT_LIST_INIT(head) { &(head), &(head) }

/* The element of type `type` whose member `member` is the node `node`. */
#define nt_list_entry(node, type, member) \
    ((type *)(void *)((char *)(node) - offsetof(type, member)))

/* Walks every node after `head`; `n` must not be removed inside the body. */
#define nt_list_foreach(n, head) \
    for ((n) = (head)->next; (n) != (head); (n) = (n)->next)

/* The same, where the body may remove (and free) `n`; `tmp` is scratch. */
#define nt_list_foreach_safe(n, tmp, head) \
    for ((n) = (head)->next, (tmp) = (n)->next; (n) != (head); (n) = (tmp), (tmp) = (n)->next)

/* Makes `h` an empty list (or a node that nt_list_linked calls unlinked). */
static inline void nt_list_init(nt_list *h)
{
    h->next = h;
    h->prev = h;
}

static inline bool nt_list_empty(const nt_list *h)
{
    return h->next == h;
}

/* True when node `n` is in a list: after an insert, not after nt_list_init or
 * nt_list_remove. */
static inline bool nt_list_linked(const nt_list *n)
{
    return n->next != n;
}

/* First and last node, or NULL when the list is empty. */
static inline nt_list *nt_list_first(const nt_list *h)
{
    return h->next != h ? h->next : NULL;
}

static inline nt_list *nt_list_last(const nt_list *h)
{
    return h->prev != h ? h->prev : NULL;
}

/* Links `n` (not in any list) right after `pos`, which is a head or a node in a list. */
static inline void nt_list_insert_after(nt_list *pos, nt_list *n)
{
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
}

/* Links `n` right before `pos`; with pos the head, at the tail. */
static inline void nt_list_insert_before(nt_list *pos, nt_list *n)
{
    nt_list_insert_after(pos->prev, n);
}

static inline void nt_list_insert_head(nt_list *h, nt_list *n)
{
    nt_list_insert_after(h, n);
}

static inline void nt_list_insert_tail(nt_list *h, nt_list *n)
{
    nt_list_insert_after(h->prev, n);
}

/* Unlinks `n` from its list and leaves it unlinked (nt_list_linked false), so removing
 * it again is harmless. */
static inline void nt_list_remove(nt_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    nt_list_init(n);
}

#endif
