/* util.h: small helpers shared by all processes: ids, time, validation, subjects. */
#ifndef NT_UTIL_H
#define NT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) matches [A-Za-z0-9_-]{1,64}: user, room and app ids. */
bool nt_valid_id(const char *s, size_t len);
/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool nt_valid_utf8(const char *s, size_t len);
/* Length of the well-formed UTF-8 sequence at s[i] (1..4), 0 when s[i] starts none. */
size_t nt_utf8_seq(const char *s, size_t len, size_t i);
/* Makes s[0..len) valid UTF-8 in place: every byte that is not part of a well-formed
 * sequence becomes '?'. Returns how many were replaced. */
size_t nt_utf8_scrub(char *s, size_t len);
/* The longest prefix of s[0..len) of at most max bytes that does not end inside a
 * character (s is taken as UTF-8; stray continuation bytes count as characters' tails). */
size_t nt_utf8_cut(const char *s, size_t len, size_t max);
/* For quoting client text in a message: s itself when shorter than buflen bytes, else
 * its first characters that fit with "..." into buf (cut on a character boundary). */
const char *nt_shorten(const char *s, char *buf, size_t buflen);
/* Number of Unicode code points in valid UTF-8. */
size_t nt_utf8_len(const char *s, size_t len);
/* Writes a random UUIDv4 string (36 chars + NUL) into out[37]. */
void nt_uuid(char out[37]);
/* Wall clock in milliseconds since epoch. */
int64_t nt_now_ms(void);
/* RFC 3339 UTC with milliseconds: "2026-11-22T03:17:21.123Z" into out[32]. */
void nt_rfc3339_ms(int64_t ms, char out[32]);
/* Partition of a room: stable hash (FNV-1a of "app/room") modulo nparts. */
unsigned nt_partition(const char *app, const char *room, unsigned nparts);
/* Constant-time comparison of two byte strings (lengths may differ). */
bool nt_consttime_eq(const char *a, size_t alen, const char *b, size_t blen);

#endif
