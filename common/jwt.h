/* jwt.h: JWT verification (HS256 only), claims per PROTOCOL.md "Identity". */
#ifndef NT_JWT_H
#define NT_JWT_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define NT_ID_MAX 64

typedef struct nt_claims {
    char sub[NT_ID_MAX + 1];      /* user id, [A-Za-z0-9_-]{1,64} */
    char app[NT_ID_MAX + 1];      /* tenant, default "default" */
    char name[129];               /* display name, may be empty; UTF-8, truncated at 128 bytes on a char boundary */
    char role[33];                /* may be empty */
    int64_t exp;                  /* seconds since epoch */
} nt_claims;

/* Verifies `token` against `secret` at time `now` (seconds). Refuses: malformed
 * token, alg other than HS256 (including "none"), bad signature, missing or
 * non-integer exp, exp <= now, missing or invalid sub, invalid app.
 * On failure returns NT_EAUTH and writes a short reason ("token expired",
 * "bad signature", …) into `why` (may be NULL). */
nt_status nt_jwt_verify(const char *token, size_t len, const char *secret, int64_t now,
                        nt_claims *out, char *why, size_t whylen);

/* Signs an HS256 token with the given claims (for dev tokens and tests).
 * Returns an nt_malloc'd string, or NULL when a string is not valid UTF-8.
 * `app` (default "default"), `name` and `role` may be NULL. */
char *nt_jwt_sign(const char *secret, const char *sub, const char *app, const char *name,
                  const char *role, int64_t exp);

#endif
