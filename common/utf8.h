/* utf8.h: UTF-8 validation, scrubbing and cutting; no dependencies (log.c uses it). */
#ifndef NT_UTF8_H
#define NT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
