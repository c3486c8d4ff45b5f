/* nkey.h: NATS NKeys (Ed25519 keys in base32 with a type prefix and a CRC-16):
 * the public key of a user seed, which cnats needs besides the seed file. */
#ifndef NT_NKEY_H
#define NT_NKEY_H

#include <stddef.h>

#define NT_NKEY_SEED_LEN 58    /* "SU" + 56 base32 characters */
#define NT_NKEY_PUBLIC_LEN 56  /* "U" + 55 base32 characters */

/* Finds the user seed in text[0..len) — a bare "SU…" seed, or the seed block of a
 * .creds/.nk file: the first line that is a well-formed user seed — and writes its
 * public key ("U…", NUL-terminated) into pub. Pure: no I/O. Returns 0, or -1 with
 * a reason in why[whylen] (no key material in it). */
int nt_nkey_user_public(const char *text, size_t len, char pub[NT_NKEY_PUBLIC_LEN + 1],
                        char *why, size_t whylen);

#endif
